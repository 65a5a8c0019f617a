//! `mcpwatch hosts`: every host profile, so that nothing about recognition is
//! silent: how the kernel recognises the host (names, executables, script paths),
//! where it was found and which version, its mode, the processes of it running now
//! (and how each was recognised), and the MCP config files it reads.
//!
//! Resolution and config discovery run here, as the user, over the real
//! filesystem (the same code the daemon runs at start); modes and running hosts
//! come from the daemon when it answers.

use std::{collections::BTreeMap, fmt::Write as _, path::PathBuf, process::ExitCode};

use serde::Serialize;

use crate::{
    cli::{args::HostsArgs, client::Daemon, cmd::scan, term::emit},
    hosts::{self, import::Entry, HostFs as _},
    reply::StatusView,
};

/// One profile, as `hosts` shows it.
#[derive(Debug, Serialize)]
struct HostReport {
    name: String,
    display: String,
    /// The daemon's effective mode (`None`: the daemon did not answer).
    mode: Option<String>,
    locked: bool,
    recognised_by: Recognition,
    /// Files of the profile found on this machine now.
    found: Vec<Found>,
    /// Processes of this host running now (from the daemon).
    running: Vec<Running>,
    configs: Vec<ConfigReport>,
}

#[derive(Debug, Serialize)]
struct Recognition {
    /// Last component of the exec filename, wherever the file is.
    names: Vec<String>,
    /// Executable path globs (matched by device and inode as resolved at start).
    executables: Vec<String>,
    /// `#!` script path globs (matched by the exact exec filename).
    scripts: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Found {
    path: PathBuf,
    /// `executable` (by identity) or `script` (by path).
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

#[derive(Debug, Serialize)]
struct Running {
    pid: u64,
    recognised_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<String>,
}

#[derive(Debug, Serialize)]
struct ConfigReport {
    path: PathBuf,
    level: String,
    schema: String,
    /// Local (command) servers it names, and all servers.
    local_servers: usize,
    servers: usize,
}

pub fn hosts(a: &HostsArgs) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::connect();
    let status: Option<StatusView> = daemon.as_ref().ok().and_then(|d| {
        d.call("Status", d.proxy.status())
            .ok()
            .and_then(|answer| answer.reply("Status").ok())
    });
    if a.suggest {
        return suggest(a, status.as_ref());
    }
    let profiles = scan::profiles(&a.sources, daemon.as_ref().ok())?;
    let result = scan::discover_with(&a.sources, a.host.as_deref(), profiles.clone())?;
    let profiles: Vec<_> = profiles
        .into_iter()
        .filter(|p| a.host.as_deref().is_none_or(|h| p.name == h))
        .collect();
    let resolved = hosts::resolve(&profiles, &hosts::RealFs);
    let reports = build(&profiles, &resolved, &result, status.as_ref());
    if a.json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&reports)?))?;
    } else {
        emit(&render(&reports, status.is_some()))?;
    }
    for w in &resolved.warnings {
        eprintln!("mcpwatch: {w}");
    }
    if status.is_none() {
        eprintln!("mcpwatch: the daemon did not answer: modes and running hosts are unknown");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--suggest`: the `[[host]]` profiles for the unknown hosts in the audit log.
fn suggest(a: &HostsArgs, status: Option<&StatusView>) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let path = match (&a.sources.config, status.and_then(|s| s.log_file.as_ref())) {
        (Some(c), _) => crate::config::Config::load(c)
            .with_context(|| format!("reading {}", c.display()))?
            .log_path(),
        (None, Some(log)) => PathBuf::from(log),
        (None, None) => crate::config::Config::embedded_default().log_path(),
    };
    let mut files = crate::audit::rotated_files(&path);
    files.push(path.clone());
    let mut launches = Vec::new();
    for f in files.iter().filter(|f| f.exists()) {
        let events = crate::logfile::read_all(f, |e| eprintln!("mcpwatch: {e}"))?;
        launches.extend(events.into_iter().filter_map(|e| e.unknown_host));
    }
    let mut by_exe: BTreeMap<String, Vec<&crate::event::UnknownHost>> = BTreeMap::new();
    for l in &launches {
        let exe = l
            .parent_exe
            .as_ref()
            .map_or_else(|| "?".to_owned(), |e| e.lossy().into_owned());
        by_exe.entry(exe).or_default().push(l);
    }
    if by_exe.is_empty() {
        emit(&format!(
            "no launches by unrecognised hosts in {} (and its rotated files)\n",
            path.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    for (exe, ls) in &by_exe {
        match crate::unknown::suggest(ls) {
            Some(text) => {
                out.push_str(&text);
                out.push('\n');
            }
            None => {
                let _ = writeln!(
                    out,
                    "# {exe}: its executable is unknown (it had exited); no profile to suggest\n"
                );
            }
        }
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn build(
    profiles: &[hosts::HostProfile],
    resolved: &hosts::Resolved,
    scan: &scan::ScanResult,
    status: Option<&StatusView>,
) -> Vec<HostReport> {
    let mut out = Vec::new();
    for (id, p) in profiles.iter().enumerate() {
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        let mut found: Vec<Found> = resolved
            .exes
            .iter()
            .filter(|(_, owner, _)| *owner == id)
            .map(|(_, _, path)| Found {
                version: hosts::version_of(path, &hosts::RealFs),
                path: path.clone(),
                kind: "executable",
            })
            .collect();
        found.extend(
            resolved
                .paths
                .iter()
                .filter(|(_, owner, _)| *owner == id)
                .map(|(_, _, path)| Found {
                    // A bin link's package is its target's.
                    version: hosts::version_of(
                        &hosts::RealFs
                            .canonicalize(path)
                            .unwrap_or_else(|_| path.clone()),
                        &hosts::RealFs,
                    ),
                    path: path.clone(),
                    kind: "script",
                }),
        );
        let mode = status.and_then(|s| s.modes.as_ref()?.get(&p.name)).cloned();
        let running = status
            .and_then(|s| s.hosts.as_ref())
            .map(|hs| {
                hs.iter()
                    .filter(|h| h.name.as_deref() == Some(p.name.as_str()))
                    .map(|h| Running {
                        pid: h.pid.unwrap_or(0),
                        recognised_by: h.recognised_by.clone().unwrap_or_else(|| "?".into()),
                        filename: h.filename.clone(),
                        exe: h.exe.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut servers: BTreeMap<PathBuf, (usize, usize)> = BTreeMap::new();
        for row in &scan.rows {
            if row.imp.host != p.name {
                continue;
            }
            let n = servers.entry(row.imp.file.clone()).or_default();
            n.1 += 1;
            if matches!(row.imp.entry, Entry::Local { .. }) {
                n.0 += 1;
            }
        }
        let configs = scan
            .files
            .iter()
            .filter(|f| f.host == p.name)
            .map(|f| {
                let (local, all) = servers.get(&f.path).copied().unwrap_or_default();
                ConfigReport {
                    path: f.path.clone(),
                    level: format!("{:?}", f.level).to_lowercase(),
                    schema: f.schema.to_string(),
                    local_servers: local,
                    servers: all,
                }
            })
            .collect();
        out.push(HostReport {
            name: p.name.clone(),
            display: p.display_name().to_owned(),
            locked: mode.as_ref().and_then(|m| m.locked).unwrap_or(false),
            mode: mode.and_then(|m| m.mode),
            recognised_by: Recognition {
                names: p.names.clone(),
                executables: p.exe.clone(),
                scripts: p.scripts.clone(),
            },
            found,
            running,
            configs,
        });
    }
    out
}

fn render(reports: &[HostReport], daemon: bool) -> String {
    let mut s = String::new();
    for r in reports {
        let mode = match (&r.mode, daemon) {
            (Some(m), _) => format!("mode {m}{}", if r.locked { " (locked)" } else { "" }),
            (None, true) => "mode: default".to_owned(),
            (None, false) => "mode unknown (no daemon)".to_owned(),
        };
        let _ = writeln!(s, "{} ({}): {mode}", r.name, r.display);
        let how = &r.recognised_by;
        let mut ways = Vec::new();
        if !how.names.is_empty() {
            ways.push(format!(
                "by name ({}) wherever installed",
                how.names.join(", ")
            ));
        }
        if !how.executables.is_empty() {
            ways.push(format!(
                "by executable identity ({} paths)",
                how.executables.len()
            ));
        }
        if !how.scripts.is_empty() {
            ways.push(format!("by script path ({} paths)", how.scripts.len()));
        }
        let _ = writeln!(
            s,
            "  recognised: {}",
            if ways.is_empty() {
                "never (disabled)".to_owned()
            } else {
                ways.join("; ")
            }
        );
        if r.found.is_empty() {
            let _ = writeln!(s, "  found:      nothing at the listed paths");
        }
        for f in &r.found {
            let _ = writeln!(
                s,
                "  found:      {} ({}{})",
                f.path.display(),
                f.kind,
                f.version
                    .as_ref()
                    .map(|v| format!(", {v}"))
                    .unwrap_or_default()
            );
        }
        for p in &r.running {
            let _ = writeln!(
                s,
                "  running:    pid {} by {}{}{}",
                p.pid,
                p.recognised_by,
                p.filename
                    .as_ref()
                    .map(|f| format!(", executed as {f}"))
                    .unwrap_or_default(),
                p.exe
                    .as_ref()
                    .map(|e| format!(", executable {e}"))
                    .unwrap_or_default()
            );
        }
        for c in &r.configs {
            let _ = writeln!(
                s,
                "  config:     {} ({}, {}): {} servers, {} local",
                c.path.display(),
                c.level,
                c.schema,
                c.servers,
                c.local_servers
            );
        }
        if r.configs.is_empty() {
            let _ = writeln!(s, "  config:     none found");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_says_how_it_is_recognised_and_where_it_was_found() {
        let reports = vec![
            HostReport {
                name: "claude-code".into(),
                display: "Claude Code".into(),
                mode: Some("enforce".into()),
                locked: false,
                recognised_by: Recognition {
                    names: vec!["claude".into()],
                    executables: vec!["/usr/lib/node_modules/x".into()],
                    scripts: vec![],
                },
                found: vec![Found {
                    path: PathBuf::from(
                        "/usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
                    ),
                    kind: "executable",
                    version: Some("@anthropic-ai/claude-code@2.1.197".into()),
                }],
                running: vec![Running {
                    pid: 42,
                    recognised_by: "name".into(),
                    filename: Some("/tmp/tools/node_modules/.bin/claude".into()),
                    exe: None,
                }],
                configs: vec![ConfigReport {
                    path: PathBuf::from("/home/a/.claude.json"),
                    level: "user".into(),
                    schema: "claude-code".into(),
                    local_servers: 1,
                    servers: 2,
                }],
            },
            HostReport {
                name: "zed".into(),
                display: "Zed".into(),
                mode: None,
                locked: false,
                recognised_by: Recognition {
                    names: vec![],
                    executables: vec![],
                    scripts: vec![],
                },
                found: vec![],
                running: vec![],
                configs: vec![],
            },
        ];
        let text = render(&reports, true);
        assert_eq!(
            text,
            "claude-code (Claude Code): mode enforce\n\
             \x20 recognised: by name (claude) wherever installed; by executable identity (1 paths)\n\
             \x20 found:      /usr/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe (executable, @anthropic-ai/claude-code@2.1.197)\n\
             \x20 running:    pid 42 by name, executed as /tmp/tools/node_modules/.bin/claude\n\
             \x20 config:     /home/a/.claude.json (user, claude-code): 2 servers, 1 local\n\
             zed (Zed): mode: default\n\
             \x20 recognised: never (disabled)\n\
             \x20 found:      nothing at the listed paths\n\
             \x20 config:     none found\n"
        );
    }
}
