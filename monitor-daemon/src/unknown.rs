//! Launches by hosts mcpwatch has no profile for: a process no profile recognises
//! that executes exactly the command of a server entry of some MCP config file the
//! daemon watches. The kernel reports an untracked exec whose filename is such a
//! command (`HOST_PATHS` value `ENTRY_MARK`, flag `UNKNOWN_HOST`), without holding
//! it; here its argv is compared with the entries', exactly, and a match is
//! recorded as a launch of the host `unknown`, naming its parent, so that `mcpwatch
//! hosts --suggest` can print the profile that would cover it.
//!
//! Pure but for the filesystem lookups of [`entry_commands`] (PATH, links).

use std::{
    fmt::Write as _,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use monitor_common::PathKey;

use crate::{
    event::{Bytes, UnknownHost},
    hosts::{
        self,
        import::{ConfigFile, Entry, Imported},
    },
    scan,
};

/// The host name such launches are recorded under.
pub const UNKNOWN_HOST: &str = "unknown";

/// One config entry's command, as a host would execute it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryCommand {
    pub config: ConfigFile,
    pub server: String,
    /// argv as the kernel sees it after exec (`#!` interpreter first).
    pub argv: Vec<Bytes>,
    /// The filenames a host passes to execve for it: found in PATH, and where
    /// that leads.
    pub filenames: Vec<PathBuf>,
}

/// The commands of `servers` (local ones that resolve), with `path_var` for the
/// PATH a host has.
pub fn entry_commands(
    servers: &[(&ConfigFile, &str, &Entry)],
    path_var: &[u8],
) -> Vec<EntryCommand> {
    let mut out = Vec::new();
    for (file, server, entry) in servers {
        let Entry::Local { argv, cwd, .. } = entry else {
            continue;
        };
        let imp = Imported {
            host: file.host.clone(),
            schema: file.schema,
            file: file.path.clone(),
            project: file.project.clone(),
            server: (*server).to_owned(),
            enabled: true,
            disabled_reason: None,
            entry: (*entry).clone(),
            notes: Vec::new(),
        };
        let Ok(resolved) = scan::resolve(&imp, path_var) else {
            continue;
        };
        let Some(first) = argv.first() else {
            continue;
        };
        let dir = cwd.as_deref().or(file.project.as_deref());
        let found = if first.starts_with('/') {
            Some(PathBuf::from(first))
        } else if first.contains('/') {
            dir.map(|d| d.join(first))
        } else {
            crate::resolve::which(first.as_bytes(), path_var)
        };
        let mut filenames = Vec::new();
        if let Some(p) = found {
            if let Ok(c) = std::fs::canonicalize(&p) {
                if c != p {
                    filenames.push(c);
                }
            }
            filenames.insert(0, p);
        }
        if filenames.is_empty() {
            continue;
        }
        out.push(EntryCommand {
            config: (*file).clone(),
            server: (*server).to_owned(),
            argv: resolved.argv,
            filenames,
        });
    }
    out
}

/// The `HOST_PATHS` keys of the commands' filenames (each once).
pub fn filename_keys(cmds: &[EntryCommand]) -> Vec<PathKey> {
    let mut keys: Vec<PathKey> = Vec::new();
    for c in cmds {
        for f in &c.filenames {
            if let Some(k) = hosts::path_key(f) {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
    }
    keys
}

/// The entry whose command `argv` is, exactly.
pub fn matching<'a>(cmds: &'a [EntryCommand], argv: &[Vec<u8>]) -> Option<&'a EntryCommand> {
    cmds.iter()
        .find(|c| c.argv.len() == argv.len() && c.argv.iter().zip(argv).all(|(a, b)| a.0 == *b))
}

/// What an `unknown_host` field says of a match.
pub fn describe(cmd: &EntryCommand, parent_pid: u32) -> UnknownHost {
    let exe = std::fs::read_link(format!("/proc/{parent_pid}/exe")).ok();
    let cmdline = std::fs::read(format!("/proc/{parent_pid}/cmdline")).unwrap_or_default();
    UnknownHost {
        parent_pid,
        parent_exe: exe.map(|p| Bytes(p.as_os_str().as_bytes().to_vec())),
        parent_argv: crate::event::raw::split_nul(&cmdline)
            .into_iter()
            .map(Bytes)
            .collect(),
        config_host: cmd.config.host.clone(),
        file: cmd.config.path.display().to_string(),
        server: cmd.server.clone(),
        schema: cmd.config.schema.to_string(),
        level: format!("{:?}", cmd.config.level).to_lowercase(),
    }
}

/// The `[[host]]` profile (TOML) that would recognise the parent of these launches
/// and read the configs they came from. `launches` are of one parent executable.
pub fn suggest(launches: &[&UnknownHost]) -> Option<String> {
    let first = launches.first()?;
    let exe = first.parent_exe.as_ref()?.lossy().into_owned();
    let base = Path::new(&exe).file_name()?.to_string_lossy().into_owned();
    let name: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_start_matches(['-', '_', '.']).to_owned();
    let name = if name.is_empty() {
        "my-host".to_owned()
    } else {
        name
    };
    let mut configs: Vec<(String, &str)> = Vec::new();
    for l in launches {
        let entry = (l.file.clone(), l.schema.as_str());
        if !configs.contains(&entry) {
            configs.push(entry);
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {exe} launched {} (pid {}: {})",
        launches
            .iter()
            .map(|l| format!("`{}` of {}", l.server, l.file))
            .collect::<Vec<_>>()
            .join(", "),
        first.parent_pid,
        crate::event::shell_join(&first.parent_argv),
    );
    s.push_str("[[host]]\n");
    let _ = writeln!(s, "name = {name:?}");
    if hosts::check_host_name(&base).is_ok() {
        let _ = writeln!(s, "names = [{base:?}]");
    }
    let _ = writeln!(s, "exe = [{exe:?}]");
    s.push_str("configs = [\n");
    for (file, schema) in configs {
        let _ = writeln!(
            s,
            "  {{ path = {file:?}, level = \"system\", schema = {schema:?} }},"
        );
    }
    s.push_str("]\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::{Level, Schema};

    fn cmd(argv: &[&str]) -> EntryCommand {
        EntryCommand {
            config: ConfigFile {
                host: "cursor".into(),
                schema: Schema::Cursor,
                level: Level::User,
                path: PathBuf::from("/home/a/.cursor/mcp.json"),
                home: Some(PathBuf::from("/home/a")),
                project: None,
            },
            server: "fs".into(),
            argv: Bytes::from_strs(&argv.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()),
            filenames: vec![PathBuf::from("/usr/bin/npx")],
        }
    }

    #[test]
    fn only_the_exact_argv_of_an_entry_matches() {
        let cmds = [cmd(&[
            "/usr/bin/env",
            "node",
            "/usr/bin/npx",
            "-y",
            "srv",
            "/tmp",
        ])];
        let hit = |a: &[&str]| {
            let argv: Vec<Vec<u8>> = a.iter().map(|s| s.as_bytes().to_vec()).collect();
            matching(&cmds, &argv).is_some()
        };
        let npx = ["/usr/bin/env", "node", "/usr/bin/npx"];
        let with = |rest: &[&'static str]| [&npx[..], rest].concat();
        assert!(hit(&with(&["-y", "srv", "/tmp"])));
        assert!(!hit(&with(&["-y", "srv"])), "an argument fewer");
        assert!(!hit(&with(&["-y", "srv", "/tmp", "x"])), "an argument more");
        assert!(!hit(&with(&["create-app"])), "another run of npx");
        assert_eq!(filename_keys(&cmds).len(), 1);
    }

    #[test]
    fn the_suggestion_is_a_profile_for_the_parent_and_the_configs_it_read() {
        let l = UnknownHost {
            parent_pid: 42,
            parent_exe: Some(Bytes::from("/opt/New Agent/bin/newagent")),
            parent_argv: vec![Bytes::from("newagent"), Bytes::from("--serve")],
            config_host: "cursor".into(),
            file: "/home/a/.cursor/mcp.json".into(),
            server: "fs".into(),
            schema: "cursor".into(),
            level: "user".into(),
        };
        let text = suggest(&[&l, &l]).expect("a suggestion");
        assert_eq!(
            text,
            "# /opt/New Agent/bin/newagent launched `fs` of /home/a/.cursor/mcp.json, `fs` of /home/a/.cursor/mcp.json (pid 42: newagent --serve)\n\
             [[host]]\n\
             name = \"newagent\"\n\
             names = [\"newagent\"]\n\
             exe = [\"/opt/New Agent/bin/newagent\"]\n\
             configs = [\n  { path = \"/home/a/.cursor/mcp.json\", level = \"system\", schema = \"cursor\" },\n]\n"
        );
        // What it prints is a valid [[host]] entry of a config.
        let cfg = crate::config::Config::from_toml_str(
            &text.replace("# ", "#"),
            std::path::Path::new("t.toml"),
        );
        assert!(cfg.is_ok(), "{cfg:?}");
    }
}
