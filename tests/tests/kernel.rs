//! What the kernel programs guarantee on this kernel, measured on the real thing:
//! every program within the verifier budget, and the security-relevant environment
//! of an approved launch compared exactly (real execs with raw `envp` arrays, as an
//! attacker inside a host would build them: duplicates, look-alikes, every byte
//! alignment, a realistic 3 KiB environment around them).
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use mcpwatch_tests::{bin, require_root, Daemon};
use serde_json::Value;

/// DESIGN.md principle 11: 20 % of the verifier's 1M-instruction limit.
const BUDGET: u64 = 200_000;

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Every program the daemon loaded reports its verified instruction count, and it
/// is within budget. Names the program and the kernel when not.
fn assert_budget(d: &Daemon, what: &str) -> Vec<(String, u64)> {
    let status = d.status();
    let programs = status["programs"].as_array().expect("status.programs");
    assert!(
        programs.len() >= 4,
        "{what}: status lists {} programs: {status}",
        programs.len()
    );
    let mut seen = Vec::new();
    for p in programs {
        let name = p["name"].as_str().unwrap_or("?").to_owned();
        let n = p["verified_insns"].as_u64().unwrap_or_else(|| {
            panic!(
                "{what}: program {name} on Linux {}: no verified_insns reported: {p}",
                kernel()
            )
        });
        assert!(
            n <= BUDGET,
            "{what}: program {name} on Linux {} took {n} verified instructions, over the budget of {BUDGET}",
            kernel()
        );
        seen.push((name, n));
    }
    eprintln!(
        "{what}: verified instructions on Linux {}: {seen:?}",
        kernel()
    );
    seen
}

#[test]
fn every_program_stays_within_the_verifier_budget_whatever_the_config() {
    if !require_root() {
        return;
    }
    // The built-in profiles include `#!` hosts (the filename path of the exec
    // program is live), and enforce mode with a policy deny list.
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let a = assert_budget(&d, "built-in hosts, enforce");
    drop(d);
    // No script hosts at all: the verifier prunes another set of paths.
    let d =
        Daemon::start("builtin_hosts = false\n[[host]]\nname = \"only\"\nexe = [\"/bin/true\"]\n");
    let b = assert_budget(&d, "one executable host, monitor");
    assert_eq!(a.len(), b.len());
}

/// A Python host that forks and `execve`s `prog ARG` once per variant with exactly
/// the given environment entries (raw `envp`: duplicates and entries without `=`
/// are possible), and prints one JSON line per variant: exit status and whether
/// `ARG` was created.
const HOST: &str = r#"
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
prog, target = sys.argv[1], sys.argv[2]
def run(env):
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    argv = (ctypes.c_char_p * 3)(prog.encode(), target.encode(), None)
    envp = (ctypes.c_char_p * (len(env) + 1))(*[e.encode() for e in env], None)
    pid = os.fork()
    if pid == 0:
        libc.execve(prog.encode(), argv, envp)
        os._exit(127)
    _, st = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(st)
    return {"rc": 128 - rc if rc < 0 else rc, "ran": os.path.exists(target)}
for line in sys.stdin:
    name, env = json.loads(line)
    out = run(env)
    out["name"] = name
    print(json.dumps(out), flush=True)
"#;

/// A realistic desktop environment of about 3 KiB.
fn filler() -> Vec<String> {
    let mut env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin".to_owned(),
        "HOME=/home/dev".to_owned(),
        "LANG=en_US.UTF-8".to_owned(),
        "USER=dev".to_owned(),
        "LOGNAME=dev".to_owned(),
        "SHELL=/bin/bash".to_owned(),
        "TERM=xterm-256color".to_owned(),
        "XDG_RUNTIME_DIR=/run/user/1000".to_owned(),
        "XDG_SESSION_TYPE=wayland".to_owned(),
        "XDG_CURRENT_DESKTOP=GNOME".to_owned(),
        "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus".to_owned(),
        "DISPLAY=:0".to_owned(),
        "EDITOR=vim".to_owned(),
        "NODE_ENV=production".to_owned(),
        "PYTHONUNBUFFERED=1".to_owned(),
        "LD_BIND_NOW_NOT=1".to_owned(),
        "ENVIRONMENT=dev".to_owned(),
        "BASH_FUNC_x%%=() {  true\n}".to_owned(),
    ];
    let colors: Vec<String> = (0..150).map(|i| format!("*.e{i:03}=01;31")).collect();
    env.push(format!("LS_COLORS={}", colors.join(":")));
    env
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, variant by variant")]
fn the_security_relevant_environment_of_an_approved_launch_is_compared_exactly() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("[defaults]\nmode = \"monitor\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let prog = tmp.path().join("envtouch");
    std::fs::copy("/usr/bin/touch", &prog).expect("copy touch");
    let target = tmp.path().join("ran");
    let approved = "NODE_OPTIONS=--max-old-space-size=512";
    // A member of a family (npm's configuration), approved with its value.
    let npm = "npm_config_registry=https://registry.npmjs.org/";
    let base: Vec<String> = filler()
        .into_iter()
        .chain([approved.to_owned(), npm.to_owned()])
        .collect();
    let block: usize = base.iter().map(|e| e.len() + 1).sum();
    assert!((2048..=4096).contains(&block), "a realistic block: {block}");

    // Variants: name, environment, whether it must run.
    let mut variants: Vec<(String, Vec<String>, bool)> =
        vec![("approval".into(), base.clone(), true)];
    for shift in 0..8 {
        // Every byte alignment of the entry, moved to the front, the middle, the end.
        let pad = format!("P{}=", "x".repeat(shift));
        for at in [0, base.len() / 2, base.len()] {
            let mut env: Vec<String> = base.iter().filter(|e| *e != approved).cloned().collect();
            env.insert(0, pad.clone());
            env.insert(at.min(env.len()), approved.to_owned());
            variants.push((format!("aligned+{shift}@{at}"), env, true));
        }
    }
    let with = |f: &dyn Fn(&mut Vec<String>)| {
        let mut env = base.clone();
        f(&mut env);
        env
    };
    let swap = |v: &str| {
        with(&|env: &mut Vec<String>| {
            env.retain(|e| e != approved);
            env.push(v.to_owned());
        })
    };
    variants.extend([
        (
            "other value".into(),
            swap("NODE_OPTIONS=--max-old-space-size=513"),
            false,
        ),
        ("longer value".into(), swap(&format!("{approved}x")), false),
        (
            "shorter value".into(),
            swap(&approved[..approved.len() - 1]),
            false,
        ),
        ("empty value".into(), swap("NODE_OPTIONS="), false),
        (
            "absent".into(),
            with(&|env: &mut Vec<String>| env.retain(|e| e != approved)),
            false,
        ),
        (
            "twice".into(),
            with(&|env: &mut Vec<String>| env.push(approved.to_owned())),
            false,
        ),
        (
            "LD_PRELOAD added".into(),
            with(&|env: &mut Vec<String>| env.push("LD_PRELOAD=/nonexistent/x.so".into())),
            false,
        ),
        (
            "LD_PRELOAD added first".into(),
            with(&|env: &mut Vec<String>| env.insert(0, "LD_PRELOAD=".into())),
            false,
        ),
        (
            "ENV added".into(),
            with(&|env: &mut Vec<String>| env.push("ENV=/tmp/rc".into())),
            false,
        ),
        // Look-alikes are not the variable: no loader reads them.
        (
            "look-alikes".into(),
            with(&|env: &mut Vec<String>| {
                env.extend(
                    [
                        "NODE_OPTIONSX=1",
                        "NODE_OPTION=1",
                        "XLD_PRELOAD=/x",
                        "npm_package_name=x",
                        "npm_lifecycle_event=start",
                        "GITHUB_TOKEN=x",
                        "LDFLAGS=-s",
                    ]
                    .map(String::from),
                );
            }),
            true,
        ),
        // The families: any member nobody approved, in any case npm reads.
        (
            "npm config changed".into(),
            with(&|env: &mut Vec<String>| {
                env.retain(|e| e != npm);
                env.push("npm_config_registry=http://evil.example/".into());
            }),
            false,
        ),
        (
            "npm config absent".into(),
            with(&|env: &mut Vec<String>| env.retain(|e| e != npm)),
            false,
        ),
        (
            "npm config in capitals added".into(),
            with(&|env: &mut Vec<String>| env.push("NPM_CONFIG_SCRIPT_SHELL=/tmp/sh".into())),
            false,
        ),
        (
            "git config by environment".into(),
            with(&|env: &mut Vec<String>| {
                env.extend(
                    [
                        "GIT_CONFIG_COUNT=1",
                        "GIT_CONFIG_KEY_0=core.sshCommand",
                        "GIT_CONFIG_VALUE_0=/tmp/x",
                    ]
                    .map(String::from),
                );
            }),
            false,
        ),
        (
            "LD_ family member".into(),
            with(&|env: &mut Vec<String>| env.push("LD_PRELOADX=/x.so".into())),
            false,
        ),
        (
            "LD_ family member without =".into(),
            with(&|env: &mut Vec<String>| env.push("LD_PRELOAD".into())),
            false,
        ),
        (
            "unapproved LD_ members".into(),
            with(&|env: &mut Vec<String>| env.extend((0..20).map(|i| format!("LD_X{i}=1")))),
            false,
        ),
        // More entries that look like security-relevant names than the kernel
        // examines: it cannot tell, so it does not approve.
        (
            "too many candidates".into(),
            with(&|env: &mut Vec<String>| env.extend((0..70).map(|i| format!("NODE_X{i}=1")))),
            false,
        ),
    ]);

    let host = |d: &Daemon| {
        let mut c = d.cli_cmd(&[
            "run",
            "--host",
            "envh",
            "--",
            "python3",
            "-c",
            HOST,
            prog.to_str().expect("utf-8"),
            target.to_str().expect("utf-8"),
        ]);
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        c
    };
    let run_variants = |d: &Daemon, vs: &[(String, Vec<String>, bool)]| -> Vec<Value> {
        use std::io::Write as _;
        let mut child = host(d).spawn().expect("host");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            for (name, env, _) in vs {
                writeln!(stdin, "{}", serde_json::json!([name, env])).expect("write");
            }
        }
        let out = child.wait_with_output().expect("host output");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("result line"))
            .collect()
    };

    // Monitor mode: the approval run, then approve that launch by its event id.
    let first = run_variants(&d, &variants[..1]);
    assert_eq!(first[0]["rc"], 0, "{first:?}");
    let evs = d.wait_events("the launch to approve", Duration::from_secs(15), |evs| {
        evs.iter()
            .any(|e| e["kind"] == "launch" && e["argv"][0] == prog.to_str().expect("utf-8"))
    });
    let id = evs
        .iter()
        .rev()
        .find(|e| e["kind"] == "launch" && e["argv"][0] == prog.to_str().expect("utf-8"))
        .and_then(|e| e["id"].as_u64())
        .expect("launch id");
    let out = d.cli(&["approve", &id.to_string(), "--yes"]);
    assert!(out.status.success(), "approve {id}: {out:?}");
    let recs = d.cli(&["records", "--json"]);
    let recs: Value = serde_json::from_slice(&recs.stdout).expect("records json");
    let env = &recs["records"][0]["env"];
    assert_eq!(
        env["npm_config_registry"], "https://registry.npmjs.org/",
        "the family member is part of the record: {env}"
    );
    assert_eq!(env["NODE_OPTIONS"], "--max-old-space-size=512", "{env}");
    let out = d.cli(&["mode", "envh", "enforce"]);
    assert!(out.status.success(), "mode: {out:?}");

    let results = run_variants(&d, &variants);
    assert_eq!(results.len(), variants.len(), "{results:?}");
    let mut wrong = Vec::new();
    for ((name, _, must_run), r) in variants.iter().zip(&results) {
        let ran = r["rc"] == 0 && r["ran"] == true;
        let killed = r["rc"] == 137 && r["ran"] == false;
        if (*must_run && !ran) || (!*must_run && !killed) {
            wrong.push(format!("{name}: {r}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "variants decided wrongly on Linux {}:\n{}\n{}",
        kernel(),
        wrong.join("\n"),
        d.stderr_text()
    );
    // The kernel said why it would not approve the spoiled scan.
    let evs = d.wait_events("the spoiled launch", Duration::from_secs(15), |evs| {
        evs.iter().filter(|e| e["kind"] == "launch").count() > variants.len()
    });
    assert!(
        evs.iter().any(|e| e["kind"] == "launch"
            && e["verdict"]["decision"] == "killed"
            && e.to_string().contains("could not")),
        "a launch whose environment the kernel could not check says so"
    );
    let _ = d.stop();
    assert!(Path::new(&bin("mcpwatch")).exists());
    let _ = Command::new("true").status();
}

/// A host process is one process however its threads behave: a second thread's exec
/// (the old leader exits inside `execve`) and a leader thread that exits alone
/// (`SYS_exit`) leave it tracked, so what it runs next is still checked. Kernels
/// without `group_dead` in `sched_process_exit` (6.1) get this from
/// `signal->live`; `cargo xtask kernels` runs the same checks there.
#[test]
fn a_host_stays_tracked_when_a_thread_execs_or_its_leader_exits_alone() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let prog = tmp.path().join("threadtouch");
    std::fs::copy("/usr/bin/touch", &prog).expect("copy touch");
    let run = |mode: &str, target: &Path| {
        d.cli_cmd(&[
            "run",
            "--host",
            "threads",
            "--",
            bin("threadexec").to_str().expect("utf-8"),
            mode,
            prog.to_str().expect("utf-8"),
            target.to_str().expect("utf-8"),
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
        .stderr(Stdio::inherit())
        .output()
        .expect("mcpwatch run threadexec")
    };
    let a = tmp.path().join("thread-exec");
    let out = run("thread-exec", &a);
    assert_eq!(
        mcpwatch_tests::exit_code(out.status),
        137,
        "a thread's exec of an unapproved program is a launch, killed: {out:?}"
    );
    assert!(!a.exists(), "the killed launch never ran");
    let b = tmp.path().join("leader-exit");
    let out = run("leader-exit", &b);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("child_rc=137"),
        "after its leader thread exited, the host's launch is still checked: {text} {out:?}"
    );
    assert!(!b.exists(), "the killed launch never ran");
}
