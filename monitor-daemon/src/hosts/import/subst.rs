//! Variable substitution in config strings, the way each host does it (the table is
//! in the [module docs](super)).
//!
//! One pass over the input: a substituted value is never scanned again (no host
//! expands recursively), and none of these syntaxes has an escape (`$$` is a `$`
//! followed by whatever the second `$` starts).

use std::{
    collections::BTreeMap,
    path::{Path, MAIN_SEPARATOR_STR},
};

/// A host's substitution syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarStyle {
    /// No substitution: strings are used as written.
    None,
    /// Claude Code: `${VAR}`, `${VAR:-default}`; unset without default: left as is.
    ClaudeCode,
    /// VS Code: `${workspaceFolder}`, `${workspaceFolderBasename}`, `${userHome}`,
    /// `${pathSeparator}`, `${/}`, `${env:X}` (unset: empty), `${input:id}`.
    VsCode,
    /// Cursor: VS Code's names without `input`/`config`/`command`.
    Cursor,
    /// Windsurf: `${env:X}` only.
    Windsurf,
    /// Roo Code: `${env:X}` (unset: left as is), `${workspaceFolder}` (no folder:
    /// empty).
    RooCode,
    /// Gemini CLI: `$VAR`, `${VAR}`, `${VAR:-default}`; unset without default: left
    /// as is.
    Gemini,
    /// Continue: `${{ secrets.X }}` / `${{ inputs.X }}` templates, which only Continue
    /// can fill in.
    Continue,
}

/// What substitution can draw on.
pub(crate) struct Vars<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub home: &'a Path,
    pub workspace: Option<&'a Path>,
    /// VS Code `inputs`: id → description.
    pub inputs: &'a BTreeMap<String, String>,
    /// The host's name, for messages.
    pub host: &'a str,
}

/// The result of substituting one string.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expansion {
    pub value: String,
    /// Why the value the host would use cannot be known here (a prompt, a secret,
    /// the open folder); the placeholder is left in `value`.
    pub unknown: Vec<String>,
    /// What the host does that is worth telling (an unset variable).
    pub notes: Vec<String>,
}

/// Substitutes `text` as `style` does.
pub(crate) fn expand(style: VarStyle, text: &str, vars: &Vars<'_>) -> Expansion {
    let mut out = Expansion::default();
    match style {
        VarStyle::None => text.clone_into(&mut out.value),
        VarStyle::ClaudeCode => braces(text, &mut out, |content, out| claude(content, vars, out)),
        VarStyle::VsCode | VarStyle::Cursor | VarStyle::Windsurf | VarStyle::RooCode => {
            braces(text, &mut out, |content, out| {
                vscode(style, content, vars, out)
            });
        }
        VarStyle::Gemini => gemini(text, vars, &mut out),
        VarStyle::Continue => continue_templates(text, vars, &mut out),
    }
    out
}

/// VS Code's `~` expansion in `command`, `args` and `cwd`: a leading `~` alone or
/// followed by `/`.
pub(crate) fn tilde(value: &str, home: &Path) -> Option<String> {
    let home = home.to_str()?.trim_end_matches('/');
    if value == "~" {
        Some(home.to_owned())
    } else {
        value
            .strip_prefix("~/")
            .map(|rest| format!("{home}/{rest}"))
    }
}

/// What a `${…}` resolved to.
enum Resolution {
    Value(String),
    /// Keep the placeholder as written.
    Literal,
}

/// Scans `${content}` (up to the first `}`; `content` not empty) and replaces each
/// with what `resolve` says, as the JavaScript `replace(/\$\{([^}]+)\}/g, …)` of
/// these hosts does. `${` without a closing `}` stays as written.
fn braces(
    text: &str,
    out: &mut Expansion,
    mut resolve: impl FnMut(&str, &mut Expansion) -> Resolution,
) {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.value.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) if end > 0 => {
                let content = &after[..end];
                match resolve(content, out) {
                    Resolution::Value(v) => out.value.push_str(&v),
                    Resolution::Literal => out.value.push_str(&rest[start..=start + 2 + end]),
                }
                rest = &after[end + 1..];
            }
            _ => {
                // Not a placeholder: keep the `$` and scan on from the `{`.
                out.value.push('$');
                rest = &rest[start + 1..];
            }
        }
    }
    out.value.push_str(rest);
}

/// Claude Code (`services/mcp/envExpansion`): `VAR` or `VAR:-default`, split on `:-`
/// with JavaScript's `split(':-', 2)`, so a second `:-` ends the default.
fn claude(content: &str, vars: &Vars<'_>, out: &mut Expansion) -> Resolution {
    let mut parts = content.split(":-");
    let name = parts.next().unwrap_or_default();
    let default = parts.next();
    if let Some(value) = vars.env.get(name) {
        Resolution::Value(value.clone())
    } else if let Some(default) = default {
        Resolution::Value(default.to_owned())
    } else {
        out.notes.push(format!(
            "${{{name}}} is not set: {} leaves `${{{content}}}` as written (and warns)",
            vars.host
        ));
        Resolution::Literal
    }
}

fn vscode(style: VarStyle, content: &str, vars: &Vars<'_>, out: &mut Expansion) -> Resolution {
    let host = vars.host;
    if let Some(name) = content.strip_prefix("env:") {
        return vscode_env(style, name, vars, out);
    }
    if let Some(resolution) = vscode_builtin(style, content, vars, out) {
        return resolution;
    }
    if style == VarStyle::VsCode {
        if let Some(id) = content.strip_prefix("input:") {
            let what = vars.inputs.get(id).map_or_else(
                || " (not declared in `inputs`)".to_owned(),
                |d| format!(" ({d})"),
            );
            out.unknown.push(format!(
                "${{input:{id}}}{what} is asked from the user by {host} and kept in its secret \
                 storage"
            ));
            return Resolution::Literal;
        }
        if vscode_editor_state(content) {
            out.unknown.push(format!(
                "${{{content}}} depends on {host}'s settings or editor state"
            ));
            return Resolution::Literal;
        }
    }
    out.notes.push(format!(
        "${{{content}}} is not a variable {host} substitutes: left as written"
    ));
    Resolution::Literal
}

/// `${env:NAME}`.
fn vscode_env(style: VarStyle, name: &str, vars: &Vars<'_>, out: &mut Expansion) -> Resolution {
    let host = vars.host;
    if let Some(value) = vars.env.get(name) {
        return Resolution::Value(value.clone());
    }
    if style == VarStyle::RooCode {
        out.notes.push(format!(
            "${{env:{name}}} is not set: {host} leaves it as written"
        ));
        return Resolution::Literal;
    }
    let unverified = if style == VarStyle::VsCode {
        ""
    } else {
        " (as VS Code does; unverified for this host)"
    };
    out.notes.push(format!(
        "${{env:{name}}} is not set: {host} substitutes an empty string{unverified}"
    ));
    Resolution::Value(String::new())
}

/// The folder and path variables the host knows; `None` for other names.
fn vscode_builtin(
    style: VarStyle,
    content: &str,
    vars: &Vars<'_>,
    out: &mut Expansion,
) -> Option<Resolution> {
    let host = vars.host;
    let editor = matches!(style, VarStyle::VsCode | VarStyle::Cursor);
    let value = match content {
        "workspaceFolder" if editor || style == VarStyle::RooCode => {
            match (vars.workspace.and_then(Path::to_str), style) {
                (Some(folder), _) => folder.to_owned(),
                (None, VarStyle::RooCode) => {
                    out.notes.push(format!(
                        "${{workspaceFolder}}: no folder is open, {host} substitutes an empty \
                         string"
                    ));
                    String::new()
                }
                (None, _) => {
                    out.unknown.push(format!(
                        "${{workspaceFolder}} is the folder open in {host}, and no project was \
                         given"
                    ));
                    return Some(Resolution::Literal);
                }
            }
        }
        "workspaceFolderBasename" if editor => {
            let name = vars
                .workspace
                .and_then(Path::file_name)
                .and_then(|n| n.to_str());
            if let Some(name) = name {
                name.to_owned()
            } else {
                out.unknown.push(format!(
                    "${{workspaceFolderBasename}} names the folder open in {host}, and no \
                     project was given"
                ));
                return Some(Resolution::Literal);
            }
        }
        "userHome" if editor => vars.home.to_str()?.to_owned(),
        "pathSeparator" | "/" if editor => MAIN_SEPARATOR_STR.to_owned(),
        _ => return None,
    };
    Some(Resolution::Value(value))
}

/// VS Code variables whose value depends on settings, commands or the editor's
/// state: unknown outside the editor.
fn vscode_editor_state(content: &str) -> bool {
    let (kind, _) = content.split_once(':').unwrap_or((content, ""));
    matches!(kind, "config" | "command" | "workspaceFolder")
        || matches!(
            content,
            "file"
                | "fileBasename"
                | "fileBasenameNoExtension"
                | "fileDirname"
                | "fileDirnameBasename"
                | "fileExtname"
                | "fileWorkspaceFolder"
                | "relativeFile"
                | "relativeFileDirname"
                | "lineNumber"
                | "selectedText"
                | "execPath"
                | "defaultBuildTask"
                | "cwd"
        )
}

/// Gemini CLI (`utils/envVarResolver`): `/\$(?:(\w+)|{([^}]+?)(?::-([^}]*))?})/g`.
fn gemini(text: &str, vars: &Vars<'_>, out: &mut Expansion) {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.value.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let word_len = after.find(|c: char| !is_word(c)).unwrap_or(after.len());
        let (placeholder_len, name, default) = if word_len > 0 {
            (1 + word_len, &after[..word_len], None)
        } else if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) if end > 0 => {
                    let content = &inner[..end];
                    // The name is lazy and at least one character: the first `:-`
                    // after the first character starts the default.
                    let first = content.chars().next().map_or(0, char::len_utf8);
                    let (name, default) = match content[first..].find(":-") {
                        Some(at) => (&content[..first + at], Some(&content[first + at + 2..])),
                        None => (content, None),
                    };
                    (2 + end + 1, name, default)
                }
                _ => (0, "", None),
            }
        } else {
            (0, "", None)
        };
        if placeholder_len == 0 {
            out.value.push('$');
            rest = after;
            continue;
        }
        let placeholder = &rest[start..start + placeholder_len];
        if let Some(value) = vars.env.get(name) {
            out.value.push_str(value);
        } else if let Some(default) = default {
            out.value.push_str(default);
        } else {
            out.notes.push(format!(
                "{placeholder}: {name} is not set, {} leaves it as written",
                vars.host
            ));
            out.value.push_str(placeholder);
        }
        rest = &rest[start + placeholder_len..];
    }
    out.value.push_str(rest);
}

/// Continue: `${{ secrets.NAME }}` and `${{ inputs.NAME }}` are filled in by
/// Continue (from its secret store, `.env` files or the block's `with:`).
fn continue_templates(text: &str, vars: &Vars<'_>, out: &mut Expansion) {
    text.clone_into(&mut out.value);
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        out.unknown.push(format!(
            "`${{{{{}}}}}` is a template {} fills in from its secrets or block inputs",
            &after[..end],
            vars.host
        ));
        rest = &after[end + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        env: BTreeMap<String, String>,
        inputs: BTreeMap<String, String>,
    }

    impl Fixture {
        fn new() -> Self {
            let env = [
                ("HOME", "/home/alice"),
                ("TOKEN", "t0k"),
                ("EMPTY", ""),
                ("LOOP", "${TOKEN}"),
                ("VSLOOP", "${env:TOKEN}"),
                ("GLOOP", "$TOKEN"),
            ];
            Self {
                env: env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                inputs: BTreeMap::from([("key".to_owned(), "API key".to_owned())]),
            }
        }

        fn run(&self, style: VarStyle, text: &str, workspace: Option<&str>) -> Expansion {
            let vars = Vars {
                env: &self.env,
                home: Path::new("/home/alice"),
                workspace: workspace.map(Path::new),
                inputs: &self.inputs,
                host: "host",
            };
            expand(style, text, &vars)
        }

        fn value(&self, style: VarStyle, text: &str) -> String {
            self.run(style, text, Some("/src/app")).value
        }
    }

    #[test]
    fn claude_code_vars_and_defaults() {
        let f = Fixture::new();
        let s = VarStyle::ClaudeCode;
        assert_eq!(f.value(s, "${HOME}/bin:${TOKEN}"), "/home/alice/bin:t0k");
        assert_eq!(f.value(s, "${MISSING:-https://x}"), "https://x");
        assert_eq!(f.value(s, "${MISSING:-}"), "");
        // Set but empty: the value, not the default.
        assert_eq!(f.value(s, "${EMPTY:-d}"), "");
        // JavaScript's split(':-', 2) drops what follows a second `:-`.
        assert_eq!(f.value(s, "${MISSING:-a:-b}"), "a");
        // $VAR is not a Claude Code placeholder; ${} and an open ${ stay.
        assert_eq!(f.value(s, "$TOKEN ${} ${TOKEN"), "$TOKEN ${} ${TOKEN");
    }

    #[test]
    fn claude_code_unset_var_is_left_literal_with_a_note() {
        let f = Fixture::new();
        let e = f.run(VarStyle::ClaudeCode, "--key=${API_KEY}", None);
        assert_eq!(e.value, "--key=${API_KEY}");
        assert!(e.unknown.is_empty());
        assert_eq!(e.notes.len(), 1);
        assert!(e.notes[0].contains("API_KEY"), "{:?}", e.notes);
    }

    #[test]
    fn no_recursive_expansion_and_no_escapes() {
        let f = Fixture::new();
        assert_eq!(f.value(VarStyle::ClaudeCode, "${LOOP}"), "${TOKEN}");
        assert_eq!(f.value(VarStyle::VsCode, "${env:VSLOOP}"), "${env:TOKEN}");
        assert_eq!(f.value(VarStyle::Gemini, "$GLOOP"), "$TOKEN");
        // `$$` is not an escape anywhere.
        assert_eq!(f.value(VarStyle::ClaudeCode, "$${TOKEN}"), "$t0k");
        assert_eq!(f.value(VarStyle::Gemini, "$$TOKEN"), "$t0k");
        assert_eq!(f.value(VarStyle::VsCode, "$${env:TOKEN}"), "$t0k");
    }

    #[test]
    fn vscode_variables() {
        let f = Fixture::new();
        let s = VarStyle::VsCode;
        assert_eq!(
            f.value(
                s,
                "${workspaceFolder}/x ${workspaceFolderBasename} ${userHome}${/}a"
            ),
            "/src/app/x app /home/alice/a"
        );
        assert_eq!(f.value(s, "${pathSeparator}${env:TOKEN}"), "/t0k");
        let e = f.run(s, "k=${env:NOPE}", None);
        assert_eq!(e.value, "k=");
        assert!(e.notes[0].contains("empty string"), "{:?}", e.notes);
        // Unknown names are left as written, with a note.
        let e = f.run(s, "${nope}", None);
        assert_eq!((e.value.as_str(), e.notes.len()), ("${nope}", 1));
    }

    #[test]
    fn vscode_input_and_editor_state_are_unknown() {
        let f = Fixture::new();
        let e = f.run(VarStyle::VsCode, "${input:key}", Some("/src/app"));
        assert_eq!(e.value, "${input:key}");
        assert_eq!(e.unknown.len(), 1);
        assert!(e.unknown[0].contains("API key"), "{:?}", e.unknown);
        let e = f.run(VarStyle::VsCode, "${input:other}", None);
        assert!(e.unknown[0].contains("not declared"), "{:?}", e.unknown);
        for text in ["${config:python.path}", "${command:pick}", "${file}"] {
            assert_eq!(
                f.run(VarStyle::VsCode, text, None).unknown.len(),
                1,
                "{text}"
            );
        }
        // Without a project, the workspace folder is unknown.
        let e = f.run(VarStyle::VsCode, "${workspaceFolder}/a", None);
        assert_eq!(
            (e.value.as_str(), e.unknown.len()),
            ("${workspaceFolder}/a", 1)
        );
    }

    #[test]
    fn cursor_windsurf_and_roo_differ_from_vscode() {
        let f = Fixture::new();
        assert_eq!(
            f.value(VarStyle::Cursor, "${userHome}/${env:TOKEN}"),
            "/home/alice/t0k"
        );
        // Cursor has no inputs: left as written with a note, not unknown.
        let e = f.run(VarStyle::Cursor, "${input:key}", None);
        assert_eq!((e.unknown.len(), e.notes.len()), (0, 1));
        // Windsurf: env only.
        assert_eq!(
            f.value(VarStyle::Windsurf, "${env:TOKEN} ${userHome}"),
            "t0k ${userHome}"
        );
        // Roo Code: unset env left as written; no folder gives an empty string.
        let e = f.run(VarStyle::RooCode, "${env:NOPE}|${workspaceFolder}", None);
        assert_eq!(e.value, "${env:NOPE}|");
        assert_eq!((e.unknown.len(), e.notes.len()), (0, 2));
    }

    #[test]
    fn gemini_dollar_forms() {
        let f = Fixture::new();
        let s = VarStyle::Gemini;
        assert_eq!(f.value(s, "$TOKEN-${TOKEN}/${HOME}"), "t0k-t0k//home/alice");
        assert_eq!(f.value(s, "${MISSING:-dflt} ${MISSING:-a:-b}"), "dflt a:-b");
        assert_eq!(f.value(s, "${EMPTY:-d}"), "");
        // `\w+` is greedy: $TOKEN_X is the variable TOKEN_X.
        let e = f.run(s, "$TOKEN_X and ${PWD}:/workspace", None);
        assert_eq!(e.value, "$TOKEN_X and ${PWD}:/workspace");
        assert_eq!(e.notes.len(), 2);
        // A lone `$`, `$-`, `${}` and an open `${` are not placeholders.
        assert_eq!(f.value(s, "a$ $- ${} ${TOKEN"), "a$ $- ${} ${TOKEN");
    }

    #[test]
    fn continue_templates_are_unknown() {
        let f = Fixture::new();
        let e = f.run(VarStyle::Continue, "Bearer ${{ secrets.API_KEY }}", None);
        assert_eq!(e.value, "Bearer ${{ secrets.API_KEY }}");
        assert_eq!(e.unknown.len(), 1);
        assert!(e.unknown[0].contains("secrets.API_KEY"), "{:?}", e.unknown);
        assert!(f
            .run(VarStyle::Continue, "${HOME} $X", None)
            .unknown
            .is_empty());
    }

    #[test]
    fn none_keeps_everything() {
        let f = Fixture::new();
        let e = f.run(VarStyle::None, "${HOME} $TOKEN ${env:TOKEN} ~/x", None);
        assert_eq!(e.value, "${HOME} $TOKEN ${env:TOKEN} ~/x");
        assert!(e.notes.is_empty() && e.unknown.is_empty());
    }

    #[test]
    fn tilde_expands_only_a_leading_home() {
        let home = Path::new("/home/alice/");
        assert_eq!(tilde("~", home).as_deref(), Some("/home/alice"));
        assert_eq!(tilde("~/x/y", home).as_deref(), Some("/home/alice/x/y"));
        assert_eq!(tilde("~bob/x", home), None);
        assert_eq!(tilde("a/~/x", home), None);
    }
}
