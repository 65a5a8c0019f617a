//! Small helpers shared by the subcommands: paths, running commands, printing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};

/// Prints a progress line of xtask itself (stderr, so stdout stays for results).
macro_rules! say {
    ($($arg:tt)*) => { eprintln!("xtask: {}", format_args!($($arg)*)) };
}
pub(crate) use say;

/// The workspace root (the parent of this crate's directory).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn euid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::geteuid() }
}

/// `$CARGO_HOME`, or `~/.cargo` (where `cargo install` puts binaries under `bin/`).
pub fn cargo_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cargo")
}

/// Puts `$CARGO_HOME/bin` first on PATH for this process and every child, so a
/// `bpf-linker` that `setup` just installed is found by aya-build even when CI starts
/// with an empty `CARGO_HOME` whose `bin/` is not on PATH.
pub fn prepend_cargo_bin_to_path() -> Result<()> {
    let bin = cargo_home().join("bin");
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&old).filter(|d| *d != bin));
    let new = std::env::join_paths(dirs).context("PATH contains an unusable entry")?;
    // Called first thing in main, before any thread exists.
    std::env::set_var("PATH", new);
    Ok(())
}

/// Looks a program up on PATH like a shell would.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A shell-like rendering of a command line, for printing.
pub fn show(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            parts.push(format!("{}={}", k.to_string_lossy(), quote(v)));
        }
    }
    parts.push(quote(cmd.get_program()));
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs a command with inherited stdio, printing it first; returns its status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    say!("+ {}", show(cmd));
    cmd.status()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))
}

/// Runs a command with inherited stdio, printing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let st = status(cmd)?;
    if !st.success() {
        bail!("`{}` failed ({st})", show(cmd));
    }
    Ok(())
}

/// Runs a command quietly and returns its stdout; fails (with its stderr) unless it
/// exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo` (the rustup proxy on PATH) run from the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(repo_root());
    c
}

/// `cargo metadata --no-deps` of the workspace, parsed.
pub fn metadata() -> Result<serde_json::Value> {
    let text = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    serde_json::from_str(&text).context("cannot parse `cargo metadata` output")
}

/// The cargo target directory (honours `CARGO_TARGET_DIR` and config).
pub fn target_dir() -> Result<PathBuf> {
    let meta = metadata()?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` has no target_directory")
}

/// `cargo build` of the daemon and CLI (`monitor-daemon`) and the test-package
/// binaries (`storm`).
pub fn build_bins(release: bool) -> Result<()> {
    let mut c = cargo();
    c.args([
        "build",
        "-p",
        "monitor-daemon",
        "-p",
        "mcpwatch-tests",
        "--bins",
    ]);
    if release {
        c.arg("--release");
    }
    run(&mut c)
}

/// `<target>/<debug|release>`, where the built binaries are.
pub fn bin_dir(release: bool) -> Result<PathBuf> {
    Ok(target_dir()?.join(if release { "release" } else { "debug" }))
}
