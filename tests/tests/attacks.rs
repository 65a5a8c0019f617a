//! Attacks on enforcement by a process that fights back (issue 10), performed for
//! real against the running kernel and daemon; each test says what it closes.
use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mcpwatch_tests::{exit_code, require_root, Daemon};

/// `mcpwatch run --host HOST -- ARGS` in a clean environment.
fn run_cmd(d: &Daemon, host: &str, args: &[&str]) -> Command {
    let mut all = vec!["run", "--host", host, "--"];
    all.extend_from_slice(args);
    let mut c = d.cli_cmd(&all);
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Wait until `child` has exec'd `comm` (Track done) or exited; true when it runs.
fn wait_exec(child: &mut Child, comm: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let now = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
        if now.trim() == comm {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Run `args` as host `host` (see [`run_cmd`]) and read the JSON lines it prints.
fn host_json(d: &Daemon, host: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = run_cmd(d, host, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .expect("host");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// Observed: after about 270 distinct `Track` names, later hosts got profile ids
/// past the kernel's 256-entry mode table and ran in monitor mode while `records
/// --json` said enforce. Now ids are bounded: names nobody uses any more give their
/// id back, a Track that finds every id in use is refused (and runs nothing), and
/// the kernel's fallback for an id it has no mode for is the configured default.
#[test]
fn a_host_name_flood_cannot_push_a_host_past_the_mode_table() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let touch = tmp.path().join("floodtouch");
    std::fs::copy("/usr/bin/touch", &touch).expect("copy touch");

    // The attack as observed: 300 names, each tracked once and gone.
    for i in 0..300 {
        let st = run_cmd(&d, &format!("flood-{i}"), &["/bin/true"])
            .status()
            .expect("mcpwatch run");
        assert!(st.success(), "flood-{i}: {st}");
    }
    // A host registered after the flood is enforced as the records say.
    let victim = tmp.path().join("victim-ran");
    let st = run_cmd(
        &d,
        "victim",
        &[
            "/bin/sh",
            "-c",
            &format!("{} {}", touch.display(), victim.display()),
        ],
    )
    .status()
    .expect("mcpwatch run victim");
    assert_eq!(
        exit_code(st),
        137,
        "the unapproved launch of a post-flood host is killed"
    );
    assert!(!victim.exists(), "and never ran");
    let out = d.cli(&["records", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("records json");
    assert_eq!(
        v["modes"]["victim"]["mode"], "enforce",
        "{}",
        v["modes"]["victim"]
    );

    // Every id held by a live host: one more name is refused and runs nothing.
    let mut holders: Vec<Child> = Vec::new();
    let mut refused = false;
    for i in 0..300 {
        let mut c = run_cmd(&d, &format!("hold-{i}"), &["/bin/sleep", "120"])
            .spawn()
            .expect("spawn");
        if wait_exec(&mut c, "sleep") {
            holders.push(c);
        } else {
            let st = c.wait().expect("wait");
            assert!(!st.success(), "hold-{i} neither ran nor failed");
            refused = true;
            break;
        }
    }
    assert!(refused, "300 live hosts fit a 256-entry table?");
    let extra = tmp.path().join("extra-ran");
    let st = run_cmd(
        &d,
        "one-more",
        &["/usr/bin/touch", extra.to_str().expect("utf-8")],
    )
    .status()
    .expect("mcpwatch run one-more");
    assert!(!st.success(), "a host with no id is refused");
    assert!(!Path::new(&extra).exists(), "and nothing of it ran");
    // Their ids come back when the holders are gone.
    for mut h in holders {
        let _ = h.kill();
        let _ = h.wait();
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = run_cmd(&d, "after-the-flood", &["/bin/true"])
        .status()
        .expect("mcpwatch run");
    assert!(st.success(), "an id is reused once its host is gone: {st}");
}

fn proc_state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(") ")?.1.chars().next()
}

/// `Track(pid, host)` straight over D-Bus, as a client of our own would call it.
fn track_call(d: &Daemon, pid: u32) -> std::process::Output {
    Command::new("dbus-send")
        .args([
            "--system",
            "--print-reply",
            "--dest=org.mcpwatch1",
            "/org/mcpwatch1/Daemon",
            "org.mcpwatch1.Daemon.Track",
            &format!("uint32:{pid}"),
            "string:zombie-host",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
        .output()
        .expect("dbus-send")
}

/// Observed: `Track` of a zombie (it still has `/proc/PID`, and has already left
/// `TRACKED`) re-inserted it, and nothing removed the entry until that pid exited
/// again: the next process to get the pid became a host of the attacker's naming.
/// Now a zombie or dead pid is refused, and a process that exits while it is being
/// tracked is taken back out.
#[test]
fn track_refuses_a_zombie_so_no_stale_entry_can_outlive_it() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("");
    let before = d.status()["tracked_kernel"]
        .as_u64()
        .expect("tracked_kernel");
    let mut z = Command::new("/bin/true").spawn().expect("spawn");
    let pid = z.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_state(pid) != Some('Z') {
        assert!(Instant::now() < deadline, "no zombie");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = track_call(&d, pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "Track of a zombie accepted");
    assert!(err.contains("zombie"), "{err}");
    assert_eq!(
        d.status()["tracked_kernel"].as_u64(),
        Some(before),
        "no entry left in the kernel"
    );
    let _ = z.wait();
    // A pid nobody has any more.
    let out = track_call(&d, pid);
    assert!(!out.status.success(), "Track of a dead pid accepted");
    assert_eq!(d.status()["tracked_kernel"].as_u64(), Some(before));
}

/// The peers venv's python (`cargo xtask setup`), which has `jeepney`, a D-Bus
/// client plain enough to keep using a connection in a forked child.
fn peers_python() -> std::path::PathBuf {
    let dir = std::env::var_os("MCPWATCH_PEERS_DIR")
        .map_or_else(|| "/opt/mcpwatch-peers".into(), std::path::PathBuf::from);
    let p = dir.join("venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

/// The agent's side: open a bus connection, fork, let the connection's own process
/// exit, and call `METHOD(ARGS)` from the child over the inherited connection.
/// Writes the reply (or error) to `OUT` as JSON.
const DEAD_CONNECTION: &str = r#"
import json, os, sys, time
from jeepney import DBusAddress, new_method_call, MessageType
from jeepney.io.blocking import open_dbus_connection
method, sig, args, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
if sig == "saaysss":
    args[1] = [a.encode() for a in args[1]]
conn = open_dbus_connection(bus="SYSTEM")
addr = DBusAddress("/org/mcpwatch1/Daemon", bus_name="org.mcpwatch1",
                   interface="org.mcpwatch1.Daemon")
first = os.getpid()
if os.fork() != 0:
    os._exit(0)
def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"
    except OSError:
        return False
while alive(first):
    time.sleep(0.01)
time.sleep(0.2)
if os.environ.get("RECYCLE"):
    # Wait until someone else has the dead pid (the test arranges it).
    # Atomically, like the reply: the test reads it as soon as it exists.
    with open(out + ".dead.tmp", "w") as f:
        f.write(str(first))
    os.rename(out + ".dead.tmp", out + ".dead")
    while not os.path.exists(out + ".go"):
        time.sleep(0.01)
reply = conn.send_and_get_reply(new_method_call(addr, method, sig, tuple(args)))
ok = reply.header.message_type == MessageType.method_return
json.dump({"ok": ok, "body": [str(b) for b in reply.body]}, open(out + ".tmp", "w"))
os.rename(out + ".tmp", out)
"#;

fn dead_connection_call(
    d: &Daemon,
    method: &str,
    sig: &str,
    args: &serde_json::Value,
) -> serde_json::Value {
    dead_connection_call_as(d, method, sig, args, false).0
}

/// Start an untracked process that gets pid `pid` (by `ns_last_pid`, retried
/// while other processes take it first).
fn spawn_with_pid(pid: u32) -> Option<std::process::Child> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut c = Command::new("sleep").arg("60").spawn().ok()?;
        if c.id() == pid {
            return Some(c);
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    None
}

/// As `dead_connection_call`; with `recycle`, an untracked process takes the
/// dead pid before the child calls (returned, to be killed by the caller).
fn dead_connection_call_as(
    d: &Daemon,
    method: &str,
    sig: &str,
    args: &serde_json::Value,
    recycle: bool,
) -> (serde_json::Value, Option<std::process::Child>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("reply.json");
    let mut holder = None;
    let mut cmd = run_cmd(
        d,
        "agent",
        &[
            peers_python().to_str().expect("utf-8"),
            "-c",
            DEAD_CONNECTION,
            method,
            sig,
            &args.to_string(),
            out.to_str().expect("utf-8"),
        ],
    );
    if recycle {
        cmd.env("RECYCLE", "1");
    }
    let st = cmd
        .stderr(Stdio::inherit())
        .status()
        .expect("run the agent");
    assert!(st.success(), "{st}");
    let deadline = Instant::now() + Duration::from_secs(15);
    if recycle {
        let dead = out.with_extension("json.dead");
        while !dead.exists() {
            assert!(Instant::now() < deadline, "the agent's child never said");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid: u32 = std::fs::read_to_string(&dead)
            .expect("dead pid")
            .trim()
            .parse()
            .expect("pid");
        let c = spawn_with_pid(pid).expect("an untracked process with the dead pid");
        holder = Some(c);
        std::fs::write(out.with_extension("json.go"), "").expect("go");
    }
    while !out.exists() {
        assert!(
            Instant::now() < deadline,
            "the agent's child never got a reply"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let v = serde_json::from_str(&std::fs::read_to_string(&out).expect("reply")).expect("json");
    (v, holder)
}

fn record_ids(d: &Daemon) -> Vec<u64> {
    let out = d.cli(&["records", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("records json");
    v["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["id"].as_u64())
        .collect()
}

/// Observed: `ApproveCommand` from inside a host was refused, but accepted once the
/// process that opened the bus connection had exited and a child kept the socket
/// (the dead pid had no tracked entry and no ancestors); `Revoke` had no check at
/// all. Now a call over a dead process's connection is refused, and so is every
/// method that grants, revokes, continues or changes anything from inside a host.
#[test]
fn an_agent_cannot_approve_or_revoke_over_a_dead_processs_connection_or_from_inside() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let before = record_ids(&d);
    let r = dead_connection_call(
        &d,
        "ApproveCommand",
        "saaysss",
        &serde_json::json!([
            "agent",
            ["/usr/bin/touch", "/tmp/mcpwatch-self-approved"],
            "",
            "",
            "self-approval"
        ]),
    );
    assert_eq!(
        r["ok"], false,
        "self-approval over a dead connection accepted: {r}"
    );
    assert!(r.to_string().contains("has exited"), "{r}");
    assert_eq!(record_ids(&d), before, "no record was added");

    // A record the user made; the agent tries to revoke it both ways.
    let out = d.cli(&["approve", "--host", "agent", "--yes", "--", "/usr/bin/true"]);
    assert!(out.status.success(), "{out:?}");
    let id = *record_ids(&d).iter().max().expect("record");
    let r = dead_connection_call(&d, "Revoke", "t", &serde_json::json!([id]));
    assert_eq!(
        r["ok"], false,
        "revoke over a dead connection accepted: {r}"
    );
    let mcpwatch = mcpwatch_tests::bin("mcpwatch");
    let st = run_cmd(
        &d,
        "agent",
        &[mcpwatch.to_str().expect("utf-8"), "revoke", &id.to_string()],
    )
    .status()
    .expect("revoke from inside");
    assert!(!st.success(), "revoke from inside a host accepted");
    assert!(record_ids(&d).contains(&id), "the record is still there");
    d.wait_events("each refusal recorded", Duration::from_secs(10), |evs| {
        evs.iter().filter(|e| e["kind"] == "refused").count() >= 3
    });
}

/// The pid of the process that opened the agent's connection is recycled before
/// the child calls: an untracked, live process (of root's, here) now has it, so a
/// lookup by pid finds a process with no tracked ancestor. The daemon noted the
/// connection's process (pid and start time) when the connection appeared, and
/// the one at that pid now is another: refused.
#[test]
fn a_recycled_pid_cannot_pass_for_the_process_that_opened_the_connection() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let st = d.cli(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert!(
        ["pidfd at arrival", "bus ProcessFD"]
            .contains(&st["caller_pinning"].as_str().unwrap_or("")),
        "{}",
        st["caller_pinning"]
    );
    let before = record_ids(&d);
    let (r, holder) = dead_connection_call_as(
        &d,
        "ApproveCommand",
        "saaysss",
        &serde_json::json!([
            "agent",
            ["/usr/bin/touch", "/tmp/mcpwatch-self-approved"],
            "",
            "",
            "self-approval through a recycled pid"
        ]),
        true,
    );
    let mut holder = holder.expect("holder");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        r["ok"], false,
        "self-approval through a recycled pid accepted: {r}"
    );
    assert!(r.to_string().contains("has exited"), "{r}");
    assert_eq!(record_ids(&d), before, "no record was added");
}

/// A host that runs `PROG TARGET` twice, plainly and under `PTRACE_TRACEME`
/// (continuing every stop), and prints one JSON line per run.
const PTRACE_HOST: &str = r#"
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
prog, target = sys.argv[1], sys.argv[2]
def run(traced):
    try:
        os.unlink(target)
    except FileNotFoundError:
        pass
    pid = os.fork()
    if pid == 0:
        if traced:
            libc.ptrace(0, 0, None, None)  # PTRACE_TRACEME
        os.execv(prog, [prog, target])
    while True:
        _, st = os.waitpid(pid, 0)
        if os.WIFSTOPPED(st):
            libc.ptrace(7, pid, None, None)  # PTRACE_CONT
            continue
        rc = os.waitstatus_to_exitcode(st)
        return {"traced": traced, "rc": 128 - rc if rc < 0 else rc, "ran": os.path.exists(target)}
for traced in (False, True):
    print(json.dumps(run(traced)), flush=True)
"#;

/// Approve `touch TARGET` (a copy of touch) for `host`, then let the
/// `PTRACE_HOST` run it untraced and traced; its two JSON lines.
fn traced_runs(d: &Daemon, host: &str) -> Vec<serde_json::Value> {
    let tmp = tempfile::tempdir().expect("tmp");
    let prog = tmp.path().join("ptracetouch");
    std::fs::copy("/usr/bin/touch", &prog).expect("copy touch");
    let target = tmp.path().join("ran");
    let (p, t) = (
        prog.to_str().expect("utf-8"),
        target.to_str().expect("utf-8"),
    );
    let out = d.cli(&["approve", "--host", host, "--yes", "--", p, t]);
    assert!(out.status.success(), "{out:?}");
    let runs = host_json(d, host, &["/usr/bin/python3", "-c", PTRACE_HOST, p, t]);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["rc"], 0, "the approved launch runs: {runs:?}");
    assert_eq!(runs[0]["ran"], true);
    runs
}

/// Observed: `PTRACE_TRACEME`, then exec of an approved binary (allowed), then the
/// tracer rewrote its registers into an `execve` of anything, which ran as an
/// unchecked session exec. Now a launch traced at exec matches no record: killed in
/// enforce mode before its first instruction, with the reason in the event.
#[test]
fn a_launch_traced_at_exec_matches_no_record() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let runs = traced_runs(&d, "ptr");
    assert_eq!(
        runs[1]["rc"], 137,
        "the same launch traced is killed: {runs:?}"
    );
    assert_eq!(runs[1]["ran"], false);
    let evs = d.wait_events(
        "the traced launch's verdict",
        Duration::from_secs(10),
        |evs| {
            evs.iter().any(|e| {
                e["kind"] == "launch"
                    && e["verdict"]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("ptrace"))
            })
        },
    );
    assert!(evs
        .iter()
        .any(|e| e["kind"] == "launch" && e["verdict"]["decision"] == "killed"));
}

/// The attacker's host for the resume attacks: forks a payload, waits until ask
/// mode holds it, then resumes it behind mcpwatch's back — `sigcont`: SIGCONT with
/// SIGCHLD ignored (the parent takes no reports); `seize`: `PTRACE_SEIZE` and
/// `PTRACE_CONT` (no SIGCONT at all). Prints one JSON line.
const RESUME_HOST: &str = r#"
import ctypes, json, os, signal, sys, time
how, payload = sys.argv[1], sys.argv[2:]
if how == "sigcont":
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    os.execv(payload[0], payload)
def state():
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
deadline = time.time() + 10
while time.time() < deadline and state() not in ("T", None):
    time.sleep(0.005)
held = state()
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
if how == "sigcont":
    os.kill(pid, signal.SIGCONT)
else:
    libc.ptrace(0x4206, pid, None, None)  # PTRACE_SEIZE
    time.sleep(0.2)
    libc.ptrace(7, pid, None, None)  # PTRACE_CONT
deadline = time.time() + 10
while time.time() < deadline and state() not in ("Z", None):
    time.sleep(0.005)
status = None
if how != "sigcont":
    try:
        status = os.waitpid(pid, 0)[1]
    except ChildProcessError:
        pass
print(json.dumps({"held": held, "status": status}), flush=True)
"#;

/// Observed: with SIGCHLD ignored the kernel kill did not fire, the daemon killed
/// only the held pid, and a payload that forked first left a surviving child; a
/// tracer (`PTRACE_SEIZE`, then `PTRACE_CONT`) resumes a held launch without any
/// SIGCONT. Now the kernel kills a held launch in the resumed process itself at
/// its first user-mode instruction (`page_fault_user`: its image never ran, so
/// that instruction faults): nothing of the payload runs, and the event says so.
#[test]
fn a_held_launch_resumed_behind_mcpwatchs_back_dies_before_it_runs() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"ask\"");
    for how in ["sigcont", "seize"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let (ran, child) = (tmp.path().join("ran"), tmp.path().join("child"));
        let script = format!(
            "(sleep 0.3; touch {}) & touch {}; sleep 0.6",
            child.display(),
            ran.display()
        );
        let runs = host_json(
            &d,
            "resumer",
            &[
                "/usr/bin/python3",
                "-c",
                RESUME_HOST,
                how,
                "/bin/sh",
                "-c",
                &script,
            ],
        );
        assert_eq!(runs.len(), 1, "{runs:?}");
        let v = &runs[0];
        assert_eq!(v["held"], "T", "{how}: ask mode held the payload: {v}");
        if how == "seize" {
            assert_eq!(v["status"], 9, "{how}: killed by SIGKILL: {v}");
        }
        std::thread::sleep(Duration::from_millis(1200));
        assert!(!ran.exists(), "{how}: the payload's first command ran");
        assert!(!child.exists(), "{how}: the payload's forked child ran");
        let want = "resumed by someone else without an answer: the kernel killed it";
        d.wait_events(
            &format!("{how}: the bypass report"),
            Duration::from_secs(10),
            |evs| {
                evs.iter().any(|e| {
                    e["kind"] == "hold_bypass"
                        && e["message"].as_str().is_some_and(|m| m.contains(want))
                })
            },
        );
    }
}

/// A traced launch in ask mode is killed, never held: its tracer could resume a
/// held tracee with `PTRACE_CONT`, no SIGCONT needed.
#[test]
fn a_launch_traced_at_exec_is_killed_not_held_in_ask_mode() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"ask\"");
    let runs = traced_runs(&d, "ptra");
    assert_eq!(runs[1]["rc"], 137, "traced: killed, not held: {runs:?}");
    assert_eq!(runs[1]["ran"], false);
    let pending = d.cli(&["pending", "--json"]);
    assert!(
        !String::from_utf8_lossy(&pending.stdout).contains("ptracetouch"),
        "nothing is held: {pending:?}"
    );
}

/// The attacker's host for the script attacks, in the approved directory: each
/// step changes something and launches `python3 server.py MARK`, printing
/// `{"step", "rc", "ran"}` (whether the script's first line ran).
const SCRIPT_HOST: &str = r#"
import ctypes, json, os, shutil, subprocess, sys, time
d = sys.argv[1]
os.chdir(d)
libc = ctypes.CDLL(None, use_errno=True)
good = open("a/server.py").read()
evil = "import sys; open(sys.argv[1] + '.evil', 'w').write('x')\n" + good
def launch(step, pre=None):
    mark = os.path.join(d, "mark-" + step)
    p = subprocess.run(["/usr/bin/python3", "server.py", mark], preexec_fn=pre)
    time.sleep(0.1)
    print(json.dumps({"step": step, "rc": p.returncode,
                      "ran": os.path.exists(mark), "evil": os.path.exists(mark + ".evil")}), flush=True)
def bind_evil():
    # a private mount namespace where a/server.py is another file
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare")
    libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE
    if libc.mount(b"b/server.py", b"a/server.py", None, 0x1000, None) != 0:  # MS_BIND
        raise OSError(ctypes.get_errno(), "mount")
launch("approved")
open("a/server.py", "w").write(evil)
launch("edited")
open("a/server.py", "w").write(good)
launch("restored")
open("b/server.py", "w").write(evil)
os.unlink("server.py"); os.symlink("b/server.py", "server.py")
launch("repointed")
os.unlink("server.py"); os.symlink("a/server.py", "server.py")
launch("pointed-back")
launch("child-namespace", pre=bind_evil)
bind_evil()
launch("host-namespace")
"#;

/// Observed: an interpreter plus script argument (`python3 server.py`, the commonest
/// MCP server entry) bound the interpreter only; a `#!` record bound the canonical
/// script path while the interpreter opens the path as written (a re-pointed
/// symlink ran another script); a bind mount in a private mount namespace put
/// another file over an approved script while the daemon hashed its own view; and
/// the script check ran after the launch had started (an edited script's first
/// lines ran). Now such a record binds the script's content too, the kernel holds
/// the launch until the daemon verified the script *as the launching process sees
/// it* (through its own root, cwd and mounts), a launch in another mount namespace
/// than its host's does not match, and a mismatch kills the launch before its
/// first instruction.
#[test]
fn an_interpreter_script_is_verified_as_the_launch_sees_it_before_it_runs() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    for sub in ["a", "b"] {
        std::fs::create_dir(dir.join(sub)).expect("mkdir");
    }
    std::fs::write(
        dir.join("a/server.py"),
        "import sys\nopen(sys.argv[1], 'w').write('ran')\n",
    )
    .expect("script");
    std::fs::write(dir.join("b/server.py"), "").expect("b");
    std::os::unix::fs::symlink("a/server.py", dir.join("server.py")).expect("link");
    let d_s = dir.to_str().expect("utf-8");
    // The marks differ per step, so the record approves a script argument and
    // any mark: approve each step's exact argv.
    let steps = [
        "approved",
        "edited",
        "restored",
        "repointed",
        "pointed-back",
        "child-namespace",
        "host-namespace",
    ];
    for s in steps {
        let mark = format!("{d_s}/mark-{s}");
        let out = d.cli(&[
            "approve",
            "--host",
            "scripter",
            "--cwd",
            d_s,
            "--yes",
            "--",
            "/usr/bin/python3",
            "server.py",
            &mark,
        ]);
        assert!(out.status.success(), "{out:?}");
    }
    let recs = d.cli(&["records", "--json"]);
    let recs: serde_json::Value = serde_json::from_slice(&recs.stdout).expect("records json");
    let r = recs["records"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["host"] == "scripter"))
        .expect("a scripter record");
    assert_eq!(r["script"]["arg"], 1, "the script argument is bound: {r}");
    let runs = host_json(
        &d,
        "scripter",
        &["/usr/bin/python3", "-c", SCRIPT_HOST, d_s],
    );
    assert_eq!(runs.len(), steps.len(), "{runs:?}");
    for run in &runs {
        let ok = matches!(
            run["step"].as_str(),
            Some("approved" | "restored" | "pointed-back")
        );
        if ok {
            assert_eq!(run["rc"], 0, "{run}");
            assert_eq!(run["ran"], true, "{run}");
        } else {
            assert_eq!(run["rc"], -9, "killed before it ran: {run}");
            assert_eq!(run["ran"], false, "{run}");
            assert_eq!(run["evil"], false, "{run}");
        }
    }
    let evs = d.wait_events("the verdicts", Duration::from_secs(10), |evs| {
        evs.iter()
            .filter(|e| e["kind"] == "launch" && e["verdict"]["decision"] == "killed")
            .count()
            >= 4
    });
    let reasons: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "launch" && e["verdict"]["decision"] == "killed")
        .filter_map(|e| e["verdict"]["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .filter(|r| r.contains("not the approved content"))
            .count()
            >= 3,
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("another mount namespace")),
        "{reasons:?}"
    );
}

/// The flooding host: forks `n` sleepers (each takes a `TRACKED` entry), then
/// forks once more and, in that child, runs `touch MARK` the way subprocess does
/// (vfork + exec), and forks a Python child that writes `MARK.fork` itself.
/// Prints the two children's wait statuses.
const FLOOD_HOST: &str = r#"
import json, os, signal, subprocess, sys, time
n, mark = int(sys.argv[1]), sys.argv[2]
sleepers = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    sleepers.append(pid)
time.sleep(0.5)
r = subprocess.run(["/usr/bin/touch", mark]).returncode
pid = os.fork()
if pid == 0:
    open(mark + ".fork", "w").write("x")
    os._exit(0)
st = os.waitpid(pid, 0)[1]
for p in sleepers:
    os.kill(p, signal.SIGKILL)
    os.waitpid(p, 0)
print(json.dumps({"exec_rc": r, "fork_status": st}), flush=True)
"#;

/// Observed (item 2b): with `TRACKED` full, children of real hosts were not
/// tracked and unapproved launches ran unchecked while `status` exited 0. Now a
/// child the map has no room for, under a host in enforce or ask mode, is killed
/// at its first fault or exec (fail closed), counted, and `status` exits 3.
#[test]
fn a_child_the_tracking_map_has_no_room_for_is_killed_not_unchecked() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("tracked_max = 64\n[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let mark = tmp.path().join("ran");
    let runs = host_json(
        &d,
        "flooder",
        &[
            "/usr/bin/python3",
            "-c",
            FLOOD_HOST,
            "80",
            mark.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(runs.len(), 1, "{runs:?}");
    let v = &runs[0];
    assert_eq!(v["exec_rc"], -9, "the vfork + exec child was killed: {v}");
    assert_eq!(v["fork_status"], 9, "the forked child was killed: {v}");
    assert!(!mark.exists(), "touch ran unchecked");
    assert!(!tmp.path().join("ran.fork").exists(), "the child ran");
    let st = d.cli(&["status", "--json"]);
    assert_eq!(
        st.status.code(),
        Some(3),
        "incomplete tracking is an error: {st:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("status json");
    let killed = v["kernel"]["tracked_full_killed"].as_u64().unwrap_or(0);
    assert!(killed >= 2, "counted: {}", v["kernel"]);
}

/// The attacker's host for `env` resolution: runs the approved `#!/usr/bin/env
/// python3` script with the approved `PATH`, then with a `PATH` that finds its own
/// `python3` first.
const ENV_HOST: &str = r#"
import json, os, subprocess, sys, time
script, evil_dir = sys.argv[1], sys.argv[2]
for step, path in (("approved", "/usr/bin:/bin"), ("attacker-path", evil_dir + ":/usr/bin:/bin")):
    mark = script + "." + step
    p = subprocess.run([script, mark], env={"PATH": path})
    time.sleep(0.1)
    print(json.dumps({"step": step, "rc": p.returncode, "ran": os.path.exists(mark),
                      "evil": os.path.exists(evil_dir + "/ran")}), flush=True)
"#;

/// Observed (item 8): `/usr/bin/env node …` — the README's own npx example —
/// resolved `node` from an attacker's `PATH`. Now a record of an `env PROG`
/// command binds the PROG it resolved to when approved, and the kernel holds the
/// launch until the daemon resolved PROG again with the launch's own `PATH`, as
/// the launch sees the files, and found the same content.
#[test]
fn env_finds_the_approved_program_or_the_launch_is_killed() {
    if !require_root() {
        return;
    }
    let d = Daemon::start("[defaults]\nmode = \"enforce\"");
    let tmp = tempfile::tempdir().expect("tmp");
    let script = tmp.path().join("server.py");
    std::fs::write(
        &script,
        "#!/usr/bin/env python3\nimport sys\nopen(sys.argv[1], 'w').write('ran')\n",
    )
    .expect("script");
    let evil = tmp.path().join("evil");
    std::fs::create_dir(&evil).expect("mkdir");
    std::fs::write(
        evil.join("python3"),
        format!("#!/bin/sh\ntouch {}/ran\n", evil.display()),
    )
    .expect("evil");
    for f in [&script, &evil.join("python3")] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let s = script.to_str().expect("utf-8");
    for step in ["approved", "attacker-path"] {
        let mark = format!("{s}.{step}");
        let out = d
            .cli_cmd(&["approve", "--host", "envhost", "--yes", "--", s, &mark])
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("approve");
        assert!(out.status.success(), "{out:?}");
    }
    let recs = d.cli(&["records", "--json"]);
    let recs: serde_json::Value = serde_json::from_slice(&recs.stdout).expect("json");
    let r = recs["records"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["host"] == "envhost"))
        .expect("record");
    assert_eq!(r["resolved"]["arg"], 1, "env's program is bound: {r}");
    let runs = host_json(
        &d,
        "envhost",
        &[
            "/usr/bin/python3",
            "-c",
            ENV_HOST,
            s,
            evil.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["rc"], 0, "{runs:?}");
    assert_eq!(runs[0]["ran"], true, "{runs:?}");
    assert_eq!(runs[1]["rc"], -9, "the attacker's PATH: killed: {runs:?}");
    assert_eq!(runs[1]["evil"], false, "{runs:?}");
    d.wait_events("the reason", Duration::from_secs(10), |evs| {
        evs.iter().any(|e| {
            e["verdict"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("found through the launch's PATH"))
        })
    });
}

/// Found while defining "argv names the host script" once (issue 11): the kernel read
/// each argument with a bounded read and walked on by what it read, so an argument
/// longer than the read was taken in pieces, and a piece that was the host's script
/// path made the exec "the host relaunching itself", never checked. An agent inside a
/// `#!` host could run any program as `interp <255 bytes of directories>/<the host
/// script's path>` (a file of its own, relative to its cwd) in enforce mode. Now an
/// argument that fills the kernel's read ends the walk with no match, on both sides of
/// the rule, so such an exec is a launch and is checked like any other.
#[test]
fn an_argument_longer_than_the_kernels_read_cannot_pass_for_the_host_script() {
    if !require_root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let script = dir.join("cli.js");
    let work = dir.join("work");
    let s = script.to_str().expect("utf-8 path").to_owned();
    // `pad` bytes of relative directories, then the script's absolute path: the
    // kernel's old read (254 bytes, then on from byte 255) and a read of 255 bytes
    // that walked on (from byte 256) would each have landed on the script's path.
    let crafted = |pad: usize| {
        let r = if pad % 2 == 1 { 1 } else { 2 };
        format!("{}{}{s}", "d/".repeat((pad - r) / 2), "d".repeat(r))
    };
    let mut body = format!(
        "#!/bin/sh\nif [ \"$1\" = again ]; then echo relaunched; exit 0; fi\ncd {}\n/bin/sh {s} again; echo \"rc-relaunch=$?\"\n",
        work.display()
    );
    for pad in [254, 255, 256] {
        let arg = crafted(pad);
        assert_eq!(arg.len(), pad + s.len());
        let payload = work.join(&arg);
        std::fs::create_dir_all(payload.parent().expect("parent")).expect("mkdir -p");
        let mark = dir.join(format!("ran-{pad}"));
        std::fs::write(&payload, format!("echo x > {}\n", mark.display())).expect("payload");
        writeln!(body, "/bin/sh {arg}; echo \"rc-{pad}=$?\"").expect("write");
    }
    std::fs::write(&script, body).expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let d = Daemon::start(&format!(
        "[defaults]\nmode = \"enforce\"\n\n[[host]]\nname = \"longarg\"\nscripts = [{s:?}]\n"
    ));
    let out = Command::new(&script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("host");
    let text = String::from_utf8_lossy(&out.stdout);
    // The control: the host relaunching itself with its script in argv is the host
    // again (not a launch), so it runs in enforce mode.
    assert!(
        text.contains("relaunched") && text.contains("rc-relaunch=0"),
        "the relaunch control did not run as the host: {text}"
    );
    for pad in [254, 255, 256] {
        assert!(
            text.contains(&format!("rc-{pad}=137")),
            "pad {pad}: not killed as an unapproved launch: {text}"
        );
        assert!(
            !dir.join(format!("ran-{pad}")).exists(),
            "pad {pad}: the payload ran"
        );
    }
    drop(d);
}
