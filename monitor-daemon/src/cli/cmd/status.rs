//! `mcpwatch status`: whether the daemon is up and enforcing, with its counters.
use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;

use crate::cli::{
    args::StatusArgs,
    client::{daemon_down_hint, proxy, runtime},
};

pub(crate) fn status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let json = rt.block_on(async {
        let p = proxy().await?;
        let s = tokio::time::timeout(Duration::from_secs(10), p.status())
            .await
            .context("the daemon did not answer within 10 s")??;
        anyhow::Ok(s)
    });
    let json = match json {
        Ok(j) => j,
        Err(err) => {
            eprintln!("mcpwatch: {}", daemon_down_hint(&err));
            return Ok(ExitCode::from(1));
        }
    };
    let v: serde_json::Value =
        serde_json::from_str(&json).context("daemon sent invalid status JSON")?;
    let lost_total: u64 = ["ringbuf", "queue", "broadcast", "decode"]
        .iter()
        .filter_map(|k| v["lost"][k].as_u64())
        .sum::<u64>()
        // A process the kernel could not track escaped every check: loss too.
        + v["kernel"]["tracked_full"].as_u64().unwrap_or(0);
    if a.json {
        println!("{json}");
    } else {
        print_status(&v);
    }
    Ok(if lost_total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The consent part of `mcpwatch status`: records, modes, how enforcement
/// survives the daemon, policy problems.
fn print_consent_status(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    println!(
        "consent:   {} of {} records active in the kernel, {} launches waiting (ask)",
        v["records_active"], v["records_total"], v["pending"]
    );
    if let Some(modes) = v["modes"].as_object() {
        let list: Vec<String> = modes
            .iter()
            .filter(|(_, m)| m["mode"] != "monitor" || m["locked"] == true)
            .map(|(h, m)| {
                format!(
                    "{h} {}{}",
                    m["mode"].as_str().unwrap_or("?"),
                    if m["locked"] == true { " (locked)" } else { "" }
                )
            })
            .collect();
        println!(
            "modes:     {} (every other host: {})",
            if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            },
            s("mode")
        );
    }
    let pins = &v["pins"];
    if pins.is_object() {
        println!(
            "survives:  links {} under {}{}{}",
            pins["links_held_by"].as_str().unwrap_or("?"),
            pins["dir"].as_str().unwrap_or("?"),
            pins["keeper_pid"]
                .as_u64()
                .map_or_else(String::new, |p| format!(" (keeper pid {p})")),
            if pins["reused_programs"] == true {
                ", taken over from the previous daemon"
            } else {
                ""
            }
        );
    }
    println!(
        "callers:   pinned by {}",
        v["caller_pinning"].as_str().unwrap_or("?")
    );
    if let Some(problems) = v["policy_problems"].as_array() {
        for p in problems {
            println!("PROBLEM:   {}", p.as_str().unwrap_or("?"));
        }
    }
}

fn print_status(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    println!(
        "mcpwatchd {} (pid {}) up since {}",
        s("version"),
        v["pid"],
        s("started")
    );
    println!("mode:      {}", s("mode"));
    println!("log:       {}", s("log_file"));
    println!("events:    {} recorded", v["events"]);
    println!(
        "lost:      ringbuf {} · queue {} · broadcast {} · decode {}",
        v["lost"]["ringbuf"], v["lost"]["queue"], v["lost"]["broadcast"], v["lost"]["decode"]
    );
    println!(
        "tracked:   {} processes in the kernel map, {} in the tracker",
        v["tracked_kernel"], v["tracked_user"]
    );
    if let Some(hosts) = v["hosts"].as_array() {
        let list: Vec<String> = hosts
            .iter()
            .map(|h| format!("{} ({})", h["name"].as_str().unwrap_or("?"), h["pid"]))
            .collect();
        println!(
            "hosts:     {}",
            if list.is_empty() {
                "none running".into()
            } else {
                list.join(", ")
            }
        );
    }
    println!(
        "profiles:  {} executables, {} script paths known; {} MCP config files watched",
        v["host_keys"]["executables"],
        v["host_keys"]["script_paths"],
        v["host_keys"]["configs_watched"]
    );
    println!("programs:");
    if let Some(att) = v["attachments"].as_array() {
        for a in att {
            let name = a["program"].as_str().unwrap_or("?");
            let stats = v["programs"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name));
            let insns = stats
                .and_then(|p| p["verified_insns"].as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .map_or_else(
                    || " verified insns: not reported".to_owned(),
                    |n| {
                        format!(
                            " {n} verified insns ({:.1} % of the limit)",
                            f64::from(n) / 1e4
                        )
                    },
                );
            let runs = stats.map_or(String::new(), |p| {
                let cnt = p["run_cnt"].as_u64().unwrap_or(0);
                let ns = p["run_time_ns"].as_u64().unwrap_or(0);
                if cnt == 0 {
                    " (run stats off: sysctl kernel.bpf_stats_enabled=1)".into()
                } else {
                    #[expect(clippy::cast_precision_loss, reason = "display-only average")]
                    let avg = ns as f64 / cnt as f64;
                    format!(" runs {cnt}, avg {avg:.0} ns")
                }
            });
            println!(
                "  {:<20} {:<28} {};{insns};{runs}",
                name,
                a["hook"].as_str().unwrap_or("?"),
                a["method"].as_str().unwrap_or("?")
            );
        }
    }
    print_consent_status(v);
    println!("kernel:    {}", v["kernel"]);
    println!("enforcement mechanisms:");
    if let Some(e) = v["enforcement"].as_array() {
        for line in e {
            println!("  {}", line.as_str().unwrap_or("?"));
        }
    }
}
