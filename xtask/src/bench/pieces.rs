//! The pieces a bench run is made of: the private bus, the daemon, its status and
//! counters, the storm, and what is left of other daemons.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::guards::Proc;
use super::{Env, Prog, Status, PIN_DIR, READY_TIMEOUT};
use crate::util::{say, show};

pub(super) fn start_private_bus(dir: &Path) -> Result<(Proc, String)> {
    let sock = dir.join("bus.sock");
    let log = dir.join("dbus.log");
    let mut cmd = Command::new("dbus-daemon");
    cmd.arg("--config-file=/usr/share/dbus-1/session.conf")
        .arg(format!("--address=unix:path={}", sock.display()))
        .args(["--nofork", "--print-address=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log)?);
    say!("bench: + {}", show(&cmd));
    let mut child = cmd.spawn().context("cannot start dbus-daemon")?;
    let stdout = child.stdout.take().expect("piped");
    let bus = Proc {
        what: "dbus-daemon",
        child,
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("cannot read the private bus address")?;
    let address = line.trim().to_owned();
    if address.is_empty() {
        bail!(
            "dbus-daemon exited without printing its address: {}",
            tail(&log, 10)
        );
    }
    Ok((bus, address))
}

/// Tail of a log file, for error messages.
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn cli(env: &Env) -> Command {
    let mut c = Command::new(&env.mcpwatch);
    c.env("DBUS_SYSTEM_BUS_ADDRESS", &env.bus)
        .stdin(Stdio::null());
    c
}

pub(super) fn start_daemon(env: &Env, n: u32) -> Result<Proc> {
    let log = env.dir.join(format!("mcpwatchd.{n}.log"));
    let log_file = fs::File::create(&log)?;
    let mut cmd = Command::new(&env.mcpwatchd);
    if let Some(c) = &env.daemon_config {
        cmd.arg("--config").arg(c);
    }
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", &env.bus)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    say!("bench: + {}  (log {})", show(&cmd), log.display());
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", env.mcpwatchd.display()))?;
    let mut daemon = Proc {
        what: "mcpwatchd",
        child,
    };
    let start = Instant::now();
    loop {
        if let Some(st) = daemon.child.try_wait()? {
            bail!(
                "mcpwatchd exited ({st}) before it was ready; its log:\n{}",
                tail(&log, 30)
            );
        }
        let up = cli(env)
            .arg("status")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", env.mcpwatch.display()))?;
        if up.success() {
            say!(
                "bench: mcpwatchd (pid {}) ready after {:.1} s",
                daemon.pid(),
                start.elapsed().as_secs_f64()
            );
            return Ok(daemon);
        }
        if start.elapsed() > READY_TIMEOUT {
            daemon.stop(Duration::from_secs(5));
            bail!(
                "mcpwatchd did not become ready (`mcpwatch status` exit 0) within {READY_TIMEOUT:?}; its log:\n{}",
                tail(&log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(super) fn status_json(env: &Env) -> Option<Status> {
    let out = cli(env)
        .args(["status", "--json"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .map(|v| Status::parse(&v))
}

/// utime + stime of a process (all its threads), in seconds.
pub(super) fn cpu_secs(pid: i32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').context("bad /proc/PID/stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[allow(clippy::cast_precision_loss)] // tick counts are far below 2^52
    Ok((utime + stime) as f64 / hz as f64)
}

pub(super) fn hwm_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets `VmHWM` to the current RSS (proc(5): `clear_refs` "5").
pub(super) fn reset_hwm(pid: i32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

pub(super) struct Storm {
    pub(super) secs: f64,
    pub(super) failed: u64,
    pub(super) method: String,
}

pub(super) fn run_storm(mut cmd: Command) -> Result<Storm> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let shown = show(&cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["secs"].is_number())
        })
        .with_context(|| format!("`{shown}` printed no storm result: {text:?}"))?;
    Ok(Storm {
        secs: v["secs"].as_f64().unwrap_or(f64::NAN),
        failed: v["failed"].as_u64().unwrap_or(0),
        method: v["method"].as_str().unwrap_or("?").to_owned(),
    })
}

pub(super) fn other_daemons() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "mcpwatchd").then_some(pid)
    })
    .collect()
}

pub(super) fn pins_present() -> bool {
    fs::read_dir(PIN_DIR).is_ok_and(|mut d| d.next().is_some())
}

pub(super) fn remove_pins(why: &str) -> Result<()> {
    if Path::new(PIN_DIR).exists() {
        fs::remove_dir_all(PIN_DIR).with_context(|| format!("cannot remove {PIN_DIR}"))?;
        say!("bench: removed {PIN_DIR} ({why})");
    }
    // A link keeper (the fallback when links cannot be pinned) also keeps the
    // programs attached: stop it too.
    for pid in keepers() {
        // SAFETY: plain kill(2) of a process whose argv says it is a link keeper.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        say!("bench: stopped link keeper pid {pid} ({why})");
    }
    Ok(())
}

/// `mcpwatchd --hold-links` processes.
pub(super) fn keepers() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        cmdline
            .split(|&b| b == 0)
            .any(|a| a == b"--hold-links")
            .then_some(pid)
    })
    .collect()
}

pub(super) fn delta_programs(before: &[Prog], after: &[Prog]) -> BTreeMap<String, (u64, u64)> {
    after
        .iter()
        .map(|a| {
            let b = before.iter().find(|b| b.name == a.name);
            let (t0, c0) = b.map_or((0, 0), |b| (b.run_time_ns, b.run_cnt));
            (
                a.name.clone(),
                (
                    a.run_time_ns.saturating_sub(t0),
                    a.run_cnt.saturating_sub(c0),
                ),
            )
        })
        .collect()
}
