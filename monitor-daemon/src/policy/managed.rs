//! Administrator policy: `/etc/mcpwatch/policy.d/*.toml`, root-owned.
//!
//! ```toml
//! [[approve]]                    # any number: commands approved for every user
//! host = "claude-code"           # host profile name, or "*"
//! exe = "/usr/bin/node"          # absolute
//! sha256 = "…"                   # optional: absent = the daemon binds the file's
//!                                # content at load (and says so)
//! argv = ["node", "/opt/srv/index.js", "--stdio"]
//! cwd = "/srv"                   # optional
//! env = { NODE_OPTIONS = "--max-old-space-size=512" }  # optional; SECURITY_ENV
//!                                # names; unmentioned ones must be absent
//! script = "/opt/srv/run.sh"     # optional, with optional script_sha256
//! note = "…"
//!
//! [deny]
//! programs = ["sudo", "su", "pkexec", "doas"]  # basenames or absolute paths
//! replace_default = false        # true: DEFAULT_DENY no longer applies
//!
//! [hosts.cursor]                 # [hosts."*"]: every host
//! mode = "enforce"               # monitor | ask | enforce
//! lock = true                    # users cannot change this host's mode
//! ```
//!
//! Files are read in name order and combined; none can weaken another:
//! approvals and deny lists add up, and when two files set a host's mode the
//! stricter one wins (`enforce` > `ask` > `monitor`) and a lock from either
//! applies. Such overlaps are not reported: layering an organisation-wide file
//! and a team file is the intended use.
//!
//! A file that does not parse, does not validate, or cannot be trusted is
//! reported and replaced by its last good text (from an earlier load in this or,
//! via [`ManagedLoader::with_last_good`], an earlier daemon run), so one bad edit
//! never lowers policy. Removing a file (or the directory) does remove its policy:
//! that takes root, like writing one.

use std::{
    collections::BTreeMap,
    fmt, fs,
    io::{self, Read as _},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use monitor_common::ARGV_CAP;
use serde::Deserialize;
use toml::Spanned;

use super::record::{self, FileBinding, Record, Scope, Source, ANY_HOST, ANY_UID};
use crate::{
    event::Bytes,
    model::{
        text::{line_column, location},
        Mode,
    },
};

/// Programs no launch or session exec may run unless a policy file sets
/// `[deny] replace_default = true`: they change whose privileges a process has.
pub const DEFAULT_DENY: &[&str] = &["sudo", "su", "pkexec", "doas"];

/// Why an `[[approve]]` entry gives no record now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManagedError {
    /// The daemon could not hash the file.
    #[error("{what} {path}: no current SHA-256")]
    NoHash { what: &'static str, path: String },
    /// The file's content is not the one the policy pins.
    #[error(
        "{what} {path} changed: policy {} approves sha256 {pinned}, the file now has {current}",
        .policy.display()
    )]
    Changed {
        what: &'static str,
        path: String,
        policy: PathBuf,
        pinned: String,
        current: String,
    },
    #[error(transparent)]
    Record(#[from] record::RecordError),
}

/// What is wrong with one value of a policy file (a [`PolicyProblem`]'s message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{name:?} is not a host name (lowercase letters, digits, -, _ and .; or \"*\")")]
    HostName { name: String },
    #[error("{what} {path:?} must be an absolute path")]
    NotAbsolute { what: &'static str, path: String },
    #[error("{what} {path:?} contains a NUL byte")]
    NulInPath { what: &'static str, path: String },
    #[error("{what} {hex:?} is not 64 hex digits")]
    BadSha256 { what: &'static str, hex: String },
    #[error(
        "deny entry {program:?} must be a program name (looked up in PATH) or an absolute path"
    )]
    DenyEntry { program: String },
}

/// One `[[approve]]` entry, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedApprove {
    pub host: String,
    pub exe: String,
    /// Lowercase hex; `None`: bind the file's content when the policy is loaded.
    pub sha256: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    pub script: Option<String>,
    /// Lowercase hex; `None` (with a script): bind its content at load.
    pub script_sha256: Option<String>,
    pub note: String,
    /// The policy file it comes from.
    pub file: PathBuf,
}

impl ManagedApprove {
    /// The consent record this entry stands for, given the current SHA-256 of the
    /// executable (and script) that the daemon computed. When the entry pins a
    /// hash, the file must still have that content: otherwise the error says which
    /// file changed, and nothing is approved.
    ///
    /// The record approves for every user ([`ANY_UID`]), always; its `id` is 0
    /// (managed records are not in the consent store).
    pub fn to_record(
        &self,
        exe_sha256: &str,
        script_sha256: Option<&str>,
        created: &str,
    ) -> Result<Record, ManagedError> {
        let bind =
            |what: &'static str, path: &str, pinned: Option<&String>, current: Option<&str>| {
                let current = current.ok_or_else(|| ManagedError::NoHash {
                    what,
                    path: path.to_owned(),
                })?;
                match pinned {
                    Some(pinned) if pinned != current => Err(ManagedError::Changed {
                        what,
                        path: path.to_owned(),
                        policy: self.file.clone(),
                        pinned: pinned.clone(),
                        current: current.to_owned(),
                    }),
                    _ => Ok(FileBinding {
                        path: path.to_owned(),
                        sha256: current.to_owned(),
                        arg: None,
                    }),
                }
            };
        let exe = bind("exe", &self.exe, self.sha256.as_ref(), Some(exe_sha256))?;
        let script = match &self.script {
            Some(path) => Some(bind(
                "script",
                path,
                self.script_sha256.as_ref(),
                script_sha256,
            )?),
            None => None,
        };
        let record = Record {
            id: 0,
            host: self.host.clone(),
            exe,
            script,
            resolved: None,
            argv: self.argv.iter().map(|a| Bytes::from(a.as_str())).collect(),
            cwd: self.cwd.as_deref().map(Bytes::from),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), Some(Bytes::from(v.as_str()))))
                .collect(),
            scope: Scope::Always,
            source: Source::Managed(self.file.display().to_string()),
            created: created.to_owned(),
            note: self.note.clone(),
            uid: ANY_UID,
        };
        record.validate()?;
        Ok(record)
    }
}

/// The combined `[hosts.NAME]` policy for one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    /// The stricter of the modes the files set; `None`: no file sets one.
    pub mode: Option<Mode>,
    /// Any file locks it: users cannot change the mode.
    pub lock: bool,
    /// The file to name to users: the first that locks the host, else the one
    /// whose mode applies.
    pub file: PathBuf,
}

impl HostPolicy {
    /// Fold `other` in: the stricter mode, either lock.
    fn combine(&mut self, other: &HostPolicy) {
        let mode = match (self.mode, other.mode) {
            (Some(a), Some(b)) => Some(a.stricter(b)),
            (a, b) => a.or(b),
        };
        if !self.lock && (other.lock || mode != self.mode) {
            self.file.clone_from(&other.file);
        }
        self.mode = mode;
        self.lock |= other.lock;
    }
}

/// All managed policy in effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Managed {
    pub approves: Vec<ManagedApprove>,
    /// Union over the files, in file order, plus [`DEFAULT_DENY`] first unless a
    /// file sets `[deny] replace_default = true`. Duplicates removed.
    pub deny: Vec<String>,
    pub hosts: BTreeMap<String, HostPolicy>,
    /// The files whose policy is in effect (some maybe as their last good text).
    pub files: Vec<PathBuf>,
}

/// No policy files: only the default deny list.
impl Default for Managed {
    fn default() -> Self {
        Self {
            approves: Vec::new(),
            deny: DEFAULT_DENY.iter().map(|&d| d.to_owned()).collect(),
            hosts: BTreeMap::new(),
            files: Vec::new(),
        }
    }
}

impl Managed {
    /// The policy for `host`: its own `[hosts.NAME]` combined with `[hosts."*"]`
    /// (the stricter mode, either lock), so a host's own entry cannot weaken what
    /// the wildcard asks for.
    pub fn host_policy(&self, host: &str) -> Option<HostPolicy> {
        let own = self.hosts.get(host);
        let any = (host != ANY_HOST)
            .then(|| self.hosts.get(ANY_HOST))
            .flatten();
        match (own, any) {
            (Some(own), Some(any)) => {
                let mut policy = own.clone();
                policy.combine(any);
                Some(policy)
            }
            (own, any) => own.or(any).cloned(),
        }
    }
}

/// Why a policy file is not applied as written. `line` and `column` are 1-based;
/// 0 when there is no position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            location(&self.file, self.line, self.column),
            self.message
        )
    }
}

impl std::error::Error for PolicyProblem {}

/// Loads the policy directory, remembering each file's last good text.
#[derive(Clone, Debug, Default)]
pub struct ManagedLoader {
    last_good: BTreeMap<PathBuf, String>,
}

impl ManagedLoader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start from last good texts the daemon persisted in an earlier run, so a
    /// file broken while the daemon was down still falls back to its good version.
    pub fn with_last_good(map: BTreeMap<PathBuf, String>) -> Self {
        Self { last_good: map }
    }

    /// The last good text of each file (for the daemon to persist).
    pub fn last_good(&self) -> &BTreeMap<PathBuf, String> {
        &self.last_good
    }

    /// Read every `*.toml` in `dir`, by name (names starting with `.`, like
    /// editor lock files, are skipped). A missing directory is no policy.
    ///
    /// A file that fails to parse or validate is reported and its last good text
    /// is used instead; other files apply normally. With `require_root_owned`, a
    /// file (or the directory) not owned by root or writable by group or others is
    /// not trusted: reported, and the last good text used. Files must be regular
    /// files (not symbolic links, FIFOs, ...).
    pub fn load(&mut self, dir: &Path, require_root_owned: bool) -> (Managed, Vec<PolicyProblem>) {
        let mut problems = Vec::new();
        let untrusted_dir = if require_root_owned {
            match fs::metadata(dir) {
                Ok(meta) => untrusted(&meta, "directory"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => Some(format!("cannot inspect the directory: {e}")),
            }
        } else {
            None
        };
        let listing = match untrusted_dir {
            Some(why) => Err(why),
            None => match fs::read_dir(dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.last_good.clear();
                    return (Managed::default(), problems);
                }
                Err(e) => Err(format!("cannot read the policy directory: {e}")),
                Ok(entries) => entries
                    .map(|entry| entry.map(|e| e.path()))
                    .collect::<io::Result<Vec<_>>>()
                    .map_err(|e| format!("cannot list the policy directory: {e}")),
            },
        };
        let (paths, dir_trusted) = match listing {
            Ok(mut paths) => {
                paths.retain(|p| {
                    p.file_name()
                        .map(|n| n.to_string_lossy())
                        .is_some_and(|n| n.ends_with(".toml") && !n.starts_with('.'))
                });
                paths.sort();
                // A file that is gone takes its policy with it.
                self.last_good.retain(|p, _| paths.contains(p));
                (paths, true)
            }
            Err(why) => {
                // Nothing in the directory can be listed or trusted: keep every
                // file as it last loaded.
                problems.push(PolicyProblem {
                    file: dir.to_path_buf(),
                    line: 0,
                    column: 0,
                    message: format!("{why}; using the last good version of every policy file"),
                });
                (self.last_good.keys().cloned().collect::<Vec<_>>(), false)
            }
        };

        let mut files = Vec::new();
        for path in paths {
            let fresh = if dir_trusted {
                read_trusted(&path, require_root_owned)
                    .and_then(|text| parse_file(&text, &path).map(|parsed| (text, parsed)))
            } else {
                Err(PolicyProblem {
                    file: path.clone(),
                    line: 0,
                    column: 0,
                    message: String::new(),
                })
            };
            match fresh {
                Ok((text, parsed)) => {
                    self.last_good.insert(path.clone(), text);
                    files.push((path, parsed));
                }
                Err(mut problem) => {
                    let fallback = self.last_good.get(&path).map(|t| parse_file(t, &path));
                    let (suffix, parsed) = match fallback {
                        Some(Ok(parsed)) => {
                            ("using its last good version".to_owned(), Some(parsed))
                        }
                        Some(Err(e)) => (
                            format!(
                                "its last good version does not load either ({}): not applied",
                                e.message
                            ),
                            None,
                        ),
                        None => ("no earlier version loaded: not applied".to_owned(), None),
                    };
                    if dir_trusted {
                        problem.message = format!("{}; {suffix}", problem.message);
                        problems.push(problem);
                    }
                    if let Some(parsed) = parsed {
                        files.push((path, parsed));
                    }
                }
            }
        }
        (combine(files), problems)
    }
}

/// Why a file or directory owned and moded like `meta` cannot be trusted.
fn untrusted(meta: &fs::Metadata, what: &str) -> Option<String> {
    if meta.uid() != 0 {
        Some(format!(
            "the {what} is owned by uid {}, not root",
            meta.uid()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "the {what} is writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    }
}

/// Read a policy file, checking on the opened file itself (no race with a
/// rename) that it is a regular file and, if asked, trusted.
fn read_trusted(path: &Path, require_root_owned: bool) -> Result<String, PolicyProblem> {
    let problem = |message: String| PolicyProblem {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    // O_NOFOLLOW: a symlink could lead anywhere; O_NONBLOCK: opening a FIFO must
    // not hang the daemon (it is then rejected as not regular).
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                problem("is a symbolic link; policy files must be regular files".to_owned())
            } else {
                problem(format!("cannot open: {e}"))
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| problem(format!("cannot inspect: {e}")))?;
    if !meta.is_file() {
        return Err(problem(
            "is not a regular file; policy files must be regular files".to_owned(),
        ));
    }
    if require_root_owned {
        if let Some(why) = untrusted(&meta, "file") {
            return Err(problem(format!("{why}: not trusted")));
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| problem(format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid =
            std::str::from_utf8(&e.as_bytes()[..e.utf8_error().valid_up_to()]).unwrap_or_default();
        let (line, column) = line_column(valid, valid.len());
        PolicyProblem {
            line,
            column,
            ..problem("not UTF-8 text".to_owned())
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    approve: Vec<ApproveToml>,
    #[serde(default)]
    deny: Option<DenyToml>,
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<HostToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveToml {
    host: Spanned<String>,
    exe: Spanned<String>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    argv: Spanned<Vec<String>>,
    #[serde(default)]
    cwd: Option<Spanned<String>>,
    #[serde(default)]
    env: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    script: Option<Spanned<String>>,
    #[serde(default)]
    script_sha256: Option<Spanned<String>>,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DenyToml {
    #[serde(default)]
    programs: Vec<Spanned<String>>,
    #[serde(default)]
    replace_default: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostToml {
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    lock: bool,
}

/// One file, parsed and checked.
#[derive(Debug)]
struct PolicyFile {
    approves: Vec<ManagedApprove>,
    deny: Vec<String>,
    replace_default: bool,
    hosts: BTreeMap<String, HostPolicy>,
}

fn parse_file(text: &str, file: &Path) -> Result<PolicyFile, PolicyProblem> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_column(text, offset);
        PolicyProblem {
            file: file.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let raw: FileToml = toml::from_str(text).map_err(|e| {
        // toml's messages may span lines: keep the problem on one.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        match e.span() {
            Some(span) => at(span.start, message),
            None => PolicyProblem {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                message,
            },
        }
    })?;
    let check = |value: &Spanned<String>, result: Result<(), EntryError>| {
        result.map_err(|m| at(value.span().start, m.to_string()))
    };
    let approves = raw
        .approve
        .into_iter()
        .map(|a| parse_approve(a, file, &at))
        .collect::<Result<_, _>>()?;

    let (mut deny, mut replace_default) = (Vec::new(), false);
    if let Some(d) = raw.deny {
        replace_default = d.replace_default;
        for program in d.programs {
            check(&program, deny_entry(program.get_ref()))?;
            deny.push(program.into_inner());
        }
    }

    let mut hosts = BTreeMap::new();
    for (name, host) in raw.hosts {
        if let Err(m) = host_name(&name) {
            return Err(at(host.span().start, format!("[hosts.{name:?}]: {m}")));
        }
        let host = host.into_inner();
        hosts.insert(
            name,
            HostPolicy {
                mode: host.mode,
                lock: host.lock,
                file: file.to_path_buf(),
            },
        );
    }
    Ok(PolicyFile {
        approves,
        deny,
        replace_default,
        hosts,
    })
}

/// One `[[approve]]` entry, checked; `at` turns a byte offset into a problem.
fn parse_approve(
    a: ApproveToml,
    file: &Path,
    at: &impl Fn(usize, String) -> PolicyProblem,
) -> Result<ManagedApprove, PolicyProblem> {
    let check = |value: &Spanned<String>, result: Result<(), EntryError>| {
        result.map_err(|m| at(value.span().start, m.to_string()))
    };
    host_name(a.host.get_ref()).map_err(|m| at(a.host.span().start, format!("host: {m}")))?;
    check(&a.exe, absolute("exe", a.exe.get_ref()))?;
    let sha256 = a
        .sha256
        .map(|s| {
            check(&s, check_sha256("sha256", s.get_ref())).map(|()| s.into_inner().to_lowercase())
        })
        .transpose()?;
    let argv_span = a.argv.span().start;
    let argv = a.argv.into_inner();
    if argv.is_empty() {
        return Err(at(argv_span, "argv is empty".to_owned()));
    }
    if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
        return Err(at(
            argv_span,
            format!(
                "argv[{i}] contains a NUL byte: the kernel's argv cannot, so it would never match"
            ),
        ));
    }
    let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
    if bytes > ARGV_CAP {
        return Err(at(
            argv_span,
            format!(
                "argv is {bytes} bytes (NUL terminators included); the kernel captures at \
                 most {ARGV_CAP}, so a longer command can never be matched in the kernel"
            ),
        ));
    }
    if let Some(cwd) = &a.cwd {
        check(cwd, absolute("cwd", cwd.get_ref()))?;
    }
    let env = match a.env {
        Some(env) => {
            let span = env.span().start;
            let env = env.into_inner();
            record::check_env_names(env.keys().map(String::as_str))
                .map_err(|m| at(span, m.to_string()))?;
            env
        }
        None => BTreeMap::new(),
    };
    if let Some(script) = &a.script {
        check(script, absolute("script", script.get_ref()))?;
    }
    let script_sha256 = match a.script_sha256 {
        Some(s) if a.script.is_none() => {
            return Err(at(
                s.span().start,
                "script_sha256 without script: name the script it is the hash of".to_owned(),
            ))
        }
        Some(s) => Some(
            check(&s, check_sha256("script_sha256", s.get_ref()))
                .map(|()| s.into_inner().to_lowercase())?,
        ),
        None => None,
    };
    Ok(ManagedApprove {
        host: a.host.into_inner(),
        exe: a.exe.into_inner(),
        sha256,
        argv,
        cwd: a.cwd.map(Spanned::into_inner),
        env,
        script: a.script.map(Spanned::into_inner),
        script_sha256,
        note: a.note,
        file: file.to_path_buf(),
    })
}

/// A host profile name as the config allows it (`claude-code`, `my.agent_2`),
/// or `*`.
fn host_name(name: &str) -> Result<(), EntryError> {
    let mut chars = name.chars();
    let valid = name == ANY_HOST
        || (chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)));
    if valid {
        Ok(())
    } else {
        Err(EntryError::HostName {
            name: name.to_owned(),
        })
    }
}

fn absolute(what: &'static str, path: &str) -> Result<(), EntryError> {
    let path_ = || path.to_owned();
    if !path.starts_with('/') {
        Err(EntryError::NotAbsolute {
            what,
            path: path_(),
        })
    } else if path.contains('\0') {
        Err(EntryError::NulInPath {
            what,
            path: path_(),
        })
    } else {
        Ok(())
    }
}

fn check_sha256(what: &'static str, hex: &str) -> Result<(), EntryError> {
    if record::is_sha256_hex(&hex.to_lowercase()) {
        Ok(())
    } else {
        Err(EntryError::BadSha256 {
            what,
            hex: hex.to_owned(),
        })
    }
}

fn deny_entry(program: &str) -> Result<(), EntryError> {
    if program.starts_with('/') {
        absolute("deny entry", program)
    } else if program.is_empty()
        || program.contains(['/', '\0'])
        || program == "."
        || program == ".."
    {
        Err(EntryError::DenyEntry {
            program: program.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// Combine files in order (see the module docs).
fn combine(files: Vec<(PathBuf, PolicyFile)>) -> Managed {
    let mut managed = Managed::default();
    if files.iter().any(|(_, f)| f.replace_default) {
        managed.deny.clear();
    }
    for (path, file) in files {
        managed.approves.extend(file.approves);
        for program in file.deny {
            if !managed.deny.contains(&program) {
                managed.deny.push(program);
            }
        }
        for (name, policy) in file.hosts {
            managed
                .hosts
                .entry(name)
                .and_modify(|p| p.combine(&policy))
                .or_insert(policy);
        }
        managed.files.push(path);
    }
    managed
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    use super::*;
    use crate::policy::record::tests::SHA_A;

    const FULL: &str = r#"
[[approve]]
host = "claude-code"
exe = "/usr/bin/node"
sha256 = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
argv = ["node", "/opt/srv/index.js", "--stdio"]
cwd = "/srv"
env = { NODE_OPTIONS = "--max-old-space-size=512" }
script = "/opt/srv/run.sh"
note = "team server"

[[approve]]
host = "*"
exe = "/usr/bin/python3"
argv = ["python3", "-m", "srv"]

[deny]
programs = ["nc", "/usr/bin/socat"]

[hosts.cursor]
mode = "enforce"
lock = true
"#;

    fn parse(text: &str) -> Result<PolicyFile, PolicyProblem> {
        parse_file(text, Path::new("/p/a.toml"))
    }

    fn problem(text: &str) -> PolicyProblem {
        parse(text).unwrap_err()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    fn host(mode: &str, lock: bool) -> String {
        format!("[hosts.cursor]\nmode = \"{mode}\"\nlock = {lock}\n")
    }

    #[test]
    fn a_full_file_parses_into_checked_entries() {
        let f = parse(FULL).unwrap();
        assert_eq!(f.approves.len(), 2);
        let a = &f.approves[0];
        assert_eq!(
            a,
            &ManagedApprove {
                host: "claude-code".to_owned(),
                exe: "/usr/bin/node".to_owned(),
                sha256: Some(SHA_A.to_owned()),
                argv: vec!["node".into(), "/opt/srv/index.js".into(), "--stdio".into()],
                cwd: Some("/srv".to_owned()),
                env: [(
                    "NODE_OPTIONS".to_owned(),
                    "--max-old-space-size=512".to_owned()
                )]
                .into(),
                script: Some("/opt/srv/run.sh".to_owned()),
                script_sha256: None,
                note: "team server".to_owned(),
                file: PathBuf::from("/p/a.toml"),
            }
        );
        assert_eq!(f.approves[1].sha256, None);
        assert_eq!(f.deny, ["nc", "/usr/bin/socat"]);
        assert!(!f.replace_default);
        assert_eq!(f.hosts["cursor"].mode, Some(Mode::Enforce));
        assert!(f.hosts["cursor"].lock);
        // An empty file is valid and says nothing.
        let empty = parse("# nothing yet\n").unwrap();
        assert!(empty.approves.is_empty() && empty.deny.is_empty() && empty.hosts.is_empty());
    }

    #[test]
    fn syntax_and_schema_errors_name_line_and_column() {
        // Unterminated array: found at the end of the text.
        let p = problem("[deny]\nprograms = [\"nc\"\n");
        assert_eq!((p.line, p.column), (3, 1), "{p}");
        assert!(p.message.starts_with("invalid array; expected `]`"), "{p}");
        assert!(!p.message.contains('\n'), "{p}");

        let p = problem("[deny]\nprogram = [\"nc\"]\n");
        assert_eq!((p.line, p.column), (2, 1), "{p}");
        assert!(p.message.starts_with("unknown field `program`"), "{p}");
        assert!(
            p.to_string()
                .starts_with("/p/a.toml:2:1: unknown field `program`"),
            "{p}"
        );

        let p = problem("[[approve]]\nhost = \"a\"\nexe = \"/a\"\nargv = [\"a\"]\nargs = []\n");
        assert_eq!((p.line, p.column), (5, 1), "{p}");

        let p = problem("[hosts.cursor]\nmode = \"block\"\n");
        assert_eq!((p.line, p.column), (2, 8), "{p}");
        assert!(p.message.contains("unknown variant `block`"), "{p}");

        let p = problem("[hosts.cursor]\nmode = \"ask\"\nlocked = true\n");
        assert_eq!((p.line, p.column), (3, 1), "{p}");

        let p = problem("[[approve]]\nhost = \"a\"\nexe = \"/a\"\n");
        assert!(p.message.contains("missing field `argv`"), "{p}");
        assert_eq!(p.line, 1, "{p}");

        let p = problem("surprise = 1\n");
        assert_eq!((p.line, p.column), (1, 1), "{p}");
    }

    #[test]
    fn invalid_values_are_reported_where_they_are() {
        let approve = |extra: &str| {
            format!("[[approve]]\nhost = \"a\"\nexe = \"/usr/bin/a\"\nargv = [\"a\"]\n{extra}")
        };
        for (text, line, column, message) in [
            (
                "[[approve]]\nhost = \"a\"\nexe = \"bin/a\"\nargv = [\"a\"]\n".to_owned(),
                3,
                7,
                "exe \"bin/a\" must be an absolute path",
            ),
            (
                "[[approve]]\nhost = \"My Host\"\nexe = \"/a\"\nargv = [\"a\"]\n".to_owned(),
                2,
                8,
                "host: \"My Host\" is not a host name",
            ),
            (
                "[[approve]]\nhost = \"a\"\nexe = \"/a\"\nargv = []\n".to_owned(),
                4,
                8,
                "argv is empty",
            ),
            (
                approve("sha256 = \"abc\"\n"),
                5,
                10,
                "sha256 \"abc\" is not 64 hex digits",
            ),
            (
                approve("cwd = \"srv\"\n"),
                5,
                7,
                "cwd \"srv\" must be an absolute path",
            ),
            (
                approve("env = { PATH = \"/x\" }\n"),
                5,
                7,
                "env names PATH, which is not a security-relevant variable",
            ),
            (
                approve("script = \"run.sh\"\n"),
                5,
                10,
                "script \"run.sh\" must be an absolute path",
            ),
            (
                approve(&format!("script_sha256 = \"{SHA_A}\"\n")),
                5,
                17,
                "script_sha256 without script",
            ),
            (
                approve("script = \"/r.sh\"\nscript_sha256 = \"x\"\n"),
                6,
                17,
                "script_sha256 \"x\" is not 64 hex digits",
            ),
            (
                "[deny]\nprograms = [\"nc\", \"bin/nc\"]\n".to_owned(),
                2,
                19,
                "deny entry \"bin/nc\" must be a program name",
            ),
            (
                "[deny]\nprograms = [\"\"]\n".to_owned(),
                2,
                13,
                "deny entry \"\"",
            ),
            (
                "[hosts.\"Cursor App\"]\nmode = \"ask\"\n".to_owned(),
                1,
                1,
                "[hosts.\"Cursor App\"]: \"Cursor App\" is not a host name",
            ),
        ] {
            let p = problem(&text);
            assert!(p.message.starts_with(message), "{text}: {p}");
            assert_eq!((p.line, p.column), (line, column), "{text}: {p}");
        }
    }

    #[test]
    fn argv_past_the_kernel_capture_bound_is_rejected() {
        let long = "x".repeat(ARGV_CAP);
        let p = problem(&format!(
            "[[approve]]\nhost = \"a\"\nexe = \"/a\"\nargv = [\"{long}\"]\n"
        ));
        assert_eq!(p.line, 4);
        assert!(
            p.message
                .contains("so a longer command can never be matched in the kernel"),
            "{p}"
        );
    }

    #[test]
    fn to_record_binds_current_hashes_and_refuses_changed_files() {
        let f = parse(FULL).unwrap();
        let other = "f".repeat(64);
        let r = f.approves[0]
            .to_record(SHA_A, Some(&other), "2026-11-27T10:00:00Z")
            .unwrap();
        assert_eq!(r.exe.sha256, SHA_A);
        assert_eq!(r.script.as_ref().unwrap().sha256, other);
        assert_eq!(r.uid, ANY_UID);
        assert_eq!(r.scope, Scope::Always);
        assert_eq!(r.source.to_string(), "managed:/p/a.toml");
        assert_eq!(r.cwd, Some(Bytes::from("/srv")));
        assert_eq!(
            r.env["NODE_OPTIONS"],
            Some(Bytes::from("--max-old-space-size=512"))
        );
        assert_eq!(r.command_line(), "node /opt/srv/index.js --stdio");

        let err = f.approves[0]
            .to_record(&other, Some(&other), "2026-11-27T10:00:00Z")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("exe /usr/bin/node changed: policy /p/a.toml approves sha256 {SHA_A}, the file now has {other}")
        );
        let err = f.approves[0]
            .to_record(SHA_A, None, "2026-11-27T10:00:00Z")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "script /opt/srv/run.sh: no current SHA-256"
        );
        // No pinned hash: whatever the file has now is bound.
        let r = f.approves[1]
            .to_record(&other, None, "2026-11-27T10:00:00Z")
            .unwrap();
        assert_eq!(r.exe.sha256, other);
        assert!(f.approves[1]
            .to_record("bad", None, "2026-11-27T10:00:00Z")
            .is_err());
    }

    #[test]
    fn missing_directory_is_no_policy_but_the_default_deny_list() {
        let tmp = tempfile::tempdir().unwrap();
        let mut loader = ManagedLoader::new();
        let (managed, problems) = loader.load(&tmp.path().join("policy.d"), true);
        assert_eq!(problems, vec![]);
        assert_eq!(managed, Managed::default());
        assert_eq!(managed.deny, DEFAULT_DENY);
    }

    #[test]
    fn files_combine_in_name_order_and_only_toml_files_count() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let b = write(dir, "20-b.toml", "[deny]\nprograms = [\"nc\", \"sudo\"]\n");
        let a = write(dir, "10-a.toml", FULL);
        write(dir, "30-c.toml.bak", "broken [");
        write(dir, ".#40-d.toml", "broken [");
        write(dir, "README", "broken [");
        let mut loader = ManagedLoader::new();
        let (managed, problems) = loader.load(dir, false);
        assert_eq!(problems, vec![]);
        assert_eq!(managed.files, [a.clone(), b.clone()]);
        assert_eq!(managed.approves.len(), 2);
        assert_eq!(managed.approves[0].file, a);
        assert_eq!(
            managed.deny,
            ["sudo", "su", "pkexec", "doas", "nc", "/usr/bin/socat"]
        );
        assert_eq!(loader.last_good().keys().collect::<Vec<_>>(), [&a, &b]);
    }

    #[test]
    fn replace_default_drops_the_builtin_deny_list() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a.toml", "[deny]\nprograms = [\"nc\"]\n");
        write(
            tmp.path(),
            "b.toml",
            "[deny]\nreplace_default = true\nprograms = [\"sudo\"]\n",
        );
        let (managed, problems) = ManagedLoader::new().load(tmp.path(), false);
        assert_eq!(problems, vec![]);
        assert_eq!(managed.deny, ["nc", "sudo"]);
    }

    #[test]
    fn conflicting_host_modes_take_the_stricter_and_any_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write(tmp.path(), "a.toml", &host("enforce", false));
        let b = write(tmp.path(), "b.toml", &host("ask", true));
        write(tmp.path(), "c.toml", &host("monitor", false));
        let (managed, problems) = ManagedLoader::new().load(tmp.path(), false);
        assert_eq!(problems, vec![], "conflicts are not problems");
        assert_eq!(
            managed.hosts["cursor"],
            HostPolicy {
                mode: Some(Mode::Enforce),
                lock: true,
                file: b,
            }
        );
        // Without a lock, the file named is the one whose mode applies.
        fs::write(tmp.path().join("b.toml"), host("ask", false)).unwrap();
        let (managed, _) = ManagedLoader::new().load(tmp.path(), false);
        assert_eq!(managed.hosts["cursor"].file, a);
        assert!(!managed.hosts["cursor"].lock);
    }

    #[test]
    fn a_broken_edit_keeps_the_last_good_version_and_other_files_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write(tmp.path(), "a.toml", &host("enforce", true));
        let b = write(tmp.path(), "b.toml", "[deny]\nprograms = [\"nc\"]\n");
        let mut loader = ManagedLoader::new();
        let (good, problems) = loader.load(tmp.path(), false);
        assert_eq!(problems, vec![]);

        fs::write(&a, "[hosts.cursor]\nmode = \"monitor\"\nlock = flase\n").unwrap();
        write(tmp.path(), "c.toml", "[deny]\nprograms = [\"socat\"]\n");
        let (managed, problems) = loader.load(tmp.path(), false);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].file.as_path(), problems[0].line),
            (a.as_path(), 3)
        );
        assert!(
            problems[0]
                .message
                .ends_with("; using its last good version"),
            "{}",
            problems[0]
        );
        assert_eq!(managed.hosts, good.hosts, "the lock stays");
        assert_eq!(managed.deny.last().map(String::as_str), Some("socat"));
        assert_eq!(managed.files.len(), 3);
        assert_eq!(loader.last_good()[&a], host("enforce", true));
        assert!(loader.last_good().contains_key(&b));

        // A new loader that knows nothing earlier cannot fall back.
        let (managed, problems) = ManagedLoader::new().load(tmp.path(), false);
        assert!(problems[0]
            .message
            .ends_with("; no earlier version loaded: not applied"));
        assert!(managed.hosts.is_empty());
        assert_eq!(managed.files.len(), 2);

        // ...unless the daemon hands over what it persisted.
        let mut loader = ManagedLoader::with_last_good(loader.last_good().clone());
        let (managed, _) = loader.load(tmp.path(), false);
        assert_eq!(managed.hosts, good.hosts);

        // Fixing the file applies the fix; deleting it removes its policy.
        fs::write(&a, host("ask", false)).unwrap();
        let (managed, problems) = loader.load(tmp.path(), false);
        assert_eq!(problems, vec![]);
        assert_eq!(managed.hosts["cursor"].mode, Some(Mode::Ask));
        fs::remove_file(&a).unwrap();
        let (managed, _) = loader.load(tmp.path(), false);
        assert!(managed.hosts.is_empty());
        assert!(!loader.last_good().contains_key(&a));
    }

    #[test]
    fn a_last_good_text_that_no_longer_loads_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let a = write(tmp.path(), "a.toml", "nonsense = [");
        let mut loader = ManagedLoader::with_last_good([(a.clone(), "also = 1".to_owned())].into());
        let (managed, problems) = loader.load(tmp.path(), false);
        assert!(managed.files.is_empty());
        assert!(
            problems[0]
                .message
                .contains("; its last good version does not load either (unknown field `also`"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn symlinks_fifos_and_non_utf8_files_are_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let target = write(tmp.path(), "real.conf", &host("enforce", true));
        let link = tmp.path().join("a.toml");
        symlink(&target, &link).unwrap();
        let fifo = tmp.path().join("b.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        fs::create_dir(tmp.path().join("c.toml")).unwrap();
        fs::write(tmp.path().join("d.toml"), b"note = \"\xff\"").unwrap();
        let (managed, problems) = ManagedLoader::new().load(tmp.path(), false);
        assert!(managed.files.is_empty());
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(
            messages[0].contains("a.toml: is a symbolic link"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("b.toml: is not a regular file"),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("c.toml: is not a regular file"),
            "{messages:?}"
        );
        assert!(
            messages[3].contains("d.toml:1:9: not UTF-8 text"),
            "{messages:?}"
        );
    }

    #[test]
    fn untrusted_files_and_directories_fall_back_to_their_last_good_version() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("policy.d");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let a = write(&dir, "a.toml", &host("enforce", true));
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: only root can create the root-owned files this test needs");
            return;
        }
        let mut loader = ManagedLoader::new();
        let (good, problems) = loader.load(&dir, true);
        assert_eq!(problems, vec![]);

        // A group-writable file is not trusted: its last good version applies.
        fs::write(&a, host("monitor", false)).unwrap();
        fs::set_permissions(&a, fs::Permissions::from_mode(0o664)).unwrap();
        let (managed, problems) = loader.load(&dir, true);
        assert_eq!(managed.hosts, good.hosts);
        assert_eq!(
            problems[0].message,
            "the file is writable by group or others (mode 0664): not trusted; \
             using its last good version"
        );
        // Not asked to check ownership: the edit applies.
        let (managed, problems) = loader.load(&dir, false);
        assert_eq!(problems, vec![]);
        assert_eq!(managed.hosts["cursor"].mode, Some(Mode::Monitor));
        assert!(!managed.hosts["cursor"].lock);

        // A file owned by another user.
        fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
        loader.load(&dir, true);
        nix::unistd::chown(&a, Some(nix::unistd::Uid::from_raw(1000)), None).unwrap();
        fs::write(&a, host("ask", false)).unwrap();
        let (managed, problems) = loader.load(&dir, true);
        assert!(
            problems[0]
                .message
                .starts_with("the file is owned by uid 1000, not root: not trusted"),
            "{}",
            problems[0]
        );
        assert_eq!(managed.hosts["cursor"].mode, Some(Mode::Monitor));
        nix::unistd::chown(&a, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();

        // A world-writable directory: nothing in it is trusted.
        fs::set_permissions(&a, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&a, host("enforce", true)).unwrap();
        let (good, _) = loader.load(&dir, true);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(&a, host("monitor", false)).unwrap();
        write(&dir, "b.toml", "[deny]\nreplace_default = true\n");
        let (managed, problems) = loader.load(&dir, true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, dir);
        assert!(
            problems[0]
                .message
                .ends_with("; using the last good version of every policy file"),
            "{}",
            problems[0]
        );
        assert_eq!(managed, good);
    }
}
