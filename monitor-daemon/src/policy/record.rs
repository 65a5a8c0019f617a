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
pub(crate) mod tests {
    use super::*;

    pub(crate) const SHA_A: &str =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    pub(crate) fn sample() -> Record {
        Record {
            id: 1,
            host: "claude-code".to_owned(),
            exe: FileBinding {
                path: "/usr/bin/node".to_owned(),
                sha256: SHA_A.to_owned(),
                arg: None,
            },
            script: None,
            resolved: None,
            argv: vec![
                Bytes::from("npx"),
                Bytes::from("-y"),
                Bytes::from("@modelcontextprotocol/server-filesystem"),
                Bytes::from("/tmp/project"),
            ],
            cwd: None,
            env: BTreeMap::new(),
            scope: Scope::Always,
            source: Source::User(1000),
            created: "2026-11-27T10:00:00Z".to_owned(),
            note: String::new(),
            uid: 1000,
        }
    }

    #[test]
    fn sample_record_is_valid_and_shows_its_command() {
        let r = sample();
        r.validate().unwrap();
        assert_eq!(
            r.command_line(),
            "npx -y @modelcontextprotocol/server-filesystem /tmp/project"
        );
        let mut r = sample();
        r.argv.push(Bytes::from("a b"));
        r.argv.push(Bytes(vec![0xff]));
        assert!(r.command_line().ends_with(" 'a b' $'\\xff'"));
    }

    #[test]
    fn json_shape_is_stable_and_round_trips() {
        let mut r = sample();
        r.script = Some(FileBinding {
            path: "/opt/srv/run.sh".to_owned(),
            sha256: SHA_A.to_owned(),
            arg: None,
        });
        r.cwd = Some(Bytes::from("/srv"));
        r.env.insert(
            "NODE_OPTIONS".to_owned(),
            Some(Bytes::from("--max-old-space-size=512")),
        );
        r.env.insert("LD_PRELOAD".to_owned(), None);
        r.scope = Scope::Until("2026-12-01T00:00:00Z".to_owned());
        r.source = Source::Import {
            file: "/home/u/.cursor/mcp.json".to_owned(),
            server: "github".to_owned(),
        };
        r.note = "from import".to_owned();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["scope"],
            serde_json::json!({"until": "2026-12-01T00:00:00Z"})
        );
        assert_eq!(v["source"], "import:/home/u/.cursor/mcp.json#github");
        assert_eq!(v["env"]["LD_PRELOAD"], serde_json::Value::Null);
        assert_eq!(v["exe"]["path"], "/usr/bin/node");
        let back: Record = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);

        // Optional fields are omitted when empty, and may be left out when reading.
        let v = serde_json::to_value(sample()).unwrap();
        let obj = v.as_object().unwrap();
        for absent in ["script", "cwd", "note"] {
            assert!(!obj.contains_key(absent), "{absent}");
        }
        assert_eq!(v["scope"], "always");
        assert_eq!(v["source"], "user:1000");
        let mut obj = obj.clone();
        obj.remove("env");
        let back: Record = serde_json::from_value(serde_json::Value::Object(obj)).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["args"] = serde_json::json!([]);
        let err = serde_json::from_value::<Record>(v).unwrap_err();
        assert!(err.to_string().contains("unknown field `args`"), "{err}");
        let mut v = serde_json::to_value(sample()).unwrap();
        v["exe"]["hash"] = serde_json::json!("x");
        assert!(serde_json::from_value::<Record>(v).is_err());
    }

    #[test]
    fn non_utf8_argv_is_exact_in_json() {
        let mut r = sample();
        r.argv = vec![Bytes::from("/bin/cat"), Bytes(vec![b'/', 0xff])];
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains(r#"{"base64":"L/8="}"#), "{json}");
        assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
    }

    #[test]
    fn scope_parses_the_cli_forms() {
        assert_eq!("once".parse::<Scope>(), Ok(Scope::Once));
        assert_eq!("always".parse::<Scope>(), Ok(Scope::Always));
        assert_eq!(
            "until=2026-12-01T00:00:00Z".parse::<Scope>(),
            Ok(Scope::Until("2026-12-01T00:00:00Z".to_owned()))
        );
        for s in [
            Scope::Once,
            Scope::Always,
            Scope::Until("2026-12-01T00:00:00Z".into()),
        ] {
            assert_eq!(s.to_string().parse::<Scope>(), Ok(s));
        }
        let err = "until=tomorrow".parse::<Scope>().unwrap_err().to_string();
        assert!(
            err.starts_with("scope `until=tomorrow`: not an RFC 3339 time"),
            "{err}"
        );
        let err = "forever".parse::<Scope>().unwrap_err().to_string();
        assert!(
            err.contains("expected `once`, `always` or `until="),
            "{err}"
        );
        let json: Scope = serde_json::from_str(r#""once""#).unwrap();
        assert_eq!(json, Scope::Once);
    }

    #[test]
    fn source_round_trips_through_its_string_form() {
        for (text, source) in [
            ("user:1000", Source::User(1000)),
            (
                "managed:/etc/mcpwatch/policy.d/a.toml",
                Source::Managed("/etc/mcpwatch/policy.d/a.toml".to_owned()),
            ),
            (
                "import:/home/u/.cursor/mcp.json#github",
                Source::Import {
                    file: "/home/u/.cursor/mcp.json".to_owned(),
                    server: "github".to_owned(),
                },
            ),
            // `#` in the path: the split is on the last `#`.
            (
                "import:/home/u/my#dir/mcp.json#srv",
                Source::Import {
                    file: "/home/u/my#dir/mcp.json".to_owned(),
                    server: "srv".to_owned(),
                },
            ),
            // `#` and `%` in the server name are escaped.
            (
                "import:/a#dir/mcp.json#a%23b%25c",
                Source::Import {
                    file: "/a#dir/mcp.json".to_owned(),
                    server: "a#b%c".to_owned(),
                },
            ),
            (
                "import:/a.json#",
                Source::Import {
                    file: "/a.json".to_owned(),
                    server: String::new(),
                },
            ),
        ] {
            assert_eq!(text.parse::<Source>().as_ref(), Ok(&source), "{text}");
            assert_eq!(source.to_string(), text);
            let json = serde_json::to_string(&source).unwrap();
            assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), source);
        }
    }

    #[test]
    fn bad_sources_are_rejected_with_the_reason() {
        for (text, why) in [
            ("root", "expected `user:UID`"),
            ("user:bob", "uid is not a number"),
            ("user:-1", "uid is not a number"),
            ("managed:", "file is empty"),
            ("import:/a.json", "expected `import:FILE#SERVER`"),
            ("import:#srv", "file is empty"),
            ("import:/a.json#x%2", "`%23` (#) or `%25` (%)"),
            ("import:/a.json#x%41", "`%23` (#) or `%25` (%)"),
            ("cloud:x", "expected `user:UID`"),
        ] {
            let err = text.parse::<Source>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("source `{text}`: ")), "{err}");
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(serde_json::from_str::<Source>(r#""user:x""#).is_err());
    }

    #[test]
    fn normalized_env_pins_every_security_name() {
        let mut r = sample();
        r.env
            .insert("NODE_OPTIONS".to_owned(), Some(Bytes::from("--inspect=0")));
        let env = r.normalized_env();
        assert_eq!(env.len(), SECURITY_ENV.len());
        for name in SECURITY_ENV {
            let want = (*name == "NODE_OPTIONS").then(|| Bytes::from("--inspect=0"));
            assert_eq!(env[*name], want, "{name}");
        }
    }

    #[test]
    fn env_matches_requires_equal_values_and_absence_elsewhere() {
        let mut r = sample();
        r.env
            .insert("NODE_OPTIONS".to_owned(), Some(Bytes::from("--a")));
        let required = r.normalized_env();
        let actual = |pairs: &[(&str, &str)]| -> BTreeMap<String, Bytes> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes::from(*v)))
                .collect()
        };
        assert!(env_matches(&required, &actual(&[("NODE_OPTIONS", "--a")])));
        // Required value missing, or different.
        assert!(!env_matches(&required, &actual(&[])));
        assert!(!env_matches(&required, &actual(&[("NODE_OPTIONS", "--b")])));
        // A name pinned to absent is set.
        assert!(!env_matches(
            &required,
            &actual(&[("NODE_OPTIONS", "--a"), ("LD_PRELOAD", "/tmp/x.so")])
        ));
        // Even set to the empty string.
        assert!(!env_matches(
            &required,
            &actual(&[("NODE_OPTIONS", "--a"), ("LD_PRELOAD", "")])
        ));
        // A record's raw map (not normalized) means the same: unmentioned = absent.
        assert!(env_matches(&r.env, &actual(&[("NODE_OPTIONS", "--a")])));
        assert!(!env_matches(
            &r.env,
            &actual(&[("NODE_OPTIONS", "--a"), ("PYTHONPATH", "/x")])
        ));
        assert!(env_matches(&BTreeMap::new(), &BTreeMap::new()));
        // A family member: pinned when the record has it, unset otherwise.
        r.env.insert(
            "npm_config_registry".to_owned(),
            Some(Bytes::from("https://r/")),
        );
        let required = r.normalized_env();
        assert!(env_matches(
            &required,
            &actual(&[
                ("NODE_OPTIONS", "--a"),
                ("npm_config_registry", "https://r/")
            ])
        ));
        assert!(!env_matches(
            &required,
            &actual(&[
                ("NODE_OPTIONS", "--a"),
                ("npm_config_registry", "http://evil/")
            ])
        ));
        assert!(!env_matches(
            &required,
            &actual(&[
                ("NODE_OPTIONS", "--a"),
                ("npm_config_registry", "https://r/"),
                ("GIT_CONFIG_COUNT", "1")
            ])
        ));
        assert!(r.validate().is_ok());
        r.env.insert("HOME".to_owned(), None);
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not a security-relevant"));
    }

    #[test]
    fn until_expires_at_its_time_and_unparseable_counts_as_expired() {
        let at = |t: &str| OffsetDateTime::parse(t, &Rfc3339).unwrap();
        let mut r = sample();
        assert!(!r.is_expired(at("2999-01-01T00:00:00Z")));
        r.scope = Scope::Once;
        assert!(!r.is_expired(at("2999-01-01T00:00:00Z")));
        r.scope = Scope::Until("2026-12-01T00:00:00Z".to_owned());
        assert!(!r.is_expired(at("2026-11-30T23:59:59Z")));
        assert!(r.is_expired(at("2026-12-01T00:00:00Z")));
        // Offsets are compared as instants.
        assert!(r.is_expired(at("2026-12-01T01:00:00+01:00")));
        assert!(!r.is_expired(at("2026-12-01T00:59:59+01:00")));
        r.scope = Scope::Until("soon".to_owned());
        assert!(r.is_expired(at("2000-01-01T00:00:00Z")));
    }

    #[test]
    fn validate_names_every_problem() {
        type Breaker = Box<dyn Fn(&mut Record)>;
        let cases: Vec<(Breaker, &str)> = vec![
            (Box::new(|r| r.host.clear()), "host is empty"),
            (Box::new(|r| r.argv.clear()), "argv is empty"),
            (
                Box::new(|r| r.argv[1] = Bytes::from("a\0b")),
                "argv[1] contains a NUL byte",
            ),
            (
                Box::new(|r| r.exe.path = "node".to_owned()),
                "exe path \"node\" is not absolute",
            ),
            (
                Box::new(|r| r.exe.sha256 = SHA_A.to_uppercase()),
                "exe sha256",
            ),
            (
                Box::new(|r| r.exe.sha256 = SHA_A[..63].to_owned()),
                "not 64 lowercase hex digits",
            ),
            (
                Box::new(|r| {
                    r.script = Some(FileBinding {
                        path: "/opt/run.sh".to_owned(),
                        sha256: "zz".to_owned(),
                        arg: None,
                    });
                }),
                "script sha256 \"zz\"",
            ),
            (
                Box::new(|r| {
                    r.script = Some(FileBinding {
                        path: "run.sh".to_owned(),
                        sha256: SHA_A.to_owned(),
                        arg: None,
                    });
                }),
                "script path \"run.sh\" is not absolute",
            ),
            (
                Box::new(|r| r.cwd = Some(Bytes::from("srv"))),
                "cwd srv is not an absolute path",
            ),
            (
                Box::new(|r| {
                    r.env.insert("PATH".to_owned(), None);
                }),
                "env names PATH, which is not a security-relevant variable",
            ),
            (
                Box::new(|r| r.scope = Scope::Until("2026-13-01T00:00:00Z".to_owned())),
                "scope until `2026-13-01T00:00:00Z`: not an RFC 3339 time",
            ),
            (
                Box::new(|r| r.created = "yesterday".to_owned()),
                "created `yesterday`: not an RFC 3339 time",
            ),
        ];
        for (break_it, want) in cases {
            let mut r = sample();
            break_it(&mut r);
            let err = r.validate().unwrap_err().to_string();
            assert!(err.contains(want), "want {want:?} in {err:?}");
        }
    }

    #[test]
    fn argv_longer_than_the_kernel_capture_bound_is_rejected() {
        let mut r = sample();
        // Exactly at the bound: "x"*(ARGV_CAP - 1) plus its NUL.
        r.argv = vec![Bytes(vec![b'x'; ARGV_CAP - 1])];
        assert_eq!(argv_bytes(&r.argv), ARGV_CAP);
        r.validate().unwrap();
        r.argv = vec![Bytes(vec![b'x'; ARGV_CAP - 2]), Bytes::from("")];
        assert_eq!(argv_bytes(&r.argv), ARGV_CAP);
        r.validate().unwrap();
        r.argv.push(Bytes::from(""));
        let err = r.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "argv is {} bytes (NUL terminators included); the kernel captures at most \
                 {ARGV_CAP}, so a longer command can never be matched in the kernel",
                ARGV_CAP + 1
            )
        );
    }
}
