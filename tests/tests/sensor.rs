//! Root integration tests of the sensor against the real kernel: real processes,
//! real exec, assertions on the events the kernel produced. Run with
//! `cargo xtask test` (builds the binaries, one test at a time).
use std::{
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    process::{Command, Stdio},
    time::Duration,
};

use mcpwatch_tests::{
    argv, bin, exit_code, is_event, read_events, require_root, with_marker, Daemon,
};
use serde_json::{json, Value};

/// A fake host binary (a copy of sh), a `#!` script host with `script_body`, and a
/// config naming them as hosts `fake` (by executable) and `fakecli` (by script).
fn fake_hosts(
    script_body: &str,
) -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
) {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fakehost");
    std::fs::copy("/bin/sh", &fake).unwrap();
    let script = dir.path().join("fakecli.js");
    std::fs::write(&script, script_body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = format!(
        "[[host]]\nname = \"fake\"\ndisplay = \"Fake host\"\nexe = [{:?}]\n\n[[host]]\nname = \"fakecli\"\ndisplay = \"Fake script host\"\nscripts = [{:?}]\n",
        fake.display().to_string(),
        script.display().to_string()
    );
    (dir, fake, script, cfg)
}

fn marker(name: &str) -> String {
    format!("mcpw-{name}-{}", std::process::id())
}

fn kinds<'a>(evs: &[&'a Value]) -> Vec<&'a str> {
    evs.iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .collect()
}

fn pid_of(e: &Value) -> u64 {
    e["pid"].as_u64().expect("pid")
}

/// Lines `MODE PID` printed by treegen.
fn treegen_pids(stdout: &[u8]) -> std::collections::HashMap<String, u64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| {
            let (m, p) = l.split_once(' ')?;
            Some((m.to_string(), p.trim().parse().ok()?))
        })
        .collect()
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: a single treegen run, then one assertion block per tricky case"
)]
fn run_host_launches_exact_argv_lineage_and_untracked_sibling_is_silent() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let m = marker("tree");
    let untracked = marker("untracked");
    // An untracked sibling running at the same time: must leave no event.
    let mut sibling = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("for i in 1 2 3 4 5; do /bin/echo {untracked} >/dev/null; sleep 0.05; done"),
        ])
        .spawn()
        .expect("sibling");
    let out = d
        .cli_cmd(&[
            "run",
            "--host",
            "test-host",
            "--",
            bin("treegen").to_str().unwrap(),
            "all",
            &m,
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("mcpwatch run treegen");
    assert!(out.status.success(), "treegen failed: {:?}", out.status);
    sibling.wait().expect("sibling");
    let pids = treegen_pids(&out.stdout);
    // mcpwatch run execs treegen in place: the host pid is mcpwatch's pid; find it
    // from the host_start event whose argv[1] is `all`.
    // Five launches carry the marker (the grandchild may exec after the host exited).
    let evs = d.wait_events(
        "treegen's exit and its five marked launches",
        Duration::from_secs(20),
        |evs| {
            evs.iter().any(|e| {
                e["kind"] == "exit"
                    && e["host"]["name"] == "test-host"
                    && e["pid"] == e["host"]["pid"]
            }) && with_marker(evs, &m)
                .iter()
                .filter(|e| e["kind"] == "launch")
                .count()
                >= 5
        },
    );
    let host_start = evs
        .iter()
        .find(|e| is_event(e, "host_start", 2, m.as_str()))
        .unwrap_or_else(|| panic!("no host_start for treegen in {evs:#?}"));
    let host_pid = pid_of(host_start);
    assert_eq!(
        host_start["host"],
        json!({"name": "test-host", "pid": host_pid})
    );
    assert!(
        host_start["exe"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/treegen"),
        "{host_start}"
    );
    assert_eq!(
        host_start["exe"]["sha256"].as_str().map(str::len),
        Some(64),
        "{host_start}"
    );

    // 1. tricky argv survives exactly (spaces, empty, quotes, newline, non-UTF-8).
    let tricky = pids["tricky"];
    let launch = evs
        .iter()
        .find(|e| e["kind"] == "launch" && pid_of(e) == tricky)
        .unwrap_or_else(|| panic!("no launch for tricky pid {tricky}"));
    assert_eq!(
        launch["argv"],
        json!(["echo", m, "a b", "", "q\"'$`\\", "nl\nx", {"base64": "//4tYnl0ZXM="}]),
        "{launch}"
    );
    assert_eq!(launch["filename"], "/bin/echo");
    assert!(launch["exe"]["path"].as_str().unwrap().ends_with("/echo"));
    assert_eq!(launch["lineage"], json!([tricky, host_pid]));
    assert_eq!(launch["session"], json!(tricky));
    assert_eq!(launch["uid"], json!(0));
    assert!(
        launch["cwd"].as_str().is_some_and(|c| c.starts_with('/')),
        "{launch}"
    );
    let exit = evs
        .iter()
        .find(|e| e["kind"] == "exit" && pid_of(e) == tricky)
        .expect("tricky exit");
    assert_eq!(exit["exit"]["status"], json!(0));

    // 2. double fork: the grandchild was reparented before it exec'd; lineage still
    // leads through the vanished middle process to the host.
    let middle = pids["double-fork-middle"];
    let grandchild = pids["double-fork-grandchild"];
    let gc = evs
        .iter()
        .find(|e| e["kind"] == "launch" && pid_of(e) == grandchild)
        .unwrap_or_else(|| panic!("no launch for the double-forked grandchild {grandchild}"));
    assert_eq!(gc["argv"], json!(["true", m, "grandchild"]));
    assert_eq!(gc["lineage"], json!([grandchild, middle, host_pid]));
    assert_ne!(
        gc["ppid"],
        json!(middle),
        "the grandchild should have been reparented: {gc}"
    );

    // 3. fork from a non-main thread is followed.
    let tf = pids["thread-fork"];
    let e = evs
        .iter()
        .find(|e| e["kind"] == "launch" && pid_of(e) == tf)
        .expect("thread-fork launch");
    assert_eq!(e["argv"], json!(["true", m, "from-thread"]));
    assert_eq!(e["lineage"], json!([tf, host_pid]));

    // 4. setsid (new session and process group) does not escape.
    let ss = pids["setsid"];
    let e = evs
        .iter()
        .find(|e| e["kind"] == "launch" && pid_of(e) == ss)
        .expect("setsid launch");
    assert_eq!(e["argv"], json!(["true", m, "setsid"]));

    // 5. a new pid namespace: global pid in `pid` (what the parent's fork returned),
    // 1 in `ns_pid`, and a different namespace inode.
    let ns_child = pids["pidns"];
    let e = evs
        .iter()
        .find(|e| is_event(e, "launch", 2, "pidns"))
        .expect("pidns launch");
    assert_eq!(pid_of(e), ns_child, "{e}");
    assert_eq!(e["ns_pid"], json!(1), "{e}");
    assert_ne!(
        e["pidns"], host_start["pidns"],
        "a different pid namespace: {e}"
    );
    assert_eq!(
        e["lineage"],
        json!([ns_child, pids["pidns-helper"], host_pid])
    );

    // The untracked sibling left nothing.
    assert!(
        with_marker(&evs, &untracked).is_empty(),
        "untracked sibling produced events"
    );
    assert!(
        !evs.iter()
            .any(|e| e["pid"].as_u64() == Some(u64::from(sibling.id()))),
        "untracked sibling's pid appears in the log"
    );
    // Every exec of the tree is accounted for, none lost.
    let tree: Vec<&Value> = evs
        .iter()
        .filter(|e| e["host"]["pid"].as_u64() == Some(host_pid))
        .collect();
    assert!(kinds(&tree).contains(&"fork"));
    let st = d.status();
    assert_eq!(st["lost"]["ringbuf"], json!(0), "{st}");
    assert_eq!(st["lost"]["queue"], json!(0), "{st}");
    // Status names the loaded programs, the attach method per hook, and whether
    // this kernel accepts BPF LSM programs (with the reason when it does not).
    let methods: Vec<(String, String)> = st["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["hook"].as_str().unwrap().to_string(),
                a["method"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (hook, method) in [
        ("sched/sched_process_fork", "tp_btf"),
        ("sched/sched_process_exec", "tracepoint"),
        ("sched/sched_process_exit", "tracepoint"),
    ] {
        assert!(
            methods.contains(&(hook.to_string(), method.to_string())),
            "{methods:?}"
        );
    }
    let lsm = &st["lsm"];
    assert!(lsm["loadable"].is_boolean(), "{st}");
    if lsm["loadable"] == json!(false) {
        assert!(
            lsm["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{st}"
        );
    }
    let human = String::from_utf8(d.cli(&["status"]).stdout).unwrap();
    assert!(
        human.contains("tp_btf") && human.contains("BPF LSM"),
        "{human}"
    );
}

#[test]
fn storm_of_2000_execs_in_a_tracked_tree_arrives_with_zero_loss() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let out = d
        .cli_cmd(&[
            "run",
            "--host",
            "storm-host",
            "--",
            bin("storm").to_str().unwrap(),
            "2000",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("storm");
    assert!(out.status.success());
    #[expect(
        clippy::duration_suboptimal_units,
        reason = "Duration::from_mins needs Rust 1.91; the workspace rust-version is 1.87"
    )]
    let evs = d.wait_events(
        "2000 /bin/true launches and the storm's exit",
        Duration::from_secs(60),
        |evs| {
            let launches = evs
                .iter()
                .filter(|e| e["kind"] == "launch" && e["host"]["name"] == "storm-host")
                .count();
            let host_exit = evs.iter().any(|e| {
                e["kind"] == "exit"
                    && e["host"]["name"] == "storm-host"
                    && e["pid"] == e["host"]["pid"]
            });
            launches >= 2000 && host_exit
        },
    );
    let launches: Vec<&Value> = evs
        .iter()
        .filter(|e| e["kind"] == "launch" && e["host"]["name"] == "storm-host")
        .collect();
    assert_eq!(launches.len(), 2000);
    assert!(
        launches.iter().all(|e| e["argv"] == json!(["/bin/true"])),
        "every argv exact"
    );
    let exits = evs
        .iter()
        .filter(|e| e["kind"] == "exit" && e["host"]["name"] == "storm-host")
        .count();
    assert_eq!(exits, 2001, "2000 children and the storm itself");
    let st = d.status();
    assert_eq!(
        st["lost"],
        json!({"ringbuf": 0, "queue": 0, "broadcast": 0, "decode": 0}),
        "{st}"
    );
}

#[test]
fn stalled_daemon_loss_is_counted_exactly_and_reported() {
    if !require_root() {
        return;
    }
    // A small ring buffer and a daemon that stops reading (SIGSTOP) while a tracked
    // tree runs a storm: the kernel must drop, and every drop must be counted.
    let d = Daemon::start("ring_buffer_bytes = 65536");
    let mut host = d
        .cli_cmd(&[
            "run",
            "--host",
            "stalled",
            "--",
            "/bin/sh",
            "-c",
            &format!("read go; exec {} 2000", bin("storm").display()),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("tracked shell");
    d.wait_events("the tracked shell", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "host_start" && e["host"]["name"] == "stalled")
    });
    let daemon = nix::unistd::Pid::from_raw(i32::try_from(d.pid()).unwrap());
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGSTOP).unwrap();
    {
        use std::io::Write as _;
        let mut stdin = host.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    let st = host.wait().unwrap();
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(st.success());
    // Wait until the counters settle: every kernel event is either in the log or in
    // the drop counter.
    let mut prev = (0, 0);
    let mut stable = 0;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(100));
        let st = d.status();
        let now = (
            st["kernel"]["execs"].as_u64().unwrap(),
            st["events"].as_u64().unwrap(),
        );
        stable = if now == prev { stable + 1 } else { 0 };
        prev = now;
        if stable >= 10 {
            break;
        }
    }
    let st = d.status();
    let k = &st["kernel"];
    let produced =
        k["execs"].as_u64().unwrap() + k["forks"].as_u64().unwrap() + k["exits"].as_u64().unwrap();
    let drops = st["lost"]["ringbuf"].as_u64().unwrap();
    let evs = d.events();
    let recorded = evs
        .iter()
        .filter(|e| {
            ["exec", "launch", "host_start", "host_exec", "fork", "exit"]
                .contains(&e["kind"].as_str().unwrap_or(""))
        })
        .count() as u64;
    assert!(
        drops > 0,
        "a stalled reader behind a 64 KiB ring buffer must lose events: {st}"
    );
    assert_eq!(
        recorded + drops,
        produced,
        "every kernel event is recorded or counted as dropped: {st}"
    );
    // The loss is in the log itself, not only in a counter.
    let lost = evs
        .iter()
        .rev()
        .find(|e| e["kind"] == "lost")
        .expect("a `lost` event in the log");
    assert_eq!(lost["lost"]["ringbuf"].as_u64(), Some(drops), "{lost}");
    assert_eq!(
        d.cli(&["status"]).status.code(),
        Some(3),
        "status exits 3 after a loss"
    );
}

#[test]
fn hosts_detected_by_exe_and_by_script_path_and_adopted_when_already_running() {
    if !require_root() {
        return;
    }
    let (dir, fake, script, cfg) = fake_hosts("#!/bin/sh\n/bin/echo \"$@\"\n");
    let m = marker("hosts");
    // Already running before the daemon: a host with a child.
    let ready = dir.path().join("go");
    let early = Command::new(&fake)
        .args(["-c", &format!("/bin/sleep 30 & S=$!; while [ ! -e {} ]; do sleep 0.05; done; /bin/echo {m} adopted-launch; kill $S; wait", ready.display())])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let d = Daemon::start(&cfg);
    let evs = d.wait_events(
        "adoption of the early host",
        Duration::from_secs(10),
        |evs| {
            evs.iter()
                .any(|e| e["kind"] == "adopt" && e["pid"].as_u64() == Some(u64::from(early.id())))
        },
    );
    let adopted: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "adopt").collect();
    let host = adopted
        .iter()
        .find(|e| pid_of(e) == u64::from(early.id()))
        .unwrap();
    assert_eq!(host["host"]["name"], "fake");
    assert!(
        adopted.iter().any(
            |e| argv(e).first().and_then(Value::as_str) == Some("/bin/sleep")
                && e["session"].is_u64()
        ),
        "the host's existing child is adopted as a session: {adopted:#?}"
    );
    std::fs::write(&ready, "").unwrap();
    // The adopted host's next launch is seen.
    let evs = d.wait_events(
        "launch from the adopted host",
        Duration::from_secs(10),
        |evs| evs.iter().any(|e| is_event(e, "launch", 1, m.as_str())),
    );
    let l = evs
        .iter()
        .find(|e| is_event(e, "launch", 1, m.as_str()))
        .unwrap();
    assert_eq!(l["host"]["pid"].as_u64(), Some(u64::from(early.id())));

    // Started after the daemon: detected in the kernel at exec, by inode.
    let st = Command::new(&fake)
        .args(["-c", &format!("/bin/echo {m} by-exe")])
        .status()
        .unwrap();
    assert!(st.success());
    // A `#!` host detected by its exec filename.
    let st = Command::new(&script)
        .args([&m, "by-script"])
        .status()
        .unwrap();
    assert!(st.success());
    let evs = d.wait_events("both new hosts' launches", Duration::from_secs(10), |evs| {
        ["by-exe", "by-script"]
            .iter()
            .all(|w| evs.iter().any(|e| is_event(e, "launch", 2, w)))
    });
    let by_exe = evs
        .iter()
        .find(|e| is_event(e, "launch", 2, "by-exe"))
        .unwrap();
    assert_eq!(by_exe["host"]["name"], "fake");
    let hs = evs
        .iter()
        .find(|e| e["kind"] == "host_start" && pid_of(e) == by_exe["host"]["pid"].as_u64().unwrap())
        .expect("host_start by exe");
    assert!(hs["exe"]["path"].as_str().unwrap().ends_with("/fakehost"));
    let by_script = evs
        .iter()
        .find(|e| is_event(e, "launch", 2, "by-script"))
        .unwrap();
    assert_eq!(by_script["host"]["name"], "fakecli");

    let mut early = early;
    let _ = early.wait();
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |cfg: &str| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, cfg).unwrap();
        let out = Command::new(bin("mcpwatchd"))
            .arg("--config")
            .arg(&p)
            .output()
            .unwrap();
        (
            exit_code(out.status),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let state = dir.path().join("state");
    let (code, err) = run(&format!(
        "state_dir = {:?}\nringbuf_size = 1\n",
        state.display().to_string()
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("c.toml:2:1") && err.contains("ringbuf_size"),
        "{err}"
    );
    let (code, err) = run("state_dir = [unclosed\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("c.toml:1:"), "{err}");
    let (code, err) = run(
        "[[host]]\nname = \"x\"\ndisplay = \"X\"\nexe = [\"/nonexistent/bin/x\"]\nscripts = []\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/bin/x"), "{err}");
    assert!(!state.exists(), "a refused config must not create state");

    // Not root: refused with a one-line reason. Run a copy from a directory every
    // user can reach (the build tree may sit under a 0700 directory).
    let pub_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(pub_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let daemon_copy = pub_dir.path().join("mcpwatchd");
    std::fs::copy(bin("mcpwatchd"), &daemon_copy).unwrap();
    std::fs::set_permissions(&daemon_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&daemon_copy)
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("running mcpwatchd as nobody");
    assert_eq!(exit_code(out.status), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must run as root"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `mcpwatch run` with the daemon down: refuses, and the command never runs.
    let flag = dir.path().join("ran");
    let out = Command::new(bin("mcpwatch"))
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", dir.path().join("nobus").display()),
        )
        .args(["run", "--", "/bin/touch", flag.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(exit_code(out.status), 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("daemon is not reachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!flag.exists(), "the command ran untracked");
}

#[test]
fn log_json_works_with_the_daemon_stopped_and_follow_streams() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("");
    let m = marker("log");
    let mut follow = d
        .cli_cmd(&[
            "log",
            "--follow",
            "--json",
            "--config",
            d.config.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let st = d
        .cli_cmd(&["run", "--", "/bin/echo", &m])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    d.wait_events("echo's exit", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "exit" && e["host"]["name"] == "run")
    });
    std::thread::sleep(Duration::from_millis(500));
    let _ = follow.kill();
    let out = follow.wait_with_output().unwrap();
    let followed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        followed
            .iter()
            .any(|e| is_event(e, "host_start", 1, m.as_str())),
        "follow saw: {followed:#?}"
    );

    assert!(d.stop().success());
    let evs = read_events(&d.log);
    assert_eq!(evs.last().unwrap()["kind"], "daemon_stop");
    let out = d.cli(&["log", "--json", "--config", d.config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), evs.len());
    assert!(with_marker(&lines, &m)
        .iter()
        .any(|e| e["kind"] == "host_start"));
    // The human tree shows the exact command under its host.
    let out = d.cli(&["log", "--config", d.config.to_str().unwrap()]);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains(&format!("/bin/echo {m}")), "{tree}");
}

#[test]
fn argv_longer_than_the_kernel_bound_is_flagged_and_completed_from_proc() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let m = marker("long");
    let long = "L".repeat(10_000);
    // A process that lives long enough for /proc/PID/cmdline to be read.
    let st = d
        .cli_cmd(&[
            "run",
            "--host",
            "long",
            "--",
            "/bin/sh",
            "-c",
            "/bin/sleep 0.5; : \"$0\"",
            &m,
            &long,
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let evs = d.wait_events("the long launch", Duration::from_secs(10), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "host_start" && e["host"]["name"] == "long")
    });
    let e = evs
        .iter()
        .find(|e| e["kind"] == "host_start" && e["host"]["name"] == "long")
        .unwrap();
    assert_eq!(e["truncated"], json!(true), "{e}");
    assert_eq!(e["argv_source"], json!("proc"), "{e}");
    assert_eq!(
        e["argv"],
        json!(["/bin/sh", "-c", "/bin/sleep 0.5; : \"$0\"", m, long])
    );
}

#[test]
fn a_tracked_process_cannot_move_itself_out_of_its_tree_with_run() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let m = marker("nested");
    let mcpwatch = bin("mcpwatch");
    // Inside host "outer", a session process asks to become host "innocent".
    let out = d
        .cli_cmd(&[
            "run",
            "--host",
            "outer",
            "--",
            "/bin/sh",
            "-c",
            &format!(
                "{} run --host innocent -- /bin/echo {m}",
                mcpwatch.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already tracked under host outer"),
        "{stderr}"
    );
    let evs = d.wait_events("the nested echo", Duration::from_secs(10), |evs| {
        with_marker(evs, &m).iter().any(|e| e["kind"] == "exec")
    });
    let echo = with_marker(&evs, &m)
        .into_iter()
        .find(|e| e["kind"] == "exec")
        .unwrap();
    assert_eq!(echo["host"]["name"], "outer", "{echo}");
    assert!(echo["session"].is_u64(), "{echo}");
    assert!(
        !evs.iter().any(|e| e["host"]["name"] == "innocent"),
        "no host named `innocent` may appear"
    );
}

#[test]
fn host_helpers_and_a_relaunched_script_host_are_host_exec() {
    if !require_root() {
        return;
    }
    let (_dir, fake, script, cfg) = fake_hosts("#!/bin/sh\n");
    let m = marker("helpers");
    let d = Daemon::start(&cfg);

    // A host process executing the host image again (a helper) is `host_exec`, and
    // what that helper runs is still a launch of the same host.
    let st = Command::new(&fake)
        .args([
            "-c",
            &format!("{} -c '/bin/echo {m} from-helper'", fake.display()),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    // A `#!` host relaunching itself through its interpreter with the script in
    // argv (as Gemini CLI does with `node … gemini.js`): `host_exec`, and the
    // relaunched process's children are launches again.
    let relaunch = format!(
        "#!/bin/sh\nif [ \"$1\" = relaunched ]; then /bin/echo {m} after-relaunch; else /bin/sh {} relaunched; fi\n",
        script.display()
    );
    std::fs::write(&script, relaunch).unwrap();
    let st = Command::new(&script).status().unwrap();
    assert!(st.success());
    let evs = d.wait_events(
        "the helper's and the relaunched host's launches",
        Duration::from_secs(10),
        |evs| {
            ["from-helper", "after-relaunch"]
                .iter()
                .all(|w| evs.iter().any(|e| is_event(e, "launch", 2, w)))
        },
    );
    let helper_launch = evs
        .iter()
        .find(|e| is_event(e, "launch", 2, "from-helper"))
        .unwrap();
    let helper_pid = helper_launch["lineage"][1].as_u64().unwrap();
    let helper = evs
        .iter()
        .find(|e| e["kind"] == "host_exec" && pid_of(e) == helper_pid)
        .unwrap_or_else(|| panic!("no host_exec for the helper {helper_pid}"));
    assert_eq!(helper["host"]["name"], "fake");
    let relaunched = evs
        .iter()
        .find(|e| is_event(e, "host_exec", 2, "relaunched"))
        .expect("the relaunch is a host_exec");
    assert_eq!(relaunched["host"]["name"], "fakecli");
    let after = evs
        .iter()
        .find(|e| is_event(e, "launch", 2, "after-relaunch"))
        .unwrap();
    assert_eq!(after["lineage"][1], relaunched["pid"], "{after}");
}

#[test]
fn fileless_exec_from_a_memfd_is_recorded_with_the_hash_of_what_ran() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let m = marker("memfd");
    let out = d
        .cli_cmd(&[
            "run",
            "--host",
            "fileless",
            "--",
            bin("treegen").to_str().unwrap(),
            "memfd",
            &m,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = d.wait_events("the memfd launch", Duration::from_secs(10), |evs| {
        with_marker(evs, &m).iter().any(|e| e["kind"] == "launch")
    });
    let e = with_marker(&evs, &m)
        .into_iter()
        .find(|e| e["kind"] == "launch")
        .unwrap();
    assert_eq!(e["argv"], json!(["true", m, "memfd"]));
    let path = e["exe"]["path"].as_str().unwrap_or("");
    assert!(
        path.contains("memfd:fileless"),
        "the exe path names the memfd: {e}"
    );
    // The content hash is of what actually ran: the bytes of /bin/true.
    let expected = Command::new("sha256sum").arg("/bin/true").output().unwrap();
    let expected = String::from_utf8_lossy(&expected.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    match e["exe"]["sha256"].as_str() {
        Some(h) => assert_eq!(h, expected, "{e}"),
        // The process may be gone before the daemon hashes it; then the reason is
        // recorded, never a hash of something else.
        None => assert!(e["exe"]["hash_error"].is_string(), "{e}"),
    }
}
