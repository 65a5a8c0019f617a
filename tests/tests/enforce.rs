//! Consent enforcement against the real kernel: real processes, real exec, and
//! assertions on what happened (exit 137, files never written, state `T`).
//!
//! Each test runs its own daemon on its own pins; the host is `mcpwatch run --host
//! NAME -- /bin/sh -c SCRIPT`, whose children are launches. Launched programs are
//! copies of /usr/bin/touch in a temp dir, so a test can rewrite them.
use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use mcpwatch_tests::{bin, exit_code, require_root, Daemon};
use serde_json::Value;

/// A private copy of `touch`: the launched program of these tests.
fn tool(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy("/usr/bin/touch", &p).expect("copy touch");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `mcpwatch approve --host HOST --yes [extra] -- argv`; returns the record id.
fn approve(d: &Daemon, host: &str, extra: &[&str], argv: &[&str]) -> u64 {
    let mut cli_args = vec!["approve", "--host", host, "--yes"];
    cli_args.extend_from_slice(extra);
    cli_args.push("--");
    cli_args.extend_from_slice(argv);
    let out = d.cli(&cli_args);
    assert!(
        out.status.success(),
        "approve failed ({:?}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let records = records(d);
    records["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["host"] == host)
        .filter_map(|r| r["id"].as_u64())
        .max()
        .expect("the new record")
}

fn records(d: &Daemon) -> Value {
    let out = d.cli(&["records", "--json"]);
    assert!(out.status.success(), "records: {out:?}");
    serde_json::from_slice(&out.stdout).expect("records json")
}

fn set_mode(d: &Daemon, host: &str, mode: &str) {
    let out = d.cli(&["mode", host, mode]);
    assert!(out.status.success(), "mode {host} {mode}: {out:?}");
}

/// `mcpwatch run --host HOST -- /bin/sh -c SCRIPT` in a clean environment (PATH
/// and the bus only): records pin the security-relevant variables to "unset", and
/// cargo's test runner sets `LD_LIBRARY_PATH`, which hosts do not.
fn host_cmd(d: &Daemon, host: &str, script: &str) -> std::process::Command {
    let mut c = d.cli_cmd(&["run", "--host", host, "--", "/bin/sh", "-c", script]);
    c.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address);
    c
}

/// Run `script` under `mcpwatch run --host HOST -- /bin/sh -c`, to completion.
fn host_run(d: &Daemon, host: &str, script: &str) -> Output {
    host_cmd(d, host, script)
        .stderr(Stdio::inherit())
        .output()
        .expect("mcpwatch run")
}

/// `rc=N` lines a host script printed, in order.
fn rcs(out: &Output) -> Vec<i32> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("rc=").and_then(|n| n.trim().parse().ok()))
        .collect()
}

/// The launch event of `argv1` (argv[1] of the launched program).
fn launch_of<'a>(evs: &'a [Value], arg1: &str) -> Option<&'a Value> {
    evs.iter()
        .rev()
        .find(|e| e["kind"] == "launch" && e["argv"][1] == arg1)
}

fn wait_launch(d: &Daemon, arg1: &str) -> Value {
    let evs = d.wait_events(
        &format!("launch of {arg1}"),
        Duration::from_secs(15),
        |evs| launch_of(evs, arg1).is_some_and(|e| e.get("verdict").is_some()),
    );
    launch_of(&evs, arg1).cloned().expect("launch")
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn enforce_runs_exactly_what_was_approved_and_kills_everything_else_before_it_runs() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tool(tmp.path(), "mytouch");
    let ok = tmp.path().join("approved");
    let changed = tmp.path().join("changed");
    let id = approve(&d, "enf", &[], &[s(&t), s(&ok)]);

    // The approved command runs; the same command with one argument changed is
    // killed before its first instruction: exit 137, and no file.
    let out = host_run(
        &d,
        "enf",
        &format!(
            "{t} {ok}; echo rc=$?; {t} {changed}; echo rc=$?",
            t = s(&t),
            ok = s(&ok),
            changed = s(&changed)
        ),
    );
    assert_eq!(rcs(&out), vec![0, 137], "{out:?}\n{:#?}", {
        std::thread::sleep(Duration::from_secs(1));
        d.events()
            .into_iter()
            .filter(|e| e["kind"] == "launch" || e["kind"] == "record_stale")
            .collect::<Vec<_>>()
    });
    assert!(ok.exists(), "the approved launch ran");
    assert!(!changed.exists(), "the killed launch never ran");
    let allowed = wait_launch(&d, s(&ok));
    assert_eq!(allowed["verdict"]["decision"], "allowed", "{allowed}");
    assert_eq!(allowed["verdict"]["record"], id);
    let killed = wait_launch(&d, s(&changed));
    assert_eq!(killed["verdict"]["decision"], "killed", "{killed}");
    assert_eq!(killed["verdict"]["killed"], true);
    assert_eq!(
        killed["argv"],
        serde_json::json!([s(&t), s(&changed)]),
        "exact argv"
    );
    assert!(
        killed["verdict"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("no consent record"),
        "{killed}"
    );
    // The process exit the kernel saw: killed by SIGKILL.
    let pid = killed["pid"].as_u64().expect("pid");
    let evs = d.wait_events(
        "exit of the killed launch",
        Duration::from_secs(10),
        |evs| evs.iter().any(|e| e["kind"] == "exit" && e["pid"] == pid),
    );
    let exit = evs
        .iter()
        .find(|e| e["kind"] == "exit" && e["pid"] == pid)
        .expect("exit");
    assert_eq!(exit["exit"]["signal"], 9, "{exit}");

    // The approved binary rewritten after approval (different content): killed.
    let ok2 = tmp.path().join("approved-again");
    let id2 = approve(&d, "enf", &[], &[s(&t), s(&ok2)]);
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&t)
            .expect("open tool");
        f.write_all(b"\0tampered").expect("append");
    }
    let out = host_run(&d, "enf", &format!("{} {}; echo rc=$?", s(&t), s(&ok2)));
    assert_eq!(rcs(&out), vec![137], "{out:?}");
    assert!(
        !ok2.exists(),
        "a modified binary does not run under its old approval"
    );
    let ev = wait_launch(&d, s(&ok2));
    assert_eq!(ev["verdict"]["decision"], "killed");
    let reason = ev["verdict"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains(&format!("record {id2} no longer applies"))
            && reason.contains("changed since approval"),
        "{reason}"
    );
    let evs = d.events();
    assert!(
        evs.iter()
            .any(|e| e["kind"] == "record_stale" && e["record"] == id2),
        "a record_stale event names the record"
    );

    // A `once` record works exactly once.
    let t2 = tool(tmp.path(), "oncetouch");
    let once = tmp.path().join("once");
    let once_id = approve(&d, "enf", &["--once"], &[s(&t2), s(&once)]);
    let out = host_run(
        &d,
        "enf",
        &format!(
            "{t} {o}; echo rc=$?; {t} {o}; echo rc=$?",
            t = s(&t2),
            o = s(&once)
        ),
    );
    assert_eq!(
        rcs(&out),
        vec![0, 137],
        "first run allowed, the second killed: {out:?}"
    );
    assert!(once.exists(), "the first run of a once record ran");
    d.wait_events("the once record retired", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "revoke" && e["record"] == once_id)
    });
    assert!(
        !records(&d)["records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["id"] == once_id),
        "a used once record is gone from the store"
    );
}

#[test]
fn managed_deny_kills_sudo_and_su_inside_an_approved_session() {
    if !require_root() {
        return;
    }
    let su = ["/usr/bin/su", "/bin/su"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(su) = su else {
        panic!("this test needs su (util-linux / login) installed");
    };
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let script = tmp.path().join("session.sh");
    let marker = tmp.path().join("after-su");
    std::fs::write(
        &script,
        format!("{su} root -c 'touch {m}'; echo su=$?\n", m = s(&marker)),
    )
    .expect("script");
    approve(&d, "deny", &[], &["/bin/sh", s(&script)]);
    let out = host_run(&d, "deny", &format!("/bin/sh {}; echo rc=$?", s(&script)));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("su=137"),
        "su inside the session was killed: {text}"
    );
    assert!(!marker.exists(), "su never ran its command");
    assert_eq!(
        rcs(&out),
        vec![0],
        "the approved session itself ran: {text}"
    );
    let evs = d.wait_events("the denied exec", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "exec" && e["verdict"]["decision"] == "denied")
    });
    let denied = evs
        .iter()
        .find(|e| e["kind"] == "exec" && e["verdict"]["decision"] == "denied")
        .expect("denied");
    assert_eq!(denied["verdict"]["killed"], true, "{denied}");
}

/// Observed (issue 10, item 11): a copy of a denied program ran, and after a
/// rename-style upgrade of the denied file the deny was gone until an unrelated
/// resync. Now denies are by content too: a copy is killed as soon as the daemon
/// has hashed it (it starts: the kernel decides before anyone can hash) and denied
/// in the kernel by identity from then on; a new file at a denied path is denied
/// within one periodic check (2 s).
#[test]
fn a_copy_or_an_upgrade_of_a_denied_program_is_denied_by_content() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let forbidden = tmp.path().join("forbidden");
    std::fs::copy("/usr/bin/touch", &forbidden).expect("copy");
    std::fs::write(
        d.policy_dir.join("20-deny.toml"),
        format!("[deny]\nprograms = [{:?}]\n", s(&forbidden)),
    )
    .expect("policy");
    let copy = tmp.path().join("harmless");
    let m = |n: &str| tmp.path().join(n);
    let script = tmp.path().join("session.sh");
    std::fs::write(
        &script,
        format!(
            "{f} {m0}; echo direct=$?\n{c} {m1}; echo first=$?\nsleep 0.5\n{c} {m2}; echo second=$?\n\
             cp {f} {f}.new && mv {f}.new {f}\nsleep 3\n{f} {m3}; echo upgraded=$?\n",
            f = s(&forbidden),
            c = s(&copy),
            m0 = s(&m("m0")),
            m1 = s(&m("m1")),
            m2 = s(&m("m2")),
            m3 = s(&m("m3")),
        ),
    )
    .expect("script");
    std::thread::sleep(Duration::from_secs(3)); // the policy file is read on a tick
    std::fs::copy(&forbidden, &copy).expect("copy of the denied program");
    approve(&d, "copies", &[], &["/bin/sh", s(&script)]);
    let out = host_run(&d, "copies", &format!("/bin/sh {}; echo rc=$?", s(&script)));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("direct=137"),
        "the denied file itself: {text}"
    );
    assert!(text.contains("second=137"), "the copy, once known: {text}");
    assert!(text.contains("upgraded=137"), "the upgraded file: {text}");
    for n in ["m0", "m2", "m3"] {
        assert!(!m(n).exists(), "{n} ran: {text}");
    }
    let evs = d.wait_events("the copy's verdict", Duration::from_secs(10), |evs| {
        evs.iter().any(|e| {
            e["verdict"]["decision"] == "denied"
                && e["verdict"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("has its content"))
        })
    });
    let first = evs
        .iter()
        .find(|e| {
            e["verdict"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("has its content"))
        })
        .expect("found by content");
    assert_eq!(first["exe"]["path"], s(&copy), "{first}");
}

fn proc_state(pid: u64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wait_pending(d: &Daemon, arg1: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = d.cli(&["pending", "--json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(p) = list
            .as_array()
            .and_then(|l| l.iter().find(|p| p["argv"][1] == arg1))
        {
            return p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no pending launch of {arg1}: {list}\n{}",
            d.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ask_holds_the_launch_stopped_until_allow_and_deny_or_timeout_kill_it() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("ask_timeout_secs = 3\n[defaults]\nmode = \"ask\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tool(tmp.path(), "asktouch");
    for (case, answer) in [("allowed", "allow"), ("denied", "deny"), ("timeout", "")] {
        let target = tmp.path().join(case);
        let rc_file = tmp.path().join(format!("{case}.rc"));
        let mut host = host_cmd(
            &d,
            "asker",
            &format!("{} {}; echo $? > {}", s(&t), s(&target), s(&rc_file)),
        )
        .spawn()
        .expect("host");
        let p = wait_pending(&d, s(&target));
        let pid = p["pid"].as_u64().expect("pid");
        let id = p["id"].as_u64().expect("id");
        assert_eq!(
            proc_state(pid),
            Some('T'),
            "held before its first instruction"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(!target.exists(), "a held launch has not run");
        assert_eq!(proc_state(pid), Some('T'), "still held");
        let start = Instant::now();
        match answer {
            "allow" => {
                let out = d.cli(&["allow", &id.to_string(), "--yes"]);
                assert!(out.status.success(), "allow: {out:?}");
            }
            "deny" => {
                let out = d.cli(&["deny", &id.to_string()]);
                assert!(out.status.success(), "deny: {out:?}");
            }
            _ => {}
        }
        let st = host.wait().expect("host");
        assert!(st.success(), "host shell itself is fine: {st:?}");
        let rc: i32 = std::fs::read_to_string(&rc_file)
            .expect("rc")
            .trim()
            .parse()
            .expect("rc number");
        match case {
            "allowed" => {
                assert_eq!(rc, 0);
                assert!(target.exists(), "continued and ran");
            }
            "denied" => {
                assert_eq!(rc, 137);
                assert!(!target.exists());
            }
            _ => {
                assert_eq!(rc, 137, "no answer in time is a deny");
                assert!(!target.exists());
                assert!(
                    start.elapsed() >= Duration::from_secs(2),
                    "waited for the timeout"
                );
            }
        }
        let ev = wait_launch(&d, s(&target));
        assert_eq!(ev["verdict"]["decision"], "held", "{ev}");
        assert_eq!(ev["verdict"]["pending"], id);
    }
    let evs = d.events();
    let decisions: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "decision")
        .filter_map(|e| e["verdict"]["decision"].as_str())
        .collect();
    assert_eq!(
        decisions,
        vec!["continued", "killed", "killed"],
        "{decisions:?}"
    );
}

#[test]
fn a_held_launch_whose_parent_exits_is_killed_not_leaked() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"ask\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tool(tmp.path(), "orphan");
    let target = tmp.path().join("orphaned");
    // The host forks the launch and exits at once: nobody is left to use it.
    let st = host_cmd(&d, "orphans", &format!("{} {} & exit 0", s(&t), s(&target)))
        .stdout(Stdio::null())
        .status()
        .expect("host");
    assert!(st.success());
    let evs = d.wait_events("the orphan killed", Duration::from_secs(15), |evs| {
        evs.iter().any(|e| {
            e["kind"] == "decision"
                && e["verdict"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("parent exited")
        })
    });
    let launch = launch_of(&evs, s(&target)).expect("launch");
    assert_eq!(launch["verdict"]["decision"], "held");
    let pid = launch["pid"].as_u64().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_state(pid).is_some_and(|c| c != 'Z') {
        assert!(Instant::now() < deadline, "pid {pid} still alive");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!target.exists(), "it never ran");
}

#[test]
fn a_held_launch_resumed_by_its_host_with_sigcont_is_killed_and_reported() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"ask\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tool(tmp.path(), "sneaky");
    let target = tmp.path().join("sneaked");
    approve(&d, "cont", &[], &["sleep", "1"]);
    // The host itself (same uid, its parent) tries to let the held child run.
    let out = host_run(
        &d,
        "cont",
        &format!(
            "{t} {x} & c=$!; sleep 1; kill -CONT $c; wait $c; echo rc=$?",
            t = s(&t),
            x = s(&target)
        ),
    );
    assert_eq!(rcs(&out), vec![137], "{out:?}");
    assert!(
        !target.exists(),
        "killed in the kernel as it resumed, before it ran"
    );
    let evs = d.wait_events("hold_bypass", Duration::from_secs(10), |evs| {
        evs.iter().any(|e| {
            e["kind"] == "hold_bypass"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("the kernel killed it before it ran")
        })
    });
    assert!(
        evs.iter().any(|e| e["kind"] == "hold_bypass"
            && e["message"].as_str().unwrap_or("").contains("sent SIGCONT")),
        "the sender is named"
    );
}

#[test]
fn enforcement_survives_sigkill_of_the_daemon_with_pinned_links() {
    if require_root() {
        survives_sigkill("pin_links = true", "pinned");
    }
}

#[test]
fn enforcement_survives_sigkill_of_the_daemon_with_a_link_keeper() {
    if require_root() {
        survives_sigkill("pin_links = false", "keeper");
    }
}

fn survives_sigkill(extra: &str, held_by: &str) {
    let mut d = Daemon::start(&format!("{extra}\n[defaults]\nmode = \"enforce\""));
    assert_eq!(d.status()["pins"]["links_held_by"], held_by);
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tool(tmp.path(), "survivor");
    let ok = tmp.path().join("ok");
    let bad = tmp.path().join("bad");
    let id = approve(&d, "surv", &[], &[s(&t), s(&ok)]);
    // A once record used while no daemon runs must not come back on restart.
    let once = tmp.path().join("once");
    approve(&d, "surv", &["--once"], &[s(&t), s(&once)]);
    let before = records(&d);
    let status_before = d.status();

    // `mcpwatch run` needs the daemon, so the host starts while it runs and
    // waits on a FIFO; the daemon is SIGKILLed before the host launches anything.
    let fifo = tmp.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let host = host_cmd(
        &d,
        "surv",
        &format!(
            "read x < {f}; {t} {ok}; echo rc=$?; {t} {bad}; echo rc=$?; {t} {once}; echo rc=$?",
            f = s(&fifo),
            t = s(&t),
            ok = s(&ok),
            bad = s(&bad),
            once = s(&once)
        ),
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("host");
    // Wait until the host is tracked, then kill the daemon before it launches.
    d.wait_events("the host start", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "host_start" && e["host"]["name"] == "surv")
    });
    d.kill9();
    std::fs::write(&fifo, "go\n").expect("release the host");
    let out = host.wait_with_output().expect("host");
    assert_eq!(rcs(&out), vec![0, 137, 0], "with the daemon dead: {out:?}");
    assert!(ok.exists());
    assert!(
        !bad.exists(),
        "unapproved launch killed with no daemon running"
    );

    // Restart: the pinned state is taken over, nothing attached twice.
    d.restart();
    let status = d.status();
    let attach: Vec<String> = status["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|a| a["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        attach.iter().all(|m| m.contains("taken over")),
        "{attach:?}"
    );
    assert_eq!(
        status["attachments"].as_array().map(Vec::len),
        status_before["attachments"].as_array().map(Vec::len)
    );
    let after = records(&d);
    let kept: Vec<&Value> = before["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["scope"] != "once")
        .collect();
    let now: Vec<&Value> = after["records"]
        .as_array()
        .expect("records")
        .iter()
        .collect();
    assert_eq!(
        now, kept,
        "same records after restart, less the once record used meanwhile"
    );
    let out = host_run(&d, "surv", &format!("{} {}; echo rc=$?", s(&t), s(&once)));
    assert_eq!(
        rcs(&out),
        vec![137],
        "a used once record is not re-armed: {out:?}"
    );
    assert_eq!(after["modes"]["surv"], before["modes"]["surv"]);
    // Still enforcing, and each launch is seen once (no duplicate programs).
    let bad2 = tmp.path().join("bad2");
    let out = host_run(&d, "surv", &format!("{} {}; echo rc=$?", s(&t), s(&bad2)));
    assert_eq!(rcs(&out), vec![137], "{out:?}");
    let evs = d.wait_events("the second launch", Duration::from_secs(10), |evs| {
        launch_of(evs, s(&bad2)).is_some()
    });
    let n = evs
        .iter()
        .filter(|e| e["kind"] == "launch" && e["argv"][1] == s(&bad2))
        .count();
    assert_eq!(n, 1, "one program per hook: one event per launch");
    assert!(id > 0);
}

#[test]
fn an_agent_cannot_approve_itself_or_change_its_mode() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let mcpwatch = bin("mcpwatch");
    let out = host_run(
        &d,
        "selfish",
        &format!(
            "{m} approve --host selfish --yes -- /bin/true; echo rc=$?; {m} mode selfish monitor; echo rc=$?",
            m = s(&mcpwatch)
        ),
    );
    assert_eq!(rcs(&out), vec![4, 4], "refused with exit 4: {out:?}");
    let evs = d.wait_events("two refusals", Duration::from_secs(10), |evs| {
        evs.iter().filter(|e| e["kind"] == "refused").count() >= 2
    });
    let r = evs
        .iter()
        .find(|e| e["kind"] == "refused")
        .expect("refused");
    assert!(
        r["message"]
            .as_str()
            .unwrap_or("")
            .contains("cannot grant itself consent"),
        "{r}"
    );
    assert!(
        records(&d)["records"]
            .as_array()
            .expect("records")
            .is_empty(),
        "nothing approved"
    );
}

#[test]
fn a_broken_store_or_policy_file_is_reported_and_the_last_good_copy_stays_in_force() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tool(tmp.path(), "keeper-of-records");
    let ok = tmp.path().join("ok");
    let id = approve(&d, "store", &[], &[s(&t), s(&ok)]);
    d.stop();

    // Hand-break the store while the daemon is down.
    let store = d.state.join("records.json");
    let mut text = std::fs::read_to_string(&store).expect("store");
    text.push_str("\n{ this is not json\n");
    std::fs::write(&store, &text).expect("break store");
    d.restart();
    let evs = d.wait_events(
        "policy_error for the store",
        Duration::from_secs(10),
        |evs| evs.iter().any(|e| e["kind"] == "policy_error"),
    );
    let pe = evs
        .iter()
        .find(|e| e["kind"] == "policy_error")
        .expect("policy_error");
    let msg = pe["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("records.json:") && msg.contains("last good"),
        "file:line:col and what runs: {msg}"
    );
    let recs = records(&d);
    assert!(
        recs["records"]
            .as_array()
            .expect("records")
            .iter()
            .any(|r| r["id"] == id),
        "record kept"
    );
    assert!(!recs["problems"].as_array().expect("problems").is_empty());
    assert_eq!(
        std::fs::read_to_string(&store).expect("store"),
        text,
        "the broken file is left as it was"
    );
    let out = host_run(&d, "store", &format!("{} {}; echo rc=$?", s(&t), s(&ok)));
    assert_eq!(rcs(&out), vec![0], "last good record enforced: {out:?}");

    // Managed policy: lock a host's mode, then break the file.
    let policy = d.policy_dir.join("10-lock.toml");
    std::fs::write(&policy, "[hosts.locked]\nmode = \"enforce\"\nlock = true\n").expect("policy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while records(&d)["modes"]["locked"]["locked"] != true {
        assert!(
            Instant::now() < deadline,
            "policy not picked up: {}",
            records(&d)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&policy, "[hosts.locked]\nmode = \"enforce\nlock = true\n")
        .expect("break policy");
    d.wait_events(
        "policy_error for the policy file",
        Duration::from_secs(10),
        |evs| {
            evs.iter().any(|e| {
                e["kind"] == "policy_error"
                    && e["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("10-lock.toml:2:")
            })
        },
    );
    let recs = records(&d);
    assert_eq!(
        recs["modes"]["locked"]["mode"], "enforce",
        "last good policy still applies"
    );
    assert_eq!(recs["modes"]["locked"]["locked"], true);
    let out = d.cli(&["mode", "locked", "monitor"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a locked mode cannot be lowered: {out:?}"
    );
    let out = host_run(
        &d,
        "locked",
        &format!("{} {}; echo rc=$?", s(&t), s(&tmp.path().join("x"))),
    );
    assert_eq!(
        rcs(&out),
        vec![137],
        "enforced under the last good policy: {out:?}"
    );
    let _ = exit_code;
    let _ = set_mode;
}
