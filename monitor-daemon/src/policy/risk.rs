//! Risk flags shown next to a command before every approval.
//!
//! The MCP specification (2025-11-25, Security Best Practices, "Local MCP Server
//! Compromise") says a client SHOULD highlight dangerous patterns in a command it
//! asks the user to approve: `sudo`, `rm -rf`, network tools, access to `~/.ssh`,
//! the home directory, system directories. These are *warnings* for a human, not
//! a sandbox: the checks over-approximate (a word that looks like `sudo` anywhere
//! in a `sh -c` script is flagged, even in `echo sudo`), because a false alarm
//! costs a second look and a miss costs an approval given blind.
//!
//! Shell scripts (`sh -c SCRIPT`) are not parsed as a shell would: they are cut at
//! every `;`, `&`, `|`, newline, parenthesis and backquote (also inside quotes), and
//! every word of every piece is looked at. Obfuscation (`s''udo`, `$(printf …)`)
//! defeats this; what the command *does* is the kernel's job, not this module's.

use serde::Serialize;

use crate::event::{shell_quote, Bytes};

/// One dangerous pattern in a command: a stable `code` (for tools and tests) and a
/// `detail` for humans that names the argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Risk {
    pub code: &'static str,
    pub detail: String,
}

/// A flag as the API sends it.
impl From<Risk> for crate::reply::RiskFlag {
    fn from(r: Risk) -> Self {
        Self {
            code: r.code.to_owned(),
            detail: r.detail,
        }
    }
}

/// The codes, in the order flags are listed.
const CODES: &[&str] = &[
    "privilege",
    "rm-rf",
    "shell-c",
    "pipe-to-shell",
    "interpreter-eval",
    "network-tool",
    "sensitive-path",
    "whole-home",
    "broker",
    "unbound-code",
    "writable-script",
];

/// Programs that run a command as another user.
const PRIVILEGE: &[&str] = &["sudo", "su", "doas", "pkexec", "run0"];

/// Programs that get a command run by someone else: outside the caller's process
/// tree, so outside the session mcpwatch follows (DESIGN.md principle 7).
pub const BROKERS: &[&str] = &[
    "systemd-run",
    "at",
    "batch",
    "tmux",
    "screen",
    "dbus-send",
    "busctl",
    "gdbus",
    "crontab",
];

/// Whether `argv` starts a broker: its name, when it does.
pub fn broker_of(argv: &[Bytes]) -> Option<&'static str> {
    broker_named(&argv.first()?.lossy())
}

/// The broker a path (or bare name) names, by its last component.
pub fn broker_named(path: &str) -> Option<&'static str> {
    let name = basename(path);
    BROKERS.iter().copied().find(|b| *b == name)
}

/// Programs that move data over the network or open remote shells.
const NETWORK: &[&str] = &[
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "telnet", "ftp",
];

/// Shells whose `-c` runs a script given on the command line.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish"];

/// Credential stores under a home directory; matched after a `/` (`~/.ssh`,
/// `$HOME/.ssh`, `/home/u/.ssh`, `/root/.ssh`) or at the start of a relative path.
const SECRETS: &[&str] = &[
    ".ssh",
    ".aws",
    ".gnupg",
    ".kube",
    ".config/gcloud",
    ".azure",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".password-store",
];

/// The dangerous patterns in `argv`, in a stable order (by code, then by where
/// they occur), without duplicates. `home` is the home directory of the user the
/// command would run as, to recognise it spelled out (`/home/u`).
pub fn risk_flags(argv: &[Bytes], home: Option<&str>) -> Vec<Risk> {
    let words: Vec<String> = argv.iter().map(|a| a.lossy().into_owned()).collect();
    let mut flags = Flags::default();

    for start in command_starts(&words) {
        let loc = format!("argv[{start}]");
        let name = basename(&words[start]);
        check_command(&mut flags, &loc, &words, start, true);
        if let Some(script) = shell_script(name, &words, start) {
            if let Some(index) = script.index {
                check_script(&mut flags, index, script.text, home);
            }
        }
    }
    for (i, (arg, word)) in argv.iter().zip(&words).enumerate() {
        for target in pipe_targets(word) {
            flags.add(
                "pipe-to-shell",
                format!(
                    "argv[{i}] pipes into `{target}`, which runs whatever it is fed: {}",
                    shell_quote(&arg.0)
                ),
            );
        }
        check_sensitive(
            &mut flags,
            &format!("argv[{i}]"),
            word,
            &shell_quote(&arg.0),
        );
        if i > 0 {
            check_whole_home(&mut flags, &format!("argv[{i}] is"), word, home);
        }
    }
    flags.finish()
}

#[derive(Default)]
struct Flags(Vec<Risk>);

impl Flags {
    fn add(&mut self, code: &'static str, detail: String) {
        debug_assert!(CODES.contains(&code));
        if !self.0.iter().any(|r| r.code == code && r.detail == detail) {
            self.0.push(Risk { code, detail });
        }
    }

    fn finish(mut self) -> Vec<Risk> {
        // Stable: within a code, the order things were found in.
        self.0
            .sort_by_key(|r| CODES.iter().position(|c| *c == r.code));
        self.0
    }
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Indexes of `words` where a program name stands: argv[0], the command behind a
/// wrapper (`env A=1 sudo -u x rm …` → `sudo`, `rm`), and after `find -exec`.
fn command_starts(words: &[String]) -> Vec<usize> {
    let mut starts = Vec::new();
    let unwrap_from = |mut i: usize, starts: &mut Vec<usize>| {
        while i < words.len() {
            starts.push(i);
            match wrapper_skip(basename(&words[i]), &words[i + 1..]) {
                Some(skip) => i += 1 + skip,
                None => break,
            }
        }
    };
    unwrap_from(0, &mut starts);
    for (i, w) in words.iter().enumerate() {
        if matches!(w.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
            unwrap_from(i + 1, &mut starts);
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// When `name` is a program that runs another one (`env`, `sudo`, `nohup`,
/// `busybox`, ...), how many of the following words are its own options and
/// operands before the wrapped command. `None`: not a wrapper, or nothing wrapped.
fn wrapper_skip(name: &str, rest: &[String]) -> Option<usize> {
    let takes_value: &[&str] = match name {
        "env" => &["-u", "--unset", "-C", "--chdir", "-S", "--split-string"],
        "sudo" => &[
            "-u",
            "-g",
            "-h",
            "-p",
            "-C",
            "-D",
            "-r",
            "-t",
            "-U",
            "-T",
            "--user",
            "--group",
            "--host",
            "--prompt",
            "--chdir",
            "--role",
            "--type",
            "--other-user",
        ],
        "doas" => &["-u", "-C"],
        "pkexec" => &["--user"],
        "run0" => &[
            "-u",
            "-g",
            "-D",
            "--user",
            "--group",
            "--chdir",
            "--unit",
            "--property",
            "--description",
            "--slice",
            "--nice",
            "--setenv",
            "--machine",
        ],
        "nice" => &["-n", "--adjustment"],
        "ionice" => &["-c", "-n", "-p", "-P", "-u", "--class", "--classdata"],
        "stdbuf" => &["-i", "-o", "-e", "--input", "--output", "--error"],
        "timeout" => &["-s", "-k", "--signal", "--kill-after"],
        "xargs" => &[
            "-a",
            "-d",
            "-E",
            "-I",
            "-L",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
            "--max-args",
            "--max-procs",
            "--max-chars",
        ],
        "nohup" | "setsid" | "time" | "command" | "exec" | "busybox" => &[],
        _ => return None,
    };
    // `timeout DURATION CMD`: one operand before the command.
    let mut operands = usize::from(name == "timeout");
    let mut j = 0;
    while j < rest.len() {
        let a = rest[j].as_str();
        if a == "--" {
            j += 1;
            break;
        }
        if a.len() > 1 && a.starts_with('-') {
            j += if takes_value.contains(&a) { 2 } else { 1 };
        } else if name == "env" && a.contains('=') {
            j += 1;
        } else if operands > 0 {
            operands -= 1;
            j += 1;
        } else {
            break;
        }
    }
    (j < rest.len()).then_some(j)
}

/// A shell script given on the command line.
struct Script<'a> {
    /// The option that introduced it (`-c`, `-lc`, `--command`).
    flag: &'a str,
    /// Index of the word holding it; `None` when it is missing (`bash -c`).
    index: Option<usize>,
    text: &'a str,
}

/// The `-c` script of a shell (or of `su`) starting at `words[start]`.
fn shell_script<'a>(name: &str, words: &'a [String], start: usize) -> Option<Script<'a>> {
    let rest = words.get(start + 1..)?;
    let at = |i: usize, flag: &'a str| Script {
        flag,
        index: Some(start + 1 + i),
        text: &rest[i],
    };
    if name == "su" {
        // `su [options] [user] -c SCRIPT`, options and user in any order.
        for (i, a) in rest.iter().enumerate() {
            if let Some(inline) = a.strip_prefix("--command=") {
                return Some(Script {
                    flag: "--command",
                    index: Some(start + 1 + i),
                    text: inline,
                });
            }
            if a == "-c" || a == "--command" {
                return Some(rest.get(i + 1).map_or(
                    Script {
                        flag: a,
                        index: None,
                        text: "",
                    },
                    |_| at(i + 1, a),
                ));
            }
        }
        return None;
    }
    if !SHELLS.contains(&name) {
        return None;
    }
    let mut flag: Option<&'a str> = None;
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        if a == "--" || a == "-" {
            i += 1;
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if let Some(inline) = long.strip_prefix("command=") {
                return Some(Script {
                    flag: "--command",
                    index: Some(start + 1 + i),
                    text: inline,
                });
            }
            match long {
                "command" => flag = Some(a),
                "rcfile" | "init-file" => i += 1,
                _ => {}
            }
        } else if a.len() > 1 && (a.starts_with('-') || a.starts_with('+')) {
            if matches!(a, "-o" | "+o" | "-O" | "+O") {
                i += 1;
            } else if a.starts_with('-') && a.contains('c') {
                flag = Some(a);
            }
        } else {
            break;
        }
        i += 1;
    }
    let flag = flag?;
    Some(if i < rest.len() {
        at(i, flag)
    } else {
        Script {
            flag,
            index: None,
            text: "",
        }
    })
}

/// The checks that look at a program name and its own arguments:
/// `words[start]` is the program. `outer`: these are the launch's own argv (the
/// shell script itself is then checked by the caller); otherwise a piece of a
/// shell script, where a nested `sh -c` is flagged but not descended into (its text
/// is already part of the pieces being checked).
fn check_command(flags: &mut Flags, loc: &str, words: &[String], start: usize, outer: bool) {
    let name = basename(&words[start]);
    let args = &words[start + 1..];
    if PRIVILEGE.contains(&name) {
        flags.add(
            "privilege",
            format!("{loc}: `{name}` runs a command with another user's privileges"),
        );
    }
    if BROKERS.contains(&name) {
        flags.add(
            "broker",
            format!("{loc}: `{name}` has another process run a command, outside this session where mcpwatch cannot follow it"),
        );
    }
    if name == "rm" {
        if let Some(shown) = rm_recursive_force(args) {
            flags.add(
                "rm-rf",
                format!("{loc}: `rm {shown}` deletes whole trees without asking"),
            );
        }
    }
    if let Some(script) = shell_script(name, words, start) {
        let detail = if outer {
            format!(
                "{loc}: `{name} {}` runs a shell script given on the command line: {}",
                script.flag,
                shell_quote(script.text.as_bytes())
            )
        } else {
            format!("{loc}: starts another shell with `{name} {}`", script.flag)
        };
        flags.add("shell-c", detail);
    }
    if let Some((flag, code)) = interpreter_eval(name, args) {
        flags.add(
            "interpreter-eval",
            format!(
                "{loc}: `{name} {flag}` runs code given on the command line: {}",
                code.map_or_else(|| "(missing)".to_owned(), |c| shell_quote(c.as_bytes()))
            ),
        );
    }
    if NETWORK.contains(&name) {
        flags.add(
            "network-tool",
            format!("{loc}: `{name}` is a network tool (downloads, uploads, remote shells)"),
        );
    }
}

/// Every word of every piece of a shell script, as a possible program name.
fn check_script(flags: &mut Flags, index: usize, script: &str, home: Option<&str>) {
    let loc = format!("the shell script in argv[{index}]");
    for piece in script.split([';', '&', '|', '\n', '(', ')', '`']) {
        let words: Vec<String> = piece
            .split(|c: char| {
                c.is_whitespace() || matches!(c, '\'' | '"' | '{' | '}' | '<' | '>' | '$' | '\\')
            })
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        for start in 0..words.len() {
            check_command(flags, &loc, &words, start, false);
        }
        for word in piece.split_whitespace() {
            check_whole_home(
                flags,
                &format!("{loc} uses"),
                word.trim_matches(['\'', '"']),
                home,
            );
        }
    }
}

/// `rm` with both a recursive and a force option, in any spelling (`-rf`, `-fr`,
/// `-r -f`, `-Rf`, `--recursive --force`, after operands too: GNU rm permutes).
/// Returns the options as written.
fn rm_recursive_force(args: &[String]) -> Option<String> {
    let (mut recursive, mut force) = (false, false);
    let mut shown = Vec::new();
    for a in args {
        if a == "--" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            match long {
                "recursive" => recursive = true,
                "force" => force = true,
                _ => continue,
            }
            shown.push(a.as_str());
        } else if let Some(short) = a.strip_prefix('-') {
            let r = short.contains(['r', 'R']);
            let f = short.contains('f');
            recursive |= r;
            force |= f;
            if r || f {
                shown.push(a.as_str());
            }
        }
    }
    (recursive && force).then(|| shown.join(" "))
}

fn is_versioned(name: &str, base: &str) -> bool {
    name.strip_prefix(base)
        .is_some_and(|v| v.is_empty() || v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// An interpreter told to run code from its command line: `node -e/--eval/-p`,
/// `python -c`, `perl -e/-E` (also in clusters like `-ne`), `ruby -e`. Returns the
/// option and the code, when present.
fn interpreter_eval<'a>(name: &str, args: &'a [String]) -> Option<(&'a str, Option<&'a str>)> {
    if matches!(name, "node" | "nodejs" | "bun" | "deno") {
        for (i, a) in args.iter().enumerate() {
            if a == "--" || !a.starts_with('-') {
                return None;
            }
            for long in ["--eval=", "--print="] {
                if let Some(code) = a.strip_prefix(long) {
                    return Some((&a[..long.len() - 1], Some(code)));
                }
            }
            if matches!(
                a.as_str(),
                "-e" | "--eval" | "-p" | "--print" | "-pe" | "-ep"
            ) {
                return Some((a, args.get(i + 1).map(String::as_str)));
            }
        }
        return None;
    }
    let (eval_chars, value_chars): (&[char], &[char]) = if is_versioned(name, "python") {
        (&['c'], &['W', 'X', 'm'])
    } else if is_versioned(name, "perl") {
        (
            &['e', 'E'],
            &['I', 'M', 'm', 'x', 'd', 'D', 'C', 'l', '0', 'i'],
        )
    } else if is_versioned(name, "ruby") {
        (
            &['e'],
            &['I', 'r', 'C', 'E', 'x', 'F', 'K', 'T', 'W', '0', 'i', 'l'],
        )
    } else {
        return None;
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" || a == "-" || !a.starts_with('-') {
            return None;
        }
        if !a.starts_with("--") {
            for (pos, c) in a.char_indices().skip(1) {
                if eval_chars.contains(&c) {
                    let inline = &a[pos + c.len_utf8()..];
                    let code = if inline.is_empty() {
                        args.get(i + 1).map(String::as_str)
                    } else {
                        Some(inline)
                    };
                    return Some((a, code));
                }
                if value_chars.contains(&c) {
                    // `python -m mod` runs a module, not inline code.
                    if c == 'm' && is_versioned(name, "python") {
                        return None;
                    }
                    // The option's value is the rest of the word, or the next word.
                    if pos + c.len_utf8() == a.len() {
                        i += 1;
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    None
}

/// Programs that run whatever is piped into them.
fn is_pipe_target(name: &str) -> bool {
    SHELLS.contains(&name)
        || ["python", "perl", "ruby", "php"]
            .iter()
            .any(|base| is_versioned(name, base))
        || matches!(name, "node" | "nodejs" | "bun" | "deno")
}

/// Programs a `|` can be followed by before the real consumer (`| sudo bash`).
fn is_pipe_wrapper(name: &str) -> bool {
    matches!(
        name,
        "sudo" | "doas" | "env" | "exec" | "command" | "nohup" | "time" | "run0"
    )
}

/// What a `|` inside `text` feeds into, when that is a shell or an interpreter:
/// `curl x | sh`, `|bash`, `wget -O- x | sudo -E bash -s`. `||` is not a pipe.
fn pipe_targets(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (i, _) in text.match_indices('|') {
        if bytes.get(i + 1) == Some(&b'|') || (i > 0 && bytes[i - 1] == b'|') {
            continue;
        }
        // `|&` pipes stderr too.
        let rest = text[i + 1..].trim_start_matches('&');
        let words = rest
            .split(|c: char| {
                c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '\'' | '"' | '`')
            })
            .filter(|w| !w.is_empty());
        for word in words {
            let name = basename(word);
            if is_pipe_wrapper(name) || word.starts_with('-') || word.contains('=') {
                continue;
            }
            if is_pipe_target(name) && !out.iter().any(|t| t == name) {
                out.push(name.to_owned());
            }
            break;
        }
    }
    out
}

/// Credential locations anywhere in `text`, and paths under `/etc`.
fn check_sensitive(flags: &mut Flags, loc: &str, text: &str, shown: &str) {
    for secret in SECRETS {
        let boundary = |end: usize| {
            text[end..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        };
        let after_slash = text.match_indices(secret).any(|(at, _)| {
            let preceded = at == 0 || text[..at].ends_with('/');
            preceded && boundary(at + secret.len())
        });
        if after_slash {
            flags.add(
                "sensitive-path",
                format!("{loc} reaches a credentials location (~/{secret}): {shown}"),
            );
        }
    }
    let etc = text
        .split(|c: char| c.is_whitespace() || matches!(c, '=' | ':' | '\'' | '"' | ',' | ';'))
        .any(|piece| piece == "/etc" || piece.starts_with("/etc/"));
    if etc {
        flags.add(
            "sensitive-path",
            format!("{loc} names system configuration under /etc: {shown}"),
        );
    }
}

/// An argument that is a whole home directory, every home, or the whole file
/// system (also as the value of `--opt=VALUE`).
/// `subject` says where, with its verb: `argv[2] is`, `the shell script in argv[2] uses`.
fn check_whole_home(flags: &mut Flags, subject: &str, word: &str, home: Option<&str>) {
    let value = if word.starts_with('-') {
        match word.split_once('=') {
            Some((_, v)) => v,
            None => return,
        }
    } else {
        word
    };
    let trimmed = value.trim_end_matches('/');
    let home = home
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty());
    let what = if matches!(
        trimmed,
        "~" | "$HOME" | "${HOME}" | "~/*" | "$HOME/*" | "${HOME}/*"
    ) || home.is_some_and(|h| trimmed == h || value == format!("{h}/*"))
    {
        "the whole home directory"
    } else if matches!(trimmed, "/home" | "/home/*") {
        "every user's home directory"
    } else if (trimmed.is_empty() && value.starts_with('/')) || value == "/*" {
        "the whole file system"
    } else {
        return;
    };
    flags.add(
        "whole-home",
        format!("{subject} {what}: {}", shell_quote(word.as_bytes())),
    );
}

#[cfg(test)]
mod broker_tests {
    use super::*;

    #[test]
    fn brokers_are_flagged_and_recognised() {
        let argv: Vec<Bytes> = ["/usr/bin/systemd-run", "--user", "sh", "-c", "x"]
            .iter()
            .map(|a| Bytes::from(*a))
            .collect();
        assert_eq!(broker_of(&argv), Some("systemd-run"));
        assert!(risk_flags(&argv, None).iter().any(|r| r.code == "broker"));
        let clean: Vec<Bytes> = ["node", "server.js"]
            .iter()
            .map(|a| Bytes::from(*a))
            .collect();
        assert_eq!(broker_of(&clean), None);
        assert!(!risk_flags(&clean, None).iter().any(|r| r.code == "broker"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_of(argv: &[&str]) -> Vec<Risk> {
        let argv: Vec<Bytes> = argv.iter().map(|a| Bytes::from(*a)).collect();
        risk_flags(&argv, Some("/home/u"))
    }

    fn codes(argv: &[&str]) -> Vec<&'static str> {
        let mut codes: Vec<_> = flags_of(argv).into_iter().map(|r| r.code).collect();
        codes.dedup();
        codes
    }

    fn has(argv: &[&str], code: &str) -> bool {
        flags_of(argv).iter().any(|r| r.code == code)
    }

    #[test]
    fn clean_mcp_server_commands_have_no_flags() {
        for argv in [
            &[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/tmp/project",
            ][..],
            &["uvx", "mcp-server-git", "--repository", "/home/u/src/app"],
            &["node", "/opt/srv/index.js", "--stdio"],
            &["python3", "-m", "mcp_server_time"],
            &[
                "docker",
                "run",
                "-i",
                "--rm",
                "ghcr.io/github/github-mcp-server",
            ],
            &["bash", "/opt/srv/run.sh"],
            &["/home/u/.local/bin/server", "--dir", "/home/u/projects"],
        ] {
            assert_eq!(flags_of(argv), vec![], "{argv:?}");
        }
        assert_eq!(risk_flags(&[], None), vec![]);
    }

    #[test]
    fn privilege_as_program_behind_wrappers_and_in_scripts() {
        assert_eq!(
            flags_of(&["sudo", "node", "x.js"]),
            vec![Risk {
                code: "privilege",
                detail: "argv[0]: `sudo` runs a command with another user's privileges".to_owned()
            }]
        );
        for argv in [
            &["/usr/bin/pkexec", "x"][..],
            &["doas", "x"],
            &["run0", "x"],
            &["su", "-", "root"],
            &["env", "A=1", "sudo", "-u", "root", "x"],
            &["nohup", "timeout", "10", "doas", "x"],
            &["sh", "-c", "echo hi && sudo tee /x"],
            &["bash", "-c", "$(which su) -c id"],
        ] {
            assert!(has(argv, "privilege"), "{argv:?}");
        }
        let flags = flags_of(&["sh", "-c", "x; sudo rm -rf /var/tmp/x"]);
        assert!(flags.contains(&Risk {
            code: "privilege",
            detail:
                "the shell script in argv[2]: `sudo` runs a command with another user's privileges"
                    .to_owned()
        }));
        // An option value is not a program name.
        assert!(!has(&["node", "x.js", "--user", "sudo-test"], "privilege"));
    }

    #[test]
    fn rm_recursive_force_in_any_spelling() {
        for argv in [
            &["rm", "-rf", "/tmp/x"][..],
            &["rm", "-fr", "/tmp/x"],
            &["rm", "-r", "-f", "/tmp/x"],
            &["rm", "-Rf", "/tmp/x"],
            &["rm", "-v", "--recursive", "--force", "/tmp/x"],
            &["rm", "/tmp/x", "-rfv"],
            &["/bin/rm", "-f", "-R", "x"],
            &[
                "find", ".", "-name", "*.tmp", "-exec", "rm", "-rf", "{}", ";",
            ],
            &["sh", "-c", "cd /tmp && rm -rf build"],
            &["bash", "-lc", "true;rm -r -f x"],
        ] {
            assert!(has(argv, "rm-rf"), "{argv:?}");
        }
        assert_eq!(
            flags_of(&["rm", "-r", "-f", "/tmp/x"]),
            vec![Risk {
                code: "rm-rf",
                detail: "argv[0]: `rm -r -f` deletes whole trees without asking".to_owned()
            }]
        );
        for argv in [
            &["rm", "-r", "/tmp/x"][..],
            &["rm", "-f", "/tmp/x"],
            &["rm", "--", "-rf"],
            &["grep", "-rf", "rm"],
            &["sh", "-c", "rm -r x; ls -f"],
        ] {
            assert!(!has(argv, "rm-rf"), "{argv:?}");
        }
    }

    #[test]
    fn shell_c_with_combined_flags_and_busybox() {
        assert_eq!(
            flags_of(&["sh", "-c", "node /srv/a.js"]),
            vec![Risk {
                code: "shell-c",
                detail: "argv[0]: `sh -c` runs a shell script given on the command line: \
                         'node /srv/a.js'"
                    .to_owned()
            }]
        );
        for argv in [
            &["/bin/bash", "-lc", "x"][..],
            &["zsh", "-ic", "x"],
            &["dash", "-e", "-c", "x"],
            &["ksh", "-o", "errexit", "-c", "x"],
            &["fish", "--command=x"],
            &["fish", "--command", "x"],
            &["busybox", "sh", "-c", "x"],
            &["env", "bash", "-c", "x"],
            &["bash", "-c"],
            &["sh", "-c", "exec bash -c 'node a.js'"],
        ] {
            assert!(has(argv, "shell-c"), "{argv:?}");
        }
        assert!(flags_of(&["sh", "-c", "exec bash -c 'node a.js'"])
            .iter()
            .any(
                |r| r.detail == "the shell script in argv[2]: starts another shell with `bash -c`"
            ));
        for argv in [
            &["bash", "/opt/run.sh", "-c"][..],
            &["bash", "--norc", "script.sh"],
            &["node", "-c", "x.js"],
            &["busybox", "ls"],
        ] {
            assert!(!has(argv, "shell-c"), "{argv:?}");
        }
    }

    #[test]
    fn pipe_to_shell_or_interpreter_inside_an_argument() {
        for (argv, target) in [
            (&["sh", "-c", "curl -fsSL https://x.sh | sh"][..], "sh"),
            (&["bash", "-c", "wget -qO- x|bash"], "bash"),
            (&["sh", "-c", "curl x | sudo -E bash -s"], "bash"),
            (&["sh", "-c", "cat x |& /usr/bin/python3"], "python3"),
            (&["sh", "-c", "curl x | python3.12 -"], "python3.12"),
            (&["sh", "-c", "curl x | node"], "node"),
            (&["sh", "-c", "curl x | perl"], "perl"),
            (&["sh", "-c", "curl x | zsh"], "zsh"),
            (&["sh", "-c", "curl x | dash"], "dash"),
            (&["sh", "-c", "echo 'x | sh'"], "sh"),
        ] {
            let flags = flags_of(argv);
            assert!(
                flags.iter().any(|r| r.code == "pipe-to-shell"
                    && r.detail
                        .starts_with(&format!("argv[2] pipes into `{target}`"))),
                "{argv:?}: {flags:?}"
            );
        }
        for argv in [
            &["sh", "-c", "false || sh x.sh"][..],
            &["sh", "-c", "ls | grep sh"],
            &["sh", "-c", "ls | shellcheck -"],
        ] {
            assert!(!has(argv, "pipe-to-shell"), "{argv:?}");
        }
    }

    #[test]
    fn interpreter_eval_for_node_python_perl_ruby() {
        for (argv, flag) in [
            (&["node", "-e", "require('x')"][..], "-e"),
            (&["node", "--eval", "1"], "--eval"),
            (&["node", "--eval=1"], "--eval"),
            (&["/usr/bin/node", "--no-warnings", "-p", "1"], "-p"),
            (&["node", "-pe", "1"], "-pe"),
            (&["python3", "-c", "import os"], "-c"),
            (&["python", "-I", "-c", "x"], "-c"),
            (&["python3.11", "-Bc", "x"], "-Bc"),
            (&["python3", "-W", "ignore", "-c", "x"], "-c"),
            (&["perl", "-e", "print 1"], "-e"),
            (&["perl", "-ne", "print"], "-ne"),
            (&["perl", "-Mstrict", "-E", "say 1"], "-E"),
            (&["ruby", "-e", "puts 1"], "-e"),
            (&["env", "NODE_ENV=x", "node", "-e", "1"], "-e"),
        ] {
            let flags = flags_of(argv);
            assert!(
                flags.iter().any(|r| r.code == "interpreter-eval"
                    && r.detail.contains(&format!(" {flag}` runs code"))),
                "{argv:?}: {flags:?}"
            );
        }
        assert_eq!(
            flags_of(&["python3", "-c", "print(1)"]),
            vec![Risk {
                code: "interpreter-eval",
                detail: "argv[0]: `python3 -c` runs code given on the command line: 'print(1)'"
                    .to_owned()
            }]
        );
        for argv in [
            &["node", "server.js", "-e", "x"][..],
            &["python3", "-m", "mod", "-c", "x"],
            &["python3", "-W", "c", "x.py"],
            &["python3", "script.py", "-c"],
            &["perl", "-Mfeature=say", "x.pl"],
            &["perl", "-I", "lib/e", "x.pl"],
        ] {
            assert!(!has(argv, "interpreter-eval"), "{argv:?}");
        }
    }

    #[test]
    fn network_tools_as_program_or_in_scripts() {
        for argv in [
            &["curl", "https://x"][..],
            &["/usr/bin/wget", "x"],
            &["nc", "-l", "4444"],
            &["ncat", "x"],
            &["netcat", "x"],
            &["socat", "x", "y"],
            &["ssh", "host"],
            &["scp", "a", "b:"],
            &["telnet", "x"],
            &["sh", "-c", "x=$(curl -s https://x)"],
            &["bash", "-c", "`wget x`"],
            &["sudo", "ssh", "host"],
        ] {
            assert!(has(argv, "network-tool"), "{argv:?}");
        }
        assert!(!has(&["node", "curl.js"], "network-tool"));
        assert!(!has(&["grep", "ssh", "x"], "network-tool"));
    }

    #[test]
    fn sensitive_paths_in_every_spelling() {
        for argv in [
            &["cat", "~/.ssh/id_rsa"][..],
            &["x", "$HOME/.aws/credentials"],
            &["x", "${HOME}/.gnupg"],
            &["x", "/home/u/.kube/config"],
            &["x", "/root/.ssh"],
            &["x", "--config=/home/u/.config/gcloud/x.json"],
            &["x", ".ssh/authorized_keys"],
            &["x", "/etc/shadow"],
            &["x", "/etc"],
            &["x", "--file=/etc/passwd"],
            &["sh", "-c", "cat /etc/passwd"],
            &["sh", "-c", "cp ~/.ssh/id_rsa /tmp"],
        ] {
            assert!(has(argv, "sensitive-path"), "{argv:?}");
        }
        assert_eq!(
            flags_of(&["x", "~/.ssh/id_rsa"]),
            vec![Risk {
                code: "sensitive-path",
                detail: "argv[1] reaches a credentials location (~/.ssh): '~/.ssh/id_rsa'"
                    .to_owned()
            }]
        );
        for argv in [
            &["x", "/home/u/.sshd"][..],
            &["x", "/home/u/my.ssh"],
            &["x", "/srv/etc/x"],
            &["x", "/etcetera"],
        ] {
            assert!(!has(argv, "sensitive-path"), "{argv:?}");
        }
    }

    #[test]
    fn whole_home_root_and_all_homes() {
        for argv in [
            &["x", "~"][..],
            &["x", "~/"],
            &["x", "$HOME"],
            &["x", "${HOME}/"],
            &["x", "/home/u"],
            &["x", "/home/u/"],
            &["x", "--root=/home/u"],
            &["x", "/home"],
            &["x", "/"],
            &["x", "/*"],
            &["sh", "-c", "tar cf /tmp/a.tar ~"],
        ] {
            assert!(has(argv, "whole-home"), "{argv:?}");
        }
        assert!(flags_of(&["sh", "-c", "cd ~ && ls"]).contains(&Risk {
            code: "whole-home",
            detail: "the shell script in argv[2] uses the whole home directory: '~'".to_owned()
        }));
        assert_eq!(
            flags_of(&["server", "/"]),
            vec![Risk {
                code: "whole-home",
                detail: "argv[1] is the whole file system: /".to_owned()
            }]
        );
        for argv in [
            &["x", "/home/u/project"][..],
            &["x", "~/project"],
            &["x", "/home/uu"],
            &["/", "x"],
        ] {
            assert!(!has(argv, "whole-home"), "{argv:?}");
        }
        // Without a known home, the spelled-out path is not recognised.
        let argv = [Bytes::from("x"), Bytes::from("/home/u")];
        assert_eq!(risk_flags(&argv, None), vec![]);
    }

    #[test]
    fn flags_are_ordered_by_code_and_deduplicated() {
        let argv = &[
            "sudo",
            "sh",
            "-c",
            "curl https://x | sh; rm -rf ~; curl https://y | sh",
        ];
        assert_eq!(
            codes(argv),
            vec![
                "privilege",
                "rm-rf",
                "shell-c",
                "pipe-to-shell",
                "network-tool",
                "whole-home"
            ]
        );
        let flags = flags_of(argv);
        // `curl` twice and `| sh` twice in one argument: one flag each.
        assert_eq!(flags.iter().filter(|r| r.code == "network-tool").count(), 1);
        assert_eq!(
            flags.iter().filter(|r| r.code == "pipe-to-shell").count(),
            1
        );
        assert_eq!(flags, flags_of(argv), "deterministic");
    }

    #[test]
    fn details_quote_unprintable_arguments_exactly() {
        let argv = [Bytes::from("cat"), Bytes(b"/etc/x\n\xff".to_vec())];
        let flags = risk_flags(&argv, None);
        assert_eq!(flags.len(), 1);
        assert_eq!(
            flags[0].detail,
            "argv[1] names system configuration under /etc: $'/etc/x\\x0a\\xff'"
        );
    }

    #[test]
    fn serialises_as_code_and_detail() {
        let json = serde_json::to_value(&flags_of(&["curl", "x"])[0]).unwrap();
        assert_eq!(json["code"], "network-tool");
        assert!(json["detail"]
            .as_str()
            .unwrap()
            .starts_with("argv[0]: `curl`"));
    }
}
