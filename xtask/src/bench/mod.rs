//! `cargo xtask bench`: what the daemon costs an exec storm.
//!
//! Three configurations, run once per round in a rotated order (A B C, B C A, C A B,
//! ...) so drift on a noisy VM spreads over all of them:
//! - A: no daemon (and no mcpwatch programs pinned): the baseline;
//! - B: daemon running, the storm untracked (the cost every process on the machine
//!   pays: a map lookup per fork/exec/exit);
//! - C: daemon running, the storm started as a tracked host with
//!   `mcpwatch run -- storm N` (every exec becomes an event), host in monitor mode;
//! - D: as C, but the host is in enforce mode and `/bin/true` is approved: every
//!   exec is checked against the consent records in the kernel (argv hash, exact
//!   compare, environment scan) and allowed. D/C is the cost of enforcement.
//!
//! Every configuration runs the storm in the same realistic environment of about
//! 3 KiB (`PATH`, `HOME`, `LANG`, `LS_COLORS`, …) with one security-relevant variable,
//! `NODE_OPTIONS`, set: D's record is approved from a launch with that value (by its
//! event id, as a user would), so the kernel compares it on every exec. After the
//! rounds, the bench runs D's storm once more with that value changed and checks
//! that every launch was killed: a bench that measured a check which no longer
//! checks would measure nothing.
//!
//! The storm (`tests/src/bin/storm.rs`) times only its own loop. For B and C the
//! daemon's CPU time (utime+stime of `/proc/PID/stat`), its peak RSS (`VmHWM`, reset
//! before each run through `/proc/PID/clear_refs`), its lost-event and event counters
//! and, when `mcpwatch status --json` has a `programs` array, the per-program
//! `run_time_ns`/`run_cnt` (with `kernel.bpf_stats_enabled=1`) are sampled before
//! and after each run. The daemon talks to a private bus started here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::setup::{run_setup, Mode};
use crate::util::{bin_dir, build_bins, find_in_path, is_root, say, show};

/// Where the daemon pins its programs and maps (DESIGN.md principle 2).
const PIN_DIR: &str = "/sys/fs/bpf/mcpwatch";
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// The `lost` counters `mcpwatch status --json` promises (table column order).
const LOST_KINDS: [&str; 3] = ["ringbuf", "queue", "broadcast"];
const READY_TIMEOUT: Duration = Duration::from_secs(45);

pub struct Opts {
    pub execs: u64,
    pub rounds: u32,
    pub daemon_config: Option<PathBuf>,
    pub unpin: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Config {
    A,
    B,
    C,
    D,
}

/// The host name of the enforce-mode storm (D).
const ENFORCE_HOST: &str = "bench-enforce";
/// The security-relevant entry of the storm's environment, as approved for D.
const APPROVED_ENV: (&str, &str) = ("NODE_OPTIONS", "--max-old-space-size=512");
/// Execs of the kill check (D's storm with `APPROVED_ENV` changed).
const KILL_CHECK_EXECS: u64 = 200;

/// The storm's environment: a realistic desktop session of about 3 KiB, plus
/// `security` (`APPROVED_ENV`, or a changed value for the kill check). The same for
/// every configuration, so they differ only in what the daemon does.
fn storm_env(bus: &str, security: (&str, &str)) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/root"),
        ("LANG", "en_US.UTF-8"),
        ("LC_ALL", "en_US.UTF-8"),
        ("USER", "root"),
        ("LOGNAME", "root"),
        ("SHELL", "/bin/bash"),
        ("TERM", "xterm-256color"),
        ("XDG_RUNTIME_DIR", "/run/user/0"),
        ("XDG_SESSION_TYPE", "wayland"),
        ("XDG_CURRENT_DESKTOP", "GNOME"),
        ("DISPLAY", ":0"),
        ("EDITOR", "vim"),
        ("PWD", "/root"),
        ("SHLVL", "2"),
        ("NODE_ENV", "production"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let colors: Vec<String> = (0..140)
        .map(|i| format!("*.x{i:03}=01;3{}", i % 8))
        .collect();
    env.push(("LS_COLORS".into(), colors.join(":")));
    env.push(("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.to_owned()));
    env.push((security.0.to_owned(), security.1.to_owned()));
    env
}

/// Bytes of an environment block (each entry `K=V` and its NUL).
fn env_bytes(env: &[(String, String)]) -> usize {
    env.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
}

impl Config {
    const ALL: [Config; 4] = [Config::A, Config::B, Config::C, Config::D];

    fn label(self) -> &'static str {
        match self {
            Config::A => "A: no daemon",
            Config::B => "B: daemon, storm untracked",
            Config::C => "C: daemon, storm tracked",
            Config::D => "D: tracked, enforce, approved",
        }
    }
}

/// One program's cumulative kernel stats, as the daemon reports them.
#[derive(Clone, Debug)]
struct Prog {
    name: String,
    run_time_ns: u64,
    run_cnt: u64,
}

/// The parts of `mcpwatch status --json` the bench reads.
#[derive(Clone, Debug, Default)]
struct Status {
    /// Every numeric `lost.*` counter; `None` unless ringbuf, queue and broadcast
    /// (the documented ones) are all there.
    lost: Option<BTreeMap<String, u64>>,
    events: Option<u64>,
    programs: Option<Vec<Prog>>,
    /// (program, `verified_insns`) as the daemon reports them.
    insns: Option<Vec<(String, Option<u64>)>>,
}

impl Status {
    fn parse(v: &Value) -> Status {
        let lost = v["lost"].as_object().and_then(|o| {
            let m: BTreeMap<String, u64> = o
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect();
            LOST_KINDS.iter().all(|k| m.contains_key(*k)).then_some(m)
        });
        let programs = v["programs"].as_array().map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some(Prog {
                        name: p["name"].as_str()?.to_owned(),
                        run_time_ns: p["run_time_ns"].as_u64()?,
                        run_cnt: p["run_cnt"].as_u64()?,
                    })
                })
                .collect()
        });
        let insns = v["programs"].as_array().map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some((p["name"].as_str()?.to_owned(), p["verified_insns"].as_u64()))
                })
                .collect()
        });
        Status {
            lost,
            events: v["events"].as_u64(),
            programs,
            insns,
        }
    }
}

/// What one storm run measured.
#[derive(Debug, Default)]
struct Sample {
    secs: f64,
    failed: u64,
    daemon_cpu_secs: Option<f64>,
    hwm_kib: Option<u64>,
    /// `lost.*` counters during the run.
    lost: Option<BTreeMap<String, u64>>,
    events: Option<u64>,
    /// name -> (`run_time_ns`, `run_cnt`) during the run
    programs: Option<BTreeMap<String, (u64, u64)>>,
}

// ---------------------------------------------------------------- guards

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let p = std::env::temp_dir().join(format!("mcpwatch-bench.{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
struct Proc {
    what: &'static str,
    child: Child,
}

impl Proc {
    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits in i32")
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns whether it exited by itself.
    fn stop(&mut self, grace: Duration) -> bool {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return true;
        }
        // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        say!(
            "bench: {} (pid {}) ignored SIGTERM for {grace:?}: SIGKILL",
            self.what,
            self.pid()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Turns on `kernel.bpf_stats_enabled` and restores the old value on drop.
struct BpfStats(Option<String>);

impl BpfStats {
    fn enable() -> BpfStats {
        let old = fs::read_to_string(BPF_STATS)
            .ok()
            .map(|s| s.trim().to_owned());
        match fs::write(BPF_STATS, "1") {
            Ok(()) => say!(
                "bench: sysctl kernel.bpf_stats_enabled=1 (was {})",
                old.as_deref().unwrap_or("?")
            ),
            Err(e) => {
                say!("bench: cannot enable kernel.bpf_stats_enabled ({e}): no per-program stats");
            }
        }
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            if fs::write(BPF_STATS, old).is_ok() {
                say!("bench: sysctl kernel.bpf_stats_enabled={old} (restored)");
            }
        }
    }
}

// ---------------------------------------------------------------- pieces

struct Env {
    mcpwatchd: PathBuf,
    mcpwatch: PathBuf,
    storm: PathBuf,
    bus: String,
    dir: PathBuf,
    daemon_config: Option<PathBuf>,
}

fn start_private_bus(dir: &Path) -> Result<(Proc, String)> {
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
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn cli(env: &Env) -> Command {
    let mut c = Command::new(&env.mcpwatch);
    c.env("DBUS_SYSTEM_BUS_ADDRESS", &env.bus)
        .stdin(Stdio::null());
    c
}

fn start_daemon(env: &Env, n: u32) -> Result<Proc> {
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

fn status_json(env: &Env) -> Option<Status> {
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
fn cpu_secs(pid: i32) -> Result<f64> {
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

fn hwm_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets `VmHWM` to the current RSS (proc(5): `clear_refs` "5").
fn reset_hwm(pid: i32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

struct Storm {
    secs: f64,
    failed: u64,
    method: String,
}

fn run_storm(mut cmd: Command) -> Result<Storm> {
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

fn other_daemons() -> Vec<i32> {
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

fn pins_present() -> bool {
    fs::read_dir(PIN_DIR).is_ok_and(|mut d| d.next().is_some())
}

fn remove_pins(why: &str) -> Result<()> {
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
fn keepers() -> Vec<i32> {
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

fn delta_programs(before: &[Prog], after: &[Prog]) -> BTreeMap<String, (u64, u64)> {
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

/// One storm run in configuration `cfg` (the daemon, if any, already running).
fn measure(env: &Env, cfg: Config, execs: u64, daemon: Option<&Proc>) -> Result<(Sample, String)> {
    let tracked = matches!(cfg, Config::C | Config::D);
    let mut storm = if tracked {
        let mut c = cli(env);
        c.arg("run");
        if cfg == Config::D {
            ensure_enforce_host(env)?;
            c.args(["--host", ENFORCE_HOST]);
        }
        c.arg("--").arg(&env.storm);
        c
    } else {
        Command::new(&env.storm)
    };
    storm.env_clear().envs(storm_env(&env.bus, APPROVED_ENV));
    storm.arg(execs.to_string());

    let Some(d) = daemon else {
        let s = run_storm(storm)?;
        let sample = Sample {
            secs: s.secs,
            failed: s.failed,
            ..Sample::default()
        };
        return Ok((sample, s.method));
    };
    let pid = d.pid();
    let before = status_json(env);
    let hwm_reset = reset_hwm(pid);
    let cpu0 = cpu_secs(pid)?;
    let s = run_storm(storm)?;
    // The daemon drains the ring on a short poll: let it finish the run's events
    // before reading its CPU time and counters, so both cover the whole run.
    let mut after = status_json(env);
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let now = status_json(env);
        let settled = now.as_ref().and_then(|n| n.events) == after.as_ref().and_then(|a| a.events);
        after = now;
        if settled {
            break;
        }
    }
    let cpu1 = cpu_secs(pid)?;
    let hwm = if hwm_reset { hwm_kib(pid) } else { None };
    let (before, after) = (before.unwrap_or_default(), after.unwrap_or_default());
    let lost = before.lost.zip(after.lost).map(|(b, a)| {
        a.into_iter()
            .map(|(k, n)| {
                let n0 = b.get(&k).copied().unwrap_or(0);
                (k, n.saturating_sub(n0))
            })
            .collect()
    });
    let events = before
        .events
        .zip(after.events)
        .map(|(b, a)| a.saturating_sub(b));
    let programs = before
        .programs
        .as_deref()
        .zip(after.programs.as_deref())
        .map(|(b, a)| delta_programs(b, a));
    let sample = Sample {
        secs: s.secs,
        failed: s.failed,
        daemon_cpu_secs: Some(cpu1 - cpu0),
        hwm_kib: hwm,
        lost,
        events,
        programs,
    };
    Ok((sample, s.method))
}

/// D's host: in enforce mode, with `/bin/true` (what the storm runs) approved from
/// a launch in the storm's environment, so the record requires `APPROVED_ENV`. The
/// store keeps both across daemon restarts; set them up once.
fn ensure_enforce_host(env: &Env) -> Result<()> {
    let out = cli(env).args(["records", "--json"]).output()?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let approved = v["records"].as_array().is_some_and(|rs| {
        rs.iter().any(|r| {
            r["host"] == ENFORCE_HOST
                && r["argv"] == serde_json::json!(["/bin/true"])
                && r["env"][APPROVED_ENV.0] == APPROVED_ENV.1
        })
    });
    let mode = |m: &str| -> Result<()> {
        let st = cli(env)
            .args(["mode", ENFORCE_HOST, m])
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("could not set {ENFORCE_HOST} to {m} ({st})");
        }
        Ok(())
    };
    if !approved {
        // One launch in monitor mode, then approve it by its event id.
        mode("monitor")?;
        let mut one = cli(env);
        one.args(["run", "--host", ENFORCE_HOST, "--"])
            .arg(&env.storm)
            .arg("1")
            .env_clear()
            .envs(storm_env(&env.bus, APPROVED_ENV));
        run_storm(one)?;
        let config = env.daemon_config.as_ref().context("daemon config")?;
        let deadline = Instant::now() + Duration::from_secs(15);
        let id = loop {
            let out = cli(env)
                .args(["log", "--json", "--kind", "launch", "--host", ENFORCE_HOST])
                .arg("--config")
                .arg(config)
                .output()?;
            let id = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|e| e["argv"] == serde_json::json!(["/bin/true"]))
                .filter_map(|e| e["id"].as_u64())
                .max();
            if let Some(id) = id {
                break id;
            }
            if Instant::now() > deadline {
                bail!("the launch of /bin/true by {ENFORCE_HOST} never reached the log");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let st = cli(env)
            .args(["approve", &id.to_string(), "--yes"])
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("could not approve launch {id} of /bin/true for {ENFORCE_HOST} ({st})");
        }
    }
    if !approved || v["modes"][ENFORCE_HOST]["mode"] != "enforce" {
        mode("enforce")?;
    }
    Ok(())
}

/// D's storm with `APPROVED_ENV` changed: every launch must be killed. Returns how
/// many of `KILL_CHECK_EXECS` were.
fn kill_check(env: &Env) -> Result<u64> {
    ensure_enforce_host(env)?;
    let mut c = cli(env);
    c.args(["run", "--host", ENFORCE_HOST, "--"])
        .arg(&env.storm)
        .arg(KILL_CHECK_EXECS.to_string())
        .env_clear()
        .envs(storm_env(
            &env.bus,
            (APPROVED_ENV.0, "--max-old-space-size=513"),
        ));
    Ok(run_storm(c)?.failed)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// Refuses to bench when config A could not be a baseline.
fn preflight(o: &Opts) -> Result<()> {
    let others = other_daemons();
    if !others.is_empty() {
        bail!("mcpwatchd is already running (pid {others:?}): stop it first, config A must run unmonitored");
    }
    if pins_present() || !keepers().is_empty() {
        if o.unpin {
            remove_pins("--unpin")?;
        } else {
            bail!(
                "{PIN_DIR} holds pinned mcpwatch programs/maps, which stay attached without a daemon, \
                 so config A would not be unmonitored. Remove them (`rm -r {PIN_DIR}`) or pass --unpin."
            );
        }
    }
    if find_in_path("dbus-daemon").is_none() {
        bail!("dbus-daemon is missing (run `cargo xtask setup`)");
    }
    Ok(())
}

/// The daemon's config file: `--daemon-config`, or a temp one.
fn daemon_config(o: &Opts, dir: &Path) -> Result<PathBuf> {
    // The embedded default config keeps its state (audit log) in /var/lib/mcpwatch;
    // the storm would add ~execs×rounds×2 events to it. Unless told otherwise, run
    // on the defaults with the state in the bench's temp dir.
    if let Some(c) = &o.daemon_config {
        return Ok(c.clone());
    }
    let c = dir.join("mcpwatch.toml");
    let state = dir.join("state");
    fs::write(
        &c,
        format!("state_dir = {:?}\n", state.display().to_string()),
    )?;
    say!(
        "bench: daemon config {}: defaults, state_dir {}",
        c.display(),
        state.display()
    );
    Ok(c)
}

pub fn bench(o: &Opts) -> Result<()> {
    if !is_root() {
        bail!("bench needs root: it starts mcpwatchd (eBPF) and sets kernel.bpf_stats_enabled");
    }
    if o.rounds == 0 || o.execs == 0 {
        bail!("--rounds and --execs must be at least 1");
    }
    run_setup(Mode::Required)?;
    build_bins(true)?;
    let bins = bin_dir(true)?;
    let tmp = TempDir::new()?;
    preflight(o)?;
    let daemon_config = daemon_config(o, &tmp.0)?;
    let (bus_proc, bus) = start_private_bus(&tmp.0)?;
    let env = Env {
        mcpwatchd: bins.join("mcpwatchd"),
        mcpwatch: bins.join("mcpwatch"),
        storm: bins.join("storm"),
        bus,
        dir: tmp.0.clone(),
        daemon_config: Some(daemon_config),
    };
    say!("bench: private bus at {}", env.bus);
    let stats = BpfStats::enable();

    let mut samples: BTreeMap<Config, Vec<Sample>> = BTreeMap::new();
    let mut method = String::new();
    let mut daemon: Option<Proc> = None;
    let mut daemon_starts = 0;
    let mut killed = 0;
    let mut insns = Vec::new();
    say!(
        "bench: storm environment: {} entries, {} bytes, {}={} (approved for D)",
        storm_env(&env.bus, APPROVED_ENV).len(),
        env_bytes(&storm_env(&env.bus, APPROVED_ENV)),
        APPROVED_ENV.0,
        APPROVED_ENV.1
    );
    let result = (|| -> Result<()> {
        for round in 0..o.rounds {
            for i in 0..Config::ALL.len() {
                let cfg =
                    Config::ALL[(usize::try_from(round).unwrap_or(0) + i) % Config::ALL.len()];
                say!(
                    "bench: round {}/{}: {} ({} execs)",
                    round + 1,
                    o.rounds,
                    cfg.label(),
                    o.execs
                );
                if cfg == Config::A {
                    if let Some(mut d) = daemon.take() {
                        d.stop(Duration::from_secs(15));
                        remove_pins("left by the bench's daemon; config A runs unmonitored")?;
                    }
                } else if daemon.is_none() {
                    daemon_starts += 1;
                    daemon = Some(start_daemon(&env, daemon_starts)?);
                }
                let (s, m) = measure(&env, cfg, o.execs, daemon.as_ref())?;
                if s.failed > 0 {
                    say!(
                        "bench: warning: {} of {} children did not exit 0",
                        s.failed,
                        o.execs
                    );
                }
                say!("bench:   {:.3} s", s.secs);
                method = m;
                samples.entry(cfg).or_default().push(s);
            }
        }
        if daemon.is_none() {
            daemon_starts += 1;
            daemon = Some(start_daemon(&env, daemon_starts)?);
        }
        say!(
            "bench: kill check: D's storm with {} changed",
            APPROVED_ENV.0
        );
        killed = kill_check(&env)?;
        insns = status_json(&env).and_then(|s| s.insns).unwrap_or_default();
        Ok(())
    })();
    if let Some(mut d) = daemon.take() {
        d.stop(Duration::from_secs(15));
        remove_pins("left by the bench's daemon")?;
    }
    drop(stats);
    drop(bus_proc);
    result?;
    print!("{}", report(o, &method, &samples));
    report_kernel(&insns, killed, &samples)
}

/// The verifier's counts and the enforce check; an error when the check failed.
fn report_kernel(
    insns: &[(String, Option<u64>)],
    killed: u64,
    samples: &BTreeMap<Config, Vec<Sample>>,
) -> Result<()> {
    println!(
        "\nverified instructions per program (kernel {}; budget 200000 = 20 % of the verifier's limit):",
        kernel_release()
    );
    for (name, n) in insns {
        println!(
            "  {name:<28} {}",
            n.map_or_else(|| "not reported".to_owned(), |n| n.to_string())
        );
    }
    let d_failed: u64 = samples
        .get(&Config::D)
        .map_or(0, |v| v.iter().map(|s| s.failed).sum());
    println!(
        "\nenforce check: {killed} of {KILL_CHECK_EXECS} launches with {} changed were killed; {d_failed} approved launches of D failed",
        APPROVED_ENV.0
    );
    if killed != KILL_CHECK_EXECS || d_failed != 0 {
        bail!("the enforce-mode storm did not decide as approved: the benchmark measured the wrong thing");
    }
    Ok(())
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn report(o: &Opts, method: &str, samples: &BTreeMap<Config, Vec<Sample>>) -> String {
    let mut r = String::new();
    let med = |c: Config| {
        samples.get(&c).map_or(f64::NAN, |v| {
            median(&v.iter().map(|s| s.secs).collect::<Vec<_>>())
        })
    };
    let base = med(Config::A);
    let _ = writeln!(
        r,
        "\nmcpwatch bench: {} execs of /bin/true per run ({method}), {} rounds, order rotated per round",
        o.execs, o.rounds
    );
    let _ = writeln!(
        r,
        "{:<28} {:>9} {:>8} {:>7} {:>7} {:>11} {:>10} {:>15} {:>10}",
        "config",
        "median s",
        "execs/s",
        "time/A",
        "A/time",
        "daemon CPU",
        "peak RSS",
        "lost rb/q/bc",
        "events"
    );
    let _ = writeln!(
        r,
        "{:<28} {:>9} {:>8} {:>7} {:>7} {:>11} {:>10} {:>15} {:>10}",
        "", "", "", "", "", "s/run", "MiB", "(total)", "per run"
    );
    for cfg in Config::ALL {
        let Some(v) = samples.get(&cfg) else { continue };
        table_row(&mut r, o.execs, cfg, v, med(cfg), base);
    }
    let (c, d) = (med(Config::C), med(Config::D));
    if c.is_finite() && d.is_finite() {
        let _ = writeln!(
            r,
            "D/C: {:.3}  (enforce mode, every launch checked and allowed in the kernel, against monitor mode; same run)",
            d / c
        );
    }
    let _ = writeln!(r, "\nruns (s):");
    for (cfg, v) in samples {
        let runs: Vec<String> = v.iter().map(|s| format!("{:.3}", s.secs)).collect();
        let failed: u64 = v.iter().map(|s| s.failed).sum();
        let _ = writeln!(
            r,
            "  {:<28} {}{}",
            cfg.label(),
            runs.join("  "),
            if failed > 0 {
                format!("  ({failed} children failed)")
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        r,
        "time/A: median time relative to A (lower is better); A/time: throughput kept (PLATFORM.md peers: bpftrace 0.92, auditd 0.86)."
    );
    for (cfg, v) in samples {
        let others: Vec<String> = lost_totals(v)
            .into_iter()
            .flatten()
            .filter(|(k, _)| !LOST_KINDS.contains(&k.as_str()))
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        if *cfg != Config::A && !others.is_empty() {
            let _ = writeln!(
                r,
                "other lost counters, {} (total): {}",
                cfg.label(),
                others.join(", ")
            );
        }
    }
    if samples
        .iter()
        .any(|(c, v)| *c != Config::A && v.iter().any(|s| s.lost.is_none()))
    {
        let _ = writeln!(r, "lost/events: `mcpwatch status --json` lacked lost.{{ringbuf,queue,broadcast}} or events for some runs (shown as -).");
    }
    report_programs(&mut r, samples);
    r
}

/// `lost.*` counters summed over the runs (`None` if a run lacked them).
fn lost_totals(v: &[Sample]) -> Option<BTreeMap<String, u64>> {
    let mut total = BTreeMap::new();
    for s in v {
        for (k, n) in s.lost.as_ref()? {
            *total.entry(k.clone()).or_insert(0) += n;
        }
    }
    Some(total)
}

/// One line of the main table: configuration `cfg` with median time `m`.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn table_row(r: &mut String, execs: u64, cfg: Config, v: &[Sample], m: f64, base: f64) {
    let dash = || "-".to_owned();
    let cpu = v
        .iter()
        .map(|s| s.daemon_cpu_secs)
        .collect::<Option<Vec<_>>>();
    let cpu = cpu
        .filter(|c| !c.is_empty())
        .map_or_else(dash, |c| format!("{:.3}", median(&c)));
    let hwm = v
        .iter()
        .filter_map(|s| s.hwm_kib)
        .max()
        .map_or_else(dash, |k| format!("{:.1}", k as f64 / 1024.0));
    let lost = lost_totals(v)
        .filter(|_| cfg != Config::A)
        .map_or_else(dash, |t| {
            let n = |k: &str| t.get(k).copied().unwrap_or(0);
            format!("{}/{}/{}", n("ringbuf"), n("queue"), n("broadcast"))
        });
    let events = v
        .iter()
        .map(|s| s.events.map(|e| e as f64))
        .collect::<Option<Vec<_>>>()
        .filter(|_| cfg != Config::A)
        .map_or_else(dash, |e| format!("{:.0}", median(&e)));
    let _ = writeln!(
        r,
        "{:<28} {:>9.3} {:>8.0} {:>7.3} {:>7.3} {:>11} {:>10} {:>15} {:>10}",
        cfg.label(),
        m,
        execs as f64 / m,
        m / base,
        base / m,
        cpu,
        hwm,
        lost,
        events
    );
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}

/// Per-program kernel stats (B and C), summed over the rounds.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn report_programs(r: &mut String, samples: &BTreeMap<Config, Vec<Sample>>) {
    let _ = writeln!(
        r,
        "\nper-program BPF stats during the storm (kernel.bpf_stats_enabled=1):"
    );
    let mut any = false;
    for cfg in [Config::B, Config::C, Config::D] {
        let Some(v) = samples.get(&cfg) else { continue };
        let mut total: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for s in v {
            for (name, (t, c)) in s.programs.iter().flatten() {
                let e = total.entry(name).or_default();
                e.0 += t;
                e.1 += c;
            }
        }
        for (name, (t, c)) in total {
            any = true;
            let runs = v.len() as f64;
            let avg = if c == 0 {
                String::from("-")
            } else {
                format!("{:.0}", t as f64 / c as f64)
            };
            let _ = writeln!(
                r,
                "  {:<28} {:<28} run_cnt/run {:>10.0}  avg ns/run {:>7}  ms/run {:>9.1}",
                cfg.label(),
                name,
                c as f64 / runs,
                avg,
                t as f64 / runs / 1e6
            );
        }
    }
    if !any {
        let _ = writeln!(r, "  none: `mcpwatch status --json` has no \"programs\": [{{\"name\", \"run_time_ns\", \"run_cnt\"}}] array (or B/C did not run)");
        return;
    }
    // The exec program per exec, the numbers the kernel budget is about.
    let per_exec = |cfg: Config| -> Option<f64> {
        let (mut t, mut c) = (0u64, 0u64);
        for s in samples.get(&cfg)? {
            let (dt, dc) = s.programs.as_ref()?.get("sched_process_exec").copied()?;
            t += dt;
            c += dc;
        }
        (c > 0).then(|| t as f64 / c as f64 / 1000.0)
    };
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |us| format!("{us:.2} µs"));
    let _ = writeln!(
        r,
        "sched_process_exec per exec (run_time_ns / run_cnt): untracked (B) {}, tracked monitor (C) {}, tracked enforce, approved (D) {}",
        show(per_exec(Config::B)),
        show(per_exec(Config::C)),
        show(per_exec(Config::D))
    );
}

/// The investigator's query on a large log: `mcpwatch log` over `n` synthetic
/// events (a realistic mix: forks, execs with argv, exits, some launches), with a
/// filter that matches a few of them, timed with its peak RSS (from wait4), next
/// to `grep -c` over the same file as the baseline.
#[allow(clippy::cast_precision_loss)] // sizes far below 2^52
pub fn query_bench(n: u64) -> Result<()> {
    build_bins(true)?;
    let bins = bin_dir(true)?;
    let tmp = TempDir::new()?;
    let log = tmp.0.join("events.jsonl");
    say!("bench: writing a synthetic audit log of {n} events");
    {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::new(fs::File::create(&log)?);
        for id in 1..=n {
            let pid = 1000 + id % 30_000;
            let line = match id % 10 {
                0 => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"launch\",\"pid\":{pid},\"host\":{{\"name\":\"claude-code\",\"pid\":900}},\"argv\":[\"npx\",\"-y\",\"@modelcontextprotocol/server-filesystem\",\"/home/u/p{}\"],\"verdict\":{{\"decision\":\"{}\",\"mode\":\"enforce\"}}}}",
                    id % 977,
                    if id % 1000 == 0 { "killed" } else { "allowed" }
                ),
                1..=3 => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"fork\",\"pid\":{pid},\"child_pid\":{}}}",
                    pid + 1
                ),
                4..=6 => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"exec\",\"pid\":{pid},\"host\":{{\"name\":\"claude-code\",\"pid\":900}},\"session\":{pid},\"argv\":[\"node\",\"/usr/lib/node_modules/x/index.js\",\"--stdio\"],\"cwd\":\"/home/u\"}}"
                ),
                _ => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"exit\",\"pid\":{pid},\"exit\":{{\"code\":0,\"status\":0}}}}"
                ),
            };
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    let size = fs::metadata(&log)?.len();
    let run = |cmd: &mut Command| -> Result<(f64, u64, String)> {
        let start = Instant::now();
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let out = child.wait_with_output_rusage(pid)?;
        Ok((start.elapsed().as_secs_f64(), out.1, out.0))
    };
    let mut query = Command::new(bins.join("mcpwatch"));
    query
        .args([
            "log",
            "--json",
            "--kind",
            "launch",
            "--verdict",
            "killed",
            "--file",
        ])
        .arg(&log);
    let (q_secs, q_rss, q_out) = run(&mut query)?;
    let mut grep = Command::new("grep");
    grep.args(["-c", "\"decision\":\"killed\""]).arg(&log);
    let (g_secs, g_rss, g_out) = run(&mut grep)?;
    let matched = q_out.lines().count();
    println!(
        "\nquery over {n} events ({:.0} MiB): `mcpwatch log --json --kind launch --verdict killed`",
        size as f64 / f64::from(1u32 << 20)
    );
    println!(
        "  mcpwatch log   {q_secs:>7.2} s  peak RSS {:>6.1} MiB  {matched} events matched",
        q_rss as f64 / 1024.0
    );
    println!(
        "  grep -c        {g_secs:>7.2} s  peak RSS {:>6.1} MiB  {} lines matched (baseline: no parsing)",
        g_rss as f64 / 1024.0,
        g_out.trim()
    );
    println!("  ratio mcpwatch/grep: {:.1}x", q_secs / g_secs.max(1e-9));
    Ok(())
}

/// Wait for a child and return its stdout and peak RSS (KiB, from wait4).
trait WaitRusage {
    fn wait_with_output_rusage(self, pid: i32) -> Result<(String, u64)>;
}

impl WaitRusage for Child {
    fn wait_with_output_rusage(mut self, pid: i32) -> Result<(String, u64)> {
        use std::io::Read as _;
        let mut out = String::new();
        if let Some(mut so) = self.stdout.take() {
            so.read_to_string(&mut out)?;
        }
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid out-parameter for wait4.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut ru) };
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        Ok((out, u64::try_from(ru.ru_maxrss).unwrap_or(0)))
    }
}
