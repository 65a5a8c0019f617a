//! A consent record: one exact command a user (or the administrator) approved,
//! bound to the content of what it runs.
//!
//! A record is deliberately literal: the exact argv the kernel sees after exec
//! (no globbing, no "any arguments"), the SHA-256 of the executable (and of the
//! script, for `#!` launches), and the state of every security-relevant
//! environment variable. MCPoison-style attacks (CVE-2025-54136) swap the command
//! behind an approved *name*; binding to the bytes that run closes that.

use std::{collections::BTreeMap, fmt, str::FromStr};

use monitor_common::ARGV_CAP;
use serde::{Deserialize, Serialize};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::event::{shell_join, Bytes, SECURITY_ENV};

/// Why a record, a scope or a source is not valid; the text names what to fix
/// in a hand-edited store or policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("host is empty (use \"*\" for any host)")]
    EmptyHost,
    #[error("argv is empty")]
    EmptyArgv,
    #[error(
        "argv[{index}] contains a NUL byte: the kernel's argv cannot, so it would never match"
    )]
    NulInArgv { index: usize },
    #[error(
        "argv is {bytes} bytes (NUL terminators included); the kernel captures at most \
         {cap}, so a longer command can never be matched in the kernel",
        cap = ARGV_CAP
    )]
    ArgvTooLong { bytes: usize },
    #[error("cwd {} is not an absolute path", crate::event::shell_quote(&.cwd.0))]
    RelativeCwd { cwd: Bytes },
    #[error("{what} path {path:?} is not absolute")]
    RelativePath { what: &'static str, path: String },
    #[error("{what} path {path:?} contains a NUL byte")]
    NulInPath { what: &'static str, path: String },
    #[error("{what} sha256 {sha256:?} is not 64 lowercase hex digits")]
    BadSha256 { what: &'static str, sha256: String },
    #[error(
        "env names {name}, which is not a security-relevant variable; \
         records pin only {} and the families {} (all others are not compared)",
        SECURITY_ENV.join(", "),
        env_families()
    )]
    EnvNotPinned { name: String },
    #[error("env name {name:?} cannot contain `=` or NUL")]
    BadEnvName { name: String },
    #[error("scope until `{time}`: {err}")]
    BadUntil { time: String, err: TimeError },
    #[error("created `{time}`: {err}")]
    BadCreated { time: String, err: TimeError },
    /// `until=…` of the CLI form of a scope.
    #[error("scope `{scope}`: {err}")]
    BadScopeTime { scope: String, err: TimeError },
    #[error(
        "scope `{scope}`: expected `once`, `always` or `until=<RFC 3339 time>` \
         (e.g. until=2026-12-01T00:00:00Z)"
    )]
    UnknownScope { scope: String },
    #[error("source `{text}`: {why}")]
    BadSource { text: String, why: &'static str },
}

/// A time that is not RFC 3339, with the parser's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z): {0}")]
pub struct TimeError(time::error::Parse);

/// `LD_* , GIT_*, …`: the env families records pin.
fn env_families() -> String {
    crate::event::SECURITY_ENV_FAMILIES
        .iter()
        .map(|(p, _)| format!("{p}*"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Unique in a store and never reused (the store keeps `next_id`), so an id in
/// the audit log always names the same approval.
pub type RecordId = u64;

/// `host` of a record that applies to every host.
pub const ANY_HOST: &str = "*";

/// `uid` of a record that approves the command for every user (managed records).
pub const ANY_UID: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Unique in the store, never reused.
    pub id: RecordId,
    /// Host profile name, or [`ANY_HOST`] for any host.
    pub host: String,
    /// The resolved executable and its content. For a `#!` launch this is the
    /// interpreter: it is what the kernel maps and runs.
    pub exe: FileBinding,
    /// The script the interpreter reads: a `#!` file, or the script argument of an
    /// interpreter (`python3 server.py`). The interpreter opens it by path after
    /// exec, so the kernel holds such a launch until the daemon verified the
    /// content that path gives the launching process (its root, cwd and mounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<FileBinding>,
    /// `env PROG …` (a `#!/usr/bin/env node` script): the program `env` finds
    /// through `PATH`, as resolved when approved (`arg`: PROG's index in argv). The
    /// launch is held until the daemon resolved PROG with the launch's own `PATH`,
    /// as the launch sees the files, and found this content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<FileBinding>,
    /// The exact argv as the kernel sees it after exec; for a `#!` script:
    /// `[interpreter, (interpreter arg), script path, args...]`.
    pub argv: Vec<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<Bytes>,
    /// Required state of each security-relevant env var ([`SECURITY_ENV`]):
    /// `Some(value)` must equal, `None` must be absent. Names not in the map must
    /// be absent too: a record always pins every name ([`Record::normalized_env`]),
    /// because an unpinned `LD_PRELOAD` or `NODE_OPTIONS` would let anyone who can
    /// set the environment run arbitrary code under an approved command.
    #[serde(default)]
    pub env: BTreeMap<String, Option<Bytes>>,
    pub scope: Scope,
    pub source: Source,
    /// When the approval was given, RFC 3339 UTC.
    pub created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Whose processes the record approves; [`ANY_UID`] for every user (managed
    /// records). A user's approval never extends to another user's processes.
    pub uid: u32,
}

/// A file and the SHA-256 of the content that was approved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBinding {
    /// Absolute, resolved path.
    pub path: String,
    /// Lowercase hex.
    pub sha256: String,
    /// A script: the index in `argv` of the path the interpreter opens, as written
    /// (the daemon verifies what that path gives the launching process). Records
    /// from before this field find it again from `argv` (`resolve::script_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<usize>,
}

/// How long an approval lasts.
///
/// JSON: `"once"`, `"always"` or `{"until": "<RFC 3339>"}`. A `once` record is
/// consumed by the daemon on its first match; `until` expires by itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Once,
    Until(String),
    Always,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Once => f.write_str("once"),
            Scope::Always => f.write_str("always"),
            Scope::Until(t) => write!(f, "until={t}"),
        }
    }
}

/// The CLI form: `once`, `always` or `until=<RFC 3339>`.
impl FromStr for Scope {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "once" => Ok(Scope::Once),
            "always" => Ok(Scope::Always),
            _ => match s.strip_prefix("until=") {
                Some(t) => {
                    parse_time(t).map_err(|err| RecordError::BadScopeTime {
                        scope: s.to_owned(),
                        err,
                    })?;
                    Ok(Scope::Until(t.to_owned()))
                }
                None => Err(RecordError::UnknownScope {
                    scope: s.to_owned(),
                }),
            },
        }
    }
}

/// Who gave the approval. Serialised as one string (also the CLI form):
/// `user:1000`, `managed:/etc/mcpwatch/policy.d/a.toml`,
/// `import:/home/u/.cursor/mcp.json#github`.
///
/// In `import:` the file and the server name are split on the last `#`, so a
/// config path may contain `#`; a `#` or `%` inside the server name is written
/// `%23` / `%25`, so every server name round-trips too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    User(u32),
    Managed(String),
    Import { file: String, server: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::User(uid) => write!(f, "user:{uid}"),
            Source::Managed(file) => write!(f, "managed:{file}"),
            Source::Import { file, server } => write!(
                f,
                "import:{file}#{}",
                server.replace('%', "%25").replace('#', "%23")
            ),
        }
    }
}

impl FromStr for Source {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &'static str| RecordError::BadSource {
            text: s.to_owned(),
            why,
        };
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected `user:UID`, `managed:FILE` or `import:FILE#SERVER`"))?;
        match kind {
            "user" => rest
                .parse()
                .map(Source::User)
                .map_err(|_| bad("the uid is not a number")),
            "managed" if rest.is_empty() => Err(bad("the file is empty")),
            "managed" => Ok(Source::Managed(rest.to_owned())),
            "import" => {
                let (file, server) = rest
                    .rsplit_once('#')
                    .ok_or_else(|| bad("expected `import:FILE#SERVER`"))?;
                if file.is_empty() {
                    return Err(bad("the file is empty"));
                }
                Ok(Source::Import {
                    file: file.to_owned(),
                    server: unescape_server(server).ok_or_else(|| {
                        bad("a `%` in the server name must be `%23` (#) or `%25` (%)")
                    })?,
                })
            }
            _ => Err(bad(
                "expected `user:UID`, `managed:FILE` or `import:FILE#SERVER`",
            )),
        }
    }
}

fn unescape_server(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "23" => '#',
            "25" => '%',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Record {
    /// The required state of every name in [`SECURITY_ENV`]: names the record does
    /// not mention must be absent.
    pub fn normalized_env(&self) -> BTreeMap<String, Option<Bytes>> {
        let mut env: BTreeMap<_, _> = SECURITY_ENV
            .iter()
            .map(|name| ((*name).to_owned(), None))
            .collect();
        for (name, value) in &self.env {
            env.insert(name.clone(), value.clone());
        }
        env
    }

    /// Whether an `until` record has run out (`until <= now`). An unparseable time
    /// (which [`Record::validate`] rejects) counts as expired: fail closed.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        match &self.scope {
            Scope::Until(t) => parse_time(t).map_or(true, |t| t <= now),
            Scope::Once | Scope::Always => false,
        }
    }

    /// The approved command as a shell would show it, every argument quoted when
    /// needed: what the user must see, untruncated, before approving.
    pub fn command_line(&self) -> String {
        shell_join(&self.argv)
    }

    /// Everything that makes a record unusable or unmatchable, named so a user can
    /// fix a hand-edited store.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.host.is_empty() {
            return Err(RecordError::EmptyHost);
        }
        check_binding("exe", &self.exe)?;
        if let Some(script) = &self.script {
            check_binding("script", script)?;
        }
        if self.argv.is_empty() {
            return Err(RecordError::EmptyArgv);
        }
        if let Some(index) = self.argv.iter().position(|a| a.0.contains(&0)) {
            return Err(RecordError::NulInArgv { index });
        }
        let bytes = argv_bytes(&self.argv);
        if bytes > ARGV_CAP {
            return Err(RecordError::ArgvTooLong { bytes });
        }
        if let Some(cwd) = &self.cwd {
            if !cwd.0.starts_with(b"/") {
                return Err(RecordError::RelativeCwd { cwd: cwd.clone() });
            }
        }
        check_env_names(self.env.keys().map(String::as_str))?;
        if let Scope::Until(t) = &self.scope {
            parse_time(t).map_err(|err| RecordError::BadUntil {
                time: t.clone(),
                err,
            })?;
        }
        parse_time(&self.created).map_err(|err| RecordError::BadCreated {
            time: self.created.clone(),
            err,
        })?;
        Ok(())
    }
}

/// Bytes argv takes in the kernel's layout: every argument plus its NUL.
pub fn argv_bytes(argv: &[Bytes]) -> usize {
    argv.iter().map(|a| a.0.len() + 1).sum()
}

/// Whether an exec's security-relevant environment satisfies a record's.
///
/// `actual` holds the values that are set (the event's `env`); a name absent from
/// it is unset. Every name in either map must agree: a required value must be
/// present and equal, and a name the record leaves out or pins to `None` must be
/// unset.
pub fn env_matches(
    required: &BTreeMap<String, Option<Bytes>>,
    actual: &BTreeMap<String, Bytes>,
) -> bool {
    required
        .iter()
        .all(|(name, want)| want.as_ref() == actual.get(name))
        && actual
            .iter()
            .all(|(name, have)| required.get(name).and_then(Option::as_ref) == Some(have))
}

/// Parse an RFC 3339 time, with the parser's reason on failure.
pub(crate) fn parse_time(t: &str) -> Result<OffsetDateTime, TimeError> {
    OffsetDateTime::parse(t, &Rfc3339).map_err(TimeError)
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn check_env_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), RecordError> {
    for name in names {
        if !crate::event::is_security_env(name) {
            return Err(RecordError::EnvNotPinned {
                name: name.to_owned(),
            });
        }
        if name.bytes().any(|b| b == b'=' || b == 0) {
            return Err(RecordError::BadEnvName {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

fn check_binding(what: &'static str, b: &FileBinding) -> Result<(), RecordError> {
    let path = || b.path.clone();
    if !b.path.starts_with('/') {
        return Err(RecordError::RelativePath { what, path: path() });
    }
    if b.path.contains('\0') {
        return Err(RecordError::NulInPath { what, path: path() });
    }
    if !is_sha256_hex(&b.sha256) {
        return Err(RecordError::BadSha256 {
            what,
            sha256: b.sha256.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
