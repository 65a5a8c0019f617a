//! The engine's side of config drift: keeping the watched set of MCP config files
//! current and turning what changed in them into `config_change` events (the
//! watcher itself is [`crate::configwatch`]).
use crate::{
    configwatch::{discover_files, POLL, REDISCOVER},
    hosts::import,
};

impl super::core::Core {
    /// The config files records were imported from.
    fn imported_files(&self) -> Vec<String> {
        use crate::policy::record::Source;
        self.consent
            .all_records()
            .filter_map(|r| match &r.source {
                Source::Import { file, .. } => Some(file.clone()),
                _ => None,
            })
            .collect()
    }

    /// Rebuild the watched set now (see [`discover_files`]).
    pub fn refresh_config_watch(&mut self) {
        let files = discover_files(&self.profiles, &self.imported_files());
        self.watch_config_files(files);
    }

    fn watch_config_files(&mut self, files: Vec<import::ConfigFile>) {
        self.configs.set_files(files, &crate::hosts::RealFs);
        self.last_config_scan = std::time::Instant::now();
        self.refresh_entry_commands();
    }

    /// The watched configs' server commands, resolved as a host would run them
    /// (the daemon's PATH), and their filenames in the kernel's `HOST_PATHS`: an
    /// untracked exec of one is reported, for `unknown_host_exec`.
    pub(crate) fn refresh_entry_commands(&mut self) {
        use std::os::unix::ffi::OsStringExt as _;
        let path = std::env::var_os("PATH").map_or_else(
            || b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_vec(),
            std::ffi::OsString::into_vec,
        );
        let cmds = crate::unknown::entry_commands(&self.configs.servers(), &path);
        let keys = crate::unknown::filename_keys(&cmds);
        if let Err(err) = self.sensor.set_entry_paths(&keys) {
            tracing::warn!(error = %err, "could not give the kernel the config entries' commands: launches by unrecognised hosts are not reported");
        }
        self.entry_commands = cmds;
    }

    /// The periodic rediscovery: with the engine running, the walk over the homes
    /// runs on a blocking thread and its result comes back to the engine as a
    /// command; without one (start-up, unit tests), now.
    fn rediscover_configs(&mut self) {
        let Some(engine) = self
            .engine
            .clone()
            .filter(|_| tokio::runtime::Handle::try_current().is_ok())
        else {
            return self.refresh_config_watch();
        };
        if self.rediscovering {
            return;
        }
        self.rediscovering = true;
        self.last_config_scan = std::time::Instant::now();
        let (profiles, imported) = (self.profiles.clone(), self.imported_files());
        tokio::spawn(async move {
            let found =
                tokio::task::spawn_blocking(move || discover_files(&profiles, &imported)).await;
            engine
                .call(move |core| {
                    core.rediscovering = false;
                    if let Ok(files) = found {
                        core.watch_config_files(files);
                    }
                })
                .await;
        });
    }

    /// Report what changed in the watched configs (see [`crate::configwatch`]).
    pub fn tick_configs(&mut self) {
        use std::fmt::Write as _;

        use crate::{event::Kind, policy::record::Source};
        if self.last_config_scan.elapsed() >= REDISCOVER {
            self.rediscover_configs();
        }
        if self.last_config_poll.elapsed() < POLL {
            return;
        }
        self.last_config_poll = std::time::Instant::now();
        let changes = self.configs.poll(&crate::hosts::RealFs);
        if !changes.is_empty() {
            self.refresh_entry_commands();
        }
        for c in changes {
            let records: Vec<u64> = self
                .consent
                .all_records()
                .filter(|r| {
                    matches!(&r.source, Source::Import { file, server }
                        if *file == c.file && c.server.as_deref().is_none_or(|s| s == server))
                })
                .map(|r| r.id)
                .collect();
            let what = match c.change.as_str() {
                "added" => "new server, not approved".to_owned(),
                "removed" => "server removed".to_owned(),
                "changed" => "server changed".to_owned(),
                "file_removed" => "file removed".to_owned(),
                "file_broken" => {
                    "file no longer parses (the host may not start its servers)".to_owned()
                }
                other => other.replace('_', " "),
            };
            let mut msg = format!(
                "{}: {}{}: {what}",
                c.host,
                c.file,
                c.server
                    .as_ref()
                    .map_or_else(String::new, |s| format!("#{s}"))
            );
            if !c.diff.is_empty() {
                msg.push_str(": ");
                msg.push_str(&c.diff.join("; "));
            }
            if !records.is_empty() && c.change == "changed" {
                let _ = write!(
                    msg,
                    ". Record {} approved the entry as it was and still approves only that command; \
                     the new command is not approved (`mcpwatch scan` shows it, \
                     `mcpwatch approve --from-config {}/{}` approves it)",
                    records
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    c.host,
                    c.server.as_deref().unwrap_or_default()
                );
            }
            tracing::warn!(message = %msg, "MCP config changed");
            let mut e = self.new_event(Kind::ConfigChange);
            e.record = records.first().copied();
            e.message = Some(msg);
            e.config = Some(c);
            self.record(&e);
        }
    }
}
