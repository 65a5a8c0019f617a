//! The config schemas whose entries are not plain `mcpServers` objects: Claude Code,
//! VS Code, Zed, Gemini CLI, Codex, Goose and Continue, each from its document to
//! [`Imported`] entries over the builders of [`super`].

use std::{collections::BTreeMap, path::PathBuf};

use serde_json::{Map, Value};

use super::{
    json_entry, kind, names, object, Builder, Doc, LocalFields, Scope, Structure, StructureError,
};
use crate::hosts::import::{disable, ClaudeProjectApprovals, Entry, Imported, Parsed};

/// Claude Code: `mcpServers` (user scope in `~/.claude.json`, project scope in
/// `.mcp.json`, managed in `managed-mcp.json`) and, in `~/.claude.json`,
/// `projects[dir]`: local-scope `mcpServers` and the approvals.
pub(super) fn claude_code(
    doc: &Doc<'_>,
    root: &Map<String, Value>,
    parsed: &mut Parsed,
) -> Structure<()> {
    let no_inputs = BTreeMap::new();
    let top_scope = Scope {
        project: doc.ctx.project.as_deref(),
        inputs: &no_inputs,
    };
    let mut top: Vec<Imported> = Vec::new();
    if let Some(map) = object(root.get("mcpServers"), "mcpServers")? {
        top.extend(map.iter().map(|(n, v)| json_entry(doc, &top_scope, n, v)));
    }
    let mut local = Vec::new();
    if let Some(projects) = object(root.get("projects"), "projects")? {
        for (dir, project) in projects {
            let Some(project) = project.as_object() else {
                continue;
            };
            let approvals = ClaudeProjectApprovals {
                enabled_mcpjson: names(project.get("enabledMcpjsonServers")).unwrap_or_default(),
                disabled_mcpjson: names(project.get("disabledMcpjsonServers")).unwrap_or_default(),
                disabled: names(project.get("disabledMcpServers")).unwrap_or_default(),
                enable_all_mcpjson: project
                    .get("enableAllProjectMcpServers")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            };
            let dir_path = PathBuf::from(dir);
            let scope = Scope {
                project: Some(&dir_path),
                inputs: &no_inputs,
            };
            if let Some(map) = object(project.get("mcpServers"), "mcpServers")? {
                for (name, value) in map {
                    let mut server = json_entry(doc, &scope, name, value);
                    server
                        .notes
                        .push(format!("local scope: only in project {dir}"));
                    if approvals.disabled.contains(name) {
                        disable(
                            &mut server,
                            "turned off for this project (disabledMcpServers)",
                        );
                    }
                    local.push(server);
                }
            }
            // A user-scope server turned off in one project still runs elsewhere.
            for server in &mut top {
                if approvals.disabled.contains(&server.server) {
                    server
                        .notes
                        .push(format!("turned off in project {dir} (disabledMcpServers)"));
                }
            }
            parsed.claude_approvals.insert(dir_path, approvals);
        }
    }
    parsed.servers.extend(top);
    parsed.servers.extend(local);
    Ok(())
}

/// VS Code: `servers` and `inputs` (prompted values, `${input:id}`).
pub(super) fn vscode(
    doc: &Doc<'_>,
    servers: Option<&Value>,
    inputs: Option<&Value>,
    key: &str,
) -> Structure<Vec<Imported>> {
    let inputs: BTreeMap<String, String> = inputs
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|input| {
            let id = input.get("id")?.as_str()?;
            let description = input
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or(id);
            Some((id.to_owned(), description.to_owned()))
        })
        .collect();
    let scope = Scope {
        project: doc.ctx.project.as_deref(),
        inputs: &inputs,
    };
    let Some(map) = object(servers, key)? else {
        return Ok(Vec::new());
    };
    Ok(map
        .iter()
        .map(|(name, value)| {
            let mut server = json_entry(doc, &scope, name, value);
            if value.get("sandboxEnabled").and_then(Value::as_bool) == Some(true) {
                server.notes.push(
                    "sandboxEnabled: VS Code runs the server inside its sandbox, so the \
                     program it executes wraps this command"
                        .to_owned(),
                );
            }
            if value.get("dev").and_then(|d| d.get("debug")).is_some() {
                server.notes.push(
                    "dev.debug: started from a debug session, VS Code adds debugger \
                     arguments"
                        .to_owned(),
                );
            }
            server
        })
        .collect())
}

/// Zed `context_servers.<name>`: `command` (a string, with `args`, `env`) or the
/// legacy `source: custom` with `command: {path, args, env}`; `source: extension`
/// servers get their command from a Zed extension at run time.
pub(super) fn zed_entry(doc: &Doc<'_>, scope: &Scope<'_>, name: &str, value: &Value) -> Imported {
    let mut b = Builder::new(doc, scope, name);
    let Some(obj) = value.as_object() else {
        return b.unimportable(format!("the entry is {}, expected an object", kind(value)));
    };
    b.flags(obj);
    match obj.get("source") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "custom" => {}
        Some(Value::String(s)) if s == "extension" => {
            return b.unimportable(
                "provided by a Zed extension (source: extension): the extension computes \
                 the command when Zed starts the server, often after downloading it; the \
                 settings hold only its options",
            )
        }
        Some(other) => {
            return b.unimportable(format!(
                "`source` is {other}, expected \"custom\" or \"extension\""
            ))
        }
    }
    let entry = match obj.get("command") {
        Some(Value::Object(command)) => b.local(&LocalFields {
            command: command.get("path"),
            command_key: "command.path",
            args: command.get("args"),
            args_key: "command.args",
            env: command.get("env"),
            env_key: "command.env",
            env_file: None,
            cwd: None,
        }),
        None | Some(Value::Null) if obj.get("url").is_some() => b.remote(obj.get("url"), "http"),
        _ => b.local(&LocalFields {
            env_file: None,
            cwd: None,
            ..LocalFields::of(obj)
        }),
    };
    b.done(entry)
}

/// Gemini CLI: `mcpServers`, filtered by `mcp.allowed` / `mcp.excluded` (before
/// settings v2: `allowMCPServers` / `excludeMCPServers`).
pub(super) fn gemini(
    doc: &Doc<'_>,
    scope: &Scope<'_>,
    root: &Map<String, Value>,
) -> Structure<Vec<Imported>> {
    let mcp = object(root.get("mcp"), "mcp")?;
    let list =
        |v2: &str, v1: &str| names(mcp.and_then(|m| m.get(v2))).or_else(|| names(root.get(v1)));
    let allowed = list("allowed", "allowMCPServers");
    let excluded = list("excluded", "excludeMCPServers").unwrap_or_default();
    let mut out = Vec::new();
    if let Some(map) = object(root.get("mcpServers"), "mcpServers")? {
        for (name, value) in map {
            let mut server = json_entry(doc, scope, name, value);
            if allowed.as_ref().is_some_and(|a| !a.contains(name)) {
                disable(&mut server, "not in mcp.allowed");
            }
            if excluded.contains(name) {
                disable(&mut server, "in mcp.excluded");
            }
            if value.get("trust").and_then(Value::as_bool) == Some(true) {
                server
                    .notes
                    .push("trust: true: Gemini CLI calls its tools without asking".to_owned());
            }
            out.push(server);
        }
    }
    let server_command = mcp
        .and_then(|m| m.get("serverCommand"))
        .or_else(|| root.get("mcpServerCommand"));
    if let Some(Value::String(command)) = server_command {
        out.push(
            Builder::new(doc, scope, "mcp.serverCommand").unimportable(format!(
                "`{command}`: a command line Gemini CLI splits with shell-quote rules, not an argv"
            )),
        );
    }
    Ok(out)
}

/// Codex `[mcp_servers.<name>]`: `command`, `args`, `env`, `env_vars` (names passed
/// through from Codex's environment), `cwd`, `enabled`; `url` for streamable HTTP.
pub(super) fn codex_entry(doc: &Doc<'_>, scope: &Scope<'_>, name: &str, value: &Value) -> Imported {
    let mut server = json_entry(doc, scope, name, value);
    if let Entry::Local { env_unknown, .. } = &mut server.entry {
        for var in value
            .get("env_vars")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let var = var
                .as_str()
                .or_else(|| var.get("name").and_then(Value::as_str));
            if let Some(var) = var {
                env_unknown.insert(
                    var.to_owned(),
                    "passed through from the environment codex runs in (env_vars)".to_owned(),
                );
            }
        }
    }
    if doc
        .ctx
        .project
        .as_ref()
        .is_some_and(|p| doc.file.starts_with(p))
    {
        server
            .notes
            .push("a project config: Codex reads it only in a trusted project".to_owned());
    }
    server
}

/// Goose `extensions.<key>`: `type` `stdio` (`cmd`, `args`, `envs`, `env_keys`), `sse` /
/// `streamable_http` (`uri`), `builtin`, `platform`, `frontend`, `inline_python`;
/// `enabled`.
pub(super) fn goose_entry(doc: &Doc<'_>, scope: &Scope<'_>, key: &str, value: &Value) -> Imported {
    let mut b = Builder::new(doc, scope, key);
    let Some(obj) = value.as_object() else {
        return b.unimportable(format!("the entry is {}, expected a mapping", kind(value)));
    };
    b.flags(obj);
    let entry = match obj.get("type").and_then(Value::as_str) {
        Some("stdio") => {
            let mut entry = b.local(&LocalFields {
                command: obj.get("cmd"),
                command_key: "cmd",
                args: obj.get("args"),
                args_key: "args",
                env: obj.get("envs"),
                env_key: "envs",
                env_file: None,
                cwd: None,
            });
            if let Entry::Local { env_unknown, .. } = &mut entry {
                for var in names(obj.get("env_keys")).unwrap_or_default() {
                    env_unknown.insert(
                        var,
                        "goose reads it from its secret store (keyring or secrets.yaml) or \
                         its environment (env_keys)"
                            .to_owned(),
                    );
                }
            }
            entry
        }
        Some("sse") => b.remote(obj.get("uri"), "sse"),
        Some("streamable_http") => b.remote(obj.get("uri"), "http"),
        Some("builtin") => Entry::Unimportable {
            reason: "a goose built-in extension: goose runs its own code, the config names \
                     no command"
                .to_owned(),
        },
        Some("platform") => Entry::Unimportable {
            reason: "a goose platform extension: it runs inside goose".to_owned(),
        },
        Some("frontend") => Entry::Unimportable {
            reason: "a frontend extension: its tools run in the goose desktop app".to_owned(),
        },
        Some("inline_python") => Entry::Unimportable {
            reason: "inline Python: goose writes the code to a temporary file and runs it \
                     with uvx; the code, not a command, is what to approve"
                .to_owned(),
        },
        Some(other) => Entry::Unimportable {
            reason: format!("extension type `{other}` is not one mcpwatch knows"),
        },
        None => Entry::Unimportable {
            reason: "no `type`".to_owned(),
        },
    };
    b.done(entry)
}

/// Continue: `mcpServers` is a list of `{name, type, command, args, env, cwd, url}`,
/// in `config.yaml` and in the block files of `.continue/mcpServers/`.
pub(super) fn continue_servers(
    doc: &Doc<'_>,
    scope: &Scope<'_>,
    root: &Map<String, Value>,
) -> Structure<Vec<Imported>> {
    let items = match root.get("mcpServers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(StructureError {
                key: "mcpServers".to_owned(),
                message: format!("`mcpServers` is {}, expected a list", kind(other)),
            })
        }
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("mcpServers[{i}]"), str::to_owned);
            if let Some(uses) = item.get("uses") {
                let uses = uses.as_str().unwrap_or("?");
                return Builder::new(doc, scope, &name).unimportable(format!(
                    "a Continue Hub block (uses: {uses}): its command comes from the hub"
                ));
            }
            json_entry(doc, scope, &name, item)
        })
        .collect())
}
