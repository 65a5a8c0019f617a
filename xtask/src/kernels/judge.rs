//! What a guest's report must say: the daemon ran (or refused) as its kernel
//! expects, and every check came out as it should.

use serde_json::Value;

use super::VERIFIED_INSNS_BUDGET;
use crate::guest::{tail, Report};

fn daemon_failure(r: &Report) -> String {
    let err = r.section("daemon_err");
    let line = err
        .lines()
        .find(|l| l.contains("error"))
        .or_else(|| err.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("(no output)");
    // The verifier's verdict, when it refused a program: its last lines say why.
    let verifier = err
        .lines()
        .filter(|l| l.starts_with("BPF program is too large") || l.starts_with("processed "))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let verifier = if verifier.is_empty() {
        String::new()
    } else {
        format!(" [verifier: {verifier}]")
    };
    match r.get("daemon") {
        "exited" => format!(
            "mcpwatchd did not start (exit status {}): {}{verifier}",
            r.get("daemon_rc"),
            line.trim()
        ),
        "timeout" => format!(
            "mcpwatchd did not say it was running within 300 s: {}",
            line.trim()
        ),
        other => format!("mcpwatchd: unexpected state {other:?}"),
    }
}

/// Where a value the guest saw is: a `KV` line, or a `key=value` line the host
/// shells echoed (the `checks` section).
#[derive(Clone, Copy)]
enum From {
    Kv,
    Checks,
}

/// What each value must be on a kernel the daemon runs on.
const EXPECTED: [(&str, From, &str, &str); 21] = [
    ("monitored launch exit status", From::Checks, "argv_rc", "0"),
    (
        "unapproved launch (enforce) exit status",
        From::Checks,
        "unapproved_rc",
        "137",
    ),
    ("unapproved launch ran", From::Kv, "unapproved_ran", "no"),
    (
        "approved launch with LD_PRELOAD added: exit status",
        From::Checks,
        "preload_rc",
        "137",
    ),
    (
        "approved launch with LD_PRELOAD added ran",
        From::Checks,
        "preload_ran",
        "no",
    ),
    (
        "approved launch exit status",
        From::Checks,
        "approved_rc",
        "0",
    ),
    ("approved launch ran", From::Kv, "approved_ran", "yes"),
    ("held launch state", From::Kv, "ask_state", "T"),
    (
        "held launch state 1 s later",
        From::Kv,
        "ask_state_later",
        "T",
    ),
    (
        "held launch ran before allow",
        From::Kv,
        "ask_ran_early",
        "no",
    ),
    ("`mcpwatch allow` exit status", From::Kv, "allow_rc", "0"),
    ("allowed launch exit status", From::Kv, "ask_rc", "0"),
    ("allowed launch ran", From::Kv, "ask_ran", "yes"),
    (
        "launch to be resumed by its host: state before",
        From::Kv,
        "resume_state",
        "T",
    ),
    (
        "held launch resumed by its host (SIGCHLD ignored) ran",
        From::Kv,
        "resumed_ran",
        "no",
    ),
    (
        "managed deny exit status (EPERM)",
        From::Checks,
        "deny_rc",
        "126",
    ),
    ("managed deny ran", From::Kv, "denied_ran", "no"),
    (
        "unapproved exec by a host's second thread: exit status",
        From::Checks,
        "thread_exec_rc",
        "137",
    ),
    (
        "unapproved exec by a host's second thread ran",
        From::Kv,
        "thread_exec_ran",
        "no",
    ),
    (
        "unapproved launch after the host's leader thread exited: exit status",
        From::Checks,
        "child_rc",
        "137",
    ),
    (
        "unapproved launch after the host's leader thread exited ran",
        From::Kv,
        "leader_exit_ran",
        "no",
    ),
];

/// The checks on a kernel the daemon must run on. `Ok`: the short facts.
pub(super) fn judge_runs(r: &Report) -> std::result::Result<String, String> {
    if r.get("daemon") != "running" {
        if r.kv.is_empty() {
            return Err(format!(
                "the guest reported nothing (did it boot?) after {:.0} s",
                r.elapsed.as_secs_f64()
            ));
        }
        return Err(daemon_failure(r));
    }
    let mut failed: Vec<String> = Vec::new();
    if !r.complete {
        failed.push("the guest's report is incomplete (it stopped early)".to_owned());
    }
    let mut facts = Vec::new();
    if let (Some(boot), Some(start)) = (
        r.get("daemon_t0").parse::<f64>().ok(),
        r.secs_between("daemon_t0", "daemon_t1"),
    ) {
        facts.push(format!("boot {boot:.0} s, daemon up in {start:.1} s"));
    }

    // Programs: loaded, and within the verifier budget.
    match serde_json::from_str::<Value>(r.section("status")) {
        Err(e) => failed.push(format!(
            "`mcpwatch status --json` (exit {}) is not JSON: {e}: {}",
            r.get("status_rc"),
            tail(r.section("status_err"), 3)
        )),
        Ok(status) => match program_facts(&status) {
            Ok(f) => facts.push(f),
            Err(e) => failed.push(e),
        },
    }

    // Exit statuses, side effects, process states.
    for (what, from, key, want) in EXPECTED {
        let got = match from {
            From::Kv => r.get(key),
            From::Checks => r.check(key),
        };
        if got != want {
            let got = if got.is_empty() { "(nothing)" } else { got };
            failed.push(format!("{what}: {got}, want {want}"));
        }
    }
    if !r.get("lsm").split(',').any(|l| l == "bpf") {
        failed.push(format!("bpf is not an active LSM: {}", r.get("lsm")));
    }
    check_pending(r, &mut failed);
    check_events(r, &mut failed);

    if failed.is_empty() {
        facts.push(format!("guest {:.0} s", r.elapsed.as_secs_f64()));
        Ok(facts.join(", "))
    } else {
        Err(failed.join("; "))
    }
}

/// The held launch was listed by `mcpwatch pending` (the id `allow` used), with
/// its pid and host.
fn check_pending(r: &Report, failed: &mut Vec<String>) {
    if r.get("ask_id").is_empty() {
        failed.push(format!(
            "`mcpwatch pending` listed no launch with pid {}: {}",
            r.get("ask_pid"),
            tail(r.section("pending_txt"), 5)
        ));
        return;
    }
    let pending: Value = serde_json::from_str(r.section("pending")).unwrap_or(Value::Null);
    let listed = pending.as_array().is_some_and(|l| {
        l.iter().any(|p| {
            p["pid"].as_u64().map(|n| n.to_string()).as_deref() == Some(r.get("ask_pid"))
                && p["host"] == "asker"
                && p["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(r.get("ask_id"))
        })
    });
    if !listed {
        failed.push(format!(
            "`mcpwatch pending --json` does not list pid {} of host asker as #{}: {}",
            r.get("ask_pid"),
            r.get("ask_id"),
            r.section("pending")
        ));
    }
}

/// What the audit log (`mcpwatch log --json`) says: the monitored launch with its
/// exact argv, each enforce and ask launch with its verdict, the EPERM deny.
fn check_events(r: &Report, failed: &mut Vec<String>) {
    let events: Vec<Value> = r
        .section("events")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if events.is_empty() {
        failed.push(format!(
            "`mcpwatch log --json` gave no events (exit {}): {}",
            r.get("log_rc"),
            tail(r.section("log_err"), 3)
        ));
        return;
    }
    let want: Vec<Value> = ["/ok/busybox", "true", "with space", "", "end"]
        .iter()
        .map(|s| Value::from(*s))
        .collect();
    let launch = events.iter().find(|e| {
        e["kind"] == "launch" && e["host"]["name"] == "watcher" && e["argv"][1] == "true"
    });
    match launch {
        None => {
            failed.push("no launch event of the monitored host (watcher) in the log".to_owned());
        }
        Some(e) if e["argv"].as_array() != Some(&want) => failed.push(format!(
            "the launch's argv is {}, want {}",
            e["argv"],
            Value::from(want.clone())
        )),
        Some(_) => {}
    }
    let launch_of = |host: &str, target: &str, preload: bool| {
        events.iter().find(|e| {
            e["kind"] == "launch"
                && e["host"]["name"] == host
                && e["argv"][2] == target
                && e["env"]["LD_PRELOAD"].is_string() == preload
        })
    };
    for (what, host, target, preload, decision) in [
        (
            "unapproved launch",
            "guest",
            "/tmp/unapproved",
            false,
            "killed",
        ),
        (
            "launch with LD_PRELOAD",
            "guest",
            "/tmp/approved",
            true,
            "killed",
        ),
        (
            "approved launch",
            "guest",
            "/tmp/approved",
            false,
            "allowed",
        ),
        ("ask launch", "asker", "/tmp/asked", false, "held"),
    ] {
        match launch_of(host, target, preload) {
            None => failed.push(format!("no launch event for the {what}")),
            Some(e) if e["verdict"]["decision"] != decision => failed.push(format!(
                "the {what}'s event has verdict {}, want decision {decision}",
                e["verdict"]
            )),
            Some(_) => {}
        }
    }
    let eperm = events.iter().any(|e| {
        e["kind"] == "launch"
            && e["exe"]["path"] == "/deny/busybox"
            && e["verdict"]["decision"] == "denied"
            && e["verdict"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("EPERM"))
    });
    if !eperm {
        failed.push("no launch event says /deny/busybox was refused with EPERM".to_owned());
    }
}

/// Every program of `status.programs` loaded within [`VERIFIED_INSNS_BUDGET`]:
/// `Ok` with the count, the largest and the load time, `Err` naming the
/// programs above the budget or the missing field.
pub(super) fn program_facts(status: &Value) -> std::result::Result<String, String> {
    let Some(programs) = status["programs"].as_array().filter(|p| !p.is_empty()) else {
        return Err("`mcpwatch status --json` lists no programs".to_owned());
    };
    let name = |p: &Value| p["name"].as_str().unwrap_or("?").to_owned();
    let unreported: Vec<String> = programs
        .iter()
        .filter(|p| p["verified_insns"].as_u64().is_none())
        .map(name)
        .collect();
    if !unreported.is_empty() {
        return Err(format!(
            "verified_insns not reported by `mcpwatch status --json` for {}",
            unreported.join(", ")
        ));
    }
    let over: Vec<String> = programs
        .iter()
        .filter_map(|p| {
            let n = p["verified_insns"].as_u64()?;
            (n > VERIFIED_INSNS_BUDGET)
                .then(|| format!("program {} verified {n} instructions", name(p)))
        })
        .collect();
    if !over.is_empty() {
        return Err(format!(
            "{} (budget {VERIFIED_INSNS_BUDGET})",
            over.join(", ")
        ));
    }
    let load_ms: f64 = programs.iter().filter_map(|p| p["load_ms"].as_f64()).sum();
    let each: Vec<String> = programs
        .iter()
        .map(|p| {
            let n = name(p);
            format!(
                "{} {}",
                n.strip_prefix("sched_process_").unwrap_or(&n),
                p["verified_insns"]
            )
        })
        .collect();
    Ok(format!(
        "{} programs, verified insns: {}; load {load_ms:.0} ms",
        programs.len(),
        each.join(", ")
    ))
}

/// The checks on a kernel the daemon must refuse: exit status 2, one line on
/// stderr naming the missing feature, nothing left pinned or loaded.
pub(super) fn judge_refuses(r: &Report) -> std::result::Result<String, String> {
    if r.kv.is_empty() {
        return Err(format!(
            "the guest reported nothing (did it boot?) after {:.0} s",
            r.elapsed.as_secs_f64()
        ));
    }
    let err = r.section("daemon_err");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut failed = Vec::new();
    match (r.get("daemon"), r.get("daemon_rc")) {
        ("exited", "2") => {}
        ("exited", rc) => failed.push(format!("mcpwatchd exited with status {rc}, want 2")),
        ("running", _) => failed.push("mcpwatchd started; it must refuse this kernel".to_owned()),
        (state, _) => failed.push(format!("mcpwatchd did not exit ({state})")),
    }
    match lines.as_slice() {
        [line] => {
            if !line.starts_with("mcpwatchd: error:") {
                failed.push(format!(
                    "its stderr line does not start with `mcpwatchd: error:`: {line}"
                ));
            } else if !names_a_feature(line) {
                failed.push(format!(
                    "its stderr line names no missing feature and minimum kernel: {line}"
                ));
            }
        }
        [] => failed.push("it printed nothing on stderr".to_owned()),
        more => failed.push(format!(
            "it printed {} lines on stderr, want 1 (first: {}; last: {})",
            more.len(),
            more[0].trim(),
            more[more.len() - 1].trim()
        )),
    }
    let pins: Vec<&str> = r
        .section("pins")
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("/sys/fs/bpf/mcpwatch/"))
        .collect();
    if !pins.is_empty() {
        let shown: Vec<&str> = pins.iter().take(4).copied().collect();
        failed.push(format!(
            "{} objects left pinned under /sys/fs/bpf/mcpwatch ({}{})",
            pins.len(),
            shown.join(" "),
            if pins.len() > shown.len() { " …" } else { "" }
        ));
    }
    if r.get("bpftool_rc") == "0" {
        let progs: Vec<&str> = r
            .section("progs")
            .lines()
            .filter(|l| {
                l.split_once(": ")
                    .is_some_and(|(id, _)| id.trim().parse::<u64>().is_ok())
            })
            .filter(|l| !l.contains("dump_bpf_map") && !l.contains("dump_bpf_prog"))
            .collect();
        if !progs.is_empty() {
            failed.push(format!("programs still loaded: {}", progs.join(" | ")));
        }
    }
    if failed.is_empty() {
        Ok(format!("refused: {}", lines[0].trim()))
    } else {
        Err(failed.join("; "))
    }
}

/// The refusal names a feature (a helper or kernel facility) and a minimum kernel
/// version.
pub(super) fn names_a_feature(line: &str) -> bool {
    let msg = line.trim_start_matches("mcpwatchd: error:");
    let feature = msg
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w.contains('_') && w.len() > 2)
        || [
            "BTF",
            "LSM",
            "ring buffer",
            "ringbuf",
            "tracepoint",
            "helper",
        ]
        .iter()
        .any(|f| msg.contains(f));
    let version = msg
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| {
            let mut parts = w.split('.');
            matches!((parts.next(), parts.next()), (Some(a), Some(b)) if !a.is_empty() && !b.is_empty())
        });
    feature && version
}
