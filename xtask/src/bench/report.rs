//! The bench's report: the timing table, the per-program kernel stats, the
//! verifier's counts and the enforce check.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;

use anyhow::{bail, Result};

use super::{median, Config, Opts, Sample, APPROVED_ENV, KILL_CHECK_EXECS, LOST_KINDS};
/// The verifier's counts and the enforce check; an error when the check failed.
pub(super) fn report_kernel(
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
pub(super) fn report(o: &Opts, method: &str, samples: &BTreeMap<Config, Vec<Sample>>) -> String {
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
pub(super) fn lost_totals(v: &[Sample]) -> Option<BTreeMap<String, u64>> {
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
pub(super) fn table_row(r: &mut String, execs: u64, cfg: Config, v: &[Sample], m: f64, base: f64) {
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

pub(super) fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}

/// Per-program kernel stats (B and C), summed over the rounds.
#[allow(clippy::cast_precision_loss)] // counts far below 2^52
pub(super) fn report_programs(r: &mut String, samples: &BTreeMap<Config, Vec<Sample>>) {
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
