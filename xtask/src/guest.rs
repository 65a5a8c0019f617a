//! A QEMU (TCG) guest that runs the host build of `mcpwatchd` and `mcpwatch` on
//! another kernel: the machinery behind `cargo xtask kernels` (see `kernels.rs`).
//!
//! The guest is an initramfs: static busybox, `mcpwatchd`, `mcpwatch`, `dbus-daemon`
//! and the shared libraries they need (from `ldd`), a config with three host
//! profiles (copies of busybox, so three identities: `guest` in enforce mode,
//! `asker` in ask mode, `watcher` in monitor mode), a managed policy (those modes,
//! one `[[approve]]`, a `[deny]`), and an init script ([`INIT`]) that starts a
//! private system bus and the daemon, runs the checks and writes what it saw to a
//! second serial port (`/dev/ttyS1`, a file on the host), so kernel messages on the
//! console can never cut into it. The host side ([`Report`]) parses that file;
//! everything that is JSON (status, the audit log) is parsed with `serde_json` there,
//! never grepped in the guest.
//!
//! Nothing is loaded as a module: the initramfs has none. What the checks need is
//! built into Debian's kernels (bpf, BTF, tracefs, bpffs, securityfs, devtmpfs, the
//! 8250 serial ports).
use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::util::{find_in_path, output, run, say};

/// Bound on one guest: boot, daemon start (BTF parsing and the verifier are slow
/// under emulation), the checks, the report.
#[expect(
    clippy::duration_suboptimal_units,
    reason = "Duration::from_mins needs Rust 1.91; the workspace rust-version is 1.87"
)]
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(420);

/// The end of a complete report.
const DONE: &str = "@@DONE";

/// The guest's init. Progress goes to the console (ttyS0); results go to fd 3
/// (ttyS1) as `KV key=value` lines and `@@BEGIN name` … `@@END name` sections.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
export PATH=/bin HOME=/root NO_COLOR=1
# The approved launch must match with every security-relevant variable unset.
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT NODE_OPTIONS PYTHONPATH PYTHONSTARTUP BASH_ENV ENV
$B mkdir -p /proc /sys /dev /tmp /run/dbus /var/lib/mcpwatch /root
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
$B mount -t bpf bpf /sys/fs/bpf
$B mount -t tracefs tracefs /sys/kernel/tracing
$B mount -t securityfs securityfs /sys/kernel/security
exec 3>/dev/ttyS1
$B stty -F /dev/ttyS1 -opost -echo 2>/dev/null
kv() { echo "KV $*" >&3; }
sect() { echo "@@BEGIN $1" >&3; $B cat "$2" >&3 2>/dev/null; echo >&3; echo "@@END $1" >&3; }
up() { $B cut -d' ' -f1 /proc/uptime; }
state() { $B sed 's/.*) //' /proc/$1/stat 2>/dev/null | $B cut -d' ' -f1; }
yesno() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
finish() {
  echo "guest: done after $(up) s"
  echo "@@DONE" >&3
  exec 3>&-
  $B sync
  $B poweroff -f
}
echo "guest: kernel $($B uname -r) up after $(up) s"
kv kernel=$($B uname -r)
kv lsm=$($B cat /sys/kernel/security/lsm)
kv btf=$(yesno /sys/kernel/btf/vmlinux)
kv tracefs=$(yesno /sys/kernel/tracing/events/sched/sched_process_exec/format)

/usr/bin/dbus-daemon --config-file=/etc/dbus-guest.conf --nofork --nopidfile > /tmp/dbus.log 2>&1 &
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket
i=0; while [ ! -S /run/dbus/system_bus_socket ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
kv bus=$(yesno /run/dbus/system_bus_socket)

echo "guest: starting mcpwatchd"
kv daemon_t0=$(up)
/mcpwatchd --config /etc/mcpwatch.toml > /tmp/daemon.out 2> /tmp/daemon.err &
D=$!
DS=timeout; DRC=
i=0
while [ $i -lt 1200 ]; do
  if $B grep -qs "mcpwatchd running" /tmp/daemon.err; then DS=running; break; fi
  S=$(state $D)
  if [ -z "$S" ] || [ "$S" = Z ]; then wait $D; DRC=$?; DS=exited; break; fi
  i=$((i+1)); $B sleep 0.25
done
kv daemon_t1=$(up)
kv daemon=$DS
kv daemon_rc=$DRC
echo "guest: mcpwatchd $DS${DRC:+ (exit status $DRC)} after $(up) s"
if [ $DS != running ]; then
  for f in /var/lib/mcpwatch/verifier-*.log; do
    [ -f "$f" ] && $B tail -n 60 "$f" >> /tmp/daemon.err
  done
  sect daemon_err /tmp/daemon.err
  sect daemon_out /tmp/daemon.out
  $B find /sys/fs/bpf ! -type d > /tmp/pins 2>&1
  sect pins /tmp/pins
  if [ -x /bpftool ]; then /bpftool prog show > /tmp/progs 2>&1; kv bpftool_rc=$?; sect progs /tmp/progs; fi
  finish
fi

# The exact argv of a launch (monitor mode: it runs).
/monbin/busybox sh -c '/ok/busybox true "with space" "" end; echo "argv_rc=$?"' > /tmp/checks 2>&1
# Enforce mode: the approved command with LD_PRELOAD added, an unapproved launch,
# a managed deny (EPERM from the BPF LSM), then the approved command itself.
/hostbin/busybox sh -c '
LD_PRELOAD=/lib/none.so /ok/busybox touch /tmp/approved; echo "preload_rc=$?"
if [ -e /tmp/approved ]; then echo preload_ran=yes; else echo preload_ran=no; fi
/ok/busybox touch /tmp/unapproved; echo "unapproved_rc=$?"
/deny/busybox touch /tmp/denied; echo "deny_rc=$?"
/ok/busybox touch /tmp/approved; echo "approved_rc=$?"
' >> /tmp/checks 2>&1
# Threads: a second thread's exec (the old leader exits inside execve) and a leader
# thread that exits alone leave the host tracked: its unapproved launch is killed.
/mcpwatch run --host threads -- /threadexec thread-exec /ok/busybox touch /tmp/thread-exec
echo "thread_exec_rc=$?" >> /tmp/checks
/mcpwatch run --host threads -- /threadexec leader-exit /ok/busybox touch /tmp/leader-exit >> /tmp/checks 2>&1
kv thread_exec_ran=$(yesno /tmp/thread-exec)
kv leader_exit_ran=$(yesno /tmp/leader-exit)
kv unapproved_ran=$(yesno /tmp/unapproved)
kv denied_ran=$(yesno /tmp/denied)
kv approved_ran=$(yesno /tmp/approved)
echo "guest: enforce checks done after $(up) s"

# Ask mode: held in state T, then `mcpwatch allow` lets it run.
/askbin/busybox sh -c '/ok/busybox touch /tmp/asked & echo $! > /tmp/ask.pid; wait $!; echo $? > /tmp/ask.rc' > /tmp/ask.out 2>&1 &
i=0; while [ ! -s /tmp/ask.pid ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
P=$($B cat /tmp/ask.pid)
kv ask_pid=$P
i=0; while [ "$(state $P)" != T ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
kv ask_state=$(state $P)
$B sleep 1
kv ask_state_later=$(state $P)
kv ask_ran_early=$(yesno /tmp/asked)
ID=; i=0
while [ -z "$ID" ] && [ $i -lt 60 ]; do
  /mcpwatch pending > /tmp/pending.txt 2>&1
  ID=$($B sed -n "s/^#\([0-9][0-9]*\)  pid $P .*/\1/p" /tmp/pending.txt | $B head -n 1)
  [ -z "$ID" ] && $B sleep 0.25
  i=$((i+1))
done
/mcpwatch pending --json > /tmp/pending.json 2>&1
kv ask_id=$ID
/mcpwatch allow "$ID" --yes > /tmp/allow.out 2>&1
kv allow_rc=$?
i=0; while [ ! -s /tmp/ask.rc ] && [ $i -lt 200 ]; do $B sleep 0.1; i=$((i+1)); done
kv ask_rc=$($B cat /tmp/ask.rc)
kv ask_ran=$(yesno /tmp/asked)
echo "guest: ask check done after $(up) s"

# Ask mode, attacked: the host ignores SIGCHLD (then execs sleep, which keeps
# that), and its held child is sent SIGCONT by someone other than mcpwatch. The
# kernel kills it at its first instruction: nothing of it runs.
/askbin/busybox sh -c 'trap "" CHLD; /ok/busybox touch /tmp/resumed & echo $! > /tmp/resume.pid; exec /bin/busybox sleep 5' > /tmp/resume.out 2>&1 &
i=0; while [ ! -s /tmp/resume.pid ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
R=$($B cat /tmp/resume.pid)
i=0; while [ "$(state $R)" != T ] && [ $i -lt 100 ]; do $B sleep 0.1; i=$((i+1)); done
kv resume_state=$(state $R)
kill -CONT $R
$B sleep 1
kv resumed_ran=$(yesno /tmp/resumed)
echo "guest: resume check done after $(up) s"

/mcpwatch status --json > /tmp/status.json 2> /tmp/status.err
kv status_rc=$?
# Let the last events reach the log (log_fsync_ms is short in this config).
$B sleep 1
/mcpwatch log --json > /tmp/events.jsonl 2> /tmp/log.err
kv log_rc=$?
sect checks /tmp/checks
sect status /tmp/status.json
sect status_err /tmp/status.err
sect pending /tmp/pending.json
sect pending_txt /tmp/pending.txt
sect allow /tmp/allow.out
sect ask_out /tmp/ask.out
sect events /tmp/events.jsonl
sect log_err /tmp/log.err
$B tail -n 40 /tmp/daemon.err > /tmp/daemon.tail
sect daemon_err /tmp/daemon.tail
finish
"#;

const CONFIG: &str = r#"state_dir = "/var/lib/mcpwatch"
builtin_hosts = false
policy_dir = "/etc/mcpwatch/policy.d"
journal = "off"
log_fsync_ms = 20
ask_timeout_secs = 120

[[host]]
name = "guest"
exe = ["/hostbin/busybox"]
# Never executed: they make the kernel verify recognition by name and by
# package script too.
names = ["mcpwatch-guest-host"]
package_scripts = ["mcpwatch-guest/never/run.js"]

[[host]]
name = "asker"
exe = ["/askbin/busybox"]

[[host]]
name = "watcher"
exe = ["/monbin/busybox"]
"#;

const POLICY: &str = r#"[deny]
programs = ["/deny/busybox"]

[hosts.guest]
mode = "enforce"
lock = true

[hosts.asker]
mode = "ask"

[hosts.threads]
mode = "enforce"

[[approve]]
host = "guest"
exe = "/ok/busybox"
argv = ["/ok/busybox", "touch", "/tmp/approved"]
note = "kernel matrix: the approved launch"
"#;

/// A system-style bus for the guest: root may own `org.mcpwatch1`; everything may
/// be called (there is nobody else in the guest).
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy user="root">
    <allow own="org.mcpwatch1"/>
  </policy>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#;

/// What a guest wrote to its report port, and its console.
pub struct Report {
    pub kv: BTreeMap<String, String>,
    pub sections: BTreeMap<String, String>,
    /// The report ended with its `@@DONE` line.
    pub complete: bool,
    pub console: String,
    /// Wall time of the whole guest run (QEMU start to exit).
    pub elapsed: Duration,
}

impl Report {
    fn parse(report: &str, console: String, elapsed: Duration) -> Self {
        let mut kv = BTreeMap::new();
        let mut sections = BTreeMap::new();
        let mut complete = false;
        let mut open: Option<(String, String)> = None;
        for line in report.lines() {
            let line = line.trim_end_matches('\r');
            if let Some((name, body)) = &mut open {
                if line.strip_prefix("@@END ") == Some(name.as_str()) {
                    let (name, body) = open.take().expect("open section");
                    sections.insert(name, body.trim_end_matches('\n').to_owned());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            } else if let Some(name) = line.strip_prefix("@@BEGIN ") {
                open = Some((name.to_owned(), String::new()));
            } else if let Some((k, v)) = line.strip_prefix("KV ").and_then(|l| l.split_once('=')) {
                kv.insert(k.to_owned(), v.to_owned());
            } else if line == DONE {
                complete = true;
            }
        }
        Self {
            kv,
            sections,
            complete,
            console,
            elapsed,
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.kv.get(key).map_or("", String::as_str)
    }

    pub fn section(&self, name: &str) -> &str {
        self.sections.get(name).map_or("", String::as_str)
    }

    /// `key=value` lines of the `checks` section (what the host shells echoed).
    pub fn check(&self, key: &str) -> &str {
        self.section("checks")
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
    }

    /// Seconds of guest uptime between two `KV` timestamps.
    pub fn secs_between(&self, from: &str, to: &str) -> Option<f64> {
        let a: f64 = self.get(from).parse().ok()?;
        let b: f64 = self.get(to).parse().ok()?;
        Some(b - a)
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// qemu-system-x86, static busybox and dbus-daemon, installed with apt-get when
/// missing.
pub fn ensure_packages() -> Result<()> {
    let have_qemu = find_in_path("qemu-system-x86_64").is_some();
    let have_busybox = busybox().is_ok_and(|b| is_static(&b));
    let have_dbus = Path::new("/usr/bin/dbus-daemon").exists();
    if have_qemu && have_busybox && have_dbus {
        return Ok(());
    }
    if find_in_path("apt-get").is_none() {
        bail!("the kernel matrix needs qemu-system-x86, busybox-static and dbus (no apt-get here)");
    }
    say!("kernels: installing qemu-system-x86, busybox-static and dbus (apt-get)");
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
            "dbus",
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
    /// Paths already in the archive (directories and files), without the leading `/`.
    names: std::collections::BTreeSet<String>,
}

impl Cpio {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            ino: 1,
            names: std::collections::BTreeSet::new(),
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
        if self.names.insert(name.to_owned()) {
            self.entry(name, 0o040_755, &[]);
        }
    }

    fn file(&mut self, name: &str, mode: u32, body: &[u8]) {
        let name = name.trim_start_matches('/');
        // Parent directories first.
        let mut acc = String::new();
        if let Some((parents, _)) = name.rsplit_once('/') {
            for part in parents.split('/').filter(|p| !p.is_empty()) {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(part);
                let d = acc.clone();
                self.dir(&d);
            }
        }
        if self.names.insert(name.to_owned()) {
            self.entry(name, 0o100_000 | mode, body);
        }
    }

    fn binary_with_libs(&mut self, name: &str, bin: &Path) -> Result<()> {
        let body = fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
        self.file(name, 0o755, &body);
        for lib in shared_libs(bin)? {
            let shown = lib.display().to_string();
            // The same library is needed by several binaries: once is enough.
            if self.names.contains(shown.trim_start_matches('/')) {
                continue;
            }
            let body = fs::read(&lib).with_context(|| format!("reading {shown}"))?;
            self.file(&shown, 0o755, &body);
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.data
    }
}

/// The binaries a guest runs: the host build of the daemon and the CLI.
pub struct Bins {
    pub mcpwatchd: PathBuf,
    pub mcpwatch: PathBuf,
    /// `tests/src/bin/threadexec.rs`: a host whose threads exec or whose leader
    /// exits alone.
    pub threadexec: PathBuf,
}

impl Bins {
    /// The binaries of a debug or release build in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            mcpwatchd: dir.join("mcpwatchd"),
            mcpwatch: dir.join("mcpwatch"),
            threadexec: dir.join("threadexec"),
        }
    }
}

/// Builds the initramfs every kernel of the matrix boots (it does not depend on
/// the kernel).
pub fn build_initramfs(bins: &Bins, out: &Path) -> Result<()> {
    let bb = fs::read(busybox()?)?;
    let mut c = Cpio::new();
    for d in [
        "proc", "sys", "dev", "tmp", "run", "etc", "var", "var/lib", "bin", "root",
    ] {
        c.dir(d);
    }
    c.file("bin/busybox", 0o755, &bb);
    // More copies of busybox: distinct inodes, so distinct identities (three hosts,
    // the launched program, the denied one).
    for d in ["hostbin", "askbin", "monbin", "ok"] {
        c.file(&format!("{d}/busybox"), 0o755, &bb);
    }
    // The denied one with other content (trailing bytes; the ELF loader ignores
    // them): denies match by content too, and `/ok/busybox` must not be denied.
    let mut denied = bb.clone();
    denied.extend_from_slice(b"\0mcpwatch-denied-copy\0");
    c.file("deny/busybox", 0o755, &denied);
    c.file("init", 0o755, INIT.as_bytes());
    c.binary_with_libs("mcpwatchd", &bins.mcpwatchd)?;
    c.binary_with_libs("mcpwatch", &bins.mcpwatch)?;
    c.binary_with_libs("threadexec", &bins.threadexec)?;
    c.binary_with_libs("usr/bin/dbus-daemon", Path::new("/usr/bin/dbus-daemon"))?;
    // Optional: lists leftover programs after a refused start.
    if let Some(bpftool) = ["/usr/sbin/bpftool", "/sbin/bpftool"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    {
        c.binary_with_libs("bpftool", bpftool)?;
    }
    c.file("etc/mcpwatch.toml", 0o644, CONFIG.as_bytes());
    c.file("etc/mcpwatch/policy.d/guest.toml", 0o644, POLICY.as_bytes());
    c.file("etc/dbus-guest.conf", 0o644, BUS_CONFIG.as_bytes());
    c.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    c.file("etc/group", 0o644, b"root:x:0:\n");
    c.file(
        "etc/machine-id",
        0o644,
        b"6d637077617463686b65726e656c7331\n",
    );
    let data = c.finish();
    let mut f = fs::File::create(out)?;
    f.write_all(&data)?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// Boots `kernel` with `initrd` under QEMU (TCG, one vCPU) and returns what the
/// guest reported. `label` prefixes the progress lines.
pub fn boot(label: &str, kernel: &Path, initrd: &Path, work: &Path) -> Result<Report> {
    fs::create_dir_all(work)?;
    let console = work.join("console.log");
    let report = work.join("report.log");
    let qemu_log = work.join("qemu.log");
    let log = fs::File::create(&qemu_log)?;
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "1"])
        .args(["-display", "none", "-no-reboot", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", report.display()))
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
    let mut next_note = Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!(
                    "qemu exited with {st}: {}",
                    fs::read_to_string(&qemu_log).unwrap_or_default().trim()
                );
            }
            break;
        }
        let elapsed = start.elapsed();
        if elapsed > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the guest did not finish within {} s; console (tail):\n{}",
                BOOT_TIMEOUT.as_secs(),
                tail(&read_lossy(&console), 40)
            );
        }
        if elapsed >= next_note {
            let last = read_lossy(&console)
                .lines()
                .rev()
                .find(|l| l.starts_with("guest: "))
                .map(str::to_owned)
                .unwrap_or_default();
            say!(
                "kernels: {label}: running for {} s{}",
                elapsed.as_secs(),
                if last.is_empty() {
                    String::new()
                } else {
                    format!(" (last: {last})")
                }
            );
            next_note += Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(Report::parse(
        &read_lossy(&report),
        read_lossy(&console),
        start.elapsed(),
    ))
}

fn read_lossy(p: &Path) -> String {
    String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Report;

    #[test]
    fn report_sections_and_values_are_parsed() {
        let text = "KV kernel=6.1.0-50-amd64\r\nKV lsm=lockdown,bpf\n@@BEGIN checks\nargv_rc=0\n\n@@END checks\n@@BEGIN status\n{\"a\":1}\n@@END status\n@@DONE\n";
        let r = Report::parse(text, String::new(), Duration::ZERO);
        assert!(r.complete);
        assert_eq!(r.get("kernel"), "6.1.0-50-amd64");
        assert_eq!(r.get("lsm"), "lockdown,bpf");
        assert_eq!(r.check("argv_rc"), "0");
        assert_eq!(r.section("status"), "{\"a\":1}");
        assert_eq!(r.get("missing"), "");
    }
}
