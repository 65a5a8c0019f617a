//! Daemon configuration: a TOML file (`mcpwatchd --config FILE`), or the embedded
//! default (`default-config.toml`, which documents every key and its default).
//!
//! Two steps, so errors come out where they can be fixed:
//! - [`Config::from_toml_str`] / [`Config::load`] parse and check what the text alone
//!   decides (syntax, unknown keys, value ranges, modes, host entries), reporting
//!   parse errors as `file:line:column: message`;
//! - [`Config::validate`] checks the config against the machine (files a host
//!   profile names must exist).

use std::{
    collections::BTreeSet,
    fs, io,
    path::{Path, PathBuf},
};

use glob::Pattern;
use serde::{Deserialize, Serialize};

use crate::{
    hosts::{builtin_profiles, HostFs, HostProfile},
    model::{
        text::{line_column, location},
        Mode,
    },
};

/// Origin reported in errors about the embedded default configuration.
pub const EMBEDDED_ORIGIN: &str = "<embedded default-config.toml>";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mcpwatch";
/// File name of the audit log inside `state_dir` when `log_file` is not set.
pub const DEFAULT_LOG_NAME: &str = "events.jsonl";
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 8 << 20;
/// Smallest ring buffer accepted: room for a few dozen maximal exec events.
pub const MIN_RING_BUFFER_BYTES: u32 = 64 << 10;
pub const DEFAULT_QUEUE_CAPACITY: usize = 65536;
pub const DEFAULT_TRACKED_MAX: u32 = 65536;
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/mcpwatch";
pub const DEFAULT_POLICY_DIR: &str = "/etc/mcpwatch/policy.d";
pub const DEFAULT_ASK_TIMEOUT_SECS: u64 = 60;
/// systemd-journald's native protocol socket (`journal_socket`).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

const EMBEDDED_DEFAULT: &str = include_str!("default-config.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid TOML or does not fit the schema (unknown key, wrong
    /// type). `line` and `column` are 1-based; 0 when the parser gave no position.
    #[error("{}: {message}", location(path, *line, *column))]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A value the schema accepts but the daemon does not.
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// A host profile of the config file names a plain path that does not exist.
    #[error(
        "{}: host `{host}` names {}, which does not exist",
        path.display(),
        file.display()
    )]
    MissingHostFile {
        path: PathBuf,
        host: String,
        file: PathBuf,
    },
}

/// `[defaults]`: what applies to every host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub mode: Mode,
}

/// The daemon configuration. Every field may be absent from the file; the defaults
/// are the `DEFAULT_*` constants and are shown in `default-config.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Consent records and the audit log live here.
    pub state_dir: PathBuf,
    /// Audit log (JSON lines); `<state_dir>/events.jsonl` when absent, see
    /// [`Config::log_path`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// Kernel → daemon ring buffer size: a power of two, a multiple of the page size,
    /// at least [`MIN_RING_BUFFER_BYTES`].
    pub ring_buffer_bytes: u32,
    /// Decoded events held in userspace before they are dropped (and counted).
    pub queue_capacity: usize,
    /// Capacity of the kernel's table of tracked processes.
    pub tracked_max: u32,
    /// Start from [`builtin_profiles`].
    pub builtin_hosts: bool,
    /// Launchers that start a host as their child instead of executing it in
    /// place (Volta's `volta-shim`), as path globs (`~/` = every home): executed
    /// under a host's name they are not the host (the kernel treats them as it
    /// treats login shells); the host is what they start.
    pub wrappers: Vec<String>,
    /// Where programs and maps are pinned so enforcement outlives the daemon.
    pub pin_dir: PathBuf,
    /// Pin the program links on bpffs (true), or hand them to a link keeper
    /// process (false; also the automatic fallback when the kernel refuses pins).
    pub pin_links: bool,
    /// Managed (admin) policy files: `*.toml`.
    pub policy_dir: PathBuf,
    /// Ask mode: seconds a held launch waits for an answer before it is killed.
    pub ask_timeout_secs: u64,
    /// Longest time (ms) a written audit record waits for its fsync (and the
    /// checkpoint of the chain head). Records are fsynced in batches.
    pub log_fsync_ms: u64,
    /// Start a new log file past this size (bytes)…
    pub log_rotate_bytes: u64,
    /// …or this age (seconds).
    pub log_rotate_secs: u64,
    /// Rotated log files kept; the oldest beyond are removed (and that recorded).
    pub log_keep_files: usize,
    /// A group whose members may read the audit log (files 0640, state dir 0710).
    /// Unset: root only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    /// Send notable events to the systemd journal: `auto` (when running under
    /// systemd), `on`, `off`.
    pub journal: String,
    /// The journal's native socket.
    pub journal_socket: PathBuf,
    pub defaults: Defaults,
    /// `[[host]]`: profiles added, or replacing a built-in of the same name.
    #[serde(rename = "host", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostProfile>,
    /// Where this config came from, for error messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            log_file: None,
            ring_buffer_bytes: DEFAULT_RING_BUFFER_BYTES,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            tracked_max: DEFAULT_TRACKED_MAX,
            builtin_hosts: true,
            wrappers: vec!["~/.volta/bin/volta-shim".into()],
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            pin_links: true,
            policy_dir: PathBuf::from(DEFAULT_POLICY_DIR),
            ask_timeout_secs: DEFAULT_ASK_TIMEOUT_SECS,
            log_fsync_ms: 500,
            log_rotate_bytes: 64 << 20,
            log_rotate_secs: 7 * 86_400,
            log_keep_files: 20,
            log_group: None,
            journal: "auto".into(),
            journal_socket: PathBuf::from(JOURNAL_SOCKET),
            defaults: Defaults::default(),
            hosts: Vec::new(),
            origin: PathBuf::new(),
        }
    }
}

impl Config {
    /// Parses `text` and checks everything the text alone decides. `origin` names
    /// the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((0, 0), |span| line_column(text, span.start));
            ConfigError::Parse {
                path: origin.to_path_buf(),
                line,
                column,
                // toml's messages may span lines ("invalid string\nexpected ..."):
                // keep the error on one line.
                message: e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })?;
        config.origin = origin.to_path_buf();
        config.check()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// The configuration the daemon runs on without `--config`.
    pub fn embedded_default() -> Config {
        Self::from_toml_str(EMBEDDED_DEFAULT, Path::new(EMBEDDED_ORIGIN))
            .expect("the embedded default-config.toml is valid (unit-tested)")
    }

    /// The text of the embedded default configuration (for `mcpwatch` to print).
    pub fn embedded_default_text() -> &'static str {
        EMBEDDED_DEFAULT
    }

    /// The audit log file.
    pub fn log_path(&self) -> PathBuf {
        self.log_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join(DEFAULT_LOG_NAME))
    }

    /// The host profiles in effect: the built-ins (if enabled), each replaced in
    /// place by a config `[[host]]` of the same name, then the config's new hosts in
    /// file order. The index in this list is the profile id the kernel records.
    pub fn profiles(&self) -> Vec<HostProfile> {
        let mut profiles = if self.builtin_hosts {
            builtin_profiles()
        } else {
            Vec::new()
        };
        for host in &self.hosts {
            if let Some(slot) = profiles.iter_mut().find(|p| p.name == host.name) {
                *slot = host.clone();
            } else {
                profiles.push(host.clone());
            }
        }
        profiles
    }

    /// Checks the config against the machine, after the checks of
    /// [`Config::from_toml_str`]: every plain path (no glob characters) in a
    /// `[[host]]` entry must exist — for a `~/` path, in at least one home. Globs may
    /// match nothing. Built-in profiles are not checked (hosts not installed).
    pub fn validate(&self, fs: &dyn HostFs) -> Result<(), ConfigError> {
        self.check()?;
        let homes = fs.home_dirs();
        for host in &self.hosts {
            for entry in host.exe.iter().chain(&host.scripts) {
                if has_glob_chars(entry) {
                    continue;
                }
                let candidates: Vec<PathBuf> = match entry.strip_prefix("~/") {
                    Some(rest) => homes.iter().map(|home| home.join(rest)).collect(),
                    None => vec![PathBuf::from(entry)],
                };
                if !candidates.iter().any(|c| fs.stat(c).is_ok()) {
                    return Err(ConfigError::MissingHostFile {
                        path: self.origin.clone(),
                        host: host.name.clone(),
                        file: PathBuf::from(entry),
                    });
                }
            }
        }
        Ok(())
    }

    fn invalid(&self, reason: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.clone(),
            reason,
        }
    }

    /// Everything the text alone decides.
    fn check(&self) -> Result<(), ConfigError> {
        if !self.state_dir.is_absolute() {
            return Err(self.invalid(format!(
                "state_dir = \"{}\": must be an absolute path",
                self.state_dir.display()
            )));
        }
        if let Some(log_file) = &self.log_file {
            if !log_file.is_absolute() {
                return Err(self.invalid(format!(
                    "log_file = \"{}\": must be an absolute path",
                    log_file.display()
                )));
            }
        }
        let page = page_size();
        let ring = self.ring_buffer_bytes;
        // The kernel refuses a ring buffer that is not a power-of-two number of
        // pages (kernel/bpf/ringbuf.c, ringbuf_map_alloc).
        if !ring.is_power_of_two() || ring < MIN_RING_BUFFER_BYTES || u64::from(ring) % page != 0 {
            return Err(self.invalid(format!(
                "ring_buffer_bytes = {ring}: must be a power of two, a multiple of the \
                 page size ({page}) and at least {MIN_RING_BUFFER_BYTES}"
            )));
        }
        if self.queue_capacity == 0 {
            return Err(self.invalid("queue_capacity = 0: must be at least 1".to_owned()));
        }
        if self.tracked_max == 0 {
            return Err(self.invalid("tracked_max = 0: must be at least 1".to_owned()));
        }
        if !matches!(self.journal.as_str(), "auto" | "on" | "off") {
            return Err(self.invalid(format!(
                "journal = \"{}\": must be \"auto\", \"on\" or \"off\"",
                self.journal
            )));
        }
        if self.log_fsync_ms == 0 || self.log_fsync_ms > 1000 {
            return Err(self.invalid(format!(
                "log_fsync_ms = {}: must be between 1 and 1000 (records wait at most a second for their fsync)",
                self.log_fsync_ms
            )));
        }
        if self.log_rotate_bytes < 4096 || self.log_rotate_secs < 60 || self.log_keep_files == 0 {
            return Err(self.invalid(format!(
                "log rotation: log_rotate_bytes = {} (at least 4096), log_rotate_secs = {} (at least 60), log_keep_files = {} (at least 1)",
                self.log_rotate_bytes, self.log_rotate_secs, self.log_keep_files
            )));
        }
        if self.ask_timeout_secs == 0 || self.ask_timeout_secs > 86_400 {
            return Err(self.invalid(format!(
                "ask_timeout_secs = {}: must be between 1 and 86400",
                self.ask_timeout_secs
            )));
        }
        for (what, path) in [("pin_dir", &self.pin_dir), ("policy_dir", &self.policy_dir)] {
            if !path.is_absolute() {
                return Err(self.invalid(format!(
                    "{what} = \"{}\": must be an absolute path",
                    path.display()
                )));
            }
        }
        if self
            .pin_dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains('.'))
        {
            return Err(self.invalid(format!(
                "pin_dir = \"{}\": bpffs refuses names containing '.'",
                self.pin_dir.display()
            )));
        }
        if !self.pin_dir.starts_with("/sys/fs/bpf") {
            return Err(self.invalid(format!(
                "pin_dir = \"{}\": must be under /sys/fs/bpf (pins live on bpffs)",
                self.pin_dir.display()
            )));
        }
        self.check_hosts()
    }

    fn check_hosts(&self) -> Result<(), ConfigError> {
        let builtin_names: BTreeSet<String> = if self.builtin_hosts {
            builtin_profiles().into_iter().map(|p| p.name).collect()
        } else {
            BTreeSet::new()
        };
        let mut seen = BTreeSet::new();
        for host in &self.hosts {
            let name = host.name.as_str();
            if !valid_name(name) {
                return Err(self.invalid(format!(
                    "[[host]] name = {name:?}: use lowercase letters, digits, '-', '_' \
                     and '.', starting with a letter or digit"
                )));
            }
            if !seen.insert(name) {
                return Err(
                    self.invalid(format!("[[host]] name = {name:?} appears more than once"))
                );
            }
            if host.exe.is_empty()
                && host.scripts.is_empty()
                && host.names.is_empty()
                && host.package_scripts.is_empty()
                && !builtin_names.contains(name)
            {
                return Err(self.invalid(format!(
                    "host `{name}` has neither exe, scripts nor names (only a built-in host \
                     can be disabled that way)"
                )));
            }
            for entry in &host.package_scripts {
                if crate::hosts::tail_key(entry).is_none() {
                    return Err(self.invalid(format!(
                        "host `{name}`: package_scripts entry {entry:?}: must be a path inside \
                         node_modules (`@scope/pkg/bin/cli.js`) of at least {} bytes with \
                         `node_modules/` before it",
                        monitor_common::SCRIPT_TAIL
                    )));
                }
            }
            for entry in &host.names {
                if let Err(why) = crate::hosts::check_host_name(entry) {
                    return Err(
                        self.invalid(format!("host `{name}`: names entry {entry:?}: {why}"))
                    );
                }
            }
            for (key, entry) in host
                .exe
                .iter()
                .map(|e| ("exe", e))
                .chain(host.scripts.iter().map(|e| ("scripts", e)))
                .chain(host.helpers.iter().map(|e| ("helpers", e)))
            {
                if let Err(why) = check_entry(entry) {
                    return Err(
                        self.invalid(format!("host `{name}`: {key} entry {entry:?}: {why}"))
                    );
                }
            }
            for location in &host.configs {
                if let Err(why) = location.check() {
                    return Err(self.invalid(format!(
                        "host `{name}`: configs entry {:?}: {why}",
                        location.path
                    )));
                }
            }
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// What is wrong with a host's `exe`, `scripts` or `helpers` entry (the caller
/// names the host, the key and the entry).
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("must be an absolute path or start with ~/")]
    NotAbsolute,
    #[error("contains a NUL byte")]
    Nul,
    #[error("not a valid glob: {0}")]
    Glob(glob::PatternError),
}

fn check_entry(entry: &str) -> Result<(), EntryError> {
    if !(entry.starts_with('/') || entry.starts_with("~/")) {
        return Err(EntryError::NotAbsolute);
    }
    if entry.contains('\0') {
        return Err(EntryError::Nul);
    }
    Pattern::new(entry).map(drop).map_err(EntryError::Glob)
}

fn has_glob_chars(entry: &str) -> bool {
    entry.contains(['*', '?', '['])
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::fake::FakeFs;

    const ORIGIN: &str = "/etc/mcpwatch.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new(ORIGIN))
    }

    fn invalid_reason(text: &str) -> String {
        match parse(text) {
            Err(ConfigError::Invalid { path, reason }) => {
                assert_eq!(path, Path::new(ORIGIN));
                reason
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn embedded_default_parses_validates_and_shows_the_code_defaults() {
        let config = Config::embedded_default();
        assert_eq!(
            config,
            Config {
                origin: PathBuf::from(EMBEDDED_ORIGIN),
                ..Config::default()
            }
        );
        config.validate(&FakeFs::new()).unwrap();
        assert_eq!(
            config.log_path(),
            Path::new("/var/lib/mcpwatch/events.jsonl")
        );
        assert_eq!(config.profiles(), builtin_profiles());
        assert_eq!(config.defaults.mode, Mode::Monitor);
    }

    #[test]
    fn commented_example_host_in_the_default_is_valid_when_uncommented() {
        let uncommented: String = Config::embedded_default_text()
            .lines()
            .skip_while(|l| *l != "# [[host]]")
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse(&uncommented).unwrap();
        assert_eq!(config.hosts.len(), 1);
        assert_eq!(config.hosts[0].name, "my-agent");
    }

    #[test]
    fn empty_file_means_all_defaults() {
        let config = parse("").unwrap();
        assert_eq!(
            config,
            Config {
                origin: PathBuf::from(ORIGIN),
                ..Config::default()
            }
        );
    }

    #[test]
    fn unknown_key_error_names_file_line_and_column() {
        let err = parse("state_dir = \"/srv/mcpwatch\"\n\nringbuf_size = 4096\n").unwrap_err();
        let ConfigError::Parse {
            line,
            column,
            ref message,
            ..
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!((line, column), (3, 1));
        assert!(message.starts_with("unknown field `ringbuf_size`, expected one of"));
        assert!(err
            .to_string()
            .starts_with("/etc/mcpwatch.toml:3:1: unknown field `ringbuf_size`"));

        // Inside a nested table too.
        let err = parse("[defaults]\nmode = \"monitor\"\n  verbose = true\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/mcpwatch.toml:3:3: unknown field `verbose`"),
            "{err}"
        );
        let err = parse("[[host]]\nname = \"a\"\nexe = [\"/a\"]\nexes = []\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/etc/mcpwatch.toml:4:1: unknown field `exes`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_toml_error_names_line_and_column() {
        let err = parse("tracked_max = 10\nqueue_capacity = = 3\n").unwrap_err();
        let ConfigError::Parse { line, column, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!((line, column), (2, 18), "{err}");
        assert!(
            err.to_string()
                .starts_with("/etc/mcpwatch.toml:2:18: invalid string; expected"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_are_parse_errors_with_position() {
        let err = parse("state_dir = \"/x\"\nring_buffer_bytes = \"16M\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 2, .. }), "{err}");
        // Does not fit the kernel's u32 map size.
        let err = parse("ring_buffer_bytes = 8589934592\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { line: 1, .. }), "{err}");
        let err = parse("[defaults]\nmode = \"block\"\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Parse {
                    line: 2,
                    column: 8,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn bad_ring_buffer_sizes_are_rejected() {
        for bad in [0, 4096, 32768, 100_000, 65537] {
            let reason = invalid_reason(&format!("ring_buffer_bytes = {bad}\n"));
            assert!(
                reason.starts_with(&format!(
                    "ring_buffer_bytes = {bad}: must be a power of two"
                )),
                "{reason}"
            );
        }
        for good in [65536, 1 << 20, 1 << 31] {
            assert_eq!(
                parse(&format!("ring_buffer_bytes = {good}\n"))
                    .unwrap()
                    .ring_buffer_bytes,
                good
            );
        }
    }

    #[test]
    fn zero_capacities_and_relative_paths_are_rejected() {
        assert!(invalid_reason("queue_capacity = 0\n").starts_with("queue_capacity"));
        assert!(invalid_reason("tracked_max = 0\n").starts_with("tracked_max"));
        assert!(invalid_reason("state_dir = \"var/lib\"\n").contains("absolute"));
        assert!(invalid_reason("log_file = \"events.jsonl\"\n").contains("absolute"));
        let config = parse("state_dir = \"/srv/w\"\n").unwrap();
        assert_eq!(config.log_path(), Path::new("/srv/w/events.jsonl"));
        let config = parse("log_file = \"/var/log/mcpwatch.jsonl\"\n").unwrap();
        assert_eq!(config.log_path(), Path::new("/var/log/mcpwatch.jsonl"));
    }

    #[test]
    fn every_mode_parses_and_bad_enforcement_settings_are_rejected() {
        for (text, mode) in [("ask", Mode::Ask), ("enforce", Mode::Enforce)] {
            let c = parse(&format!("[defaults]\nmode = \"{text}\"\n")).unwrap();
            assert_eq!(c.defaults.mode, mode);
        }
        let reason = invalid_reason("ask_timeout_secs = 0\n");
        assert!(reason.starts_with("ask_timeout_secs = 0"), "{reason}");
        let reason = invalid_reason("pin_dir = \"/tmp/pins\"\n");
        assert!(reason.contains("under /sys/fs/bpf"), "{reason}");
        let reason = invalid_reason("policy_dir = \"policy.d\"\n");
        assert!(reason.contains("absolute"), "{reason}");
    }

    #[test]
    fn host_with_a_builtin_name_overrides_it_in_place() {
        let config = parse(
            "[[host]]\nname = \"zed\"\ndisplay = \"Zed (custom)\"\nexe = [\"/opt/zed/zed-editor\"]\n\n\
             [[host]]\nname = \"my-agent\"\nscripts = [\"/opt/my-agent/cli.js\"]\n",
        )
        .unwrap();
        let builtins = builtin_profiles();
        let profiles = config.profiles();
        assert_eq!(profiles.len(), builtins.len() + 1);
        let zed = builtins.iter().position(|p| p.name == "zed").unwrap();
        assert_eq!(profiles[zed].display, "Zed (custom)");
        assert_eq!(profiles[zed].exe, vec!["/opt/zed/zed-editor".to_owned()]);
        assert!(profiles[zed].scripts.is_empty());
        assert_eq!(profiles.last().unwrap().name, "my-agent");
        assert_eq!(profiles.last().unwrap().display_name(), "my-agent");
        // Every other built-in is untouched and keeps its index.
        for (i, p) in builtins.iter().enumerate().filter(|(i, _)| *i != zed) {
            assert_eq!(&profiles[i], p);
        }
    }

    #[test]
    fn builtin_can_be_disabled_but_a_new_host_needs_entries() {
        let config = parse("[[host]]\nname = \"cursor\"\n").unwrap();
        let cursor = config
            .profiles()
            .into_iter()
            .find(|p| p.name == "cursor")
            .unwrap();
        assert!(cursor.exe.is_empty() && cursor.scripts.is_empty());
        let reason = invalid_reason("[[host]]\nname = \"my-agent\"\n");
        assert!(
            reason.contains("neither exe, scripts nor names"),
            "{reason}"
        );
    }

    #[test]
    fn builtin_hosts_off_leaves_only_the_config_hosts() {
        let config = parse(
            "builtin_hosts = false\n[[host]]\nname = \"zed\"\nexe = [\"/opt/zed/zed-editor\"]\n",
        )
        .unwrap();
        let profiles = config.profiles();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].name, "zed");
    }

    #[test]
    fn host_naming_a_missing_file_is_rejected() {
        let text = "[[host]]\nname = \"my-agent\"\nexe = [\"/opt/my-agent/bin/*\"]\n\
                    scripts = [\"/opt/my-agent/cli.js\", \"~/.my-agent/bin/agent\"]\n";
        let config = parse(text).unwrap();

        let err = config.validate(&FakeFs::new().home("/root")).unwrap_err();
        let ConfigError::MissingHostFile {
            ref path,
            ref host,
            ref file,
        } = err
        else {
            panic!("{err:?}")
        };
        assert_eq!(path, Path::new(ORIGIN));
        assert_eq!(host, "my-agent");
        assert_eq!(file, Path::new("/opt/my-agent/cli.js"));
        assert_eq!(
            err.to_string(),
            "/etc/mcpwatch.toml: host `my-agent` names /opt/my-agent/cli.js, which does not exist"
        );

        // The script exists; the ~/ entry exists in no home yet.
        let fs =
            FakeFs::new()
                .home("/root")
                .home("/home/ada")
                .file("/opt/my-agent/cli.js", (8, 1), 1);
        let err = config.validate(&fs).unwrap_err();
        assert!(
            matches!(&err, ConfigError::MissingHostFile { file, .. } if file == Path::new("~/.my-agent/bin/agent")),
            "{err:?}"
        );

        // In one home is enough; the glob matching nothing is fine.
        let fs = fs.file("/home/ada/.my-agent/bin/agent", (8, 1), 2);
        config.validate(&fs).unwrap();
    }

    #[test]
    fn duplicate_host_names_are_rejected() {
        let reason = invalid_reason(
            "[[host]]\nname = \"a\"\nexe = [\"/a\"]\n[[host]]\nname = \"a\"\nexe = [\"/b\"]\n",
        );
        assert_eq!(reason, "[[host]] name = \"a\" appears more than once");
    }

    #[test]
    fn bad_host_names_and_entries_are_rejected() {
        for (text, expect) in [
            ("name = \"My Agent\"\nexe = [\"/a\"]", "name = \"My Agent\""),
            ("name = \"\"\nexe = [\"/a\"]", "name = \"\""),
            (
                "name = \"a\"\nexe = [\"bin/a\"]",
                "exe entry \"bin/a\": must be an absolute",
            ),
            (
                "name = \"a\"\nscripts = [\"~bob/a\"]",
                "scripts entry \"~bob/a\"",
            ),
            ("name = \"a\"\nexe = [\"/opt/[a\"]", "not a valid glob"),
            (
                "name = \"a\"\nexe = [\"/a\"]\nhelpers = [\"sandbox\"]",
                "helpers entry \"sandbox\": must be an absolute",
            ),
            (
                "name = \"a\"\nexe = [\"/a\"]\nconfigs = [{path = \"/abs/mcp.json\", level = \"project\", schema = \"cursor\"}]",
                "configs entry \"/abs/mcp.json\"",
            ),
        ] {
            let reason = invalid_reason(&format!("[[host]]\n{text}\n"));
            assert!(reason.contains(expect), "{reason}");
        }
        // `name` is required.
        assert!(matches!(
            parse("[[host]]\nexe = [\"/a\"]\n"),
            Err(ConfigError::Parse { line: 1, .. })
        ));
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let missing = Path::new("/nonexistent/mcpwatch.toml");
        let err = Config::load(missing).unwrap_err();
        assert!(matches!(&err, ConfigError::Io { path, .. } if path == missing));
        assert_eq!(err.to_string(), "cannot read /nonexistent/mcpwatch.toml");

        let path =
            std::env::temp_dir().join(format!("mcpwatch-config-{}.toml", std::process::id()));
        fs::write(&path, "tracked_max = 1024\nbogus = 1\n").unwrap();
        let err = Config::load(&path).unwrap_err();
        fs::write(&path, "tracked_max = 1024\n").unwrap();
        let config = Config::load(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:2:1: unknown field `bogus`", path.display())),
            "{err}"
        );
        assert_eq!(config.tracked_max, 1024);
        assert_eq!(config.origin, path);
    }

    #[test]
    fn serialized_config_parses_back_to_itself() {
        let config = parse(
            "log_file = \"/var/log/m.jsonl\"\n[[host]]\nname = \"zed\"\nexe = [\"/opt/zed/zed-editor\"]\n",
        )
        .unwrap();
        let text = toml::to_string(&config).unwrap();
        assert_eq!(parse(&text).unwrap(), config);
    }
}
