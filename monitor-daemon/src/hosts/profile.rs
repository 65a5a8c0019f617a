//! What a host is: its profile (the files that identify its processes) and where
//! it keeps its MCP server configs.

use std::fmt;

use glob::Pattern;
use serde::{Deserialize, Serialize};

/// One MCP host application and the files that identify its processes.
///
/// Entries are absolute path globs (`*`, `?`, `[...]` within one path component); a
/// leading `~/` stands for *every* home directory on the machine, so a system daemon
/// finds per-user installs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostProfile {
    /// Stable identifier, e.g. `claude-code`; used by consent records and `mcpwatch
    /// run --host`.
    pub name: String,
    /// Human-readable name; the `name` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display: String,
    /// Executables (ELF) of the host, matched by device and inode.
    #[serde(default)]
    pub exe: Vec<String>,
    /// `#!` entry scripts of the host and the links that lead to them, matched by
    /// the exact path passed to execve (at most `HOST_PATH_KEY - 1` bytes).
    #[serde(default)]
    pub scripts: Vec<String>,
    /// Names the host is executed under (`claude`): an exec whose filename's last
    /// component is one of these makes a process that is not tracked yet a host,
    /// wherever the file is (any npm prefix, `node_modules/.bin`, an `AppImage`
    /// mount) and whenever it was installed. At most `HOST_NAME_KEY - 1` bytes, no
    /// `/`. A login shell executed under the name is a wrapper, not the host.
    #[serde(default)]
    pub names: Vec<String>,
    /// The host's `#!` entry scripts as paths inside `node_modules`
    /// (`@google/gemini-cli/bundle/gemini.js`): an interpreter (`node`, `nodejs`,
    /// `bun`) executed on a script whose path ends with `node_modules/` and one of
    /// these, by a process not tracked yet, makes it a host (pnpm's shims run the
    /// package's script under the name `node`). The kernel compares the path's
    /// last `SCRIPT_TAIL` bytes.
    #[serde(default)]
    pub package_scripts: Vec<String>,
    /// The host's own helper executables (ELF) that are not the host binary, e.g.
    /// Electron's `chrome-sandbox` and `chrome_crashpad_handler` next to it; matched
    /// by device and inode like `exe`.
    #[serde(default)]
    pub helpers: Vec<String>,
    /// Where the host reads MCP server configs.
    #[serde(default)]
    pub configs: Vec<ConfigLocation>,
    /// The host runs the login-shell environment probe `$SHELL -l -i -c …` to read
    /// the user's environment (VS Code and its forks, Claude Desktop): that shell is
    /// the host's own, not an MCP server.
    #[serde(default)]
    pub env_probe: bool,
}

impl HostProfile {
    pub fn display_name(&self) -> &str {
        if self.display.is_empty() {
            &self.name
        } else {
            &self.display
        }
    }
}

/// Which importer parses a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schema {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    /// VS Code `mcp.json`: `servers` and `inputs`.
    Vscode,
    /// VS Code `settings.json`: `"mcp": {"servers": …, "inputs": …}` (before 1.102).
    VscodeSettings,
    Windsurf,
    Zed,
    GeminiCli,
    Codex,
    Goose,
    Cline,
    RooCode,
    Continue,
    LmStudio,
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name.
        let value = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(value.as_str().unwrap_or_default())
    }
}

/// Who a config file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// One user's file: `~/…`, `$XDG_CONFIG_HOME/…` or `$CODEX_HOME/…`.
    User,
    /// A file inside a project (workspace) dir, given relative to it.
    Project,
    /// A machine-wide file: an absolute path.
    System,
}

/// Where a host reads MCP server configs.
///
/// `path` is a glob (`*`, `?`, `[...]` within one component) of one of these forms:
/// - [`Level::User`]: `~/rel` (every home), `$XDG_CONFIG_HOME/rel` (the user's
///   `XDG_CONFIG_HOME` when known and absolute, else `~/.config`), `$CODEX_HOME/rel`
///   (else `~/.codex`);
/// - [`Level::Project`]: `rel`, relative to each project dir, e.g. `.cursor/mcp.json`;
/// - [`Level::System`]: an absolute path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLocation {
    pub path: String,
    pub level: Level,
    pub schema: Schema,
}

/// Per-user directory variables a user-level path may start with, and their
/// defaults under the home.
pub(super) const HOME_VARS: &[(&str, &str)] =
    &[("XDG_CONFIG_HOME", ".config"), ("CODEX_HOME", ".codex")];

/// Why a config location cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("`{path}`: a system path must be absolute")]
    SystemNotAbsolute { path: String },
    #[error("`{path}`: a project path must be relative to the project dir")]
    ProjectNotRelative { path: String },
    #[error("`{path}`: a user path starts with ~/ or {}", home_prefixes())]
    UserNotInHome { path: String },
    #[error("`{path}`: contains a NUL byte")]
    Nul { path: String },
    #[error("`{path}`: not a valid glob: {err}")]
    Glob {
        path: String,
        err: glob::PatternError,
    },
}

/// `$XDG_CONFIG_HOME/ or $CODEX_HOME/`.
fn home_prefixes() -> String {
    HOME_VARS
        .iter()
        .map(|(v, _)| format!("${v}/"))
        .collect::<Vec<_>>()
        .join(" or ")
}

impl ConfigLocation {
    pub fn new(path: &str, level: Level, schema: Schema) -> Self {
        Self {
            path: path.to_owned(),
            level,
            schema,
        }
    }

    /// Checks that `path` has the form its `level` needs and is a valid glob.
    pub fn check(&self) -> Result<(), LocationError> {
        let path = self.path.as_str();
        let owned = || path.to_owned();
        let rest = match self.level {
            Level::System if path.starts_with('/') => path,
            Level::System => return Err(LocationError::SystemNotAbsolute { path: owned() }),
            Level::Project if !path.starts_with(['/', '~', '$']) && !path.is_empty() => path,
            Level::Project => return Err(LocationError::ProjectNotRelative { path: owned() }),
            Level::User => match user_path_parts(path) {
                Some((_, rest)) => rest,
                None => return Err(LocationError::UserNotInHome { path: owned() }),
            },
        };
        if path.contains('\0') {
            return Err(LocationError::Nul { path: owned() });
        }
        Pattern::new(rest)
            .map(drop)
            .map_err(|err| LocationError::Glob { path: owned(), err })
    }
}

/// A user-level path → (the home variable it starts with, `None` for `~/`; the rest).
pub(super) fn user_path_parts(path: &str) -> Option<(Option<&'static str>, &str)> {
    if let Some(rest) = path.strip_prefix("~/") {
        return Some((None, rest));
    }
    let var_path = path.strip_prefix('$')?;
    HOME_VARS.iter().find_map(|(var, _)| {
        var_path
            .strip_prefix(var)
            .and_then(|r| r.strip_prefix('/'))
            .map(|rest| (Some(*var), rest))
    })
}
