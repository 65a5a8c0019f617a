//! From a parsed config document to [`Imported`] entries, per schema.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use super::{
    subst::{self, VarStyle, Vars},
    Entry, ImportContext, Imported, Parsed, Schema,
};

mod schemas;

use schemas::{claude_code, codex_entry, continue_servers, gemini, goose_entry, vscode, zed_entry};

/// Why a local server entry cannot be imported (its `Entry::Unimportable`
/// reason).
#[derive(Debug, thiserror::Error)]
enum EntryError {
    #[error("`{key}` is empty")]
    EmptyCommand { key: &'static str },
    #[error("no `{key}`")]
    NoCommand { key: &'static str },
    /// A field of the wrong JSON type (`key` as the config writes it, with an
    /// index or a variable name when inside a list or the env).
    #[error("`{key}` is {found}, expected {expected}")]
    WrongType {
        key: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("`{key}.{name}` is null: only VS Code defines that (it removes the variable)")]
    NullEnv { key: String, name: String },
    /// A value whose substitution cannot be known here.
    #[error("{what} `{text}`: {why}")]
    Unknown {
        what: String,
        text: String,
        why: String,
    },
}

fn wrong_type(key: impl Into<String>, value: &Value, expected: &'static str) -> EntryError {
    EntryError::WrongType {
        key: key.into(),
        found: kind(value),
        expected,
    }
}

/// The file being imported.
pub(super) struct Doc<'a> {
    pub schema: Schema,
    pub host: &'a str,
    pub file: &'a Path,
    pub ctx: &'a ImportContext,
}

/// A document whose structure is wrong above the server entries (`mcpServers` is a
/// list…): the whole file is rejected. `key` locates it in the text.
pub(super) struct StructureError {
    pub key: String,
    pub message: String,
}

type Structure<T> = Result<T, StructureError>;

/// "a list", "an object"… for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The object under `key`: `None` when absent or null.
fn object<'v>(value: Option<&'v Value>, key: &str) -> Structure<Option<&'v Map<String, Value>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(StructureError {
            key: key.rsplit('.').next().unwrap_or(key).to_owned(),
            message: format!("`{key}` is {}, expected an object", kind(other)),
        }),
    }
}

/// The strings of a list (other items skipped): approval and allow lists.
fn names(value: Option<&Value>) -> Option<Vec<String>> {
    value.and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

pub(super) fn servers(doc: &Doc<'_>, root: &Map<String, Value>) -> Structure<Parsed> {
    let mut parsed = Parsed {
        servers: Vec::new(),
        claude_approvals: BTreeMap::new(),
    };
    let no_inputs = BTreeMap::new();
    let scope = Scope {
        project: doc.ctx.project.as_deref(),
        inputs: &no_inputs,
    };
    match doc.schema {
        Schema::ClaudeDesktop
        | Schema::Cursor
        | Schema::Windsurf
        | Schema::Cline
        | Schema::RooCode
        | Schema::LmStudio => {
            if let Some(map) = object(root.get("mcpServers"), "mcpServers")? {
                parsed
                    .servers
                    .extend(map.iter().map(|(n, v)| json_entry(doc, &scope, n, v)));
            }
        }
        Schema::ClaudeCode => claude_code(doc, root, &mut parsed)?,
        Schema::Vscode => parsed.servers.extend(vscode(
            doc,
            root.get("servers"),
            root.get("inputs"),
            "servers",
        )?),
        Schema::VscodeSettings => {
            if let Some(mcp) = object(root.get("mcp"), "mcp")? {
                parsed.servers.extend(vscode(
                    doc,
                    mcp.get("servers"),
                    mcp.get("inputs"),
                    "mcp.servers",
                )?);
            }
        }
        Schema::Zed => {
            if let Some(map) = object(root.get("context_servers"), "context_servers")? {
                parsed
                    .servers
                    .extend(map.iter().map(|(n, v)| zed_entry(doc, &scope, n, v)));
            }
        }
        Schema::GeminiCli => parsed.servers.extend(gemini(doc, &scope, root)?),
        Schema::Codex => {
            if let Some(map) = object(root.get("mcp_servers"), "mcp_servers")? {
                parsed
                    .servers
                    .extend(map.iter().map(|(n, v)| codex_entry(doc, &scope, n, v)));
            }
        }
        Schema::Goose => {
            if let Some(map) = object(root.get("extensions"), "extensions")? {
                parsed
                    .servers
                    .extend(map.iter().map(|(n, v)| goose_entry(doc, &scope, n, v)));
            }
        }
        Schema::Continue => parsed.servers.extend(continue_servers(doc, &scope, root)?),
    }
    Ok(parsed)
}

/// What entries of one file share besides the [`Doc`].
struct Scope<'a> {
    /// The project the servers apply to (the workspace folder).
    project: Option<&'a Path>,
    /// VS Code `inputs`: id → description.
    inputs: &'a BTreeMap<String, String>,
}

fn var_style(schema: Schema) -> VarStyle {
    match schema {
        Schema::ClaudeCode => VarStyle::ClaudeCode,
        Schema::Vscode | Schema::VscodeSettings => VarStyle::VsCode,
        Schema::Cursor => VarStyle::Cursor,
        Schema::Windsurf => VarStyle::Windsurf,
        Schema::RooCode => VarStyle::RooCode,
        Schema::GeminiCli => VarStyle::Gemini,
        Schema::Continue => VarStyle::Continue,
        Schema::ClaudeDesktop
        | Schema::Zed
        | Schema::Codex
        | Schema::Goose
        | Schema::Cline
        | Schema::LmStudio => VarStyle::None,
    }
}

/// Builds one [`Imported`].
struct Builder<'a> {
    doc: &'a Doc<'a>,
    scope: &'a Scope<'a>,
    server: String,
    enabled: bool,
    disabled_reason: Option<String>,
    notes: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(doc: &'a Doc<'a>, scope: &'a Scope<'a>, server: &str) -> Self {
        Self {
            doc,
            scope,
            server: server.to_owned(),
            enabled: true,
            disabled_reason: None,
            notes: Vec::new(),
        }
    }

    fn done(self, entry: Entry) -> Imported {
        Imported {
            host: self.doc.host.to_owned(),
            schema: self.doc.schema,
            file: self.doc.file.to_path_buf(),
            project: self.scope.project.map(Path::to_path_buf),
            server: self.server,
            enabled: self.enabled,
            disabled_reason: self.disabled_reason,
            entry,
            notes: self.notes,
        }
    }

    fn unimportable(self, reason: impl Into<String>) -> Imported {
        self.done(Entry::Unimportable {
            reason: reason.into(),
        })
    }

    fn disable(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.enabled {
            self.enabled = false;
            self.disabled_reason = Some(reason);
        } else {
            self.notes.push(reason);
        }
    }

    /// `disabled: true` / `enabled: false`.
    fn flags(&mut self, obj: &Map<String, Value>) {
        for (key, off_when) in [("disabled", true), ("enabled", false)] {
            match obj.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => {
                    if *b == off_when {
                        self.disable(format!("{key}: {b}"));
                    }
                }
                Some(other) => self.notes.push(format!(
                    "`{key}` is {}, not a boolean: ignored (taken as enabled)",
                    kind(other)
                )),
            }
        }
    }

    fn expand(&mut self, text: &str) -> subst::Expansion {
        let vars = Vars {
            env: &self.doc.ctx.env,
            home: &self.doc.ctx.home,
            workspace: self.scope.project,
            inputs: self.scope.inputs,
            host: self.doc.host,
        };
        let expansion = subst::expand(var_style(self.doc.schema), text, &vars);
        self.notes.extend(expansion.notes.iter().cloned());
        expansion
    }

    /// A string the host uses as a path or argument: substituted, `~` expanded
    /// where the host does it; `Err` when its value cannot be known.
    fn word(&mut self, what: &str, text: &str) -> Result<String, EntryError> {
        let expansion = self.expand(text);
        if let Some(why) = expansion.unknown.first() {
            return Err(EntryError::Unknown {
                what: what.to_owned(),
                text: text.to_owned(),
                why: why.clone(),
            });
        }
        let tilde = matches!(self.doc.schema, Schema::Vscode | Schema::VscodeSettings);
        Ok(match subst::tilde(&expansion.value, &self.doc.ctx.home) {
            Some(expanded) if tilde => expanded,
            _ => expansion.value,
        })
    }

    /// A relative path the host hands to spawn: resolved against the project.
    fn relative_to_project(&mut self, what: &str, value: &str) -> PathBuf {
        let path = PathBuf::from(value);
        if path.is_absolute() {
            return path;
        }
        if let Some(project) = self.scope.project {
            return project.join(path).components().collect();
        }
        self.notes.push(format!(
            "relative {what} `{value}`: {} resolves it against its working directory, and no \
             project was given",
            self.doc.host
        ));
        path
    }

    /// A remote server.
    fn remote(&mut self, url: Option<&Value>, transport: &str) -> Entry {
        match url {
            Some(Value::String(url)) => {
                let expansion = self.expand(url);
                for why in &expansion.unknown {
                    self.notes.push(format!("url: {why}"));
                }
                Entry::Remote {
                    url: expansion.value,
                    transport: transport.to_owned(),
                }
            }
            None | Some(Value::Null) => Entry::Unimportable {
                reason: format!("a {transport} server without a url"),
            },
            Some(other) => Entry::Unimportable {
                reason: format!("`url` is {}, expected a string", kind(other)),
            },
        }
    }

    /// A program the host spawns; unimportable when a field has the wrong type or
    /// an unknown value.
    fn local(&mut self, fields: &LocalFields<'_>) -> Entry {
        match self.try_local(fields) {
            Ok(entry) => entry,
            Err(reason) => Entry::Unimportable {
                reason: reason.to_string(),
            },
        }
    }

    fn try_local(&mut self, fields: &LocalFields<'_>) -> Result<Entry, EntryError> {
        let command_key = fields.command_key;
        let command = match fields.command {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) => return Err(EntryError::EmptyCommand { key: command_key }),
            None | Some(Value::Null) => return Err(EntryError::NoCommand { key: command_key }),
            Some(other) => return Err(wrong_type(command_key, other, "a string")),
        };
        let arg_list = string_list(fields.args, fields.args_key)?;
        let env = env_entries(
            fields.env,
            fields.env_key,
            matches!(self.doc.schema, Schema::Vscode | Schema::VscodeSettings),
        )?;
        let env_file = optional_string(fields.env_file, "envFile")?;
        let cwd = optional_string(fields.cwd, "cwd")?;

        let mut argv = vec![self.word(command_key, command)?];
        for (i, arg) in arg_list.iter().enumerate() {
            argv.push(self.word(&format!("{}[{i}]", fields.args_key), arg)?);
        }
        let mut env_set = BTreeMap::new();
        let mut env_unknown = BTreeMap::new();
        for (name, value) in env {
            match value {
                None => {
                    env_set.insert(name, None);
                }
                Some(value) => {
                    let expansion = self.expand(&value);
                    if let Some(why) = expansion.unknown.first() {
                        env_unknown.insert(name, why.clone());
                    } else {
                        env_set.insert(name, Some(expansion.value));
                    }
                }
            }
        }
        let env_file = match env_file {
            Some(file) if !file.is_empty() => {
                let file = self.word("envFile", &file)?;
                Some(self.relative_to_project("envFile", &file))
            }
            _ => None,
        };
        let cwd = match cwd {
            Some(cwd) if !cwd.is_empty() => {
                let cwd = self.word("cwd", &cwd)?;
                Some(self.relative_to_project("cwd", &cwd))
            }
            _ => None,
        };
        Ok(Entry::Local {
            argv,
            env: env_set,
            env_unknown,
            env_file,
            cwd,
        })
    }
}

/// The fields of a local server entry, by each schema's names.
struct LocalFields<'v> {
    command: Option<&'v Value>,
    command_key: &'static str,
    args: Option<&'v Value>,
    args_key: &'static str,
    env: Option<&'v Value>,
    env_key: &'static str,
    env_file: Option<&'v Value>,
    cwd: Option<&'v Value>,
}

impl<'v> LocalFields<'v> {
    /// `command`, `args`, `env`, `envFile`, `cwd` of `obj`.
    fn of(obj: &'v Map<String, Value>) -> Self {
        Self {
            command: obj.get("command"),
            command_key: "command",
            args: obj.get("args"),
            args_key: "args",
            env: obj.get("env"),
            env_key: "env",
            env_file: obj.get("envFile"),
            cwd: obj.get("cwd"),
        }
    }
}

fn string_list(value: Option<&Value>, key: &str) -> Result<Vec<String>, EntryError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(format!("{key}[{i}]"), other, "a string")),
            })
            .collect(),
        Some(other) => Err(wrong_type(key, other, "a list of strings")),
    }
}

fn optional_string(value: Option<&Value>, key: &str) -> Result<Option<String>, EntryError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(key, other, "a string")),
    }
}

/// `env` as (name, value) pairs; `None` = remove (only where `null_removes`).
/// Numbers and booleans are the strings JavaScript would make of them.
fn env_entries(
    value: Option<&Value>,
    key: &str,
    null_removes: bool,
) -> Result<Vec<(String, Option<String>)>, EntryError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(wrong_type(key, other, "an object")),
    };
    map.iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Null if null_removes => None,
                Value::Null => {
                    return Err(EntryError::NullEnv {
                        key: key.to_owned(),
                        name: name.clone(),
                    })
                }
                other => return Err(wrong_type(format!("{key}.{name}"), other, "a string")),
            };
            Ok((name.clone(), value))
        })
        .collect()
}

/// The `mcpServers` entry shape most hosts share (Claude, Cursor, VS Code, Windsurf,
/// Gemini, Cline, Roo Code, LM Studio, Continue, Codex): `type`, `command`, `args`,
/// `env`, `envFile`, `cwd`, `url`, `disabled`/`enabled`.
fn json_entry(doc: &Doc<'_>, scope: &Scope<'_>, name: &str, value: &Value) -> Imported {
    let mut b = Builder::new(doc, scope, name);
    let Some(obj) = value.as_object() else {
        return b.unimportable(format!("the entry is {}, expected an object", kind(value)));
    };
    b.flags(obj);
    let entry = json_transport(&mut b, obj);
    b.done(entry)
}

/// Stdio or remote, by `type` (Cline's older `transportType`) or, without one, by
/// whether there is a `command` or a url.
fn json_transport(b: &mut Builder<'_>, obj: &Map<String, Value>) -> Entry {
    let declared = obj.get("type").or_else(|| obj.get("transportType"));
    let url_key = ["url", "serverUrl", "httpUrl"]
        .into_iter()
        .find(|k| obj.get(*k).is_some_and(|v| !v.is_null()));
    let url = url_key.and_then(|k| obj.get(k));
    match declared {
        Some(Value::String(t)) => match t.as_str() {
            "stdio" => b.local(&LocalFields::of(obj)),
            "sse" => b.remote(url, "sse"),
            "http" | "streamable-http" | "streamableHttp" | "streamable_http" => {
                b.remote(url, "http")
            }
            other => Entry::Unimportable {
                reason: format!("transport type `{other}` is not one mcpwatch knows"),
            },
        },
        Some(Value::Null) | None => {
            if obj.get("command").is_some_and(|v| !v.is_null()) {
                b.local(&LocalFields::of(obj))
            } else if let Some(key) = url_key {
                // Gemini: `url` is SSE, `httpUrl` streamable HTTP; Cursor and Claude
                // Code try streamable HTTP first.
                let sse = key == "url" && b.doc.schema == Schema::GeminiCli;
                b.remote(url, if sse { "sse" } else { "http" })
            } else {
                Entry::Unimportable {
                    reason: "neither `command` nor `url`".to_owned(),
                }
            }
        }
        Some(other) => Entry::Unimportable {
            reason: format!("`type` is {}, expected a string", kind(other)),
        },
    }
}
