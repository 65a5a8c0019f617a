//! `cargo xtask setup`: install and start what building, testing and running need.
//!
//! Idempotent: every step first checks, prints `ok (already present)` when there is
//! nothing to do, and otherwise says what it did. Toolchain steps (rust-src,
//! bpf-linker) run as any user; system steps (mounts, dbus package, bus policy, the
//! system bus) need root.

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{cargo, cargo_home, euid, find_in_path, is_root, output, run, say};

/// What to do with system steps that need root when we are not root.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fail, listing the steps that need root (`setup`, `run`, `bench`).
    Required,
    /// Do the toolchain steps, report the root steps as skipped (`build`, `test`).
    BestEffort,
}

const BPF_LINKER_VERSION: &str = "0.13.0";

/// D-Bus policy for our service on the system bus: root may own the name, everyone
/// may call it and receive its signals (the daemon checks callers itself).
pub const POLICY_PATH: &str = "/etc/dbus-1/system.d/org.mcpwatch1.conf";
pub const POLICY: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Installed by `cargo xtask setup` (mcpwatch). -->
<busconfig>
  <policy user="root">
    <allow own="org.mcpwatch1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.mcpwatch1"/>
    <allow receive_sender="org.mcpwatch1"/>
  </policy>
</busconfig>
"#;

const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
const MACHINE_ID: &str = "/var/lib/dbus/machine-id";

/// (what, fstype, mount point)
const MOUNTS: [(&str, &str, &str); 4] = [
    ("securityfs", "securityfs", "/sys/kernel/security"),
    ("debugfs", "debugfs", "/sys/kernel/debug"),
    ("tracefs", "tracefs", "/sys/kernel/tracing"),
    ("bpffs", "bpf", "/sys/fs/bpf"),
];

struct Ctx {
    root: bool,
    /// System steps that had work to do but could not (not root).
    need_root: Vec<String>,
    /// The policy file was written in this run (a running bus must reload).
    policy_changed: bool,
}

impl Ctx {
    fn ok(name: &str, detail: &str) {
        if detail.is_empty() {
            say!("setup: {name:<36} ok (already present)");
        } else {
            say!("setup: {name:<36} ok (already present: {detail})");
        }
    }

    fn did(name: &str, what: &str) {
        say!("setup: {name:<36} {what}");
    }

    /// Whether a system step that has `what` to do may do it; if not, records it.
    fn may_act(&mut self, name: &str, what: &str) -> bool {
        if self.root {
            return true;
        }
        say!("setup: {name:<36} NEEDS ROOT: would {what}");
        self.need_root.push(format!("{name}: {what}"));
        false
    }
}

pub fn run_setup(mode: Mode) -> Result<()> {
    let start = Instant::now();
    let mut ctx = Ctx {
        root: is_root(),
        need_root: Vec::new(),
        policy_changed: false,
    };
    rust_src()?;
    bpf_linker()?;
    for (what, fstype, point) in MOUNTS {
        mount(&mut ctx, what, fstype, point)?;
    }
    dbus_package(&mut ctx)?;
    dbus_policy(&mut ctx)?;
    machine_id(&mut ctx)?;
    system_bus(&mut ctx)?;
    // Real MCP clients, servers and Claude Code for the root tests (tests/peers/).
    ctx.need_root.extend(crate::peers::setup()?);
    if let Some(addr) = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS") {
        say!(
            "setup: note: DBUS_SYSTEM_BUS_ADDRESS={} is set: mcpwatchd and mcpwatch use that bus, not {SYSTEM_BUS_SOCKET}",
            addr.to_string_lossy()
        );
    }
    if !ctx.need_root.is_empty() {
        let list = ctx.need_root.join("\n  - ");
        match mode {
            Mode::Required => bail!(
                "setup is incomplete: these steps need root (running as uid {}):\n  - {list}\n\
                 Run `cargo xtask setup` as root (e.g. `sudo -E env PATH=\"$PATH\" cargo xtask setup`).",
                euid()
            ),
            Mode::BestEffort => say!(
                "setup: SKIPPED (not root, uid {}); needed only to run the daemon and the root tests:\n  - {list}",
                euid()
            ),
        }
    }
    say!("setup: done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------- toolchain steps

fn rust_src() -> Result<()> {
    const NAME: &str = "rust-src (nightly)";
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .context(
        "cannot list the components of the `nightly` toolchain; is it installed? \
         (PLATFORM.md: nightly 2026-05-19 is known to build the eBPF crate)",
    )?;
    if installed.lines().any(|l| l.trim().starts_with("rust-src")) {
        Ctx::ok(NAME, "");
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ctx::did(
        NAME,
        "installed (rustup component add rust-src --toolchain nightly)",
    );
    Ok(())
}

/// The nightly's own libLLVM: (full path of the versioned file, its file name, major).
fn nightly_llvm() -> Result<(PathBuf, String, u32)> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let mut names: Vec<String> = fs::read_dir(&lib)
        .with_context(|| format!("cannot list {}", lib.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("libLLVM.so."))
        .collect();
    names.sort();
    let Some(name) = names.pop() else {
        bail!(
            "no libLLVM.so.* in {}: cannot build bpf-linker against the nightly's LLVM",
            lib.display()
        );
    };
    let major = name["libLLVM.so.".len()..]
        .split(['.', '-'])
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read the LLVM major version from {name}"))?;
    Ok((lib.join(&name), name, major))
}

/// Why the `bpf-linker` on PATH is not usable, or `Ok(path)` when it is.
fn check_bpf_linker(llvm: &Path) -> Result<PathBuf, String> {
    let Some(path) = find_in_path("bpf-linker") else {
        return Err("not installed".into());
    };
    let out = Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} does not run: {e}", path.display()))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        return Err(format!(
            "{} --version failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let want = &BPF_LINKER_VERSION[..BPF_LINKER_VERSION.rfind('.').unwrap_or(0)];
    if !version.starts_with(&format!("bpf-linker {want}")) {
        return Err(format!("{} is `{version}`, want {want}", path.display()));
    }
    let ldd = Command::new("ldd")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let Some(line) = ldd.lines().find(|l| l.contains("libLLVM")) else {
        return Err(format!("{} does not link a shared libLLVM", path.display()));
    };
    let linked = line
        .split("=>")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("not found");
    let same = fs::canonicalize(linked)
        .ok()
        .zip(fs::canonicalize(llvm).ok())
        .is_some_and(|(a, b)| a == b);
    if same {
        Ok(path)
    } else {
        Err(format!(
            "{} links {} (`{}`), not the nightly's {}",
            path.display(),
            linked,
            line.trim(),
            llvm.display()
        ))
    }
}

/// Makes `link` a symlink to `target` (replacing whatever is there).
fn ensure_symlink(target: &Path, link: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link).with_context(|| format!("cannot replace {}", link.display()))?;
    }
    symlink(target, link).with_context(|| format!("cannot create {}", link.display()))
}

fn bpf_linker() -> Result<()> {
    let name = format!("bpf-linker {BPF_LINKER_VERSION}");
    let (llvm, llvm_name, major) = nightly_llvm()?;
    let why = match check_bpf_linker(&llvm) {
        Ok(path) => {
            Ctx::ok(&name, &format!("{} -> {llvm_name}", path.display()));
            return Ok(());
        }
        Err(why) => why,
    };
    say!("setup: {name:<36} installing: {why}");
    // bpf-linker's build.rs links `<LLVM_PREFIX>/lib/libLLVM.so` and records that
    // (canonical) lib dir as rpath, so the prefix lives beside the binary, in
    // CARGO_HOME, for as long as the binary does.
    let prefix = cargo_home().join("mcpwatch-llvm");
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    ensure_symlink(&llvm, &lib.join("libLLVM.so"))?;
    ensure_symlink(&llvm, &lib.join(&llvm_name))?;
    let started = Instant::now();
    run(cargo()
        .env("LLVM_PREFIX", &prefix)
        .arg("install")
        .arg(format!("bpf-linker@{BPF_LINKER_VERSION}"))
        .args(["--locked", "--no-default-features", "--features"])
        .arg(format!("llvm-{major}"))
        .arg("--force"))?;
    match check_bpf_linker(&llvm) {
        Ok(path) => Ctx::did(
            &name,
            &format!(
                "installed {} (LLVM_PREFIX={} -> {llvm_name}) in {:.0} s",
                path.display(),
                prefix.display(),
                started.elapsed().as_secs_f64()
            ),
        ),
        Err(why) => bail!("bpf-linker was installed but is still not usable: {why}"),
    }
    Ok(())
}

// ---------------------------------------------------------------- system steps

fn is_mounted(fstype: &str, point: &str) -> Result<bool> {
    let mounts = fs::read_to_string("/proc/mounts").context("cannot read /proc/mounts")?;
    Ok(mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[1] == point && f[2] == fstype
    }))
}

fn mount(ctx: &mut Ctx, what: &str, fstype: &str, point: &str) -> Result<()> {
    let name = format!("{what} at {point}");
    if is_mounted(fstype, point)? {
        Ctx::ok(&name, "");
        return Ok(());
    }
    if !ctx.may_act(&name, &format!("mount -t {fstype} {fstype} {point}")) {
        return Ok(());
    }
    fs::create_dir_all(point).with_context(|| format!("cannot create {point}"))?;
    run(Command::new("mount").args(["-t", fstype, fstype, point]))?;
    Ctx::did(
        &name,
        &format!("mounted (mount -t {fstype} {fstype} {point})"),
    );
    Ok(())
}

fn dbus_package(ctx: &mut Ctx) -> Result<()> {
    const NAME: &str = "dbus-daemon";
    // dbus-send too: the root tests call the API with it as a client of our own.
    if let (Some(p), Some(_)) = (find_in_path("dbus-daemon"), find_in_path("dbus-send")) {
        Ctx::ok(NAME, &p.display().to_string());
        return Ok(());
    }
    if !ctx.may_act(NAME, "apt-get update && apt-get install -y dbus") {
        return Ok(());
    }
    if find_in_path("apt-get").is_none() {
        bail!("dbus-daemon is missing and there is no apt-get: install the `dbus` package with your package manager");
    }
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .arg("update")
        .stdin(Stdio::null()))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends", "dbus"])
        .stdin(Stdio::null()))?;
    if find_in_path("dbus-daemon").is_none() {
        bail!("apt-get installed `dbus` but dbus-daemon is still not on PATH");
    }
    Ctx::did(NAME, "installed (apt-get install -y dbus)");
    Ok(())
}

fn dbus_policy(ctx: &mut Ctx) -> Result<()> {
    const NAME: &str = "D-Bus policy org.mcpwatch1";
    let current = fs::read_to_string(POLICY_PATH).ok();
    if current.as_deref() == Some(POLICY) {
        Ctx::ok(NAME, POLICY_PATH);
        return Ok(());
    }
    let verb = if current.is_some() {
        "updated"
    } else {
        "installed"
    };
    if !ctx.may_act(NAME, &format!("write {POLICY_PATH}")) {
        return Ok(());
    }
    let dir = Path::new(POLICY_PATH).parent().expect("has a parent");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(POLICY_PATH, POLICY).with_context(|| format!("cannot write {POLICY_PATH}"))?;
    ctx.policy_changed = true;
    Ctx::did(NAME, &format!("{verb} {POLICY_PATH}"));
    Ok(())
}

fn machine_id(ctx: &mut Ctx) -> Result<()> {
    let name = format!("machine id {MACHINE_ID}");
    if fs::metadata(MACHINE_ID).is_ok_and(|m| m.len() > 0) {
        Ctx::ok(&name, "");
        return Ok(());
    }
    if !ctx.may_act(&name, "dbus-uuidgen --ensure") {
        return Ok(());
    }
    fs::create_dir_all("/var/lib/dbus").context("cannot create /var/lib/dbus")?;
    run(Command::new("dbus-uuidgen").arg("--ensure"))?;
    Ctx::did(&name, "created (dbus-uuidgen --ensure)");
    Ok(())
}

fn bus_answers() -> bool {
    UnixStream::connect(SYSTEM_BUS_SOCKET).is_ok()
}

fn system_bus(ctx: &mut Ctx) -> Result<()> {
    let name = "system bus";
    if bus_answers() {
        if ctx.policy_changed {
            // dbus-daemon also notices new policy files by itself (inotify); ask
            // explicitly so the policy holds as soon as setup returns.
            if find_in_path("dbus-send").is_some() {
                output(Command::new("dbus-send").args([
                    "--system",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ReloadConfig",
                ]))?;
                Ctx::did(
                    name,
                    "running; reloaded its configuration for the new policy (dbus-send ... ReloadConfig)",
                );
            } else {
                Ctx::did(name, "running; it picks up the new policy by itself (no dbus-send to force a reload)");
            }
        } else {
            Ctx::ok(name, SYSTEM_BUS_SOCKET);
        }
        return Ok(());
    }
    if !ctx.may_act(name, "start `dbus-daemon --system --fork`") {
        return Ok(());
    }
    if find_in_path("dbus-daemon").is_none() {
        bail!("cannot start the system bus: dbus-daemon is missing");
    }
    fs::create_dir_all("/run/dbus").context("cannot create /run/dbus")?;
    // Nothing answers, so a pid file or socket left here is stale; dbus-daemon
    // refuses to start while its pid file exists.
    for stale in ["/run/dbus/pid", SYSTEM_BUS_SOCKET] {
        if fs::symlink_metadata(stale).is_ok() {
            fs::remove_file(stale).with_context(|| format!("cannot remove stale {stale}"))?;
            say!("setup: {name:<36} removed stale {stale}");
        }
    }
    // The forked bus outlives us: give it no pipe of ours to hold open.
    let log = std::env::temp_dir().join("mcpwatch-xtask-dbus.log");
    let log_file =
        fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = Command::new("dbus-daemon");
    cmd.args(["--system", "--fork"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    let st = crate::util::status(&mut cmd)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bus_answers() {
        if Instant::now() > deadline || !st.success() {
            bail!(
                "started dbus-daemon --system ({st}) but nothing answers at {SYSTEM_BUS_SOCKET}: {}",
                fs::read_to_string(&log).unwrap_or_default().trim()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ctx::did(
        name,
        &format!("started (dbus-daemon --system --fork), listening at {SYSTEM_BUS_SOCKET}"),
    );
    Ok(())
}
