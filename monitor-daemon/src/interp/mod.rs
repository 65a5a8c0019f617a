//! Which argument of a command is a script the interpreter will read.
//!
//! A consent record for `python3 server.py` or `node index.js` must bind the
//! script's content too, not just the interpreter. [`script_arg`] finds that
//! argument by parsing argv the way each interpreter parses its options, well
//! enough to find the first operand, and says when the code run cannot be
//! bound through argv at all (`python3 -m mod`, a shell reading stdin, a
//! preloaded module, remote code).

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::event::Bytes;

mod tables;

use tables::{
    Family, Grammar, Takes, Then, BUN, DENO, FISH, LUA, LUAJIT, NAMES, NODE, PERL, PHP, PYTHON,
    RSCRIPT, RUBY,
};

/// Where the code an interpreter runs comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptArg {
    /// No script file: the code is in argv itself (`python3 -c CODE`,
    /// `node -e CODE`, `sh -c CODE`), or the executable is not an interpreter.
    None,
    /// The index into argv of the script path.
    At(usize),
    /// The code comes from somewhere argv cannot bind; the text says why, in
    /// one sentence for a user.
    Unbindable(String),
}

impl ScriptArg {
    /// `ScriptArg::None` (no code at all here) as reading stdin.
    fn or_stdin(self, name: &str) -> ScriptArg {
        match self {
            ScriptArg::None => ScriptArg::Unbindable(format!(
                "{name} reads its program from standard input: its content is not bound"
            )),
            other => other,
        }
    }
}

/// `python3.12t` -> `python`, `perl5.36.0` -> `perl`, `lua5.4` -> `lua`.
fn strip_version(name: &[u8]) -> &[u8] {
    let mut n = name;
    // ABI tags after a version: python3.12t (free-threaded), 3.12d, 3.7m.
    if let [head @ .., v, b't' | b'd' | b'm'] = n {
        if v.is_ascii_digit() {
            n = &n[..=head.len()];
        }
    }
    while let [head @ .., c] = n {
        if c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'_') {
            n = head;
        } else {
            break;
        }
    }
    n
}

fn basename(p: &[u8]) -> &[u8] {
    p.rsplit(|&c| c == b'/').next().unwrap_or(p)
}

fn family_of(name: &[u8]) -> Option<Family> {
    let n = strip_version(name);
    NAMES
        .iter()
        .find(|(k, _)| k.as_bytes() == n)
        .map(|&(_, f)| f)
}

/// The outcome of scanning argv with a [`Grammar`].
struct Scan<'a> {
    name: &'a str,
    argv: &'a [Bytes],
    code: bool,
    chdir: Option<String>,
    path_search: bool,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Scan<'_> {
    fn stdin(&self) -> ScriptArg {
        ScriptArg::Unbindable(format!(
            "{} reads its program from standard input: its content is not bound",
            self.name
        ))
    }

    /// The first operand, at `i`.
    fn operand(&self, g: &Grammar, i: usize) -> ScriptArg {
        let Some(arg) = self.argv.get(i) else {
            return self.end(g);
        };
        if self.code && !g.script_after_code {
            return ScriptArg::None; // operands are arguments of the code
        }
        if arg.0 == b"-" {
            return self.stdin();
        }
        if let Some(dir) = &self.chdir {
            return ScriptArg::Unbindable(format!(
                "{} changes to directory `{dir}` before it opens the script `{}`: the path in argv is not the file read",
                self.name,
                arg.lossy()
            ));
        }
        if self.path_search {
            return ScriptArg::Unbindable(format!(
                "{} looks the script `{}` up in PATH: the path in argv is not the file read",
                self.name,
                arg.lossy()
            ));
        }
        ScriptArg::At(i)
    }

    fn end(&self, g: &Grammar) -> ScriptArg {
        if self.code || !g.stdin_without_script {
            ScriptArg::None
        } else {
            self.stdin()
        }
    }

    /// Applies option `opt` with its value (and the value's own index in argv,
    /// when it is a separate argument). `Some` ends the scan.
    fn apply(
        &mut self,
        then: Then,
        opt: &str,
        value: Option<(&[u8], Option<usize>)>,
    ) -> Option<ScriptArg> {
        let v = value.map(|(v, _)| lossy(v)).unwrap_or_default();
        match then {
            Then::Go => None,
            Then::Exit | Then::CodeStop => Some(ScriptArg::None),
            Then::CodeKeep => {
                self.code = true;
                None
            }
            Then::Module(how) => Some(ScriptArg::Unbindable(format!(
                "{} {opt} {}: its content is not bound",
                self.name,
                how.replace("{}", &v)
            ))),
            Then::Script => Some(match value {
                Some((_, Some(i))) => ScriptArg::At(i),
                Some((v, None)) => ScriptArg::Unbindable(format!(
                    "{} {opt}{} names the script inside an option: its content is not bound",
                    self.name,
                    lossy(v)
                )),
                None => ScriptArg::None,
            }),
            Then::Chdir => {
                self.chdir = Some(v);
                None
            }
            Then::PathSearch => {
                self.path_search = true;
                None
            }
            Then::Stdin => Some(ScriptArg::Unbindable(format!(
                "{} {opt} reads code from standard input: its content is not bound",
                self.name
            ))),
            Then::Ini => {
                let key = v.split('=').next().unwrap_or_default().trim();
                (key == "auto_prepend_file" || key == "auto_append_file").then(|| {
                    ScriptArg::Unbindable(format!(
                        "{} {opt} {v} runs another file: its content is not bound",
                        self.name
                    ))
                })
            }
            Then::Unbind(what) => Some(ScriptArg::Unbindable(format!(
                "{} {opt} {what}: the code it runs is not bound",
                self.name
            ))),
        }
    }

    /// A short cluster at `argv[*i]` (`-Bu`, `-Wignore`, `-lne`).
    fn cluster(&mut self, g: &Grammar, i: &mut usize) -> Option<ScriptArg> {
        let argv = self.argv;
        let a = &argv[*i].0;
        let mut j = 1;
        while j < a.len() {
            let flag = a[j];
            let opt = format!("-{}", char::from(flag));
            let Some(&(_, takes, then)) = g.shorts.iter().find(|(s, _, _)| *s == flag) else {
                j += 1; // an unknown flag
                if !g.clusters {
                    break;
                }
                continue;
            };
            match takes {
                Takes::No => {
                    if let Some(r) = self.apply(then, &opt, None) {
                        return Some(r);
                    }
                    j += 1;
                }
                Takes::Next => {
                    let value = if j + 1 < a.len() {
                        Some((&a[j + 1..], None))
                    } else {
                        *i += 1;
                        argv.get(*i).map(|v| (v.0.as_slice(), Some(*i)))
                    };
                    return self.apply(then, &opt, value);
                }
                Takes::Attached => return self.apply(then, &opt, Some((&a[j + 1..], None))),
                Takes::Digits => {
                    let rest = &a[j + 1..];
                    let digits = if rest.first() == Some(&b'x') {
                        1 + rest[1..]
                            .iter()
                            .take_while(|c| c.is_ascii_hexdigit())
                            .count()
                    } else {
                        rest.iter()
                            .take_while(|d| (b'0'..=b'7').contains(d))
                            .count()
                    };
                    if let Some(r) = self.apply(then, &opt, Some((&rest[..digits], None))) {
                        return Some(r);
                    }
                    j += 1 + digits;
                }
            }
            if !g.clusters {
                break;
            }
        }
        None
    }

    /// Scans options from `argv[start]` to the first operand.
    fn run(mut self, g: &Grammar, start: usize) -> ScriptArg {
        let argv = self.argv;
        let mut i = start;
        while i < argv.len() {
            let a = &argv[i].0;
            if a == b"--" {
                return self.operand(g, i + 1);
            }
            if a.len() < 2 || a[0] != b'-' {
                return self.operand(g, i);
            }
            let (key, attached) = if a.starts_with(b"--") {
                match a.iter().position(|&c| c == b'=') {
                    Some(p) => (&a[..p], Some(&a[p + 1..])),
                    None => (&a[..], None),
                }
            } else {
                (&a[..], None)
            };
            if let Some(&(name, takes, then)) = g.named.iter().find(|(n, _, _)| n.as_bytes() == key)
            {
                let value = match (attached, takes) {
                    (Some(v), _) => Some((v, None)),
                    (None, Takes::Next) => {
                        i += 1;
                        argv.get(i).map(|v| (v.0.as_slice(), Some(i)))
                    }
                    (None, _) => None,
                };
                if let Some(r) = self.apply(then, name, value) {
                    return r;
                }
            } else if !a.starts_with(b"--") && !g.shorts.is_empty() {
                if let Some(r) = self.cluster(g, &mut i) {
                    return r;
                }
            }
            // Otherwise an unknown option (`--flag`, `--flag=value`): skipped.
            i += 1;
        }
        self.end(g)
    }
}

fn scan(g: &Grammar, name: &str, argv: &[Bytes], start: usize) -> ScriptArg {
    Scan {
        name,
        argv,
        code: false,
        chdir: None,
        path_search: false,
    }
    .run(g, start)
}

/// POSIX shells and bash/zsh/ksh: `-c` (also `-lc`), `-s`, `-o OPT`, `+o OPT`,
/// bash's long options.
fn shell(name: &str, argv: &[Bytes]) -> ScriptArg {
    let mut code = false;
    let mut stdin = false;
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i].0;
        if a == b"--" || a == b"-" {
            i += 1;
            break;
        }
        if a.starts_with(b"--") {
            match a.as_slice() {
                b"--rcfile" | b"--init-file" => i += 1,
                b"--version" | b"--help" => return ScriptArg::None,
                _ => {}
            }
            i += 1;
            continue;
        }
        if a.len() < 2 || !matches!(a[0], b'-' | b'+') {
            break;
        }
        for &c in &a[1..] {
            match c {
                b'c' => code = true,
                b's' => stdin = true,
                b'o' | b'O' => i += 1, // takes the next argument
                _ => {}
            }
        }
        i += 1;
    }
    if code {
        ScriptArg::None
    } else if stdin || i >= argv.len() {
        ScriptArg::Unbindable(format!(
            "{name} reads commands from standard input: their content is not bound"
        ))
    } else {
        ScriptArg::At(i)
    }
}

fn is_remote(spec: &[u8]) -> bool {
    ["http:", "https:", "jsr:", "npm:", "data:"]
        .iter()
        .any(|p| spec.starts_with(p.as_bytes()))
}

fn deno(name: &str, argv: &[Bytes]) -> ScriptArg {
    let start = match argv.get(1).map(|a| a.0.as_slice()) {
        Some(b"run" | b"serve") => 2,
        Some(b"repl") => return ScriptArg::None.or_stdin(name),
        Some(sub @ (b"task" | b"x" | b"test" | b"bench" | b"jupyter")) => {
            return ScriptArg::Unbindable(format!(
                "{name} {} runs code not named in argv: its content is not bound",
                lossy(sub)
            ))
        }
        // `eval` runs code in argv; the others run no code.
        Some(
            b"eval" | b"fmt" | b"lint" | b"check" | b"info" | b"doc" | b"types" | b"cache"
            | b"compile" | b"completions" | b"coverage" | b"init" | b"install" | b"uninstall"
            | b"lsp" | b"publish" | b"add" | b"remove" | b"outdated" | b"upgrade" | b"clean",
        ) => return ScriptArg::None,
        _ => 1,
    };
    match scan(&DENO, name, argv, start) {
        ScriptArg::At(i) if is_remote(&argv[i].0) => ScriptArg::Unbindable(format!(
            "{name} runs remote module `{}`: its content is not bound",
            argv[i].lossy()
        )),
        other => other,
    }
}

const JS_EXTENSIONS: &[&str] = &[".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx"];

fn bun(name: &str, argv: &[Bytes]) -> ScriptArg {
    let start = match argv.get(1).map(|a| a.0.as_slice()) {
        Some(b"run") => 2,
        Some(
            sub @ (b"x" | b"create" | b"c" | b"test" | b"install" | b"i" | b"add" | b"a"
            | b"update"),
        ) => {
            return ScriptArg::Unbindable(format!(
                "{name} {} fetches or runs code by package name: its content is not bound",
                lossy(sub)
            ))
        }
        Some(b"repl") => {
            return ScriptArg::None.or_stdin(name);
        }
        Some(
            b"build" | b"pm" | b"init" | b"link" | b"unlink" | b"remove" | b"rm" | b"outdated"
            | b"publish" | b"upgrade" | b"completions" | b"patch" | b"info" | b"audit" | b"why",
        ) => return ScriptArg::None,
        _ => 1,
    };
    match scan(&BUN, name, argv, start) {
        ScriptArg::At(i) => {
            let s = &argv[i].0;
            let is_file =
                s.contains(&b'/') || JS_EXTENSIONS.iter().any(|e| s.ends_with(e.as_bytes()));
            if is_file {
                ScriptArg::At(i)
            } else {
                ScriptArg::Unbindable(format!(
                    "{name} runs `{}`, which may be a package.json script or a package's binary: its content is not bound",
                    argv[i].lossy()
                ))
            }
        }
        other => other,
    }
}

fn tcl(name: &str, argv: &[Bytes]) -> ScriptArg {
    let i = if argv.get(1).is_some_and(|a| a.0 == b"-encoding") {
        3
    } else {
        1
    };
    match argv.get(i) {
        Some(a) if a.0 == b"-" => ScriptArg::None.or_stdin(name),
        Some(_) => ScriptArg::At(i),
        None => ScriptArg::None.or_stdin(name),
    }
}

/// The argument of `argv` that is a script the interpreter `exe` will read.
///
/// `exe` is the executable the kernel runs (`/usr/bin/python3.11`), `argv`
/// what the kernel passes (`argv[0]` is how it was invoked). The interpreter
/// is recognised by the file name of `exe`, without version suffix, else by
/// `argv[0]`'s basename. For a `#!` script the kernel's argv is
/// `[interpreter, interpreter options..., script path, args...]`, which
/// parses like any other command line.
///
/// The script found may still be a directory or zip archive (Python runs its
/// `__main__.py`); opening it as a regular file will then fail, which the
/// caller should report.
pub fn script_arg(exe: &Path, argv: &[Bytes]) -> ScriptArg {
    let exe_name = basename(exe.as_os_str().as_bytes());
    let argv0 = argv.first().map_or(&b""[..], |a| basename(&a.0));
    let (family, raw) = match family_of(exe_name) {
        Some(f) => (f, exe_name),
        None => match family_of(argv0) {
            Some(f) => (f, argv0),
            None => return ScriptArg::None,
        },
    };
    let name = lossy(raw);
    let name = name.as_str();
    if argv.is_empty() {
        return ScriptArg::None;
    }
    match family {
        Family::Python => scan(&PYTHON, name, argv, 1),
        Family::Node => scan(&NODE, name, argv, 1),
        Family::Deno => deno(name, argv),
        Family::Bun => bun(name, argv),
        Family::Bunx => ScriptArg::Unbindable(format!(
            "{name} fetches and runs a package by name: its content is not bound"
        )),
        Family::Ruby => scan(&RUBY, name, argv, 1),
        Family::Perl => scan(&PERL, name, argv, 1),
        Family::Php => scan(&PHP, name, argv, 1),
        Family::Lua => scan(&LUA, name, argv, 1),
        Family::LuaJit => scan(&LUAJIT, name, argv, 1),
        Family::Shell => shell(name, argv),
        Family::Fish => scan(&FISH, name, argv, 1),
        Family::Rscript => scan(&RSCRIPT, name, argv, 1),
        Family::Tcl => tcl(name, argv),
    }
}

/// One line for CLI output: `script server.py (argument 1)`.
pub fn display(arg: &ScriptArg, argv: &[Bytes]) -> String {
    match arg {
        ScriptArg::None => "no script file".to_string(),
        ScriptArg::At(i) => match argv.get(*i) {
            Some(a) => format!("script {} (argument {i})", a.lossy()),
            None => format!("script (argument {i}, missing)"),
        },
        ScriptArg::Unbindable(why) => format!("script not bindable: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<Bytes> {
        a.iter().map(|s| Bytes::from(*s)).collect()
    }

    /// `script_arg` with the exe named by argv[0].
    fn sa(a: &[&str]) -> ScriptArg {
        let exe = format!("/usr/bin/{}", a[0].rsplit('/').next().unwrap());
        script_arg(Path::new(&exe), &argv(a))
    }

    fn unbindable(r: &ScriptArg, needle: &str) {
        match r {
            ScriptArg::Unbindable(why) => assert!(why.contains(needle), "{why:?} lacks {needle:?}"),
            other => panic!("expected Unbindable({needle:?}), got {other:?}"),
        }
    }

    #[test]
    fn names_and_versions() {
        for (n, f) in [
            ("python3", Family::Python),
            ("python3.11", Family::Python),
            ("python3.12t", Family::Python),
            ("python3.7m", Family::Python),
            ("python", Family::Python),
            ("pypy3", Family::Python),
            ("pypy3.10", Family::Python),
            ("node", Family::Node),
            ("nodejs", Family::Node),
            ("deno", Family::Deno),
            ("bun", Family::Bun),
            ("ruby3.1", Family::Ruby),
            ("perl5.36.0", Family::Perl),
            ("php8.2", Family::Php),
            ("lua5.4", Family::Lua),
            ("luajit", Family::LuaJit),
            ("luajit-2.1", Family::LuaJit),
            ("ksh93", Family::Shell),
            ("bash", Family::Shell),
            ("sh", Family::Shell),
            ("Rscript", Family::Rscript),
            ("tclsh8.6", Family::Tcl),
        ] {
            assert_eq!(family_of(n.as_bytes()), Some(f), "{n}");
        }
        for n in ["ls", "python-config", "rscript", "nodes", "", "3.11"] {
            assert_eq!(family_of(n.as_bytes()), None, "{n}");
        }
    }

    #[test]
    fn not_an_interpreter() {
        assert_eq!(sa(&["ls", "-l", "x"]), ScriptArg::None);
        assert_eq!(sa(&["/usr/bin/uvx", "mcp-server-time"]), ScriptArg::None);
        assert_eq!(
            script_arg(Path::new("/usr/bin/python3"), &[]),
            ScriptArg::None
        );
    }

    #[test]
    fn python_script() {
        assert_eq!(sa(&["python3", "server.py"]), ScriptArg::At(1));
        assert_eq!(sa(&["python3", "server.py", "-c", "x"]), ScriptArg::At(1));
        assert_eq!(
            sa(&["python3", "-u", "-B", "server.py", "--port", "1"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["python3", "-Bu", "server.py"]), ScriptArg::At(2));
        assert_eq!(sa(&["python3", "-OO", "server.py"]), ScriptArg::At(2));
    }

    #[test]
    fn python_options_with_values() {
        assert_eq!(sa(&["python3", "-W", "ignore", "s.py"]), ScriptArg::At(3));
        assert_eq!(sa(&["python3", "-Wignore", "s.py"]), ScriptArg::At(2));
        assert_eq!(sa(&["python3", "-X", "utf8", "s.py"]), ScriptArg::At(3));
        assert_eq!(sa(&["python3", "-uX", "dev", "s.py"]), ScriptArg::At(3));
        assert_eq!(
            sa(&["python3", "--check-hash-based-pycs", "never", "s.py"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["python2", "-Q", "new", "s.py"]), ScriptArg::At(3));
    }

    #[test]
    fn python_code_module_stdin() {
        assert_eq!(sa(&["python3", "-c", "print(1)", "s.py"]), ScriptArg::None);
        assert_eq!(sa(&["python3", "-cprint(1)"]), ScriptArg::None);
        assert_eq!(sa(&["python3", "-Ic", "import x"]), ScriptArg::None);
        unbindable(
            &sa(&["python3", "-m", "mcp_server_time"]),
            "python3 -m runs module `mcp_server_time` found on sys.path",
        );
        unbindable(
            &sa(&["python3", "-mmcp_server_time", "--x"]),
            "`mcp_server_time`",
        );
        unbindable(&sa(&["python3", "-u", "-m", "http.server"]), "http.server");
        unbindable(&sa(&["python3", "-"]), "standard input");
        unbindable(&sa(&["python3"]), "standard input");
        unbindable(&sa(&["python3", "-u"]), "standard input");
        assert_eq!(sa(&["python3", "--version"]), ScriptArg::None);
        assert_eq!(sa(&["python3", "-V"]), ScriptArg::None);
    }

    #[test]
    fn python_double_dash() {
        assert_eq!(sa(&["python3", "--", "-weird.py"]), ScriptArg::At(2));
        assert_eq!(sa(&["python3", "-u", "--", "s.py"]), ScriptArg::At(3));
        unbindable(&sa(&["python3", "--"]), "standard input");
    }

    #[test]
    fn python_exe_differs_from_argv0() {
        let a = argv(&["python", "server.py"]);
        assert_eq!(
            script_arg(Path::new("/usr/bin/python3.12"), &a),
            ScriptArg::At(1)
        );
        // exec -a: argv[0] says anything, the exe decides.
        let a = argv(&["my-server", "-m", "srv"]);
        unbindable(
            &script_arg(Path::new("/usr/bin/python3.12"), &a),
            "python3.12 -m",
        );
        // Unknown exe (busybox, a venv wrapper): argv[0] decides.
        let a = argv(&["/venv/bin/python", "s.py"]);
        assert_eq!(
            script_arg(Path::new("/opt/weird/bin/interp"), &a),
            ScriptArg::At(1)
        );
        // The exe is not an interpreter, argv[0] is not either.
        let a = argv(&["server", "s.py"]);
        assert_eq!(script_arg(Path::new("/opt/server"), &a), ScriptArg::None);
    }

    #[test]
    fn non_utf8_argv() {
        let a = vec![
            Bytes::from("python3"),
            Bytes(b"-W\xff".to_vec()),
            Bytes(b"caf\xe9.py".to_vec()),
        ];
        assert_eq!(
            script_arg(Path::new("/usr/bin/python3"), &a),
            ScriptArg::At(2)
        );
        assert_eq!(
            display(&ScriptArg::At(2), &a),
            "script caf\u{fffd}.py (argument 2)"
        );
        let a = vec![
            Bytes::from("python3"),
            Bytes::from("-m"),
            Bytes(b"m\xff".to_vec()),
        ];
        unbindable(&script_arg(Path::new("/usr/bin/python3"), &a), "m\u{fffd}");
        let a = vec![Bytes(b"/usr/bin/\xffsh".to_vec()), Bytes::from("x")];
        assert_eq!(script_arg(Path::new("/usr/bin/dash"), &a), ScriptArg::At(1));
    }

    #[test]
    fn shebang_argv() {
        // #!/usr/bin/python3 -u
        let a = argv(&["/usr/bin/python3", "-u", "/path/to/script", "arg"]);
        assert_eq!(
            script_arg(Path::new("/usr/bin/python3"), &a),
            ScriptArg::At(2)
        );
        // #!/bin/sh
        let a = argv(&["/bin/sh", "/path/script"]);
        assert_eq!(script_arg(Path::new("/usr/bin/dash"), &a), ScriptArg::At(1));
        // #!/usr/bin/env node: env execs node with the script.
        let a = argv(&["node", "/path/index.js", "--stdio"]);
        assert_eq!(script_arg(Path::new("/usr/bin/node"), &a), ScriptArg::At(1));
        // #!/usr/bin/perl -w
        let a = argv(&["/usr/bin/perl", "-w", "/path/s.pl"]);
        assert_eq!(script_arg(Path::new("/usr/bin/perl"), &a), ScriptArg::At(2));
    }

    #[test]
    fn node() {
        assert_eq!(sa(&["node", "index.js"]), ScriptArg::At(1));
        assert_eq!(sa(&["nodejs", "index.js"]), ScriptArg::At(1));
        assert_eq!(
            sa(&[
                "node",
                "--enable-source-maps",
                "--max-old-space-size=4096",
                "dist/index.js",
                "-e"
            ]),
            ScriptArg::At(3)
        );
        assert_eq!(
            sa(&["node", "--inspect-port", "9230", "i.js"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["node", "--title=x", "i.js"]), ScriptArg::At(2));
        assert_eq!(sa(&["node", "--", "i.js"]), ScriptArg::At(2));
        assert_eq!(sa(&["node", "-e", "console.log(1)"]), ScriptArg::None);
        assert_eq!(sa(&["node", "--eval", "x", "i.js"]), ScriptArg::None);
        assert_eq!(sa(&["node", "--eval=x"]), ScriptArg::None);
        assert_eq!(sa(&["node", "-p", "1+1"]), ScriptArg::None);
        assert_eq!(sa(&["node", "--print", "1+1"]), ScriptArg::None);
        assert_eq!(sa(&["node", "-v"]), ScriptArg::None);
    }

    #[test]
    fn node_preloads_and_stdin() {
        unbindable(
            &sa(&["node", "-r", "ts-node/register", "i.ts"]),
            "node -r preloads module `ts-node/register`",
        );
        unbindable(
            &sa(&["node", "--require", "dotenv/config", "i.js"]),
            "dotenv/config",
        );
        unbindable(
            &sa(&["node", "--require=dotenv/config", "i.js"]),
            "dotenv/config",
        );
        unbindable(&sa(&["node", "--import", "tsx", "i.ts"]), "`tsx`");
        unbindable(
            &sa(&["node", "--loader", "ts-node/esm", "i.ts"]),
            "ts-node/esm",
        );
        unbindable(&sa(&["node", "--experimental-loader=x", "i.js"]), "`x`");
        unbindable(&sa(&["node", "-e", "1", "-r", "m"]), "`m`");
        unbindable(&sa(&["node"]), "standard input");
        unbindable(&sa(&["node", "--no-warnings"]), "standard input");
        unbindable(&sa(&["node", "-"]), "standard input");
        unbindable(&sa(&["node", "-i"]), "standard input");
        unbindable(&sa(&["node", "--run", "dev"]), "package.json script");
    }

    #[test]
    fn deno() {
        assert_eq!(sa(&["deno", "run", "-A", "main.ts"]), ScriptArg::At(3));
        assert_eq!(
            sa(&[
                "deno",
                "run",
                "--allow-net",
                "--allow-read=/tmp",
                "main.ts",
                "x"
            ]),
            ScriptArg::At(4)
        );
        assert_eq!(
            sa(&["deno", "run", "--config", "deno.json", "main.ts"]),
            ScriptArg::At(4)
        );
        assert_eq!(
            sa(&[
                "deno",
                "run",
                "-c",
                "deno.json",
                "--import-map",
                "im.json",
                "--lock",
                "l",
                "main.ts"
            ]),
            ScriptArg::At(8)
        );
        assert_eq!(
            sa(&[
                "deno",
                "run",
                "--cert",
                "c.pem",
                "--location",
                "https://x",
                "--seed",
                "1",
                "m.ts"
            ]),
            ScriptArg::At(8)
        );
        assert_eq!(
            sa(&["deno", "run", "--v8-flags=--max-old-space-size=1", "m.ts"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["deno", "main.ts"]), ScriptArg::At(1));
        assert_eq!(sa(&["deno", "-A", "main.ts"]), ScriptArg::At(2));
        assert_eq!(sa(&["deno", "serve", "s.ts"]), ScriptArg::At(2));
        assert_eq!(sa(&["deno", "eval", "console.log(1)"]), ScriptArg::None);
        assert_eq!(sa(&["deno", "fmt"]), ScriptArg::None);
        unbindable(
            &sa(&["deno", "run", "-A", "https://deno.land/x/s.ts"]),
            "remote module `https://deno.land/x/s.ts`",
        );
        unbindable(
            &sa(&["deno", "run", "-A", "jsr:@std/http/file-server"]),
            "remote",
        );
        unbindable(&sa(&["deno", "run", "npm:cowsay"]), "remote");
        unbindable(&sa(&["deno", "task", "start"]), "deno task");
        unbindable(&sa(&["deno"]), "standard input");
        unbindable(&sa(&["deno", "repl"]), "standard input");
    }

    #[test]
    fn node_env_file_can_set_node_options() {
        let v: Vec<Bytes> = ["node", "--env-file", ".env", "s.js"]
            .iter()
            .map(|a| Bytes::from(*a))
            .collect();
        let r = script_arg(Path::new("/usr/bin/node"), &v);
        assert!(
            matches!(&r, ScriptArg::Unbindable(w) if w.contains("NODE_OPTIONS")),
            "{r:?}"
        );
        let v: Vec<Bytes> = ["node", "--env-file=.env", "s.js"]
            .iter()
            .map(|a| Bytes::from(*a))
            .collect();
        assert!(matches!(
            script_arg(Path::new("/usr/bin/node"), &v),
            ScriptArg::Unbindable(_)
        ));
    }

    #[test]
    fn bun() {
        assert_eq!(sa(&["bun", "run", "index.ts"]), ScriptArg::At(2));
        assert_eq!(sa(&["bun", "index.ts"]), ScriptArg::At(1));
        assert_eq!(sa(&["bun", "--watch", "./server"]), ScriptArg::At(2));
        assert_eq!(sa(&["bun", "run", "--smol", "s.js"]), ScriptArg::At(3));
        unbindable(
            &sa(&["bun", "run", "--env-file", ".env", "s.js"]),
            "from a file",
        );
        assert_eq!(sa(&["bun", "-e", "console.log(1)"]), ScriptArg::None);
        assert_eq!(sa(&["bun", "--print", "1"]), ScriptArg::None);
        assert_eq!(sa(&["bun", "build", "x.ts"]), ScriptArg::None);
        assert_eq!(sa(&["bun"]), ScriptArg::None);
        unbindable(&sa(&["bun", "x", "mcp-server"]), "package name");
        unbindable(&sa(&["bunx", "mcp-server"]), "package by name");
        unbindable(&sa(&["bun", "run", "dev"]), "package.json script");
        unbindable(&sa(&["bun", "--preload", "./p.ts", "s.ts"]), "`./p.ts`");
        unbindable(
            &sa(&["bun", "--cwd", "/srv", "s.ts"]),
            "changes to directory `/srv`",
        );
    }

    #[test]
    fn ruby() {
        assert_eq!(sa(&["ruby", "s.rb"]), ScriptArg::At(1));
        assert_eq!(sa(&["ruby3.1", "-w", "s.rb"]), ScriptArg::At(2));
        assert_eq!(sa(&["ruby", "-I", "lib", "s.rb"]), ScriptArg::At(3));
        assert_eq!(sa(&["ruby", "-Ilib", "-W0", "s.rb"]), ScriptArg::At(3));
        assert_eq!(
            sa(&["ruby", "--disable=gems", "--jit", "s.rb"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["ruby", "-e", "puts 1"]), ScriptArg::None);
        assert_eq!(sa(&["ruby", "-we", "puts 1", "arg"]), ScriptArg::None);
        assert_eq!(sa(&["ruby", "-eputs", "x.rb"]), ScriptArg::None);
        unbindable(
            &sa(&["ruby", "-r", "json", "s.rb"]),
            "ruby -r requires library `json`",
        );
        unbindable(&sa(&["ruby", "-rjson", "-e", "1"]), "`json`");
        unbindable(
            &sa(&["ruby", "-C", "/srv", "s.rb"]),
            "changes to directory `/srv`",
        );
        unbindable(&sa(&["ruby", "-C/srv", "s.rb"]), "`/srv`");
        assert_eq!(sa(&["ruby", "-C", "/srv", "-e", "1"]), ScriptArg::None);
        unbindable(&sa(&["ruby", "-S", "rake"]), "PATH");
        unbindable(&sa(&["ruby"]), "standard input");
        unbindable(&sa(&["ruby", "-"]), "standard input");
        assert_eq!(sa(&["ruby", "--", "s.rb"]), ScriptArg::At(2));
    }

    #[test]
    fn perl() {
        assert_eq!(sa(&["perl", "s.pl"]), ScriptArg::At(1));
        assert_eq!(sa(&["perl5.36.0", "-w", "s.pl"]), ScriptArg::At(2));
        assert_eq!(sa(&["perl", "-Ilib", "s.pl"]), ScriptArg::At(2));
        assert_eq!(sa(&["perl", "-I", "lib", "s.pl"]), ScriptArg::At(3));
        assert_eq!(sa(&["perl", "-0777", "-n", "s.pl"]), ScriptArg::At(3));
        assert_eq!(sa(&["perl", "-i.bak", "s.pl", "f"]), ScriptArg::At(2));
        assert_eq!(sa(&["perl", "-e", "print 1"]), ScriptArg::None);
        assert_eq!(sa(&["perl", "-E", "say 1", "x"]), ScriptArg::None);
        assert_eq!(sa(&["perl", "-lne", "print", "file"]), ScriptArg::None);
        assert_eq!(sa(&["perl", "-l012ne", "print", "file"]), ScriptArg::None);
        unbindable(
            &sa(&["perl", "-MJSON::PP", "-e", "1"]),
            "perl -M loads module `JSON::PP`",
        );
        unbindable(&sa(&["perl", "-mstrict", "s.pl"]), "`strict`");
        unbindable(&sa(&["perl", "-e", "1", "-MFoo"]), "`Foo`");
        unbindable(&sa(&["perl", "-d:NYTProf", "s.pl"]), "debugger");
        unbindable(&sa(&["perl", "-S", "s.pl"]), "PATH");
        unbindable(&sa(&["perl"]), "standard input");
        assert_eq!(sa(&["perl", "-v"]), ScriptArg::None);
    }

    #[test]
    fn php() {
        assert_eq!(sa(&["php", "s.php"]), ScriptArg::At(1));
        assert_eq!(sa(&["php8.2", "-n", "s.php"]), ScriptArg::At(2));
        assert_eq!(
            sa(&["php", "-d", "memory_limit=1G", "s.php"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["php", "-dmemory_limit=1G", "s.php"]), ScriptArg::At(2));
        assert_eq!(sa(&["php", "-c", "php.ini", "s.php"]), ScriptArg::At(3));
        assert_eq!(sa(&["php", "-f", "s.php", "--", "x"]), ScriptArg::At(2));
        assert_eq!(sa(&["php", "-n", "-f", "s.php"]), ScriptArg::At(3));
        assert_eq!(sa(&["php", "-r", "echo 1;"]), ScriptArg::None);
        unbindable(
            &sa(&["php", "-d", "auto_prepend_file=/tmp/x.php", "s.php"]),
            "runs another file",
        );
        unbindable(&sa(&["php", "-S", "localhost:8000"]), "built-in web server");
        unbindable(&sa(&["php", "-a"]), "standard input");
        unbindable(&sa(&["php"]), "standard input");
        unbindable(&sa(&["php", "-fs.php"]), "inside an option");
    }

    #[test]
    fn lua() {
        assert_eq!(sa(&["lua5.4", "s.lua"]), ScriptArg::At(1));
        assert_eq!(sa(&["lua", "-e", "x=1"]), ScriptArg::None);
        assert_eq!(sa(&["lua", "-e", "x=1", "s.lua", "a"]), ScriptArg::At(3));
        assert_eq!(sa(&["lua", "-ex=1", "s.lua"]), ScriptArg::At(2));
        assert_eq!(sa(&["lua", "-W", "-E", "s.lua"]), ScriptArg::At(3));
        unbindable(
            &sa(&["lua", "-l", "socket", "s.lua"]),
            "lua -l loads library `socket`",
        );
        unbindable(&sa(&["lua", "-lsocket", "s.lua"]), "`socket`");
        unbindable(&sa(&["lua"]), "standard input");
        unbindable(&sa(&["lua", "-"]), "standard input");
        unbindable(&sa(&["lua", "-i"]), "standard input");
        assert_eq!(
            sa(&["luajit", "-O3", "-j", "off", "s.lua"]),
            ScriptArg::At(4)
        );
        assert_eq!(sa(&["luajit", "-e", "print(1)"]), ScriptArg::None);
        unbindable(&sa(&["luajit", "-lffi", "s.lua"]), "`ffi`");
    }

    #[test]
    fn shells_script_and_code() {
        assert_eq!(sa(&["sh", "/path/script"]), ScriptArg::At(1));
        assert_eq!(sa(&["bash", "-e", "run.sh", "a"]), ScriptArg::At(2));
        assert_eq!(sa(&["bash", "-x", "-u", "run.sh"]), ScriptArg::At(3));
        assert_eq!(sa(&["dash", "--", "run.sh"]), ScriptArg::At(2));
        assert_eq!(sa(&["sh", "-", "run.sh"]), ScriptArg::At(2));
        assert_eq!(sa(&["sh", "-c", "echo hi"]), ScriptArg::None);
        assert_eq!(sa(&["bash", "-lc", "exec npx x"]), ScriptArg::None);
        assert_eq!(sa(&["bash", "-ec", "x"]), ScriptArg::None);
        assert_eq!(sa(&["zsh", "-xc", "x"]), ScriptArg::None);
        assert_eq!(sa(&["ksh", "-c", "x", "arg0"]), ScriptArg::None);
        assert_eq!(sa(&["mksh", "-e", "-c", "x"]), ScriptArg::None);
        assert_eq!(sa(&["bash", "-c", "-e", "x"]), ScriptArg::None);
    }

    #[test]
    fn shells_options_and_stdin() {
        assert_eq!(sa(&["bash", "-o", "pipefail", "run.sh"]), ScriptArg::At(3));
        assert_eq!(sa(&["bash", "+o", "history", "run.sh"]), ScriptArg::At(3));
        assert_eq!(sa(&["bash", "-eo", "pipefail", "run.sh"]), ScriptArg::At(3));
        assert_eq!(sa(&["bash", "-O", "extglob", "run.sh"]), ScriptArg::At(3));
        assert_eq!(
            sa(&["bash", "--norc", "--noprofile", "--login", "run.sh"]),
            ScriptArg::At(4)
        );
        assert_eq!(sa(&["bash", "--rcfile", "rc", "run.sh"]), ScriptArg::At(3));
        assert_eq!(
            sa(&["bash", "--init-file", "rc", "run.sh"]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["bash", "+x", "run.sh"]), ScriptArg::At(2));
        unbindable(&sa(&["sh"]), "sh reads commands from standard input");
        unbindable(&sa(&["bash", "-s", "arg"]), "standard input");
        unbindable(&sa(&["bash", "-es"]), "standard input");
        unbindable(&sa(&["bash", "-i"]), "standard input");
        unbindable(&sa(&["bash", "-o", "pipefail"]), "standard input");
        assert_eq!(sa(&["bash", "--version"]), ScriptArg::None);
    }

    #[test]
    fn fish() {
        assert_eq!(sa(&["fish", "s.fish"]), ScriptArg::At(1));
        assert_eq!(
            sa(&["fish", "--no-config", "-d", "3", "s.fish"]),
            ScriptArg::At(4)
        );
        assert_eq!(sa(&["fish", "-C", "set x 1", "s.fish"]), ScriptArg::At(3));
        assert_eq!(sa(&["fish", "-c", "echo hi"]), ScriptArg::None);
        assert_eq!(sa(&["fish", "--command=echo hi"]), ScriptArg::None);
        assert_eq!(sa(&["fish", "-lc", "echo hi"]), ScriptArg::None);
        unbindable(&sa(&["fish"]), "standard input");
    }

    #[test]
    fn rscript_and_tcl() {
        assert_eq!(sa(&["Rscript", "s.R"]), ScriptArg::At(1));
        assert_eq!(
            sa(&[
                "Rscript",
                "--vanilla",
                "--default-packages=stats",
                "s.R",
                "a"
            ]),
            ScriptArg::At(3)
        );
        assert_eq!(sa(&["Rscript", "-e", "print(1)"]), ScriptArg::None);
        assert_eq!(sa(&["Rscript"]), ScriptArg::None);
        assert_eq!(sa(&["tclsh", "s.tcl", "a"]), ScriptArg::At(1));
        assert_eq!(
            sa(&["tclsh8.6", "-encoding", "utf-8", "s.tcl"]),
            ScriptArg::At(3)
        );
        unbindable(&sa(&["tclsh"]), "standard input");
    }

    #[test]
    fn display_lines() {
        let a = argv(&["python3", "server.py"]);
        assert_eq!(
            display(&ScriptArg::At(1), &a),
            "script server.py (argument 1)"
        );
        assert_eq!(
            display(&ScriptArg::At(5), &a),
            "script (argument 5, missing)"
        );
        assert_eq!(display(&ScriptArg::None, &a), "no script file");
        let r = sa(&["python3", "-m", "mcp_server_time"]);
        assert_eq!(
            display(&r, &a),
            "script not bindable: python3 -m runs module `mcp_server_time` found on sys.path: its content is not bound"
        );
    }
}
