//! `mcpwatch status`: whether the daemon is up and enforcing, with its counters.
use std::{fmt::Write as _, process::ExitCode, time::Duration};

use anyhow::Context as _;

use crate::{
    cli::{
        args::StatusArgs,
        client::{daemon_down_hint, proxy, runtime},
    },
    reply::{StatusAttachment, StatusView},
};

/// How a running host was recognised, for the `hosts:` line.
fn how(by: &str) -> String {
    match by {
        "adopted" => "running at start".to_owned(),
        "run" => "mcpwatch run".to_owned(),
        other => format!("by {other}"),
    }
}

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
    // `--json` prints the reply as it came, before anything could fail to read it.
    if a.json {
        println!("{json}");
    }
    let v: StatusView = serde_json::from_str(&json).context("daemon sent invalid status JSON")?;
    if !a.json {
        print!("{}", render_status(&v));
    }
    Ok(if lost_total(&v) == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Events lost anywhere: a non-zero total makes `mcpwatch status` exit 3.
fn lost_total(v: &StatusView) -> u64 {
    let lost = v.lost.clone().unwrap_or_default();
    [lost.ringbuf, lost.queue, lost.broadcast, lost.decode]
        .into_iter()
        .flatten()
        .sum::<u64>()
        // A process the kernel could not track escaped every check: loss too.
        + v.kernel
            .as_ref()
            .and_then(|k| k.get("tracked_full").copied())
            .unwrap_or(0)
}

/// A number as the status showed it: `null` when the daemon did not send it.
fn num(n: Option<u64>) -> String {
    n.map_or_else(|| "null".to_owned(), |n| n.to_string())
}

/// A string, `?` when the daemon did not send it.
fn text(s: Option<&String>) -> &str {
    s.map_or("?", String::as_str)
}

/// The consent part of `mcpwatch status`: records, modes, how enforcement
/// survives the daemon, policy problems.
fn render_consent_status(out: &mut String, v: &StatusView) {
    let _ = writeln!(
        out,
        "consent:   {} of {} records active in the kernel, {} launches waiting (ask)",
        num(v.records_active),
        num(v.records_total),
        num(v.pending)
    );
    if let Some(modes) = &v.modes {
        let list: Vec<String> = modes
            .iter()
            .filter(|(_, m)| m.mode.as_deref() != Some("monitor") || m.locked == Some(true))
            .map(|(h, m)| {
                format!(
                    "{h} {}{}",
                    text(m.mode.as_ref()),
                    if m.locked == Some(true) {
                        " (locked)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "modes:     {} (every other host: {})",
            if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            },
            text(v.mode.as_ref())
        );
    }
    if let Some(pins) = &v.pins {
        let _ = writeln!(
            out,
            "survives:  links {} under {}{}{}",
            text(pins.links_held_by.as_ref()),
            text(pins.dir.as_ref()),
            pins.keeper_pid
                .map_or_else(String::new, |p| format!(" (keeper pid {p})")),
            if pins.reused_programs == Some(true) {
                ", taken over from the previous daemon"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "callers:   pinned by {}",
        text(v.caller_pinning.as_ref())
    );
    for p in v.policy_problems.iter().flatten() {
        let _ = writeln!(out, "PROBLEM:   {p}");
    }
}

/// One line of `programs:`: the attachment and its program's verifier and run stats.
fn render_program(out: &mut String, v: &StatusView, a: &StatusAttachment) {
    let name = text(a.program.as_ref());
    let stats = v
        .programs
        .as_ref()
        .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(name)));
    let insns = stats
        .and_then(|p| p.verified_insns)
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
        let cnt = p.run_cnt.unwrap_or(0);
        let ns = p.run_time_ns.unwrap_or(0);
        if cnt == 0 {
            " (run stats off: sysctl kernel.bpf_stats_enabled=1)".into()
        } else {
            #[expect(clippy::cast_precision_loss, reason = "display-only average")]
            let avg = ns as f64 / cnt as f64;
            format!(" runs {cnt}, avg {avg:.0} ns")
        }
    });
    let _ = writeln!(
        out,
        "  {:<20} {:<28} {};{insns};{runs}",
        name,
        text(a.hook.as_ref()),
        text(a.method.as_ref())
    );
}

/// The human text of `mcpwatch status`.
fn render_status(v: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mcpwatchd {} (pid {}) up since {}",
        text(v.version.as_ref()),
        num(v.pid),
        text(v.started.as_ref())
    );
    let _ = writeln!(out, "mode:      {}", text(v.mode.as_ref()));
    let _ = writeln!(out, "log:       {}", text(v.log_file.as_ref()));
    let _ = writeln!(out, "events:    {} recorded", num(v.events));
    let losses = v.lost.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "lost:      ringbuf {} · queue {} · broadcast {} · decode {}",
        num(losses.ringbuf),
        num(losses.queue),
        num(losses.broadcast),
        num(losses.decode)
    );
    let _ = writeln!(
        out,
        "tracked:   {} processes in the kernel map, {} in the tracker",
        num(v.tracked_kernel),
        num(v.tracked_user)
    );
    if let Some(hosts) = &v.hosts {
        let list: Vec<String> = hosts
            .iter()
            .map(|h| match h.recognised_by.as_deref() {
                Some(by) => format!("{} ({}, {})", text(h.name.as_ref()), num(h.pid), how(by)),
                None => format!("{} ({})", text(h.name.as_ref()), num(h.pid)),
            })
            .collect();
        let _ = writeln!(
            out,
            "hosts:     {}",
            if list.is_empty() {
                "none running".into()
            } else {
                list.join(", ")
            }
        );
    }
    let keys = v.host_keys.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "profiles:  {} executables, {} script paths known; {} MCP config files watched",
        num(keys.executables),
        num(keys.script_paths),
        num(keys.configs_watched)
    );
    let _ = writeln!(out, "programs:");
    for a in v.attachments.iter().flatten() {
        render_program(&mut out, v, a);
    }
    render_consent_status(&mut out, v);
    // As the daemon sent it (compact JSON, keys sorted), `null` when it did not.
    let kernel = v.kernel.as_ref().map_or_else(
        || "null".to_owned(),
        |k| serde_json::to_string(k).unwrap_or_default(),
    );
    let _ = writeln!(out, "kernel:    {kernel}");
    let _ = writeln!(out, "enforcement mechanisms:");
    for line in v.enforcement.iter().flatten() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    //! The typed rendering against the code that read the status by string keys
    //! (kept below, printing into a string): the same text and the same exit
    //! code, for what the daemon sends today, for an older daemon's status without
    //! optional fields, and for a newer one's with fields this build does not know.
    use std::collections::BTreeMap;

    use serde_json::{json, Value};

    use super::*;
    use crate::{
        engine::status::{HostKeys, HostStatus, Status},
        event::LostCounts,
        model::Mode,
        reply::ModeView,
        sensor::ebpf::{Attachment, LsmSupport, PinReport, ProgramStats},
    };

    /// A status as the daemon builds it, every field filled.
    #[expect(clippy::too_many_lines, reason = "one status, every field filled")]
    fn status() -> Status {
        let mut kernel = BTreeMap::new();
        for (i, name) in [
            "ringbuf_drops",
            "tracked_full",
            "execs",
            "forks",
            "exits",
            "hosts_detected",
            "launches",
            "killed",
        ]
        .into_iter()
        .enumerate()
        {
            kernel.insert(name, if i < 2 { 0 } else { 100 + i as u64 });
        }
        let mut modes = BTreeMap::new();
        for (h, mode, locked, source) in [
            ("claude-code", Mode::Monitor, false, "default"),
            ("cursor", Mode::Enforce, true, "managed policy"),
            ("vscode", Mode::Ask, false, "user 1000"),
            ("zed", Mode::Monitor, true, "managed policy"),
        ] {
            modes.insert(
                h.to_owned(),
                ModeView {
                    mode,
                    locked,
                    source: source.to_owned(),
                },
            );
        }
        Status {
            version: "0.1.0",
            pid: 4321,
            started: "2026-12-04T19:00:00.123456789Z".to_owned(),
            mode: "monitor".to_owned(),
            enforcing: true,
            log_file: "/var/log/mcpwatch/events.jsonl".to_owned(),
            events: 1234,
            lost: LostCounts::default(),
            kernel,
            tracked_kernel: 17,
            tracked_user: 15,
            hosts: vec![
                HostStatus {
                    pid: 1001,
                    name: "claude-code".to_owned(),
                    recognised_by: "name".to_owned(),
                    filename: Some("/usr/bin/claude".to_owned()),
                    exe: Some("/usr/lib/claude.exe".to_owned()),
                },
                HostStatus {
                    pid: 1002,
                    name: "?".to_owned(),
                    recognised_by: "adopted".to_owned(),
                    filename: None,
                    exe: None,
                },
            ],
            host_keys: HostKeys {
                executables: 6,
                script_paths: 3,
                profiles: vec!["claude-code".to_owned(), "cursor".to_owned()],
                configs_watched: 4,
            },
            attachments: vec![
                Attachment {
                    program: "sched_process_exec",
                    hook: "tracepoint/sched/sched_process_exec",
                    method: "pinned link".to_owned(),
                },
                Attachment {
                    program: "sched_process_fork",
                    hook: "tracepoint/sched/sched_process_fork",
                    method: "pinned link".to_owned(),
                },
                Attachment {
                    program: "bprm_check_security",
                    hook: "lsm/bprm_check_security",
                    method: "keeper".to_owned(),
                },
                Attachment {
                    program: "no_stats",
                    hook: "kprobe/x",
                    method: "attached".to_owned(),
                },
            ],
            programs: vec![
                ProgramStats {
                    name: "sched_process_exec",
                    verified_insns: Some(123_456),
                    load_ms: Some(12.5),
                    run_cnt: 3,
                    run_time_ns: 10_000,
                },
                ProgramStats {
                    name: "sched_process_fork",
                    verified_insns: None,
                    load_ms: None,
                    run_cnt: 0,
                    run_time_ns: 0,
                },
                ProgramStats {
                    name: "bprm_check_security",
                    verified_insns: Some(999),
                    load_ms: Some(1.0),
                    run_cnt: 7,
                    run_time_ns: 1_001,
                },
            ],
            lsm: LsmSupport {
                bpf_in_lsm_list: true,
                loadable: true,
                reason: None,
            },
            enforcement: vec![
                "signal (bpf_send_signal from sched_process_exec): available".to_owned(),
                "BPF LSM (bprm_check_security): active".to_owned(),
            ],
            tracker_overflow: 0,
            hash_cache: (0, 0),
            pins: PinReport {
                dir: "/sys/fs/bpf/mcpwatch".into(),
                generation: "abc123".to_owned(),
                reused_programs: true,
                reused_maps: vec!["PROCS"],
                replaced: vec![],
                incompatible: vec![],
                links_held_by: "keeper".to_owned(),
                pin_refused: Some("EPERM".to_owned()),
                keeper_pid: Some(4322),
            },
            modes: crate::reply::to_json(&modes),
            records_active: 2,
            records_total: 3,
            pending: 1,
            policy_problems: vec!["consent store: line 3: bad".to_owned()],
            caller_pinning: "bus ProcessFD",
            log_errors: 0,
            journal: true,
            journal_drops: 0,
        }
    }

    /// The old exit code's loss total.
    fn old_lost_total(v: &Value) -> u64 {
        ["ringbuf", "queue", "broadcast", "decode"]
            .iter()
            .filter_map(|k| v["lost"][k].as_u64())
            .sum::<u64>()
            + v["kernel"]["tracked_full"].as_u64().unwrap_or(0)
    }

    /// The text the daemon sends renders as before, and gives the same exit code.
    fn same(json: &str) -> String {
        let old: Value = serde_json::from_str(json).unwrap();
        let new: StatusView = serde_json::from_str(json).unwrap();
        let text = render_status(&new);
        assert_eq!(text, old::print_status(&old));
        assert_eq!(lost_total(&new), old_lost_total(&old));
        text
    }

    #[test]
    fn the_daemons_status_renders_as_before() {
        let json = serde_json::to_string(&status()).unwrap();
        let text = same(&json);
        // Every part shows.
        for part in [
            "mcpwatchd 0.1.0 (pid 4321)",
            "hosts:     claude-code (1001, by name), ? (1002, running at start)",
            "123456 verified insns (12.3 % of the limit); runs 3, avg 3333 ns",
            "verified insns: not reported; (run stats off",
            "no_stats",
            "modes:     cursor enforce (locked), vscode ask, zed monitor (locked) (every other host: monitor)",
            "survives:  links keeper under /sys/fs/bpf/mcpwatch (keeper pid 4322), taken over",
            "PROBLEM:   consent store: line 3: bad",
            "kernel:    {\"execs\":102,",
            "  BPF LSM (bprm_check_security): active\n",
        ] {
            assert!(text.contains(part), "{part:?} not in\n{text}");
        }
        assert_eq!(lost_total(&serde_json::from_str(&json).unwrap()), 0);

        // Losses set the exit code, the kernel's full process map too.
        let mut s = status();
        s.lost.queue = 2;
        s.kernel.insert("tracked_full", 5);
        s.hosts.clear();
        s.modes = json!({});
        s.pins.keeper_pid = None;
        s.pins.reused_programs = false;
        s.policy_problems.clear();
        let json = serde_json::to_string(&s).unwrap();
        let text = same(&json);
        assert!(text.contains("hosts:     none running\n"));
        assert!(text.contains("modes:     - (every other host: monitor)\n"));
        assert_eq!(lost_total(&serde_json::from_str(&json).unwrap()), 7);
    }

    #[test]
    fn an_older_daemons_status_without_fields_renders_as_before() {
        let full = serde_json::to_value(status()).unwrap();
        // Each field left out on its own, then every one of them.
        let keys: Vec<String> = full.as_object().unwrap().keys().cloned().collect();
        for k in &keys {
            let mut v = full.clone();
            v.as_object_mut().unwrap().remove(k);
            same(&v.to_string());
            let mut v = full.clone();
            v[k.as_str()] = Value::Null;
            same(&v.to_string());
        }
        let text = same("{}");
        assert!(text.starts_with("mcpwatchd ? (pid null) up since ?\n"));
        // Nested fields too.
        let mut v = full.clone();
        for (outer, inner) in [
            ("lost", "queue"),
            ("host_keys", "configs_watched"),
            ("pins", "keeper_pid"),
            ("pins", "dir"),
        ] {
            v[outer].as_object_mut().unwrap().remove(inner);
        }
        for list in ["hosts", "attachments", "programs"] {
            for item in v[list].as_array_mut().unwrap() {
                let first = item.as_object().unwrap().keys().next().unwrap().clone();
                item.as_object_mut().unwrap().remove(&first);
            }
        }
        v["modes"]["cursor"]
            .as_object_mut()
            .unwrap()
            .remove("locked");
        v["modes"]["vscode"].as_object_mut().unwrap().remove("mode");
        same(&v.to_string());
    }

    #[test]
    fn a_newer_daemons_unknown_fields_are_ignored() {
        let mut v = serde_json::to_value(status()).unwrap();
        v["some_future_field"] = json!({"a": [1, 2]});
        v["lost"]["future_loss"] = json!(0);
        v["pins"]["future"] = json!("x");
        v["hosts"][0]["future"] = json!(true);
        v["attachments"][0]["future"] = json!(1);
        v["programs"][0]["future"] = json!(1.5);
        v["modes"]["cursor"]["future"] = json!(null);
        v["host_keys"]["future"] = json!([]);
        let with = same(&v.to_string());
        let without = same(&serde_json::to_string(&status()).unwrap());
        assert_eq!(with, without);
        // A mode this build does not know still shows.
        v["modes"]["cursor"]["mode"] = json!("quarantine");
        assert!(same(&v.to_string()).contains("cursor quarantine (locked)"));
    }

    /// The rendering as it was, reading the status by string keys.
    mod old {
        use std::fmt::Write as _;

        /// The consent part of `mcpwatch status`: records, modes, how enforcement
        /// survives the daemon, policy problems.
        fn print_consent_status(out: &mut String, v: &serde_json::Value) {
            let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
            let _ = writeln!(
                out,
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
                let _ = writeln!(
                    out,
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
                let _ = writeln!(
                    out,
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
            let _ = writeln!(
                out,
                "callers:   pinned by {}",
                v["caller_pinning"].as_str().unwrap_or("?")
            );
            if let Some(problems) = v["policy_problems"].as_array() {
                for p in problems {
                    let _ = writeln!(out, "PROBLEM:   {}", p.as_str().unwrap_or("?"));
                }
            }
        }

        #[expect(
            clippy::too_many_lines,
            reason = "the old renderer, kept whole as the oracle of the typed one"
        )]
        pub(super) fn print_status(v: &serde_json::Value) -> String {
            let mut out = String::new();
            let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
            let _ = writeln!(
                out,
                "mcpwatchd {} (pid {}) up since {}",
                s("version"),
                v["pid"],
                s("started")
            );
            let _ = writeln!(out, "mode:      {}", s("mode"));
            let _ = writeln!(out, "log:       {}", s("log_file"));
            let _ = writeln!(out, "events:    {} recorded", v["events"]);
            let _ = writeln!(
                out,
                "lost:      ringbuf {} · queue {} · broadcast {} · decode {}",
                v["lost"]["ringbuf"],
                v["lost"]["queue"],
                v["lost"]["broadcast"],
                v["lost"]["decode"]
            );
            let _ = writeln!(
                out,
                "tracked:   {} processes in the kernel map, {} in the tracker",
                v["tracked_kernel"], v["tracked_user"]
            );
            if let Some(hosts) = v["hosts"].as_array() {
                let list: Vec<String> = hosts
                    .iter()
                    .map(|h| match h["recognised_by"].as_str() {
                        Some(by) => format!(
                            "{} ({}, {})",
                            h["name"].as_str().unwrap_or("?"),
                            h["pid"],
                            super::how(by)
                        ),
                        None => format!("{} ({})", h["name"].as_str().unwrap_or("?"), h["pid"]),
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "hosts:     {}",
                    if list.is_empty() {
                        "none running".into()
                    } else {
                        list.join(", ")
                    }
                );
            }
            let _ = writeln!(
                out,
                "profiles:  {} executables, {} script paths known; {} MCP config files watched",
                v["host_keys"]["executables"],
                v["host_keys"]["script_paths"],
                v["host_keys"]["configs_watched"]
            );
            let _ = writeln!(out, "programs:");
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
                    let _ = writeln!(
                        out,
                        "  {:<20} {:<28} {};{insns};{runs}",
                        name,
                        a["hook"].as_str().unwrap_or("?"),
                        a["method"].as_str().unwrap_or("?")
                    );
                }
            }
            print_consent_status(&mut out, v);
            let _ = writeln!(out, "kernel:    {}", v["kernel"]);
            let _ = writeln!(out, "enforcement mechanisms:");
            if let Some(e) = v["enforcement"].as_array() {
                for line in e {
                    let _ = writeln!(out, "  {}", line.as_str().unwrap_or("?"));
                }
            }
            out
        }
    }
}
