//! `cargo xtask setup`, the MCP peer steps: real MCP clients, servers and one real
//! host, from the registries, for the root integration tests (`tests/tests/peers.rs`).
//!
//! - **npm peers**: `@modelcontextprotocol/sdk` (the TypeScript client) and
//!   `@modelcontextprotocol/server-filesystem`, exactly as `tests/peers/package-lock.json`
//!   pins them, installed with `npm ci` into `<peers>/node_modules`. `<peers>` is
//!   `$MCPWATCH_PEERS_DIR`, by default `/opt/mcpwatch-peers`. Run with `<peers>` as its
//!   working directory, `npx -y @modelcontextprotocol/server-filesystem DIR` finds the
//!   package there and never asks the registry (it works with no network at all).
//! - **Python peers** (from the Python package index): a venv `<peers>/venv` with `tests/peers/requirements.txt` (`mcp`,
//!   the Python SDK; `mcp-server-time`; `mcp-server-git`; every dependency pinned).
//! - **Claude Code**: `npm install -g @anthropic-ai/claude-code@VERSION`. With npm's
//!   prefix `/usr` the native binary is `/usr/lib/node_modules/@anthropic-ai/
//!   claude-code/bin/claude.exe` (its postinstall replaces the stub of that name with
//!   the platform package's ELF), which the daemon's built-in `claude-code` profile
//!   names. The daemon resolves its profiles when it starts, so this must be in place
//!   before a test starts the daemon.
//! - **Gemini CLI** and **Codex CLI**: `npm install -g @google/gemini-cli@VERSION`
//!   and `@openai/codex@VERSION` (Codex's native binary comes in its platform
//!   package, an optional dependency; neither has an install script).
//!
//! Every step first checks what is installed (versions read from files, no registry
//! round trip) and says `ok (already present)`; only a missing or different piece is
//! (re)installed.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{find_in_path, output, repo_root, run, say};

/// Where the peers go unless `$MCPWATCH_PEERS_DIR` says otherwise (the tests read
/// the same variable, with the same default).
pub const DEFAULT_DIR: &str = "/opt/mcpwatch-peers";
pub const DIR_ENV: &str = "MCPWATCH_PEERS_DIR";
/// `@anthropic-ai/claude-code`, installed globally (PLATFORM.md: verified offline).
pub const CLAUDE_CODE_VERSION: &str = "2.1.197";
const CLAUDE_CODE: &str = "@anthropic-ai/claude-code";
/// Gemini CLI and Codex CLI, installed globally as users do (`npm install -g`),
/// for the real-host tests (`tests/tests/peers.rs`).
pub const GEMINI_CLI_VERSION: &str = "0.61.0";
const GEMINI_CLI: &str = "@google/gemini-cli";
pub const CODEX_VERSION: &str = "0.171.0";
const CODEX: &str = "@openai/codex";
/// The files of `tests/peers/` that define what is installed; copied into `<peers>`.
const NPM_FILES: [&str; 2] = ["package.json", "package-lock.json"];
const REQUIREMENTS: &str = "requirements.txt";

pub fn peers_dir() -> PathBuf {
    std::env::var_os(DIR_ENV)
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

fn source_dir() -> PathBuf {
    repo_root().join("tests").join("peers")
}

fn ok(name: &str, detail: &str) {
    say!("setup: {name:<36} ok (already present: {detail})");
}

fn did(name: &str, what: &str) {
    say!("setup: {name:<36} {what}");
}

/// Whether we may create or change `path`: the nearest existing ancestor is
/// writable by us (`access(2)`, so root passes).
fn writable(path: &Path) -> bool {
    let mut p = path;
    loop {
        if p.exists() {
            let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
                return false;
            };
            // SAFETY: a valid NUL-terminated path; access has no other preconditions.
            return unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// Runs the peer steps. Returns the steps that had work to do but need rights we
/// lack (`setup` lists them as needing root).
pub fn setup() -> Result<Vec<String>> {
    let dir = peers_dir();
    let mut need_root = Vec::new();
    for step in [npm_peers, python_peers, claude_code, gemini_cli, codex_cli] {
        if let Some(what) = step(&dir)? {
            need_root.push(what);
        }
    }
    Ok(need_root)
}

fn need(name: &str, what: &str) -> String {
    say!("setup: {name:<36} NEEDS ROOT: would {what}");
    format!("{name}: {what}")
}

fn tool(name: &str, why: &str) -> Result<PathBuf> {
    find_in_path(name).with_context(|| {
        format!(
            "`{name}` is not on PATH: {why} (Debian: `apt-get install nodejs npm python3 python3-venv`)"
        )
    })
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Whether `dir/name` has exactly the content of `tests/peers/name`.
fn same_file(dir: &Path, name: &str) -> Result<bool> {
    let want = fs::read(source_dir().join(name))
        .with_context(|| format!("cannot read tests/peers/{name}"))?;
    Ok(fs::read(dir.join(name)).is_ok_and(|have| have == want))
}

fn copy_sources(dir: &Path, names: &[&str]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for name in names {
        let from = source_dir().join(name);
        fs::copy(&from, dir.join(name))
            .with_context(|| format!("cannot copy {} to {}", from.display(), dir.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- npm peers

/// Why `<dir>/node_modules` is not what `tests/peers/package-lock.json` pins, or
/// `Ok(summary)` when it is.
fn check_npm(dir: &Path) -> Result<Result<String, String>> {
    for f in NPM_FILES {
        if !same_file(dir, f)? {
            return Ok(Err(format!(
                "{} differs from tests/peers/{f}",
                dir.join(f).display()
            )));
        }
    }
    // npm ci writes its own record of the installed tree last.
    if !dir.join("node_modules/.package-lock.json").exists() {
        return Ok(Err(
            "no complete npm install (node_modules/.package-lock.json)".into(),
        ));
    }
    let pkg = read_json(&source_dir().join("package.json")).context("tests/peers/package.json")?;
    let deps = pkg["dependencies"]
        .as_object()
        .context("tests/peers/package.json has no dependencies")?;
    let mut have = Vec::new();
    for (name, want) in deps {
        let installed = read_json(&dir.join("node_modules").join(name).join("package.json"));
        let version = installed.as_ref().and_then(|v| v["version"].as_str());
        if version != want.as_str() {
            return Ok(Err(format!(
                "{name} is {}, want {}",
                version.unwrap_or("missing"),
                want.as_str().unwrap_or("?")
            )));
        }
        have.push(format!("{name}@{}", version.unwrap_or("?")));
    }
    let bin = dir.join("node_modules/.bin/mcp-server-filesystem");
    if !bin.exists() {
        return Ok(Err(format!("{} is missing", bin.display())));
    }
    Ok(Ok(format!("{} in {}", have.join(", "), dir.display())))
}

fn npm_peers(dir: &Path) -> Result<Option<String>> {
    const NAME: &str = "MCP peers (npm)";
    let why = match check_npm(dir)? {
        Ok(summary) => {
            ok(NAME, &summary);
            return Ok(None);
        }
        Err(why) => why,
    };
    if !writable(dir) {
        return Ok(Some(need(NAME, &format!("npm ci in {}", dir.display()))));
    }
    say!("setup: {NAME:<36} installing: {why}");
    tool("node", "the MCP peers and Claude Code are Node.js programs")?;
    let npm = tool("npm", "it installs the MCP peers")?;
    let started = Instant::now();
    copy_sources(dir, &NPM_FILES)?;
    run(Command::new(npm).current_dir(dir).args([
        "ci",
        "--no-audit",
        "--no-fund",
        "--loglevel=warn",
    ]))?;
    match check_npm(dir)? {
        Ok(summary) => did(
            NAME,
            &format!(
                "installed {summary} (npm ci) in {:.0} s",
                started.elapsed().as_secs_f64()
            ),
        ),
        Err(why) => bail!(
            "npm ci in {} finished but the peers are still not right: {why}",
            dir.display()
        ),
    }
    Ok(None)
}

// ---------------------------------------------------------------- PyPI peers

/// `name==version` pins of a requirements file, names normalised (PEP 503).
fn pins(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_once("=="))
        .map(|(n, v)| (normalize(n), v.trim().to_owned()))
        .collect()
}

fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// `(name, version)` of every `*.dist-info` in the venv's site-packages.
fn installed_dists(venv: &Path) -> Vec<(String, String)> {
    let Ok(lib) = fs::read_dir(venv.join("lib")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for py in lib.filter_map(Result::ok) {
        let Ok(site) = fs::read_dir(py.path().join("site-packages")) else {
            continue;
        };
        for e in site.filter_map(Result::ok) {
            let name = e.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".dist-info")) else {
                continue;
            };
            if let Some((n, v)) = stem.rsplit_once('-') {
                out.push((normalize(n), v.to_owned()));
            }
        }
    }
    out
}

fn check_python(dir: &Path) -> Result<Result<String, String>> {
    let venv = dir.join("venv");
    if !same_file(dir, REQUIREMENTS)? {
        return Ok(Err(format!(
            "{} differs from tests/peers/{REQUIREMENTS}",
            dir.join(REQUIREMENTS).display()
        )));
    }
    let python = venv.join("bin/python");
    // The venv's python is a link to the interpreter it was made with: it must still run.
    let runs = Command::new(&python)
        .args(["-c", ""])
        .stdin(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        return Ok(Err(format!("{} does not run", python.display())));
    }
    let want = pins(
        &fs::read_to_string(source_dir().join(REQUIREMENTS))
            .context("cannot read tests/peers/requirements.txt")?,
    );
    let have = installed_dists(&venv);
    for (n, v) in &want {
        if !have.iter().any(|(hn, hv)| hn == n && hv == v) {
            return Ok(Err(format!(
                "{n}=={v} is not installed in {}",
                venv.display()
            )));
        }
    }
    for bin in ["mcp-server-time", "mcp-server-git"] {
        if !venv.join("bin").join(bin).exists() {
            return Ok(Err(format!(
                "{} is missing",
                venv.join("bin").join(bin).display()
            )));
        }
    }
    let top: Vec<String> = want
        .iter()
        .filter(|(n, _)| matches!(n.as_str(), "mcp" | "mcp_server_time" | "mcp_server_git"))
        .map(|(n, v)| format!("{n}=={v}"))
        .collect();
    Ok(Ok(format!("{} in {}", top.join(", "), venv.display())))
}

fn python_peers(dir: &Path) -> Result<Option<String>> {
    const NAME: &str = "MCP peers (PyPI venv)";
    let why = match check_python(dir)? {
        Ok(summary) => {
            ok(NAME, &summary);
            return Ok(None);
        }
        Err(why) => why,
    };
    let venv = dir.join("venv");
    if !writable(dir) {
        return Ok(Some(need(
            NAME,
            &format!("create the venv {}", venv.display()),
        )));
    }
    say!("setup: {NAME:<36} installing: {why}");
    let python = tool("python3", "the Python MCP peers need Python 3.10 or newer")?;
    let version = output(
        Command::new(&python).args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"]),
    )?;
    let minor = version
        .trim()
        .strip_prefix("3.")
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_none_or(|m| m < 10) {
        bail!(
            "{} is Python {}: the MCP Python SDK needs 3.10 or newer",
            python.display(),
            version.trim()
        );
    }
    let started = Instant::now();
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    run(Command::new(&python).arg("-m").arg("venv").arg(&venv))
        .context("cannot create a venv (Debian's own python3 needs the python3-venv package)")?;
    run(Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(source_dir().join(REQUIREMENTS)))?;
    copy_sources(dir, &[REQUIREMENTS])?;
    match check_python(dir)? {
        Ok(summary) => did(
            NAME,
            &format!(
                "installed {summary} (python3 -m venv, pip install -r) in {:.0} s",
                started.elapsed().as_secs_f64()
            ),
        ),
        Err(why) => bail!(
            "the venv {} was made but is still not right: {why}",
            venv.display()
        ),
    }
    Ok(None)
}

// ---------------------------------------------------------------- Claude Code

/// npm's global prefix (`/usr` here): modules under `lib/node_modules`, links in `bin`.
fn npm_global_prefix() -> Result<PathBuf> {
    let npm = tool("npm", "it installs Claude Code")?;
    let prefix = output(Command::new(npm).args(["prefix", "-g"]))?;
    Ok(PathBuf::from(prefix.trim()))
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read as _;
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Why the global Claude Code is not the pinned native install, or `Ok(path of the
/// ELF)` when it is.
fn check_claude(prefix: &Path) -> Result<PathBuf, String> {
    let pkg = prefix.join("lib/node_modules").join(CLAUDE_CODE);
    let version =
        read_json(&pkg.join("package.json")).and_then(|v| v["version"].as_str().map(str::to_owned));
    match version.as_deref() {
        Some(CLAUDE_CODE_VERSION) => {}
        Some(v) => return Err(format!("{CLAUDE_CODE} is {v}, want {CLAUDE_CODE_VERSION}")),
        None => return Err("not installed".into()),
    }
    let exe = pkg.join("bin/claude.exe");
    if !is_elf(&exe) {
        return Err(format!(
            "{} is not the native ELF (its postinstall did not run)",
            exe.display()
        ));
    }
    let link = prefix.join("bin/claude");
    match (fs::canonicalize(&link), fs::canonicalize(&exe)) {
        (Ok(a), Ok(b)) if a == b => Ok(exe),
        _ => Err(format!(
            "{} does not lead to {}",
            link.display(),
            exe.display()
        )),
    }
}

fn claude_code(_dir: &Path) -> Result<Option<String>> {
    npm_host(
        "Claude Code",
        CLAUDE_CODE,
        CLAUDE_CODE_VERSION,
        &check_claude,
        &|prefix| {
            let pkg = prefix.join("lib/node_modules").join(CLAUDE_CODE);
            if !is_elf(&pkg.join("bin/claude.exe")) {
                // The postinstall links the platform package's binary over the
                // stub; npm versions that hold back install scripts leave the
                // stub: run it ourselves.
                say!(
                    "setup: Claude Code: bin/claude.exe is still the stub: running its postinstall"
                );
                let node = tool("node", "Claude Code's postinstall is a Node.js script")?;
                run(Command::new(node).current_dir(&pkg).arg("install.cjs"))?;
            }
            Ok(())
        },
    )
}

/// Why the global `package` is not `version` with its `bin` link in place, or
/// `Ok(link)` when it is.
fn check_npm_host(
    prefix: &Path,
    package: &str,
    version: &str,
    bin: &str,
) -> Result<PathBuf, String> {
    let pkg = prefix.join("lib/node_modules").join(package);
    let have =
        read_json(&pkg.join("package.json")).and_then(|v| v["version"].as_str().map(str::to_owned));
    match have.as_deref() {
        Some(v) if v == version => {}
        Some(v) => return Err(format!("{package} is {v}, want {version}")),
        None => return Err("not installed".into()),
    }
    let link = prefix.join("bin").join(bin);
    match fs::canonicalize(&link) {
        Ok(target) if target.starts_with(&pkg) => Ok(link),
        _ => Err(format!(
            "{} does not lead into {}",
            link.display(),
            pkg.display()
        )),
    }
}

/// `npm install -g package@version` unless `check` finds it in place (`Ok`: what
/// to name), then `after` (a postinstall npm held back), then `check` again.
fn npm_host(
    name: &str,
    package: &str,
    version: &str,
    check: &dyn Fn(&Path) -> Result<PathBuf, String>,
    after: &dyn Fn(&Path) -> Result<()>,
) -> Result<Option<String>> {
    let label = format!("{name} {version} (npm -g)");
    let prefix = npm_global_prefix()?;
    let why = match check(&prefix) {
        Ok(found) => {
            ok(&label, &found.display().to_string());
            return Ok(None);
        }
        Err(why) => why,
    };
    let modules = prefix.join("lib/node_modules");
    if !writable(&modules) {
        return Ok(Some(need(
            &label,
            &format!(
                "npm install -g {package}@{version} (into {})",
                modules.display()
            ),
        )));
    }
    say!("setup: {label:<36} installing: {why}");
    let npm = tool("npm", "it installs the MCP hosts")?;
    let started = Instant::now();
    run(Command::new(&npm)
        .args([
            "install",
            "-g",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .arg(format!("{package}@{version}")))?;
    after(&prefix)?;
    match check(&prefix) {
        Ok(found) => did(
            &label,
            &format!(
                "installed {} (npm install -g) in {:.0} s",
                found.display(),
                started.elapsed().as_secs_f64()
            ),
        ),
        Err(why) => bail!("npm installed {package}@{version} but it is still not usable: {why}"),
    }
    Ok(None)
}

fn gemini_cli(_dir: &Path) -> Result<Option<String>> {
    npm_host(
        "Gemini CLI",
        GEMINI_CLI,
        GEMINI_CLI_VERSION,
        &|p| check_npm_host(p, GEMINI_CLI, GEMINI_CLI_VERSION, "gemini"),
        &|_| Ok(()),
    )
}

fn codex_cli(_dir: &Path) -> Result<Option<String>> {
    npm_host(
        "Codex CLI",
        CODEX,
        CODEX_VERSION,
        &|p| check_npm_host(p, CODEX, CODEX_VERSION, "codex"),
        &|_| Ok(()),
    )
}

#[cfg(test)]
mod tests {
    use super::{normalize, pins};

    #[test]
    fn requirement_pins_are_read_with_normalised_names() {
        let text = "# comment\nGitPython==3.2.1\ntyping_extensions==4.16.0  # why\n\nmcp-server-time==2026.10.19\n";
        assert_eq!(
            pins(text),
            vec![
                ("gitpython".to_owned(), "3.2.1".to_owned()),
                ("typing_extensions".to_owned(), "4.16.0".to_owned()),
                ("mcp_server_time".to_owned(), "2026.10.19".to_owned()),
            ]
        );
        assert_eq!(
            normalize("jsonschema-specifications"),
            "jsonschema_specifications"
        );
        assert_eq!(normalize("zope.interface"), "zope_interface");
    }
}
