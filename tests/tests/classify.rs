//! What is not a launch, against the real kernel: a terminal inside a host, the
//! host's login-shell environment probe, its helper executables and Electron
//! `--type=` re-execs. Each is recorded as `terminal` / `helper` and runs in
//! enforce mode; each look-alike that a host's MCP config could produce is still a
//! launch and is killed.
//!
//! The host is a real process doing what the real hosts do: `python3` under
//! `mcpwatch run --host NAME`, forking a child on a new pty (`pty.fork`: setsid,
//! controlling tty, stdio on the pty slave, as VS Code's ptyHost and Zed do), or
//! spawning `bash -i -l -c …` with stdin on /dev/null (VS Code's and Claude
//! Desktop's environment probe), or spawning the way MCP clients do (pipes).
use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use mcpwatch_tests::{exit_code, require_root, Daemon};
use serde_json::Value;

/// The host program: `python3 -c HOST MODE ARGS…`. Prints `rc=N` for what it ran
/// (N the exit code, or -SIGNAL).
const HOST: &str = r#"
import os, pty, subprocess, sys
mode, args = sys.argv[1], sys.argv[2:]
def report(status):
    print("rc=%d" % os.waitstatus_to_exitcode(status), flush=True)
if mode == "terminal":
    # VS Code's ptyHost / Zed: a session leader on a new pty runs the shell.
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(args[0], args)
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    report(os.waitpid(pid, 0)[1])
elif mode == "tty-not-leader":
    # A pty on stdio, but no new session (a CLI host started in a terminal).
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave)
    report(os.waitpid(p.pid, 0)[1])
elif mode == "setsid-pipes":
    # Zed and the Python SDK start MCP servers in a new session, on pipes.
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    p.stdin.close(); p.stdout.read()
    report(os.waitpid(p.pid, 0)[1])
elif mode == "probe":
    # The environment probe: detached, stdin /dev/null, output on a pipe.
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    p.stdout.read()
    report(os.waitpid(p.pid, 0)[1])
elif mode == "pipes":
    # How MCP clients spawn a stdio server.
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.close(); p.stdout.read()
    report(os.waitpid(p.pid, 0)[1])
"#;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Run the python host under `mcpwatch run --host HOST` in a clean environment.
fn host_run(d: &Daemon, host: &str, home: &Path, mode: &str, args: &[&str]) -> Output {
    let mut a = vec![
        "run",
        "--host",
        host,
        "--",
        "/usr/bin/python3",
        "-c",
        HOST,
        mode,
    ];
    a.extend_from_slice(args);
    d.cli_cmd(&a)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
        .stderr(Stdio::inherit())
        .output()
        .expect("mcpwatch run")
}

fn rc(out: &Output) -> i32 {
    assert_eq!(exit_code(out.status), 0, "host failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rc="))
        .find_map(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no rc= line: {out:?}"))
}

fn set_mode(d: &Daemon, host: &str, mode: &str) {
    let out = d.cli(&["mode", host, mode]);
    assert!(out.status.success(), "mode {host} {mode}: {out:?}");
}

fn names(e: &Value, marker: &str) -> bool {
    e["argv"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(marker)))
}

/// The first event `pred` accepts, waiting for it to be logged.
fn find(d: &Daemon, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let evs = d.wait_events(what, Duration::from_secs(10), |evs| evs.iter().any(&pred));
    evs.into_iter().find(|e| pred(e)).expect("found")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mcpw-classify-")
        .tempdir()
        .expect("tempdir")
}

fn marker(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[test]
fn a_terminal_inside_a_host_runs_in_enforce_mode_and_its_commands_are_recorded() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    set_mode(&d, "vscode", "enforce");
    let tmp = tempdir();
    let made = marker(tmp.path(), "typed-in-terminal");
    let script = format!("/usr/bin/touch {}; echo done", s(&made));
    let out = host_run(
        &d,
        "vscode",
        tmp.path(),
        "terminal",
        &["/bin/sh", "-c", &script],
    );
    assert_eq!(rc(&out), 0, "the terminal's shell ran");
    assert!(made.exists(), "the command typed in the terminal ran");

    let shell = find(&d, "the terminal's exec", |e| {
        e["argv"][0] == "/bin/sh" && e["argv"][2] == script.as_str()
    });
    assert_eq!(shell["kind"], "terminal", "{shell}");
    assert_eq!(shell["class"], "terminal");
    assert!(shell.get("verdict").is_none(), "not checked: {shell}");
    let touch = find(&d, "the typed command", |e| {
        e["argv"][0] == "/usr/bin/touch" && names(e, s(&made))
    });
    assert_eq!(touch["kind"], "exec", "{touch}");
    assert_eq!(touch["class"], "terminal", "{touch}");
    assert_eq!(touch["host"]["name"], "vscode");
    assert!(
        d.events().iter().all(|e| e["kind"] != "launch"),
        "nothing here is a launch"
    );
}

#[test]
fn look_alikes_of_a_terminal_are_launches_and_are_killed() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    set_mode(&d, "vscode", "enforce");
    let tmp = tempdir();
    // A pty on stdio without a new session, and a new session without a tty:
    // neither is a terminal.
    for mode in ["tty-not-leader", "setsid-pipes"] {
        let made = marker(tmp.path(), mode);
        let out = host_run(
            &d,
            "vscode",
            tmp.path(),
            mode,
            &["/usr/bin/touch", s(&made)],
        );
        assert_eq!(rc(&out), -9, "{mode}: killed before it ran");
        assert!(!made.exists(), "{mode}: never ran");
        let launch = find(&d, mode, |e| e["kind"] == "launch" && names(e, s(&made)));
        assert_eq!(launch["verdict"]["decision"], "killed", "{mode}: {launch}");
        assert!(launch.get("class").is_none());
    }
}

#[test]
fn the_login_shell_environment_probe_is_a_helper_unless_stdin_is_a_pipe() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    set_mode(&d, "vscode", "enforce");
    set_mode(&d, "claude-code", "enforce");
    let tmp = tempdir();

    // Runs `/bin/bash FLAGS… "touch MARKER"` from HOST in MODE; whether it ran.
    let shell = |host: &str, mode: &str, flags: &[&str], name: &str| -> (i32, PathBuf, String) {
        let made = marker(tmp.path(), name);
        let cmd = format!("/usr/bin/touch {}", s(&made));
        let mut args = vec!["/bin/bash"];
        args.extend_from_slice(flags);
        args.push(&cmd);
        let code = rc(&host_run(&d, host, tmp.path(), mode, &args));
        assert_eq!(made.exists(), code == 0, "{name}: ran iff it exited 0");
        (code, made, cmd)
    };

    // VS Code's probe: `$SHELL -i -l -c CMD`, detached, stdin /dev/null. What the
    // login scripts and CMD run is recorded as the helper's.
    let (code, made, cmd) = shell("vscode", "probe", &["-i", "-l", "-c"], "probe");
    assert_eq!(code, 0, "the probe ran");
    let probe = find(&d, "the probe", |e| {
        e["argv"][0] == "/bin/bash" && e["argv"][4] == cmd.as_str()
    });
    assert_eq!(probe["kind"], "helper", "{probe}");
    assert_eq!(probe["class"], "helper");
    let touch = find(&d, "what the probe ran", |e| {
        e["argv"][0] == "/usr/bin/touch" && names(e, s(&made))
    });
    assert_eq!(
        (touch["kind"].as_str(), touch["class"].as_str()),
        (Some("exec"), Some("helper"))
    );

    // Joined flags (`-ilc`, Claude Desktop's form) are the same probe.
    assert_eq!(shell("vscode", "probe", &["-ilc"], "probe-joined").0, 0);

    // The same argv from an MCP config: the client gives it a pipe on stdin.
    let (code, _, cmd) = shell("vscode", "pipes", &["-i", "-l", "-c"], "probe-piped");
    assert_eq!(code, -9, "a config's `bash -ilc` is a launch");
    let launch = find(&d, "the piped launch", |e| {
        e["kind"] == "launch" && names(e, &cmd)
    });
    assert_eq!(launch["verdict"]["decision"], "killed");

    // Missing `-l`: not the probe.
    assert_eq!(shell("vscode", "probe", &["-i", "-c"], "not-login").0, -9);

    // A host whose profile runs no probe (Claude Code): a launch.
    assert_eq!(
        shell("claude-code", "probe", &["-i", "-l", "-c"], "no-probe-host").0,
        -9
    );
}

#[test]
fn helper_executables_and_electron_reexecs_are_helpers_but_what_a_helper_runs_is_a_launch() {
    if !require_root() {
        return;
    }
    let tmp = tempdir();
    // An Electron-like host: its own binary (a private copy of python, so that only
    // this test's processes are this host) and a `chrome-sandbox` helper next to it
    // (a copy of env, which runs what it is given, as the real sandbox does).
    let host = tmp.path().join("electronish");
    std::fs::copy("/usr/bin/python3.11", &host).expect("copy python");
    let sandbox = tmp.path().join("chrome-sandbox");
    std::fs::copy("/usr/bin/env", &sandbox).expect("copy env");
    let d = Daemon::start(&format!(
        "[[host]]\nname = \"electronish\"\nexe = [\"{}\"]\nhelpers = [\"{}\"]\n",
        s(&host),
        s(&sandbox)
    ));
    set_mode(&d, "electronish", "enforce");
    let run = |mode: &str, args: &[&str]| -> i32 {
        let mut c = std::process::Command::new(&host);
        c.args(["-c", HOST, mode])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", tmp.path())
            .stderr(Stdio::inherit());
        rc(&c.output().expect("host"))
    };

    // The helper itself runs.
    assert_eq!(run("pipes", &[s(&sandbox), "MCPW_HELPER_ALONE=1"]), 0);
    let helper = find(&d, "the helper exec", |e| {
        e["argv"][0] == s(&sandbox) && e["argv"][1] == "MCPW_HELPER_ALONE=1"
    });
    assert_eq!(helper["kind"], "helper", "{helper}");
    assert_eq!(helper["host"]["name"], "electronish");

    // But it stays in the host role: what it executes is a launch, and is killed.
    let made = marker(tmp.path(), "through-the-sandbox");
    assert_eq!(run("pipes", &[s(&sandbox), "/usr/bin/touch", s(&made)]), -9);
    assert!(!made.exists(), "a helper is no way around consent");
    let launch = find(&d, "the launch through the helper", |e| {
        e["kind"] == "launch" && e["argv"][0] == "/usr/bin/touch" && names(e, s(&made))
    });
    assert_eq!(launch["verdict"]["decision"], "killed");

    // An Electron child process re-executing the host binary (`--type=…`).
    assert_eq!(
        run("pipes", &[s(&host), "-c", "pass", "--type=gpu-process"]),
        0
    );
    let gpu = find(&d, "the --type= re-exec", |e| {
        e["argv"][0] == s(&host) && e["argv"][2] == "pass" && names(e, "--type=gpu-process")
    });
    assert_eq!(gpu["kind"], "helper", "{gpu}");
}

#[test]
fn a_host_started_in_a_terminal_is_a_host_of_its_own_and_its_launches_are_checked() {
    if !require_root() {
        return;
    }
    let tmp = tempdir();
    let host = tmp.path().join("agent-cli");
    std::fs::copy("/usr/bin/python3.11", &host).expect("copy python");
    let script = tmp.path().join("host.py");
    std::fs::write(&script, HOST).expect("host script");
    let d = Daemon::start(&format!(
        "[[host]]\nname = \"agent-cli\"\nexe = [\"{}\"]\n",
        s(&host)
    ));
    set_mode(&d, "vscode", "enforce");
    set_mode(&d, "agent-cli", "enforce");
    // In VS Code's terminal the user starts an agent CLI, which launches a server.
    let made = marker(tmp.path(), "launched-by-the-cli");
    let typed = format!(
        "{} {} pipes /usr/bin/touch {}",
        s(&host),
        s(&script),
        s(&made)
    );
    let out = host_run(
        &d,
        "vscode",
        tmp.path(),
        "terminal",
        &["/bin/sh", "-c", &typed],
    );
    assert_eq!(rc(&out), 0, "the terminal's shell ran");
    assert!(!made.exists(), "the agent's unapproved launch was killed");
    let start = find(&d, "the agent CLI becoming a host", |e| {
        e["kind"] == "host_start" && e["argv"][0] == s(&host)
    });
    assert_eq!(start["host"]["name"], "agent-cli", "{start}");
    assert!(start.get("class").is_none(), "{start}");
    let launch = find(&d, "its launch", |e| {
        e["kind"] == "launch" && names(e, s(&made))
    });
    assert_eq!(launch["host"]["name"], "agent-cli");
    assert_eq!(launch["verdict"]["decision"], "killed");
}
