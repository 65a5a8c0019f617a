//! Events as the daemon records them: the JSON-lines contract of the audit log,
//! `mcpwatch log --json` and the D-Bus `Event` signal (schema in README.md).
//!
//! Stable fields (a contract other tools rely on): `kind`, `pid`, `ppid`, `host`,
//! `exe`, `argv`, `cwd`, `uid`, `ts`. Additions are allowed; renames are not.
pub mod raw;

use std::{collections::BTreeMap, fmt::Write as _};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change of the JSON shape.
pub const SCHEMA_VERSION: u32 = 1;

/// The environment variables whose values are recorded with every exec, because
/// they change what a program loads or runs (one list, used everywhere).
pub const SECURITY_ENV: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "NODE_OPTIONS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "BASH_ENV",
    "ENV",
    // Where interpreters find their standard library and modules, and what they
    // load first: each one can run other code under an approved command.
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "NODE_PATH",
    "PERL5LIB",
    "PERLLIB",
    "PERL5OPT",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "GIT_EXEC_PATH",
    "GIT_SSH_COMMAND",
];

/// Families of variables that change what a program loads or runs, by prefix:
/// every member is pinned like a name of [`SECURITY_ENV`] (its value as approved,
/// or unset). `(prefix, ignore_case)`. The loader's `LD_*` (`LD_BIND_NOW`,
/// `LD_PROFILE`, …), git's `GIT_*` (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/
/// `GIT_CONFIG_VALUE_0` set any config, `GIT_ASKPASS`, `GIT_DIR`, …) and npm's
/// configuration (`npm_config_registry`, `NPM_CONFIG_SCRIPT_SHELL`, any case: npm
/// reads it so). The kernel knows a family by 3, 4 or 8 bytes (8 when case is
/// ignored), so npm's is `npm_conf`.
pub const SECURITY_ENV_FAMILIES: &[(&str, bool)] =
    &[("LD_", false), ("GIT_", false), ("npm_conf", true)];

/// The family `name` belongs to (its prefix, as in [`SECURITY_ENV_FAMILIES`]).
pub fn env_family(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    SECURITY_ENV_FAMILIES
        .iter()
        .find(|(prefix, fold)| {
            let p = prefix.as_bytes();
            b.len() >= p.len()
                && if *fold {
                    b[..p.len()].eq_ignore_ascii_case(p)
                } else {
                    &b[..p.len()] == p
                }
        })
        .map(|(prefix, _)| *prefix)
}

/// Whether a record pins `name`: one of [`SECURITY_ENV`] or a member of one of
/// [`SECURITY_ENV_FAMILIES`].
pub fn is_security_env(name: &str) -> bool {
    SECURITY_ENV.contains(&name) || env_family(name).is_some()
}

/// The names two environments must agree on to be the same launch: every name of
/// [`SECURITY_ENV`] and every family member either of them names.
pub fn pinned_names<'a>(
    names: impl IntoIterator<Item = &'a String>,
) -> std::collections::BTreeSet<String> {
    SECURITY_ENV
        .iter()
        .map(|n| (*n).to_owned())
        .chain(names.into_iter().filter(|n| is_security_env(n)).cloned())
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The daemon started (carries its version and what it enforces).
    DaemonStart,
    /// The daemon stopped cleanly.
    DaemonStop,
    /// A process became a host: profile match at exec, or `mcpwatch run`.
    HostStart,
    /// A host found already running at daemon start (or a descendant of one).
    Adopt,
    /// A host process executed a host image again (relaunch, helper).
    HostExec,
    /// A host process executed a program that is not the host's own.
    Launch,
    /// A host process executed one of its own helpers: an Electron `--type=`
    /// process, a helper executable (`chrome-sandbox`, crash handler), or the
    /// login-shell environment probe. Not a launch; nothing to approve.
    Helper,
    /// A host process started a terminal (a session leader on a pty, e.g. VS
    /// Code's integrated terminal). Not a launch; what runs in it is recorded.
    Terminal,
    /// An exec inside a session (below a launch).
    Exec,
    /// A tracked process forked.
    Fork,
    /// A tracked process exited.
    Exit,
    /// Events were lost; `lost` says where and how many.
    Lost,
    /// A consent record was created (`record` names it; `message` says by whom).
    Approve,
    /// A consent record was removed (revoked, or a `once` record used up).
    Revoke,
    /// A host's mode changed.
    Mode,
    /// A held launch (ask mode) was answered or timed out: `verdict` says how.
    Decision,
    /// An API call was refused (e.g. an approval from inside an agent's tree).
    Refused,
    /// The consent store or a managed policy file is broken; the last good copy
    /// is in force. `message` names file, line and column.
    PolicyError,
    /// A consent record no longer applies (its file changed since approval).
    RecordStale,
    /// Someone other than mcpwatch sent SIGCONT to a held launch; it was killed.
    HoldBypass,
    /// The first record of a new log file: where the previous records went.
    LogRotate,
    /// A watched MCP config file changed: a server added, removed or changed, or
    /// the file broken or removed; `config` says which and what changed.
    ConfigChange,
    /// Retention removed an old log file; `message` ends in `last=ID head=HASH`,
    /// the anchor the chain continues from.
    LogRetention,
}

impl Kind {
    /// An exec-like event of one process: a line of its own in the tree.
    pub fn is_process_line(self) -> bool {
        matches!(
            self,
            Self::HostStart
                | Self::Adopt
                | Self::HostExec
                | Self::Launch
                | Self::Helper
                | Self::Terminal
                | Self::Exec
        )
    }

    /// Whether the D-Bus `Event` signal carries this kind: the events a live
    /// listener (a desktop notifier, an admin console) acts on. Forks, exits and
    /// session execs are high-rate and only in the log.
    pub fn is_signalled(self) -> bool {
        matches!(
            self,
            Self::DaemonStart
                | Self::DaemonStop
                | Self::HostStart
                | Self::Adopt
                | Self::Launch
                | Self::Lost
                | Self::Approve
                | Self::Revoke
                | Self::Mode
                | Self::Decision
                | Self::Refused
                | Self::PolicyError
                | Self::RecordStale
                | Self::HoldBypass
                | Self::ConfigChange
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DaemonStart => "daemon_start",
            Self::DaemonStop => "daemon_stop",
            Self::HostStart => "host_start",
            Self::Adopt => "adopt",
            Self::HostExec => "host_exec",
            Self::Launch => "launch",
            Self::Helper => "helper",
            Self::Terminal => "terminal",
            Self::Exec => "exec",
            Self::Fork => "fork",
            Self::Exit => "exit",
            Self::Lost => "lost",
            Self::Approve => "approve",
            Self::Revoke => "revoke",
            Self::Mode => "mode",
            Self::Decision => "decision",
            Self::Refused => "refused",
            Self::PolicyError => "policy_error",
            Self::RecordStale => "record_stale",
            Self::HoldBypass => "hold_bypass",
            Self::LogRotate => "log_rotate",
            Self::LogRetention => "log_retention",
            Self::ConfigChange => "config_change",
        }
    }
}

/// A byte string that is exact in JSON: a plain string when it is UTF-8, otherwise
/// `{"base64": "..."}` of the raw bytes (argv and paths on Linux are bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// An argv of text (as config files give it) as bytes.
    pub fn from_strs(argv: &[String]) -> Vec<Bytes> {
        argv.iter().map(|a| Self::from(a.as_str())).collect()
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Self {
        Self(b.to_vec())
    }
}

impl From<&str> for Bytes {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Ok(text) = std::str::from_utf8(&self.0) {
            s.serialize_str(text)
        } else {
            let mut m = BTreeMap::new();
            m.insert(
                "base64",
                base64::engine::general_purpose::STANDARD.encode(&self.0),
            );
            m.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            B64 { base64: String },
        }
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(Self(t.into_bytes())),
            Repr::B64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(Self)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRef {
    /// Host profile name (`claude-code`, `cursor`, ... or the `--host` of `mcpwatch run`).
    pub name: String,
    /// tgid of the host process at the root of this tree.
    pub pid: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exe {
    /// Resolved path of the executable actually mapped (from the kernel's dentry walk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Bytes>,
    /// `major:minor` as stat(2) shows it.
    pub dev: String,
    pub ino: u64,
    /// Inode change time, `sec.nsec`: the hash below is valid for this ctime.
    pub ctime: String,
    /// SHA-256 of the file's content, hex; absent when it could not be hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why `sha256` is absent (file gone, changed since exec, unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code when the process exited normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal number when a signal killed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Shell-style status: the code, or 128 + signal (SIGKILL is 137).
    pub status: i32,
}

impl ExitStatus {
    /// Decode the kernel's `task->exit_code` (wait status encoding).
    pub fn from_wait_status(raw: u32) -> Self {
        // The wait status is a C int; reinterpret the bits, as the kernel does.
        let raw = raw.cast_signed();
        let sig = raw & 0x7f;
        if sig == 0 {
            let code = (raw >> 8) & 0xff;
            Self {
                code: Some(code),
                signal: None,
                status: code,
            }
        } else {
            Self {
                code: None,
                signal: Some(sig),
                status: 128 + sig,
            }
        }
    }
}

/// Where events were lost (the `lost` field of a `lost` event, and `mcpwatch status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostCounts {
    /// Kernel ring buffer full: the kernel could not reserve the event.
    pub ringbuf: u64,
    /// The daemon's internal queue was full.
    pub queue: u64,
    /// A slow follower (`log --follow`, D-Bus listener) fell behind.
    pub broadcast: u64,
    /// Records the daemon could not decode.
    pub decode: u64,
}

impl LostCounts {
    pub fn total(&self) -> u64 {
        self.ringbuf + self.queue + self.broadcast + self.decode
    }
}

/// A verdict's decision, serialised as its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// A consent record matched.
    Allowed,
    /// Monitor mode: it ran, and this is the alert.
    Unapproved,
    /// Ask mode: stopped, waiting for an answer.
    Held,
    /// Killed before its first instruction (enforce, or ask with no daemon), or a
    /// held launch denied.
    Killed,
    /// The managed deny list.
    Denied,
    /// A held launch allowed.
    Continued,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Unapproved => "unapproved",
            Self::Held => "held",
            Self::Killed => "killed",
            Self::Denied => "denied",
            Self::Continued => "continued",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the kernel (and the daemon) decided about a launch or session exec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `allowed` (a record matched), `unapproved` (monitor: ran, alert), `held`
    /// (ask: stopped, waiting), `killed` (enforce, or ask with no daemon),
    /// `denied` (managed deny; killed unless the host is in monitor mode),
    /// `continued` / `killed` (a held launch answered).
    pub decision: Decision,
    /// The host's mode at the time.
    pub mode: crate::model::Mode,
    /// The consent record that allowed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Why: the missing record, the record that no longer applies, the deny rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ask mode: the id to answer with (`mcpwatch allow ID` / `deny ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// The process was killed before its first instruction.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub killed: bool,
}

/// `unknown_host` of a launch by a process no host profile recognises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownHost {
    /// The process that executed it (the host nobody has a profile for).
    pub parent_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_exe: Option<Bytes>,
    #[serde(default)]
    pub parent_argv: Vec<Bytes>,
    /// The config entry: the profile whose file it is, the file, the server.
    pub config_host: String,
    pub file: String,
    pub server: String,
    /// The file's format (`cursor`, `claude-code`, …) and level (`user`, …).
    pub schema: String,
    pub level: String,
}

/// One recorded event. Optional fields are omitted when they do not apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema: u32,
    /// Monotonic id, unique within this state directory.
    pub id: u64,
    /// RFC 3339 UTC with nanoseconds.
    pub ts: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ppid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// pid inside the process's own pid namespace (equal to `pid` in the root one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_pid: Option<u32>,
    /// Inode number of that pid namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostRef>,
    /// pid of the launch this process belongs to (its session), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    /// `terminal` or `helper` for a process inside a host's terminal or its
    /// environment probe (and below): recorded, not checked against consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// pids from this process up to its host, by lineage (who forked whom), not by
    /// the current parent: reparenting does not change it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<u32>,
    /// Exec: the filename passed to execve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<Exe>,
    /// Exec: the exact argv of the new image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<Bytes>>,
    /// argv was longer than the kernel capture bound (4096 bytes): the kernel
    /// captured only a prefix; `argv_source` says how the rest was obtained.
    #[serde(
        rename = "truncated",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub argv_truncated: bool,
    /// Where argv came from when not all from the kernel: `proc` (completed from
    /// /proc/PID/cmdline, which the process could have rewritten), or `partial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<Bytes>,
    /// `PATH` of an exec of `env PROG …`: where `env` looks PROG up (a record of
    /// the launch binds the PROG it finds there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_var: Option<Bytes>,
    /// Values of the security-relevant environment variables that are set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, Bytes>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub env_truncated: bool,
    /// Fork: the new process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
    /// Exit: seconds since the process was first seen (fork or exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostCounts>,
    /// Launches and session execs checked against consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Config change: the file, server and what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::model::ConfigChange>,
    /// A launch by a host mcpwatch has no profile for: who launched it, and the
    /// config entry whose command it is exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_host: Option<UnknownHost>,
    /// Approve / revoke / stale: the consent record concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<u64>,
    /// Free-form detail (daemon start/stop, adoption reason, warnings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The audit chain: SHA-256 (hex) of the record line before this one (64 zeros
    /// for the first). Added by the log writer, always the last field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Event {
    /// An event with only the always-present fields set.
    pub fn new(kind: Kind, id: u64, ts: String) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            id,
            ts,
            kind,
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: None,
            gid: None,
            ns_pid: None,
            pidns: None,
            comm: None,
            host: None,
            session: None,
            class: None,
            lineage: Vec::new(),
            filename: None,
            exe: None,
            argv: None,
            argv_truncated: false,
            argv_source: None,
            cwd: None,
            path_var: None,
            env: BTreeMap::new(),
            env_truncated: false,
            child_pid: None,
            exit: None,
            duration: None,
            lost: None,
            verdict: None,
            config: None,
            unknown_host: None,
            record: None,
            message: None,
            prev: None,
        }
    }

    pub fn to_json_line(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys, no
        // foreign Serialize impls that error.
        serde_json::to_string(self).expect("event serialises")
    }

    /// The command as a shell would show it, each argument quoted when needed.
    pub fn command_line(&self) -> String {
        self.argv
            .as_ref()
            .map(|a| shell_join(a))
            .unwrap_or_default()
    }
}

/// Quote argv for display so that spaces, quotes, newlines and empty arguments stay
/// visible and unambiguous (`'a b'`, `''`, `$'\n'`, `$'\xff'`): the one way a
/// command is shown to a person, on one line.
pub fn shell_join(argv: &[Bytes]) -> String {
    shell_words(argv).join(" ")
}

/// [`shell_join`]'s words, one per argument, for displays that wrap a long command
/// between arguments (never inside one).
pub fn shell_words(argv: &[Bytes]) -> Vec<String> {
    argv.iter().map(|a| shell_quote(&a.0)).collect()
}

pub fn shell_quote(arg: &[u8]) -> String {
    let plain = !arg.is_empty()
        && arg
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        return String::from_utf8_lossy(arg).into_owned();
    }
    let printable = std::str::from_utf8(arg).is_ok_and(|s| !s.chars().any(char::is_control));
    if printable {
        return format!("'{}'", String::from_utf8_lossy(arg).replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    match std::str::from_utf8(arg) {
        Ok(s) => {
            for c in s.chars() {
                push_ansi_c(&mut out, c);
            }
        }
        Err(_) => {
            for &b in arg {
                if b.is_ascii() && !b.is_ascii_control() {
                    push_ansi_c(&mut out, char::from(b));
                } else {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
    out.push('\'');
    out
}

fn push_ansi_c(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\'' => out.push_str("\\'"),
        '\\' => out.push_str("\\\\"),
        c if c.is_control() => {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_keep_every_argument_boundary() {
        let argv = [
            Bytes::from("/bin/echo"),
            Bytes::from("hold-fs-arg"),
            Bytes::from("two words"),
            Bytes::from(""),
            Bytes(b"\xff".to_vec()),
        ];
        let words = shell_words(&argv);
        assert_eq!(
            words,
            ["/bin/echo", "hold-fs-arg", "'two words'", "''", "$'\\xff'"]
        );
        assert_eq!(shell_join(&argv), words.join(" "));
    }

    #[test]
    fn bytes_round_trip_exactly_through_json() {
        let argv = vec![
            Bytes::from("npx"),
            Bytes::from("a b \"q\" 'x'\nnl"),
            Bytes::from(""),
            Bytes(vec![b'o', 0xff, 0xfe]),
        ];
        let json = serde_json::to_string(&argv).unwrap();
        assert_eq!(json, r#"["npx","a b \"q\" 'x'\nnl","",{"base64":"b//+"}]"#);
        let back: Vec<Bytes> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, argv);
    }

    #[test]
    fn stable_contract_fields_are_named_as_documented() {
        let mut e = Event::new(Kind::Launch, 7, "2026-11-27T10:00:00.000000000Z".into());
        e.pid = 10;
        e.ppid = 9;
        e.uid = Some(1000);
        e.host = Some(HostRef {
            name: "claude-code".into(),
            pid: 9,
        });
        e.exe = Some(Exe {
            path: Some(Bytes::from("/usr/bin/npx")),
            ..Exe::default()
        });
        e.argv = Some(vec![Bytes::from("npx")]);
        e.cwd = Some(Bytes::from("/tmp"));
        let v: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        for key in [
            "kind", "pid", "ppid", "host", "exe", "argv", "cwd", "uid", "ts", "schema", "id",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["kind"], "launch");
        assert_eq!(v["host"]["name"], "claude-code");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn families_pin_their_members_and_only_them() {
        for name in [
            "LD_BIND_NOW",
            "LD_",
            "GIT_CONFIG_COUNT",
            "GIT_ASKPASS",
            "npm_config_registry",
            "NPM_CONFIG_SCRIPT_SHELL",
            "Npm_Config_x",
            "NODE_OPTIONS",
        ] {
            assert!(is_security_env(name), "{name}");
        }
        for name in [
            "LDFLAGS",
            "GITHUB_TOKEN",
            "npm_package_name",
            "npm_lifecycle_event",
            "ld_preload",
            "git_dir",
            "PATH",
            "HOME",
        ] {
            assert!(!is_security_env(name), "{name}");
        }
        let extra = ["npm_config_cache".to_owned(), "HOME".to_owned()];
        let names = pinned_names(&extra);
        assert!(names.contains("npm_config_cache") && names.contains("LD_PRELOAD"));
        assert!(!names.contains("HOME"));
        assert_eq!(names.len(), SECURITY_ENV.len() + 1);
    }

    #[test]
    fn wait_status_decodes_code_and_signal() {
        assert_eq!(ExitStatus::from_wait_status(3 << 8).code, Some(3));
        let killed = ExitStatus::from_wait_status(9);
        assert_eq!((killed.signal, killed.status), (Some(9), 137));
    }

    #[test]
    fn shell_quoting_keeps_arguments_distinguishable() {
        let argv = [
            Bytes::from("sh"),
            Bytes::from("-c"),
            Bytes::from("echo 'hi'"),
            Bytes::from(""),
            Bytes::from("a\nb"),
            Bytes(vec![0xff]),
        ];
        assert_eq!(
            shell_join(&argv),
            r"sh -c 'echo '\''hi'\''' '' $'a\nb' $'\xff'"
        );
    }
}
