//! Attacks on enforcement by a process that fights back (issue 10), performed for
//! real against the running kernel and daemon; each test says what it closes.
use std::{
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
