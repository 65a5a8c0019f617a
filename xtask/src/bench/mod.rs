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
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::setup::{run_setup, Mode};
use crate::util::{bin_dir, build_bins, find_in_path, is_root, say};

mod guards;
mod pieces;
mod query;
mod report;

use guards::{BpfStats, Proc, TempDir};
use pieces::{
    cli, cpu_secs, delta_programs, hwm_kib, keepers, other_daemons, pins_present, remove_pins,
    reset_hwm, run_storm, start_daemon, start_private_bus, status_json,
};
pub use query::query_bench;
use report::{report, report_kernel};

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

struct Env {
    mcpwatchd: PathBuf,
    mcpwatch: PathBuf,
    storm: PathBuf,
    bus: String,
    dir: PathBuf,
    daemon_config: Option<PathBuf>,
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
