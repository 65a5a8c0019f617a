//! Command resolution: what the kernel will run for a command, and which of its
//! arguments names the script the program reads after exec. Looks at files (PATH
//! lookup, `#!` lines, canonical paths) and holds no state; used by approval
//! (`consent`, the engine) and by `scan` alike.

use std::{
    fs,
    io::Read as _,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::{event::Bytes, interp::ScriptArg, sys::hash};

/// Resolve a command the way execvp does with `path_var`: a name with a `/` as
/// is, else the first executable regular file in the PATH directories.
pub fn which(cmd: &[u8], path_var: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    if cmd.contains(&b'/') {
        return Some(PathBuf::from(std::ffi::OsStr::from_bytes(cmd)));
    }
    for dir in path_var.split(|&b| b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let mut p = PathBuf::from(std::ffi::OsStr::from_bytes(dir));
        p.push(std::ffi::OsStr::from_bytes(cmd));
        if let Ok(m) = fs::metadata(&p) {
            if m.is_file() && m.mode() & 0o111 != 0 {
                return Some(p);
            }
        }
    }
    None
}

/// The `#!` line of a file: (interpreter, optional single argument).
pub fn shebang(path: &Path) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let mut f = fs::File::open(path).ok()?;
    let mut buf = [0u8; 256];
    let n = f.read(&mut buf).ok()?;
    let head = &buf[..n];
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    let trimmed: Vec<u8> = line.to_vec();
    let s = trimmed
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .map_or(&trimmed[..0], |i| &trimmed[i..]);
    let (interp, rest) = match s.iter().position(|&b| b == b' ' || b == b'\t') {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    if interp.is_empty() {
        return None;
    }
    // The kernel passes the rest of the line, trimmed, as one argument.
    let arg = rest.and_then(|r| {
        let t: &[u8] = r.trim_ascii();
        (!t.is_empty()).then(|| t.to_vec())
    });
    Some((interp.to_vec(), arg))
}

/// Why a command cannot be resolved to what the kernel will run; the Display is the
/// reason shown in approvals and scans.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("empty command")]
    Empty,
    #[error("{name}: not found in PATH")]
    NotInPath { name: String },
    #[error("interpreter {}: {source}", path.display())]
    Interpreter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Canonical {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("env runs `{name}`, which is not in PATH {path_var}")]
    EnvNotInPath { name: String, path_var: String },
    #[error("script {}: {source}", path.display())]
    Script {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("script {}: not a regular file", path.display())]
    ScriptNotRegular { path: PathBuf },
}

/// What the kernel will see when a host runs `argv` (as the host passes it) with
/// `path_var` in `cwd`: (kernel argv, executable, script). For a `#!` file the
/// kernel runs the interpreter with `[interp, (arg), script path, args...]`; an
/// interpreter's script argument (`python3 server.py`) is a script too
/// ([`script_ref`]).
pub fn kernel_command(
    argv: &[Bytes],
    path_var: &[u8],
    cwd: Option<&Path>,
) -> Result<(Vec<Bytes>, PathBuf, Option<ScriptRef>), ResolveError> {
    let first = argv.first().ok_or(ResolveError::Empty)?;
    let path = which(&first.0, path_var).ok_or_else(|| ResolveError::NotInPath {
        name: first.lossy().into_owned(),
    })?;
    let (kargv, exe) = if let Some((interp, arg)) = shebang(&path) {
        use std::os::unix::ffi::OsStrExt as _;
        let mut k = vec![Bytes(interp.clone())];
        if let Some(a) = arg {
            k.push(Bytes(a));
        }
        k.push(Bytes(path.as_os_str().as_bytes().to_vec()));
        k.extend(argv[1..].iter().cloned());
        let interp_path = PathBuf::from(std::ffi::OsStr::from_bytes(&interp));
        let exe = fs::canonicalize(&interp_path).map_err(|source| ResolveError::Interpreter {
            path: interp_path.clone(),
            source,
        })?;
        (k, exe)
    } else {
        let exe = fs::canonicalize(&path).map_err(|source| ResolveError::Canonical {
            path: path.clone(),
            source,
        })?;
        (argv.to_vec(), exe)
    };
    let script = script_ref(&exe, &kargv, cwd)?;
    Ok((kargv, exe, script))
}

/// A script the launched program reads by path after exec: which argument names
/// it (the path as written, what the interpreter opens) and where it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptRef {
    pub arg: usize,
    /// Canonical, resolved in the daemon's view (for hashing and watching).
    pub path: PathBuf,
}

/// Which argument of `kargv` (what the kernel sees running `exe`) is a script.
/// `env` is looked through: `#!/usr/bin/env node` gives `[env, node, script, ..]`.
pub fn script_of(exe: &Path, kargv: &[Bytes]) -> ScriptArg {
    use std::os::unix::ffi::OsStrExt as _;
    if !is_env(exe) {
        return crate::interp::script_arg(exe, kargv);
    }
    let Some(cmd) = env_command(kargv) else {
        return ScriptArg::None;
    };
    if cmd.chdir {
        return ScriptArg::Unbindable(
            "env -C runs it in another directory: its script path cannot be bound".into(),
        );
    }
    if let Some(words) = cmd.split {
        return split_env(kargv, words, cmd.at + 1);
    }
    let prog = PathBuf::from(std::ffi::OsStr::from_bytes(&kargv[cmd.at].0));
    match crate::interp::script_arg(&prog, &kargv[cmd.at..]) {
        ScriptArg::At(j) => ScriptArg::At(cmd.at + j),
        other => other,
    }
}

fn is_env(exe: &Path) -> bool {
    exe.file_name().and_then(|n| n.to_str()) == Some("env")
}

/// What `env [options] [NAME=VALUE…] PROG …` runs, read from its argv.
struct EnvCommand<'a> {
    /// The argument that names PROG (for `-S`, the string env splits).
    at: usize,
    /// `-S STRING` / `--split-string`: the string split into PROG and its first
    /// arguments.
    split: Option<&'a [u8]>,
    /// `-C DIR`: PROG runs in another directory.
    chdir: bool,
}

fn env_command(kargv: &[Bytes]) -> Option<EnvCommand<'_>> {
    let mut chdir = false;
    let mut i = 1;
    while let Some(a) = kargv.get(i) {
        let a = a.0.as_slice();
        let split = if a == b"-S" || a == b"--split-string" {
            kargv.get(i + 1).map(|n| (i + 1, n.0.as_slice()))
        } else if let Some(rest) = a.strip_prefix(b"--split-string=") {
            Some((i, rest))
        } else if a.starts_with(b"-S") && a.len() > 2 {
            // `#!/usr/bin/env -S node --flag`: one argument, split by env.
            Some((i, &a[2..]))
        } else {
            None
        };
        if let Some((at, words)) = split {
            return Some(EnvCommand {
                at,
                split: Some(words),
                chdir,
            });
        }
        match a {
            b"-u" | b"--unset" => i += 2,
            b"-C" | b"--chdir" => {
                chdir = true;
                i += 2;
            }
            _ if a.starts_with(b"-") || a.contains(&b'=') => i += 1,
            _ => {
                return Some(EnvCommand {
                    at: i,
                    split: None,
                    chdir,
                })
            }
        }
    }
    None
}

/// The words `env -S` splits a string into.
fn env_words(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|b| *b == b' ' || *b == b'\t')
        .filter(|w| !w.is_empty())
}

/// `env [options] [NAME=VALUE…] PROG …`: PROG's index in `kargv` and its name
/// (for `env -S "node --flag"`: the first word of that argument). `None` when
/// `exe` is not `env` or no program follows.
pub fn env_prog(exe: &Path, kargv: &[Bytes]) -> Option<(usize, Vec<u8>)> {
    if !is_env(exe) {
        return None;
    }
    let cmd = env_command(kargv)?;
    let name = match cmd.split {
        Some(words) => env_words(words).next()?,
        None => kargv[cmd.at].0.as_slice(),
    };
    Some((cmd.at, name.to_vec()))
}

/// What `env` searches when the launch has no `PATH` (glibc's default).
pub const ENV_DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// The program `env PROG` runs, found through `path_var` as execvp does, in the
/// daemon's view: (PROG's index, canonical path). `Ok(None)` when not an `env`
/// command.
pub fn env_binding(
    exe: &Path,
    kargv: &[Bytes],
    path_var: Option<&[u8]>,
) -> Result<Option<ScriptRef>, ResolveError> {
    let Some((i, name)) = env_prog(exe, kargv) else {
        return Ok(None);
    };
    let path_var = path_var.unwrap_or(ENV_DEFAULT_PATH);
    let found = which(&name, path_var).ok_or_else(|| ResolveError::EnvNotInPath {
        name: String::from_utf8_lossy(&name).into_owned(),
        path_var: String::from_utf8_lossy(path_var).into_owned(),
    })?;
    let path = fs::canonicalize(&found).map_err(|source| ResolveError::Canonical {
        path: found.clone(),
        source,
    })?;
    Ok(Some(ScriptRef { arg: i, path }))
}

/// The program `env PROG` of launch `pid` runs: PROG looked up through the
/// launch's own `PATH` (from its environment, read while it is held), as it sees
/// the files. Returns where, and its SHA-256.
pub fn env_program_of_task(pid: u32, name: &[u8]) -> Result<(String, String), EnvProgramError> {
    let environ = fs::read(format!("/proc/{pid}/environ"))
        .map_err(|source| EnvProgramError::Environ { source })?;
    let path_var = environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"PATH="))
        .unwrap_or(ENV_DEFAULT_PATH)
        .to_vec();
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    if name.contains(&b'/') {
        candidates.push(name.to_vec());
    } else {
        for dir in path_var.split(|&b| b == b':') {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let mut c = dir.to_vec();
            c.push(b'/');
            c.extend_from_slice(name);
            candidates.push(c);
        }
    }
    for c in candidates {
        let Ok(mut found) = crate::taskpath::open_as_task(pid, &c) else {
            continue;
        };
        let exec = found.file.metadata().is_ok_and(|m| m.mode() & 0o111 != 0);
        if !exec {
            continue;
        }
        let sha = hash::sha256_open(&mut found.file).map_err(|source| EnvProgramError::Hash {
            path: String::from_utf8_lossy(&c).into_owned(),
            source,
        })?;
        return Ok((String::from_utf8_lossy(&c).into_owned(), sha));
    }
    Err(EnvProgramError::NotFound {
        name: String::from_utf8_lossy(name).into_owned(),
        path_var: String::from_utf8_lossy(&path_var).into_owned(),
    })
}

/// Why the program `env PROG` of a held launch could not be found or hashed.
#[derive(Debug, thiserror::Error)]
pub enum EnvProgramError {
    #[error("its environment could not be read: {source}")]
    Environ { source: std::io::Error },
    #[error("{path}: {source}")]
    Hash {
        path: String,
        source: std::io::Error,
    },
    #[error("env would find no `{name}` in its PATH {path_var}")]
    NotFound { name: String, path_var: String },
}

/// `env -S STRING rest...`: STRING is split into the program and its options;
/// `rest` starts at `next`.
fn split_env(kargv: &[Bytes], words: &[u8], next: usize) -> ScriptArg {
    use std::os::unix::ffi::OsStrExt as _;
    let mut v: Vec<Bytes> = env_words(words).map(|w| Bytes(w.to_vec())).collect();
    let words = v.len();
    let Some(prog) = v.first() else {
        return ScriptArg::None;
    };
    let prog = PathBuf::from(std::ffi::OsStr::from_bytes(&prog.0));
    v.extend(kargv.get(next..).unwrap_or_default().iter().cloned());
    match crate::interp::script_arg(&prog, &v) {
        ScriptArg::At(j) if j >= words => ScriptArg::At(next + j - words),
        ScriptArg::At(_) => ScriptArg::Unbindable(
            "the script is named inside an `env -S` string: its content cannot be bound".into(),
        ),
        other => other,
    }
}

/// The script of a command, resolved now: `Ok(None)` when there is none or it
/// cannot be bound ([`code_unbound`] says why), an error when it is named but
/// cannot be read. A relative path is resolved in `cwd`.
pub fn script_ref(
    exe: &Path,
    kargv: &[Bytes],
    cwd: Option<&Path>,
) -> Result<Option<ScriptRef>, ResolveError> {
    use std::os::unix::ffi::OsStrExt as _;
    let ScriptArg::At(i) = script_of(exe, kargv) else {
        return Ok(None);
    };
    let written = Path::new(std::ffi::OsStr::from_bytes(&kargv[i].0));
    let full = if written.is_absolute() {
        written.to_path_buf()
    } else if let Some(dir) = cwd {
        dir.join(written)
    } else {
        return Ok(None);
    };
    let path = fs::canonicalize(&full).map_err(|source| ResolveError::Script {
        path: full.clone(),
        source,
    })?;
    if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(ResolveError::ScriptNotRegular { path });
    }
    Ok(Some(ScriptRef { arg: i, path }))
}

/// Why the code a command runs is not bound by its record, if it is not: an
/// interpreter running a module, stdin or a preloaded library, or a relative
/// script with no directory to find it in. Shown before approval.
pub fn code_unbound(exe: &Path, kargv: &[Bytes], cwd: Option<&Path>) -> Option<String> {
    match script_of(exe, kargv) {
        ScriptArg::Unbindable(why) => Some(why),
        ScriptArg::At(i) if cwd.is_none() && !kargv[i].0.starts_with(b"/") => Some(format!(
            "script `{}` is relative and no working directory is known: its content is not bound",
            kargv[i].lossy()
        )),
        _ => None,
    }
}

/// Flags about what a record of this command binds, shown before approval beside
/// the command's own risk flags: code it cannot bind (a module, stdin, a preload,
/// a relative script with no directory), or a script `uid` can change — mcpwatch
/// verifies it while the launch is held, but the interpreter reads it a moment
/// after it resumes, and a change in that moment is not seen.
pub fn binding_risks(
    exe: &Path,
    kargv: &[Bytes],
    cwd: Option<&Path>,
    uid: Option<u32>,
) -> Vec<crate::policy::risk::Risk> {
    use crate::policy::risk::Risk;
    use std::os::unix::ffi::OsStrExt as _;
    if let Some(why) = code_unbound(exe, kargv, cwd) {
        return vec![Risk {
            code: "unbound-code",
            detail: why,
        }];
    }
    let (Ok(Some(s)), Some(uid)) = (script_ref(exe, kargv, cwd), uid) else {
        return Vec::new();
    };
    let Ok(found) =
        crate::taskpath::open_as_task(std::process::id(), s.path.as_os_str().as_bytes())
    else {
        return Vec::new();
    };
    crate::taskpath::writable_by(&found.components, uid)
        .map(|(path, why)| Risk {
            code: "writable-script",
            detail: format!(
                "script {} is changeable by uid {uid} ({}: {why}): mcpwatch checks it before the \
                 launch runs, a change in the moment the interpreter takes to open it is not seen",
                s.path.display(),
                String::from_utf8_lossy(&path)
            ),
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons read as they did when they were strings.
    #[test]
    fn resolve_errors_read_as_before() {
        let argv = |a: &[&str]| a.iter().map(|s| Bytes::from(*s)).collect::<Vec<_>>();
        let e = kernel_command(&[], b"/bin", None).unwrap_err();
        assert_eq!(e.to_string(), "empty command");
        let e = kernel_command(&argv(&["no-such-tool-x"]), b"/nonexistent", None).unwrap_err();
        assert_eq!(e.to_string(), "no-such-tool-x: not found in PATH");
        let e = env_binding(
            Path::new("/usr/bin/env"),
            &argv(&["/usr/bin/env", "no-such-tool-x"]),
            Some(b"/nonexistent"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "env runs `no-such-tool-x`, which is not in PATH /nonexistent"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = script_ref(
            Path::new("/usr/bin/python3"),
            &argv(&["python3", "gone.py"]),
            Some(dir.path()),
        )
        .unwrap_err();
        let io = fs::canonicalize(dir.path().join("gone.py")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("script {}: {io}", dir.path().join("gone.py").display())
        );
    }

    #[test]
    fn shebang_and_kernel_command() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tool");
        fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            shebang(&script),
            Some((b"/bin/sh".to_vec(), Some(b"-e".to_vec())))
        );
        let path_var = dir.path().as_os_str().as_encoded_bytes().to_vec();
        let (k, exe, s) =
            kernel_command(&[Bytes::from("tool"), Bytes::from("a b")], &path_var, None).unwrap();
        let sp = script.display().to_string();
        assert_eq!(
            k,
            vec![
                Bytes::from("/bin/sh"),
                Bytes::from("-e"),
                Bytes::from(sp.as_str()),
                Bytes::from("a b")
            ]
        );
        assert_eq!(exe, fs::canonicalize("/bin/sh").unwrap());
        assert_eq!(
            s,
            Some(ScriptRef {
                arg: 2,
                path: fs::canonicalize(&script).unwrap()
            })
        );
        assert!(kernel_command(&[Bytes::from("no-such-tool-x")], &path_var, None).is_err());
    }
}
