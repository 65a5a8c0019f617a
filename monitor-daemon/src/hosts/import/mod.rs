//! MCP config importers: every host's config format, parsed into one model.
//!
//! Pure: [`parse_config`] works on text, [`discover`] and [`import_all`] go through
//! the [`HostFs`] seam. What an entry becomes ([`Entry`]):
//!
//! - [`Entry::Local`]: the program the host would spawn — `argv` after the host's
//!   variable substitution, exactly as the host passes it to spawn (`argv[0]` is the
//!   `command` as written: hosts spawn without a shell and let `PATH` find it), the
//!   environment the config adds or removes on top of the host's own default
//!   environment, `cwd`.
//! - [`Entry::Remote`]: a server reached over HTTP/SSE: nothing is executed.
//! - [`Entry::Unimportable`]: the command cannot be known from the file (a Zed
//!   extension, a VS Code `${input:…}` in the argv, a missing or mistyped `command`),
//!   with the reason.
//!
//! A malformed file is a [`ParseError`] naming file, line and column; a mistyped
//! entry only makes that entry unimportable. Unknown fields are ignored.
//!
//! # Formats
//!
//! | schema | file | syntax | servers |
//! |---|---|---|---|
//! | `claude-desktop` | `$XDG_CONFIG_HOME/Claude/claude_desktop_config.json` | JSON | `mcpServers` |
//! | `claude-code` | `~/.claude.json`, `.mcp.json`, `/etc/claude-code/managed-mcp.json` | JSON | `mcpServers`; `projects[dir].mcpServers` (local scope) |
//! | `cursor` | `~/.cursor/mcp.json`, `.cursor/mcp.json` | JSONC | `mcpServers` |
//! | `vscode` | `…/Code/User/mcp.json`, `.vscode/mcp.json` | JSONC | `servers`, `inputs` |
//! | `vscode-settings` | `…/Code/User/settings.json` | JSONC | `mcp.servers`, `mcp.inputs` |
//! | `windsurf` | `~/.codeium/windsurf/mcp_config.json` | JSONC | `mcpServers` (`serverUrl` for remote) |
//! | `zed` | `$XDG_CONFIG_HOME/zed/settings.json`, `.zed/settings.json` | JSONC | `context_servers` |
//! | `gemini-cli` | `~/.gemini/settings.json`, `.gemini/…`, `/etc/gemini-cli/…` | JSON + comments | `mcpServers`, `mcp.allowed`/`excluded` |
//! | `codex` | `$CODEX_HOME/config.toml`, `.codex/config.toml` | TOML | `[mcp_servers.<name>]` |
//! | `goose` | `$XDG_CONFIG_HOME/goose/config.yaml` | YAML | `extensions.<key>` |
//! | `cline` | `…/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json` | JSONC | `mcpServers` |
//! | `roo-code` | `…/rooveterinaryinc.roo-cline/settings/mcp_settings.json`, `.roo/mcp.json` | JSONC | `mcpServers` |
//! | `continue` | `~/.continue/config.yaml`, `.continue/mcpServers/*.yaml` | YAML | `mcpServers` (a list) |
//! | `lm-studio` | `~/.lmstudio/mcp.json` | JSONC | `mcpServers` |
//!
//! Claude Desktop and Claude Code read their files with `JSON.parse` (strict); Gemini
//! CLI strips comments but allows no trailing comma; VS Code and Zed read JSONC. The
//! other JSON hosts are read as JSONC too (unverified): accepting a comment the host
//! would reject costs less than missing servers it runs.
//!
//! # Variable substitution
//!
//! Applied to `command`, `args`, `env` values, `cwd`, `envFile` and `url`, in one pass
//! (a substituted value is not scanned again). None of these syntaxes has an escape.
//!
//! | host | syntax | unset variable |
//! |---|---|---|
//! | Claude Code | `${VAR}`, `${VAR:-default}` (all scopes) | left as written; note |
//! | VS Code | `${workspaceFolder}`, `${workspaceFolderBasename}`, `${userHome}`, `${pathSeparator}`, `${/}`, `${env:X}`, `${input:id}`; leading `~` in command/args/cwd | `${env:X}`: empty string; note |
//! | Cursor | `${env:X}`, `${userHome}`, `${workspaceFolder}`, `${workspaceFolderBasename}`, `${pathSeparator}`, `${/}` | empty string (unverified); note |
//! | Windsurf | `${env:X}` | empty string (unverified); note |
//! | Roo Code | `${env:X}`, `${workspaceFolder}` | left as written; note |
//! | Gemini CLI | `$VAR`, `${VAR}`, `${VAR:-default}`, in every string of the settings | left as written; note |
//! | Continue | `${{ secrets.X }}`, `${{ inputs.X }}` | always unknown here |
//! | Claude Desktop, Zed, Codex, Goose, Cline, LM Studio | none | – |
//!
//! Values that only the running host knows are *unknown*, never guessed: a VS Code
//! `${input:id}` (the editor prompts once and keeps the answer in its secret
//! storage), `${config:…}`/`${command:…}`, a Continue secret, `${workspaceFolder}`
//! when no project was given. In `command`, `args`, `cwd` or `envFile` that makes
//! the entry [`Entry::Unimportable`]: the argv to approve is not known. In an `env`
//! value the entry stays importable — its argv is known — and the variable is
//! listed in `env_unknown` with the reason (a consent policy that binds that
//! variable's value can then refuse it). The same holds for variables a host passes
//! through from its own environment or secret store (Codex `env_vars`, Goose
//! `env_keys`).
//!
//! A relative `cwd` (Gemini's `./mcp-servers/python`) is handed by the host to
//! spawn, which resolves it against the host's working directory: the project the
//! host was started in. It is joined to the project dir when one is given, and left
//! relative, with a note, when not.

mod entries;
mod jsonc;
mod subst;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
};

use glob::Pattern;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{HostFs, HostProfile};

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

impl Schema {
    fn syntax(self) -> Syntax {
        match self {
            Schema::ClaudeDesktop | Schema::ClaudeCode => Syntax::Json,
            Schema::GeminiCli => Syntax::JsonComments,
            Schema::Cursor
            | Schema::Vscode
            | Schema::VscodeSettings
            | Schema::Windsurf
            | Schema::Zed
            | Schema::Cline
            | Schema::RooCode
            | Schema::LmStudio => Syntax::Jsonc,
            Schema::Codex => Syntax::Toml,
            Schema::Goose | Schema::Continue => Syntax::Yaml,
        }
    }
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
const HOME_VARS: &[(&str, &str)] = &[("XDG_CONFIG_HOME", ".config"), ("CODEX_HOME", ".codex")];

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
fn user_path_parts(path: &str) -> Option<(Option<&'static str>, &str)> {
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

/// A user whose config files [`discover`] looks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserHome {
    pub dir: PathBuf,
    /// The user's environment if known (`XDG_CONFIG_HOME`, `CODEX_HOME`); empty
    /// means the defaults under `dir`.
    pub env: BTreeMap<String, String>,
}

impl UserHome {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            env: BTreeMap::new(),
        }
    }

    /// The directory a home variable stands for.
    fn var_dir(&self, var: &str) -> PathBuf {
        let default = HOME_VARS
            .iter()
            .find(|(v, _)| *v == var)
            .map_or("", |(_, d)| *d);
        match self.env.get(var) {
            // The XDG spec: a relative value is invalid and ignored.
            Some(value) if value.starts_with('/') => PathBuf::from(value),
            _ => self.dir.join(default),
        }
    }
}

/// A config file that exists, and whose it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigFile {
    /// The profile name of the host that reads it.
    pub host: String,
    pub schema: Schema,
    pub level: Level,
    pub path: PathBuf,
    /// The home it was found under ([`Level::User`]).
    pub home: Option<PathBuf>,
    /// The project dir it was found in ([`Level::Project`]).
    pub project: Option<PathBuf>,
}

/// What [`discover`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// In profile order, then location order; a (host, path) pair once.
    pub files: Vec<ConfigFile>,
    /// Invalid locations and unreadable directories, one line each naming the host.
    pub warnings: Vec<String>,
}

/// The config files of `profiles` that exist: user-level ones under each of `homes`,
/// project-level ones in each of `projects`, system ones once. A file shared by
/// several hosts (Continue's, read by its CLI and by the VS Code family's extension
/// hosts) is listed once per host, since a consent record names the host that
/// launches.
pub fn discover(
    profiles: &[HostProfile],
    homes: &[UserHome],
    projects: &[PathBuf],
    fs: &dyn HostFs,
) -> Discovery {
    let mut out = Discovery::default();
    let mut seen = BTreeSet::new();
    for profile in profiles {
        let host = profile.name.as_str();
        for location in &profile.configs {
            if let Err(why) = location.check() {
                out.warnings
                    .push(format!("host {host}: config {why}; skipped"));
                continue;
            }
            // (pattern, home, project) for every place this location stands for.
            let mut places: Vec<(String, Option<&Path>, Option<&Path>)> = Vec::new();
            match location.level {
                Level::System => places.push((location.path.clone(), None, None)),
                Level::User => {
                    let Some((var, rest)) = user_path_parts(&location.path) else {
                        continue;
                    };
                    for home in homes {
                        let base = var.map_or_else(|| home.dir.clone(), |v| home.var_dir(v));
                        if let Some(pattern) = under(&base, rest) {
                            places.push((pattern, Some(&home.dir), None));
                        }
                    }
                }
                Level::Project => {
                    for dir in projects {
                        if let Some(pattern) = under(dir, &location.path) {
                            places.push((pattern, None, Some(dir)));
                        }
                    }
                }
            }
            for (pattern, home, project) in places {
                let outcome = match fs.glob(&pattern) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        out.warnings
                            .push(format!("host {host}: config `{pattern}`: {e}"));
                        continue;
                    }
                };
                out.warnings.extend(
                    outcome
                        .errors
                        .into_iter()
                        .map(|e| format!("host {host}: config `{}`: {e}", location.path)),
                );
                for path in outcome.matches {
                    if !fs.stat(&path).is_ok_and(|f| f.is_file) {
                        continue;
                    }
                    if !seen.insert((host.to_owned(), path.clone())) {
                        continue;
                    }
                    out.files.push(ConfigFile {
                        host: host.to_owned(),
                        schema: location.schema,
                        level: location.level,
                        path,
                        home: home.map(Path::to_path_buf),
                        project: project.map(Path::to_path_buf),
                    });
                }
            }
        }
    }
    out
}

/// The glob for `rel` under `dir`, `dir` escaped so it matches literally.
fn under(dir: &Path, rel: &str) -> Option<String> {
    let dir = dir.to_str()?.trim_end_matches('/');
    Some(format!("{}/{rel}", Pattern::escape(dir)))
}

/// Whose file is being imported, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportContext {
    /// The user's home: `${userHome}`, VS Code's `~`.
    pub home: PathBuf,
    /// The project (workspace folder) the file belongs to or the host runs in:
    /// `${workspaceFolder}`, relative `cwd`.
    pub project: Option<PathBuf>,
    /// The user's environment, for `${env:X}`/`$X`. An empty map means every
    /// variable is unset (and noted where used).
    pub env: BTreeMap<String, String>,
}

/// One server entry of a config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// The profile name of the host that launches it.
    pub host: String,
    pub schema: Schema,
    pub file: PathBuf,
    /// The project it applies to: the import context's, or for Claude Code's local
    /// scope the `projects` key of `~/.claude.json`.
    pub project: Option<PathBuf>,
    /// The server's name (its key, or Continue's `name`).
    pub server: String,
    /// False when the host would not start it (`disabled: true`, `enabled: false`,
    /// not in Gemini's `mcp.allowed`, rejected in Claude Code's approvals…).
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub entry: Entry,
    /// What the importer noticed: unset variables, ignored options that change how
    /// the server runs, approvals.
    pub notes: Vec<String>,
}

impl Imported {
    /// `<config file>#<server>`, as consent records name an imported source.
    pub fn source(&self) -> String {
        format!("{}#{}", self.file.display(), self.server)
    }
}

/// What a server entry runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Entry {
    /// A program the host spawns (stdio transport).
    Local {
        /// `[command, args...]` after substitution, as the host passes it to spawn.
        argv: Vec<String>,
        /// Variables the config sets on top of the host's default environment;
        /// `None`: the host removes it (VS Code's `null`).
        env: BTreeMap<String, Option<String>>,
        /// Variables the host sets to a value only it knows (a prompt answer, its
        /// secret store, its own environment) → why.
        env_unknown: BTreeMap<String, String>,
        /// A dotenv file whose variables the host adds (not read here).
        env_file: Option<PathBuf>,
        cwd: Option<PathBuf>,
    },
    /// A server reached over the network; the host executes nothing.
    Remote {
        url: String,
        /// `sse` or `http` (streamable HTTP).
        transport: String,
    },
    /// The command cannot be known from the config.
    Unimportable { reason: String },
}

/// A config file that cannot be read or parsed.
///
/// `line` and `column` are 1-based (`serde_json` counts the column in bytes, the
/// others in characters); both are 0 when the file could not be read at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::error::Error for ParseError {}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Claude Code's per-project decisions in `~/.claude.json` (`projects[dir]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClaudeProjectApprovals {
    /// `.mcp.json` servers the user approved (`enabledMcpjsonServers`).
    pub enabled_mcpjson: Vec<String>,
    /// `.mcp.json` servers the user rejected (`disabledMcpjsonServers`).
    pub disabled_mcpjson: Vec<String>,
    /// Servers of any scope turned off in this project (`disabledMcpServers`).
    pub disabled: Vec<String>,
    /// Every `.mcp.json` server approved (`enableAllProjectMcpServers`).
    pub enable_all_mcpjson: bool,
}

/// The parse of one file.
struct Parsed {
    servers: Vec<Imported>,
    /// From `~/.claude.json`: project dir → approvals.
    claude_approvals: BTreeMap<PathBuf, ClaudeProjectApprovals>,
}

/// Parses one config file of `host` in format `schema`.
pub fn parse_config(
    schema: Schema,
    host: &str,
    file: &Path,
    text: &str,
    ctx: &ImportContext,
) -> Result<Vec<Imported>, ParseError> {
    parse(schema, host, file, text, ctx).map(|parsed| parsed.servers)
}

/// [`parse_config`] over raw bytes: non-UTF-8 content is a [`ParseError`] at the
/// first invalid byte.
pub fn parse_config_bytes(
    schema: Schema,
    host: &str,
    file: &Path,
    bytes: &[u8],
    ctx: &ImportContext,
) -> Result<Vec<Imported>, ParseError> {
    let text = utf8(file, bytes)?;
    parse_config(schema, host, file, text, ctx)
}

/// The approvals in a `~/.claude.json`, keyed by project dir (see
/// [`apply_claude_code_approvals`]).
pub fn claude_code_approvals(
    file: &Path,
    text: &str,
) -> Result<BTreeMap<PathBuf, ClaudeProjectApprovals>, ParseError> {
    let ctx = ImportContext::default();
    parse(Schema::ClaudeCode, "claude-code", file, text, &ctx).map(|p| p.claude_approvals)
}

/// Marks the servers of a project's `.mcp.json` as Claude Code treats them given the
/// approvals in `~/.claude.json`: rejected or turned off → disabled; approved →
/// noted; neither → noted that Claude Code asks before starting it.
pub fn apply_claude_code_approvals(
    imported: &mut [Imported],
    approvals: &BTreeMap<PathBuf, ClaudeProjectApprovals>,
) {
    for server in imported.iter_mut().filter(|s| {
        s.schema == Schema::ClaudeCode
            && s.file.file_name().is_some_and(|n| n == ".mcp.json")
            && s.project.is_some()
    }) {
        let Some(project) = &server.project else {
            continue;
        };
        let Some(approval) = approvals.get(project) else {
            continue;
        };
        let name = &server.server;
        if approval.disabled_mcpjson.contains(name) {
            disable(
                server,
                "rejected for this project in ~/.claude.json (disabledMcpjsonServers)",
            );
        } else if approval.disabled.contains(name) {
            disable(
                server,
                "turned off for this project in ~/.claude.json (disabledMcpServers)",
            );
        } else if approval.enabled_mcpjson.contains(name) {
            server
                .notes
                .push("approved for this project in ~/.claude.json (enabledMcpjsonServers)".into());
        } else if approval.enable_all_mcpjson {
            server.notes.push(
                "approved for this project in ~/.claude.json (enableAllProjectMcpServers)".into(),
            );
        } else {
            server.notes.push(
                "not approved yet in ~/.claude.json: Claude Code asks before starting it".into(),
            );
        }
    }
}

fn disable(server: &mut Imported, reason: &str) {
    if server.enabled {
        server.enabled = false;
        server.disabled_reason = Some(reason.to_owned());
    } else {
        server.notes.push(reason.to_owned());
    }
}

/// Reads and parses every file; a file that cannot be read or parsed is one error,
/// the others are imported. `context` gives each file's [`ImportContext`] (whose
/// home and environment: the caller knows which user a project belongs to). Claude
/// Code approvals found in any `~/.claude.json` are applied to the `.mcp.json`
/// servers of the projects they name.
pub fn import_all(
    files: &[ConfigFile],
    fs: &dyn HostFs,
    context: &dyn Fn(&ConfigFile) -> ImportContext,
) -> (Vec<Imported>, Vec<ParseError>) {
    let mut imported = Vec::new();
    let mut errors = Vec::new();
    let mut approvals: BTreeMap<PathBuf, ClaudeProjectApprovals> = BTreeMap::new();
    for file in files {
        let bytes = match fs.read(&file.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(ParseError {
                    file: file.path.clone(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let ctx = context(file);
        let parsed = utf8(&file.path, &bytes)
            .and_then(|text| parse(file.schema, &file.host, &file.path, text, &ctx));
        match parsed {
            Ok(parsed) => {
                imported.extend(parsed.servers);
                approvals.extend(parsed.claude_approvals);
            }
            Err(e) => errors.push(e),
        }
    }
    apply_claude_code_approvals(&mut imported, &approvals);
    (imported, errors)
}

fn utf8<'a>(file: &Path, bytes: &'a [u8]) -> Result<&'a str, ParseError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by definition.
        let prefix = std::str::from_utf8(valid).unwrap_or_default();
        let (line, column) = line_col(prefix, prefix.len());
        ParseError {
            file: file.to_path_buf(),
            line,
            column,
            message: format!("not UTF-8: invalid byte 0x{:02x}", bytes[e.valid_up_to()]),
        }
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The syntax of a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Syntax {
    Json,
    /// JSON with `//` and `/* */` comments (strip-json-comments).
    JsonComments,
    /// Comments and trailing commas.
    Jsonc,
    Toml,
    Yaml,
}

fn parse(
    schema: Schema,
    host: &str,
    file: &Path,
    text: &str,
    ctx: &ImportContext,
) -> Result<Parsed, ParseError> {
    let error = |line: usize, column: usize, message: String| ParseError {
        file: file.to_path_buf(),
        line,
        column,
        message,
    };
    let syntax = schema.syntax();
    // The text the parser saw (comments blanked), to locate structural errors.
    let mut seen = std::borrow::Cow::Borrowed(text);
    let root: Value = match syntax {
        Syntax::Json | Syntax::JsonComments | Syntax::Jsonc => {
            if syntax != Syntax::Json {
                seen = std::borrow::Cow::Owned(jsonc::strip(text, syntax == Syntax::Jsonc));
            }
            serde_json::from_str(&seen).map_err(|e| {
                let message = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                let message = message.strip_suffix(&suffix).unwrap_or(&message);
                error(e.line(), e.column().max(1), message.to_owned())
            })?
        }
        Syntax::Toml => {
            let table: toml::Table = toml::from_str(text).map_err(|e| {
                let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
                error(line, column, one_line(e.message()))
            })?;
            toml_to_json(toml::Value::Table(table))
        }
        Syntax::Yaml => serde_saphyr::from_str::<Value>(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| {
                (
                    usize::try_from(l.line()).unwrap_or(usize::MAX),
                    usize::try_from(l.column()).unwrap_or(usize::MAX),
                )
            });
            let message = e.without_snippet().to_string();
            let suffix = format!(" at line {line}, column {column}");
            let message = one_line(&message);
            let message = message.strip_suffix(&suffix).unwrap_or(&message);
            error(line, column, message.to_owned())
        })?,
    };
    let root = match root {
        Value::Object(map) => map,
        // An empty YAML document.
        Value::Null if syntax == Syntax::Yaml => serde_json::Map::new(),
        other => {
            let (line, column) = first_value(&seen, syntax);
            return Err(error(
                line,
                column,
                format!(
                    "the top level is {}, expected {}",
                    entries::kind(&other),
                    if syntax == Syntax::Toml || syntax == Syntax::Yaml {
                        "a mapping"
                    } else {
                        "an object"
                    }
                ),
            ));
        }
    };
    let doc = entries::Doc {
        schema,
        host,
        file,
        ctx,
    };
    entries::servers(&doc, &root).map_err(|e| {
        let (line, column) = find_key(&seen, &e.key);
        error(line, column, e.message)
    })
}

/// A parser's (possibly multi-line) message on one line.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// Where the top-level value starts (skipping whitespace and YAML comments).
fn first_value(text: &str, syntax: Syntax) -> (usize, usize) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let comment = syntax == Syntax::Yaml && (trimmed.starts_with('#') || trimmed == "---\n");
        if !trimmed.is_empty() && !comment {
            return line_col(text, offset + line.len() - trimmed.len());
        }
        offset += line.len();
    }
    (1, 1)
}

/// Where `key` first appears (quoted for JSON, else bare); 1:1 when it does not.
fn find_key(text: &str, key: &str) -> (usize, usize) {
    let quoted = format!("\"{key}\"");
    text.find(&quoted)
        .or_else(|| text.find(key))
        .map_or((1, 1), |at| line_col(text, at))
}

fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}
