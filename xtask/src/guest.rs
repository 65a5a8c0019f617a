//! The BPF LSM path, tested where it can run: a QEMU (TCG) guest booting a Debian
//! 6.1 kernel with `lsm=…,bpf`. Our own VMs refuse BPF LSM programs (PLATFORM.md),
//! so there the daemon falls back to signals and the root tests cover that; this
//! test covers the other branch with the same daemon binary.
//!
//! The guest is an initramfs: static busybox, `mcpwatchd` and the shared libraries
//! it needs, a config with one host profile (a copy of busybox at /hostbin) and a
//! managed policy that puts the host in enforce mode and denies /deny/busybox. The
//! init script starts the daemon, then has the host run `/deny/busybox true` (must
//! fail with EPERM: exit 126, nothing ran) and `/ok/busybox true` (unapproved:
//! killed by signal, exit 137), and prints one result line.
use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::util::{cargo_home, find_in_path, output, run, say};

const RESULT_TAG: &str = "MCPWATCH-GUEST-RESULT";
/// TCG boots in ~17 s; the daemon's start-up (BTF parsing, verifier) is slower
/// under emulation too.
#[expect(
    clippy::duration_suboptimal_units,
    reason = "Duration::from_mins needs Rust 1.91; the workspace rust-version is 1.87"
)]
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);

const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /tmp /run /var/lib/mcpwatch
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
$B mount -t bpf bpf /sys/fs/bpf
$B mount -t tracefs tracefs /sys/kernel/tracing
$B mount -t securityfs securityfs /sys/kernel/security
echo "guest: kernel $($B uname -r), lsm=$($B cat /sys/kernel/security/lsm)"
/mcpwatchd --config /etc/mcpwatch.toml > /tmp/daemon.log 2>&1 &
i=0
while ! $B grep -q "mcpwatchd running" /tmp/daemon.log; do
  i=$((i+1))
  if [ $i -gt 600 ]; then echo "guest: daemon not ready"; break; fi
  if ! $B kill -0 $! 2>/dev/null; then echo "guest: daemon exited"; break; fi
  $B sleep 0.5
done
/hostbin/busybox sh -c '/deny/busybox touch /tmp/denied-ran; echo "deny_rc=$?"; /ok/busybox touch /tmp/ok-ran; echo "ok_rc=$?"' > /tmp/out 2>&1
$B cat /tmp/out
i=0
while ! $B grep -q "EPERM (BPF LSM)" /var/lib/mcpwatch/events.jsonl && [ $i -lt 40 ]; do i=$((i+1)); $B sleep 0.5; done
DENY_RC=$($B sed -n 's/^deny_rc=//p' /tmp/out)
OK_RC=$($B sed -n 's/^ok_rc=//p' /tmp/out)
DENIED_RAN=no; [ -e /tmp/denied-ran ] && DENIED_RAN=yes
OK_RAN=no; [ -e /tmp/ok-ran ] && OK_RAN=yes
LSM_ATTACHED=no; $B grep -q "lsm/bprm_check_security:lsm" /var/lib/mcpwatch/events.jsonl && LSM_ATTACHED=yes
EPERM_EVENT=no; $B grep -q "execve refused with EPERM (BPF LSM)" /var/lib/mcpwatch/events.jsonl && EPERM_EVENT=yes
echo "--- daemon log (tail)"; $B tail -n 15 /tmp/daemon.log
echo "--- events (tail)"; $B tail -n 6 /var/lib/mcpwatch/events.jsonl
echo "MCPWATCH-GUEST-RESULT lsm_attached=$LSM_ATTACHED deny_rc=$DENY_RC denied_ran=$DENIED_RAN eperm_event=$EPERM_EVENT ok_rc=$OK_RC ok_ran=$OK_RAN"
$B poweroff -f
"#;

const CONFIG: &str = r#"state_dir = "/var/lib/mcpwatch"
builtin_hosts = false
policy_dir = "/etc/mcpwatch/policy.d"

[[host]]
name = "guest"
exe = ["/hostbin/busybox"]
"#;

const POLICY: &str = r#"[deny]
programs = ["/deny/busybox"]

[hosts.guest]
mode = "enforce"
lock = true
"#;

/// Run the guest test. Returns Ok(()) when the LSM path did what it must.
pub fn lsm_guest_test(mcpwatchd: &Path) -> Result<()> {
    ensure_packages()?;
    let cache = cargo_home().join("mcpwatch-guest");
    fs::create_dir_all(&cache)?;
    let kernel = guest_kernel(&cache)?;
    let work = tempfile_dir()?;
    let initrd = work.join("initrd.img");
    build_initramfs(mcpwatchd, &initrd)?;
    let out = boot(&kernel, &initrd, &work)?;
    let line = out
        .lines()
        .find(|l| l.starts_with(RESULT_TAG))
        .with_context(|| {
            format!(
                "the guest printed no result line; its console:\n{}",
                tail(&out, 60)
            )
        })?
        .to_owned();
    say!("guest: {line}");
    let want = [
        "lsm_attached=yes",
        "deny_rc=126",
        "denied_ran=no",
        "eperm_event=yes",
        "ok_rc=137",
        "ok_ran=no",
    ];
    let missing: Vec<&str> = want.iter().copied().filter(|w| !line.contains(w)).collect();
    let _ = fs::remove_dir_all(&work);
    if !missing.is_empty() {
        bail!(
            "BPF LSM guest test: expected {missing:?} in `{line}`; console:\n{}",
            tail(&out, 60)
        );
    }
    Ok(())
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("mcpwatch-guest.{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d)?;
    Ok(d)
}

fn ensure_packages() -> Result<()> {
    let have_qemu = find_in_path("qemu-system-x86_64").is_some();
    let have_busybox = Path::new("/bin/busybox").exists() || Path::new("/usr/bin/busybox").exists();
    if have_qemu && have_busybox && is_static(&busybox()?) {
        return Ok(());
    }
    if find_in_path("apt-get").is_none() {
        bail!("the BPF LSM guest test needs qemu-system-x86 and busybox-static (no apt-get here)");
    }
    say!("guest: installing qemu-system-x86 and busybox-static (apt-get)");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "qemu-system-x86",
            "busybox-static",
        ]))?;
    Ok(())
}

fn busybox() -> Result<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("busybox not found")
}

fn is_static(p: &Path) -> bool {
    Command::new("ldd").arg(p).output().is_ok_and(|o| {
        !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic")
    })
}

/// A Debian 6.1 kernel image (the bookworm `linux-image-amd64` dependency),
/// downloaded once into the cache.
fn guest_kernel(cache: &Path) -> Result<PathBuf> {
    if let Some(k) = find_vmlinuz(cache) {
        return Ok(k);
    }
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let pkg = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-6.1"))
        .map(str::to_owned)
        .context("apt-cache knows no linux-image-6.1 package (bookworm sources needed)")?;
    say!("guest: downloading {pkg}");
    run(Command::new("apt-get")
        .current_dir(cache)
        .args(["download", "-q", &pkg]))?;
    let deb = fs::read_dir(cache)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let root = cache.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let _ = fs::remove_file(&deb);
    find_vmlinuz(cache).context("no vmlinuz in the kernel package")
}

fn find_vmlinuz(cache: &Path) -> Option<PathBuf> {
    fs::read_dir(cache.join("root/boot"))
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// The shared libraries a binary needs (from ldd), with their interpreter.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(bin))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = if let Some((_, rhs)) = l.split_once("=>") {
                rhs.split_whitespace().next()?
            } else {
                l.split_whitespace().next()?
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// A newc cpio archive, in memory: enough for an initramfs (files and dirs).
struct Cpio {
    data: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, body: &[u8]) {
        let name_z = format!("{name}\0");
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            body.len(),
            0,
            0,
            0,
            0,
            name_z.len(),
            0
        );
        self.ino += 1;
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name_z.as_bytes());
        self.pad();
        self.data.extend_from_slice(body);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    fn file(&mut self, name: &str, mode: u32, body: &[u8]) {
        // Parent directories first.
        let mut acc = String::new();
        for part in name
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            self.dir(&acc);
        }
        self.entry(name.trim_start_matches('/'), 0o100_000 | mode, body);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.data
    }
}

fn build_initramfs(mcpwatchd: &Path, out: &Path) -> Result<()> {
    let bb = fs::read(busybox()?)?;
    let mut c = Cpio::new();
    for d in [
        "proc", "sys", "dev", "tmp", "run", "etc", "var", "var/lib", "bin",
    ] {
        c.dir(d);
    }
    c.file("bin/busybox", 0o755, &bb);
    // Three more copies of busybox: distinct inodes, so distinct identities.
    c.file("hostbin/busybox", 0o755, &bb);
    c.file("deny/busybox", 0o755, &bb);
    c.file("ok/busybox", 0o755, &bb);
    c.file("init", 0o755, INIT.as_bytes());
    c.file("mcpwatchd", 0o755, &fs::read(mcpwatchd)?);
    for lib in shared_libs(mcpwatchd)? {
        let body = fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?;
        c.file(&lib.display().to_string(), 0o755, &body);
    }
    c.file("etc/mcpwatch.toml", 0o644, CONFIG.as_bytes());
    c.file("etc/mcpwatch/policy.d/guest.toml", 0o644, POLICY.as_bytes());
    c.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    let data = c.finish();
    let mut f = fs::File::create(out)?;
    f.write_all(&data)?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

fn boot(kernel: &Path, initrd: &Path, work: &Path) -> Result<String> {
    let console = work.join("console.log");
    let log = fs::File::create(&console)?;
    say!(
        "guest: booting {} under QEMU (TCG; about a minute)",
        kernel.display()
    );
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1"])
        .args([
            "-nographic",
            "-no-reboot",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 rdinit=/init lsm=lockdown,capability,landlock,yama,bpf quiet",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the guest did not finish within {BOOT_TIMEOUT:?}; console:\n{}",
                tail(&fs::read_to_string(&console).unwrap_or_default(), 60)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    say!(
        "guest: finished after {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(String::from_utf8_lossy(&fs::read(&console)?).into_owned())
}
