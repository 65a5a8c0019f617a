//! Hosts recognised by the name they are executed under (`names` in a profile),
//! against the real kernel: wherever the host is installed and whenever (every
//! host here is created after the daemon started), through `#!/usr/bin/env`
//! interpreters, shell wrappers named like the host, and ELF hosts whose children
//! re-execute them. And the attack the mechanism must not open: a host's own child
//! executing a file of the host's name is a launch like any other.
//!
//! The host is a real program: a `#!/usr/bin/env python3` script named `fakehost`
//! that spawns its arguments on pipes (as MCP clients start stdio servers) and
//! prints `rc=N`, or a copy of the python3 ELF named `fakehost`.
use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use mcpwatch_tests::{require_root, Daemon};
use serde_json::Value;

const CONFIG: &str = r#"
builtin_hosts = false
[defaults]
mode = "enforce"
[[host]]
name = "fakehost"
names = ["fakehost"]
"#;

/// The host: runs argv[1..] as a child on pipes and prints its exit code.
const HOST_SCRIPT: &str = "#!/usr/bin/env python3
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.close(); p.stdout.read()
print('rc=%d' % os.waitstatus_to_exitcode(os.waitpid(p.pid, 0)[1]), flush=True)
";

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Run `cmd` with a clean environment from `cwd`; returns its output.
fn run_in(cwd: &Path, cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stderr(Stdio::inherit())
        .output()
        .expect("run host")
}

fn rcs(out: &Output) -> Vec<i32> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("rc=").and_then(|n| n.trim().parse().ok()))
        .collect()
}

fn argv(e: &Value) -> Vec<String> {
    e["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `launch` event whose argv ends with `marker`, once it has a verdict.
fn launch_of(d: &Daemon, marker: &str) -> Value {
    let find = |evs: &[Value]| -> Option<Value> {
        evs.iter()
            .rev()
            .find(|e| {
                e["kind"] == "launch"
                    && argv(e).last().map(String::as_str) == Some(marker)
                    && e.get("verdict").is_some()
            })
            .cloned()
    };
    let evs = d.wait_events(
        &format!("launch of {marker}"),
        Duration::from_secs(15),
        |evs| find(evs).is_some(),
    );
    find(&evs).expect("launch")
}

/// The `host_start` event of the host that launched `launch`.
fn host_start_of(d: &Daemon, launch: &Value) -> Value {
    let host_pid = launch["host"]["pid"].clone();
    d.events()
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "host_start" && e["pid"] == host_pid)
        .unwrap_or_else(|| panic!("a host_start for {launch}"))
}

fn touch_copy(path: &Path) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::copy("/usr/bin/touch", path).expect("copy touch");
}

/// A host installed after the daemon started, under prefixes no profile lists and
/// run by an absolute path, a relative one and a link: recognised by its name at
/// its first exec, through `env` and the interpreter, and its unapproved launch is
/// killed in enforce mode before it ran.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, layout by layout")]
fn a_host_is_recognised_by_its_name_wherever_and_whenever_it_is_installed() {
    if !require_root() {
        return;
    }
    let d = Daemon::start(CONFIG);
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    // Layouts: an nvm-style prefix, a project's node_modules/.bin link, a tools dir.
    let nvm = t.join("nvm/versions/node/v22.1.0");
    let pkg = nvm.join("lib/node_modules/fakehost/cli.py");
    write_exec(&pkg, HOST_SCRIPT);
    std::fs::create_dir_all(nvm.join("bin")).expect("bin");
    std::os::unix::fs::symlink(
        "../lib/node_modules/fakehost/cli.py",
        nvm.join("bin/fakehost"),
    )
    .expect("link");
    let project = t.join("project");
    let local = project.join("node_modules/.bin/fakehost");
    write_exec(&local, HOST_SCRIPT);

    let cases: Vec<(String, PathBuf, Vec<String>)> = vec![
        (
            "nvm bin link".into(),
            t.to_path_buf(),
            vec![nvm.join("bin/fakehost").display().to_string()],
        ),
        (
            "project-local, relative".into(),
            project.clone(),
            vec!["./node_modules/.bin/fakehost".into()],
        ),
    ];
    for (what, cwd, cmd) in cases {
        let marker = t.join(format!("ran-{}", what.replace([' ', ','], "-")));
        let mut full: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let target = t.join("touch");
        if !target.exists() {
            touch_copy(&target);
        }
        let (target_s, marker_s) = (target.display().to_string(), marker.display().to_string());
        full.push(&target_s);
        full.push(&marker_s);
        let out = run_in(&cwd, &full);
        assert_eq!(
            rcs(&out),
            [-9],
            "{what}: the unapproved launch is killed: {out:?}"
        );
        assert!(!marker.exists(), "{what}: the launch never ran");
        let launch = launch_of(&d, &marker_s);
        assert_eq!(launch["host"]["name"], "fakehost", "{what}: {launch}");
        assert_eq!(launch["verdict"]["decision"], "killed", "{what}: {launch}");
        let start = host_start_of(&d, &launch);
        assert!(
            start["message"]
                .as_str()
                .is_some_and(|m| m.contains("recognised by the name `fakehost`")),
            "{what}: recognised by name: {start}"
        );
        // The interpreter the `#!` line named ran as the host going on, not a launch.
        let evs = d.events();
        let host_execs: Vec<&Value> = evs
            .iter()
            .filter(|e| e["kind"] == "host_exec" && e["pid"] == start["pid"])
            .collect();
        assert!(
            host_execs
                .iter()
                .any(|e| argv(e).first().is_some_and(|a| a == "python3")),
            "{what}: env → python3 is the host: {host_execs:?}"
        );
    }

    // Approved, the same launch runs (the records match as for any host).
    let target = t.join("touch");
    let marker = t.join("approved");
    let out = d.cli(&[
        "approve",
        "--host",
        "fakehost",
        "--yes",
        "--",
        &target.display().to_string(),
        &marker.display().to_string(),
    ]);
    assert!(out.status.success(), "approve: {out:?}");
    let out = run_in(
        t,
        &[
            &nvm.join("bin/fakehost").display().to_string(),
            &target.display().to_string(),
            &marker.display().to_string(),
        ],
    );
    assert_eq!(rcs(&out), [0], "approved: {out:?}");
    assert!(marker.exists(), "the approved launch ran");

    // Upgraded while the daemon runs: the package replaced by a new file (a new
    // inode, as npm does), recognised at its next start.
    std::fs::remove_file(&pkg).expect("remove");
    write_exec(&pkg, &HOST_SCRIPT.replace("import os,", "import os, time,"));
    let marker = t.join("after-upgrade");
    let out = run_in(
        t,
        &[
            &nvm.join("bin/fakehost").display().to_string(),
            &target.display().to_string(),
            &marker.display().to_string(),
        ],
    );
    assert_eq!(rcs(&out), [-9], "upgraded: {out:?}");
    assert!(!marker.exists());
    assert_eq!(
        launch_of(&d, &marker.display().to_string())["host"]["name"],
        "fakehost"
    );

    // `mcpwatch status` says how each running host was recognised (its launch
    // approved, so that it stays up).
    let out = d.cli(&[
        "approve",
        "--host",
        "fakehost",
        "--yes",
        "--",
        "/bin/sleep",
        "30",
    ]);
    assert!(out.status.success(), "approve: {out:?}");
    let mut host = Command::new(nvm.join("bin/fakehost"))
        .args(["/bin/sleep", "30"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdout(Stdio::null())
        .spawn()
        .expect("long host");
    let pid = host.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let st = d.status();
        if let Some(h) = st["hosts"]
            .as_array()
            .and_then(|a| a.iter().find(|h| h["pid"] == pid).cloned())
        {
            break h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "host {pid} in status: {st}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // `mcpwatch hosts` lists the profile: how it is recognised, its mode, the
    // process running now and how it was recognised.
    let out = d.cli(&["hosts", "--json", "--host", "fakehost"]);
    assert!(out.status.success(), "hosts: {out:?}");
    let list: Value = serde_json::from_slice(&out.stdout).expect("hosts --json");
    let report = &list[0];
    assert_eq!(report["name"], "fakehost", "{list}");
    assert_eq!(report["mode"], "enforce", "{list}");
    assert_eq!(report["recognised_by"]["names"][0], "fakehost", "{list}");
    assert!(
        report["running"].as_array().is_some_and(|r| r
            .iter()
            .any(|p| p["pid"] == pid && p["recognised_by"] == "name")),
        "{list}"
    );
    let _ = host.kill();
    let _ = host.wait();
    assert_eq!(entry["name"], "fakehost", "{entry}");
    assert_eq!(entry["recognised_by"], "name", "{entry}");
    assert_eq!(
        entry["filename"],
        nvm.join("bin/fakehost").display().to_string(),
        "{entry}"
    );
}

/// A `#!/usr/bin/env bash` shim named like the host (asdf, mise, `/usr/bin/code`)
/// is not the host: what it forks (`$(dirname …)`) is not a launch, and the host is
/// what it executes next. A `#!/bin/sh` wrapper is never taken for the host.
#[test]
fn a_shell_wrapper_named_like_a_host_is_not_the_host_but_what_it_runs_is() {
    if !require_root() {
        return;
    }
    let d = Daemon::start(CONFIG);
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let real = t.join("installs/fakehost/1.0/bin/fakehost");
    write_exec(&real, HOST_SCRIPT);
    let target = t.join("touch");
    touch_copy(&target);
    for (what, shebang) in [("env bash", "#!/usr/bin/env bash"), ("sh", "#!/bin/sh")] {
        let shim = t.join(format!("shims-{}/fakehost", what.replace(' ', "-")));
        let dir_marker = t.join(format!("dirname-ran-{}", what.replace(' ', "-")));
        write_exec(
            &shim,
            &format!(
                "{shebang}\nd=$(dirname \"$0\") && touch {}\nexec {} \"$@\"\n",
                dir_marker.display(),
                real.display()
            ),
        );
        let marker = t.join(format!("ran-{}", what.replace(' ', "-")));
        let out = run_in(
            t,
            &[
                &shim.display().to_string(),
                &target.display().to_string(),
                &marker.display().to_string(),
            ],
        );
        assert!(
            dir_marker.exists(),
            "{what}: the wrapper's own commands ran"
        );
        assert_eq!(
            rcs(&out),
            [-9],
            "{what}: the host's launch is killed: {out:?}"
        );
        assert!(!marker.exists(), "{what}");
        let launch = launch_of(&d, &marker.display().to_string());
        let start = host_start_of(&d, &launch);
        assert_eq!(
            start["filename"],
            real.display().to_string(),
            "{what}: the host is what the wrapper executed: {start}"
        );
        let evs = d.events();
        assert!(
            !evs.iter().any(|e| e["kind"] == "launch"
                && argv(e)
                    .iter()
                    .any(|a| a.contains("dirname") || a == "touch")),
            "{what}: nothing the wrapper ran is a launch"
        );
    }
}

/// The attack: a host's own child executing a file named like the host (a config
/// entry `/tmp/x/fakehost`, an ELF of the agent's) is a launch, checked and killed,
/// never the host re-executing itself. The ELF host's children re-executing the
/// host's own binary (Electron's `--type=` processes) are the host.
#[test]
fn a_hosts_child_is_never_a_host_by_name_but_the_hosts_own_binary_is() {
    if !require_root() {
        return;
    }
    let d = Daemon::start(CONFIG);
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    // An ELF host: a copy of the python3 binary named fakehost.
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3");
    let elf = t.join("opt/fakehost");
    std::fs::create_dir_all(elf.parent().expect("dir")).expect("mkdir");
    std::fs::copy(&python, &elf).expect("copy python3");
    let marker = t.join("self-reexec");
    let evil_marker = t.join("evil-ran");
    let evil = t.join("evil/fakehost");
    touch_copy(&evil);
    let program = format!(
        "import os, subprocess\n\
         for argv in ([{elf:?}, '-c', 'open({marker:?}, \"w\")'], [{evil:?}, {evil_marker:?}]):\n\
         \x20   p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n\
         \x20   p.stdin.close(); p.stdout.read()\n\
         \x20   print('rc=%d' % os.waitstatus_to_exitcode(os.waitpid(p.pid, 0)[1]), flush=True)\n",
        elf = elf.display().to_string(),
        marker = marker.display().to_string(),
        evil = evil.display().to_string(),
        evil_marker = evil_marker.display().to_string(),
    );
    let out = run_in(t, &[&elf.display().to_string(), "-c", &program]);
    assert_eq!(
        rcs(&out),
        [0, -9],
        "the host's own binary runs, the file named like the host is killed: {out:?}"
    );
    assert!(marker.exists(), "the self re-exec ran");
    assert!(!evil_marker.exists(), "the look-alike never ran");
    let launch = launch_of(&d, &evil_marker.display().to_string());
    assert_eq!(launch["verdict"]["decision"], "killed", "{launch}");
    let evs = d.events();
    assert!(
        evs.iter().any(|e| e["kind"] == "host_exec"
            && argv(e).get(2).is_some_and(|a| a.contains("self-reexec"))),
        "the self re-exec is the host's: {:?}",
        evs.iter()
            .filter(|e| e["kind"] != "fork")
            .collect::<Vec<_>>()
    );
}

/// A `#!` host from a prefix no profile lists relaunching its own script through
/// its interpreter (Gemini CLI's `node --max-old-space-size=… /x/bin/gemini`) is the
/// host: the kernel kept the filename the host was started under (`HOST_SELF`), so
/// what the relaunched host starts is checked as its launch. The same interpreter
/// on another copy of the script, or on the script another host was started under,
/// is a launch and is killed.
#[test]
fn a_host_found_by_name_relaunching_its_own_script_is_the_host_and_nothing_else_is() {
    if !require_root() {
        return;
    }
    let d = Daemon::start(CONFIG);
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    // `--relaunch SCRIPT ARGS…`: run `python3 SCRIPT ARGS…` as a child (the
    // relaunch), else behave as HOST_SCRIPT.
    let relauncher = "#!/usr/bin/env python3
import os, subprocess, sys
if sys.argv[1] == '--relaunch':
    argv = [sys.executable, sys.argv[2]] + sys.argv[3:]
else:
    argv = sys.argv[1:]
p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
p.stdin.close(); out = p.stdout.read()
sys.stdout.write(out.decode())
print('rc=%d' % os.waitstatus_to_exitcode(os.waitpid(p.pid, 0)[1]), flush=True)
";
    let script = t.join("prefix/bin/fakehost");
    write_exec(&script, relauncher);
    let copy = t.join("elsewhere/fakehost");
    write_exec(&copy, relauncher);
    let target = t.join("touch");
    touch_copy(&target);
    let (script_s, copy_s, target_s) = (
        script.display().to_string(),
        copy.display().to_string(),
        target.display().to_string(),
    );

    // Its own script: the relaunch runs (rc 0) and its launch is killed (-9).
    let marker = t.join("via-own-relaunch").display().to_string();
    let out = run_in(t, &[&script_s, "--relaunch", &script_s, &target_s, &marker]);
    assert_eq!(
        rcs(&out),
        [-9, 0],
        "the relaunch is the host, its launch is checked: {out:?}"
    );
    let launch = launch_of(&d, &marker);
    assert_eq!(launch["host"]["name"], "fakehost", "{launch}");
    let evs = d.events();
    assert!(
        evs.iter().any(|e| e["kind"] == "host_exec"
            && argv(e).get(1) == Some(&script_s)
            && argv(e).get(2).is_some_and(|a| a == &target_s)),
        "the relaunch is a host_exec"
    );

    // Another copy of the script: a launch, killed before it ran.
    let marker = t.join("via-copy").display().to_string();
    let out = run_in(t, &[&script_s, "--relaunch", &copy_s, &target_s, &marker]);
    assert_eq!(rcs(&out), [-9], "the copy is a launch: {out:?}");
    assert!(!Path::new(&marker).exists());

    // The script another host was started under (that host ran first, through a
    // broker, say): still a launch of this one.
    let out = run_in(t, &[&copy_s, "/bin/true"]);
    assert_eq!(rcs(&out), [-9], "the other host's own launch: {out:?}");
    let marker = t.join("via-other-hosts-script").display().to_string();
    let out = run_in(t, &[&script_s, "--relaunch", &copy_s, &target_s, &marker]);
    assert_eq!(
        rcs(&out),
        [-9],
        "another host's script is a launch: {out:?}"
    );
    assert!(!Path::new(&marker).exists());
}

/// (item 3) A program no profile recognises that executes exactly the command of a
/// server entry of a config file the daemon watches is reported as a launch of the
/// host `unknown`, naming its parent's executable and argv and the entry; the same
/// program with other arguments is not. A server added to the file while the
/// daemon runs is known at once. `mcpwatch hosts --suggest` prints the `[[host]]`
/// profile that would cover the parent, and that profile is a valid config entry.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn a_launch_of_a_config_entry_by_an_unrecognised_host_is_reported_with_a_profile_to_add() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let server = t.join("srv");
    touch_copy(&server);
    let config = t.join("mcp.json");
    let write = |servers: &[(&str, &str)]| {
        let mut m = serde_json::Map::new();
        for (name, arg) in servers {
            m.insert(
                (*name).to_owned(),
                serde_json::json!({"command": server.display().to_string(), "args": [arg]}),
            );
        }
        std::fs::write(&config, serde_json::json!({"mcpServers": m}).to_string()).expect("config");
    };
    let first = t.join("first-ran").display().to_string();
    write(&[("first", &first)]);
    let daemon_config = format!(
        "builtin_hosts = false\n[[host]]\nname = \"cfghost\"\nexe = [\"/nonexistent/cfghost-*\"]\n\
         configs = [{{ path = {:?}, level = \"system\", schema = \"cursor\" }}]\n",
        config.display().to_string()
    );
    let d = Daemon::start(&daemon_config);
    // The unknown host: spawns its argument on pipes, as MCP clients do, and stays
    // up a moment, as a host does (the daemon reads who it is from /proc).
    let agent = t.join("newagent.py");
    write_exec(
        &agent,
        &format!("{HOST_SCRIPT}import time; time.sleep(1.5)\n"),
    );
    let server_s = server.display().to_string();
    let run_agent = |arg: &str| {
        let out = run_in(t, &[&agent.display().to_string(), &server_s, arg]);
        assert_eq!(rcs(&out), [0], "not tracked, not stopped: {out:?}");
    };

    run_agent(&first);
    let other = t.join("other-args").display().to_string();
    run_agent(&other);
    let launch = launch_of(&d, &first);
    assert_eq!(launch["host"]["name"], "unknown", "{launch}");
    assert_eq!(launch["verdict"]["decision"], "unapproved", "{launch}");
    assert_eq!(argv(&launch), [server_s.clone(), first.clone()], "{launch}");
    let who = &launch["unknown_host"];
    assert_eq!(who["server"], "first", "{launch}");
    assert_eq!(who["file"], config.display().to_string(), "{launch}");
    assert_eq!(who["config_host"], "cfghost", "{launch}");
    let python = std::fs::canonicalize("/usr/bin/python3").expect("python3");
    assert_eq!(who["parent_exe"], python.display().to_string(), "{launch}");
    assert_eq!(
        who["parent_argv"][1],
        agent.display().to_string(),
        "{launch}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.events().iter().any(|e| argv(e).last() == Some(&other)),
        "the same program with other arguments is no entry's command"
    );

    // A server added while the daemon runs: known after the next poll (1 s).
    let second = t.join("second-ran").display().to_string();
    write(&[("first", &first), ("second", &second)]);
    d.wait_events(
        "config_change of the new server",
        Duration::from_secs(15),
        |evs| {
            evs.iter()
                .any(|e| e["kind"] == "config_change" && e["config"]["server"] == "second")
        },
    );
    run_agent(&second);
    let launch = launch_of(&d, &second);
    assert_eq!(launch["unknown_host"]["server"], "second", "{launch}");

    // --suggest: a profile for python3 reading this file, which a config accepts.
    let out = d.cli(&[
        "hosts",
        "--suggest",
        "--config",
        &d.config.display().to_string(),
    ]);
    assert!(out.status.success(), "hosts --suggest: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("[[host]]"), "{text}");
    assert!(
        text.contains(&format!("exe = [{:?}]", python.display().to_string())),
        "{text}"
    );
    assert!(
        text.contains(&format!("path = {:?}", config.display().to_string())),
        "{text}"
    );
    let with = t.join("with-suggestion.toml");
    std::fs::write(
        &with,
        format!(
            "state_dir = {:?}\nbuiltin_hosts = false\n{text}",
            t.join("st").display().to_string()
        ),
    )
    .expect("write");
    let check = Command::new(mcpwatch_tests::bin("mcpwatchd"))
        .args(["--check", "--config", &with.display().to_string()])
        .output()
        .expect("mcpwatchd --check");
    assert!(
        check.status.success(),
        "the suggestion is a valid config: {check:?}\n{text}"
    );
}

/// A launcher that *spawns* its tool instead of executing it (Volta's
/// `volta-shim`, linked as `~/.volta/bin/fakehost`) is listed in `wrappers`: under
/// the host's name it is not the host, and the host is the child it starts,
/// recognised at its own exec; that host's launch is checked. Without the entry
/// the shim would be the host and the real host its unapproved launch (killed).
#[test]
fn a_launcher_that_spawns_the_host_is_a_wrapper_and_its_child_is_the_host() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let shim = t.join("volta/bin/volta-shim");
    std::fs::create_dir_all(shim.parent().expect("dir")).expect("mkdir");
    std::fs::copy(mcpwatch_tests::bin("fakeshim"), &shim).expect("copy fakeshim");
    std::os::unix::fs::symlink("volta-shim", t.join("volta/bin/fakehost")).expect("link");
    let tools = t.join("volta/tools");
    write_exec(&tools.join("fakehost"), HOST_SCRIPT);
    let target = t.join("touch");
    touch_copy(&target);
    // `wrappers` is a top-level key: before the config's tables.
    let d = Daemon::start(&CONFIG.replacen(
        "builtin_hosts = false",
        &format!(
            "builtin_hosts = false\nwrappers = [{:?}]",
            shim.display().to_string()
        ),
        1,
    ));
    let marker = t.join("ran").display().to_string();
    let out = Command::new(t.join("volta/bin/fakehost"))
        .args([&target.display().to_string(), &marker])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("FAKESHIM_TOOLS", &tools)
        .stderr(Stdio::inherit())
        .output()
        .expect("run the shim");
    assert_eq!(
        rcs(&out),
        [-9],
        "the host ran and its launch was killed: {out:?}"
    );
    assert!(!Path::new(&marker).exists());
    let launch = launch_of(&d, &marker);
    let start = host_start_of(&d, &launch);
    assert_eq!(
        start["filename"],
        tools.join("fakehost").display().to_string(),
        "the host is the shim's child: {start}"
    );
}
