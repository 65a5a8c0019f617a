//! The audit log's chain against a real daemon: it verifies, tampering is named,
//! and a SIGKILL in the middle of a burst leaves a log that still verifies.
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use mcpwatch_tests::{bin, require_root, Daemon};

fn verify(d: &Daemon) -> std::process::Output {
    d.cli(&["audit", "verify", "--file", d.log.to_str().expect("utf-8")])
}

#[test]
fn a_real_log_verifies_and_an_edited_record_is_named() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("");
    let out = d
        .cli_cmd(&[
            "run",
            "--",
            "/bin/sh",
            "-c",
            "/bin/true a; /bin/true b; /bin/true c",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(out.success());
    d.wait_events("the launches", Duration::from_secs(10), |evs| {
        evs.iter().filter(|e| e["kind"] == "launch").count() >= 3
    });
    d.stop();
    let out = verify(&d);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("ok: ") && text.contains("matches the checkpoint"),
        "{text}"
    );

    // Change one argument of one launch, as an intruder editing the file would.
    let log = std::fs::read_to_string(&d.log).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    let (i, line) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains("\"kind\":\"launch\"") && l.contains("\"b\""))
        .expect("launch b");
    let id = serde_json::from_str::<serde_json::Value>(line).expect("json")["id"]
        .as_u64()
        .expect("id");
    let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    edited[i] = line.replace("\"b\"", "\"x\"");
    std::fs::write(&d.log, edited.join("\n") + "\n").expect("write");
    let out = verify(&d);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("TAMPERED: edited at line {}", i + 1))
            && text.contains(&format!("(record {id})")),
        "{text}"
    );

    // Delete it instead.
    let mut cut: Vec<&str> = lines.clone();
    cut.remove(i);
    std::fs::write(&d.log, cut.join("\n") + "\n").expect("write");
    let text = String::from_utf8_lossy(&verify(&d).stdout).into_owned();
    assert!(
        text.contains(&format!(
            "TAMPERED: deleted at line {} (record {id})",
            i + 1
        )),
        "{text}"
    );

    // Cut off the end: only the checkpoint can tell.
    std::fs::write(&d.log, lines[..lines.len() - 2].join("\n") + "\n").expect("write");
    let text = String::from_utf8_lossy(&verify(&d).stdout).into_owned();
    assert!(text.contains("TAMPERED: truncated"), "{text}");
}

#[test]
fn sigkill_in_the_middle_of_a_burst_leaves_a_log_that_verifies() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("log_fsync_ms = 200");
    // About 10,000 events: a fork, an exec and an exit per child.
    let mut storm = d
        .cli_cmd(&["run", "--", bin("storm").to_str().expect("utf-8"), "3400"])
        .stdout(Stdio::null())
        .spawn()
        .expect("storm");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = std::fs::read_to_string(&d.log).map_or(0, |t| t.lines().count());
        if n >= 3000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst did not start: {n} lines"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    let _ = storm.wait();

    let out = verify(&d);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the log is a valid prefix after SIGKILL: {text}"
    );
    let cp: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.log.with_extension("jsonl.checkpoint")).expect("checkpoint"),
    )
    .expect("checkpoint json");
    let records = d.events();
    let last = records
        .last()
        .and_then(|e| e["id"].as_u64())
        .expect("records");
    assert!(
        last >= cp["id"].as_u64().expect("id"),
        "every fsynced record is there"
    );
    // Ids are consecutive: nothing lost before the kill.
    for (n, e) in records.iter().enumerate() {
        assert_eq!(e["id"].as_u64(), Some(n as u64 + 1), "{e}");
    }

    // Restart: a torn tail (if the kill cut a write) is set aside; the chain goes on.
    d.restart();
    d.stop();
    let out = verify(&d);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("torn"), "set aside at start: {text}");
}

#[test]
fn rotation_and_retention_keep_the_chain_verifiable_across_files() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("log_rotate_bytes = 4096\nlog_keep_files = 2");
    let st = d
        .cli_cmd(&["run", "--", bin("storm").to_str().expect("utf-8"), "150"])
        .stdout(Stdio::null())
        .status()
        .expect("storm");
    assert!(st.success());
    d.wait_events("the storm's exit", Duration::from_secs(20), |evs| {
        evs.iter().any(|e| e["kind"] == "log_rotate")
    });
    d.stop();
    let out = verify(&d);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let dir = d.log.parent().expect("state dir");
    let mut rotated: Vec<_> = std::fs::read_dir(dir)
        .expect("state")
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            (n.starts_with("events.jsonl.") && n[13..].chars().all(|c| c.is_ascii_digit()))
                .then_some(n)
        })
        .collect();
    rotated.sort();
    assert_eq!(
        rotated.len(),
        2,
        "retention keeps 2 rotated files: {rotated:?}"
    );
    let all: String = rotated
        .iter()
        .map(|n| std::fs::read_to_string(dir.join(n)).expect("read"))
        .chain([std::fs::read_to_string(&d.log).expect("log")])
        .collect();
    assert!(
        all.contains("\"kind\":\"log_retention\""),
        "retention is recorded"
    );

    // Removing the oldest remaining file is not retention: it is caught.
    std::fs::remove_file(dir.join(&rotated[0])).expect("rm");
    let out = verify(&d);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("TAMPERED: deleted"), "{text}");
}

/// `cat FILE` as uid/gid 65534 (nobody), optionally with one supplementary group.
fn cat_as_nobody(file: &std::path::Path, group: Option<&str>) -> bool {
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534"]);
    match group {
        Some(g) => c.arg(format!("--groups={g}")),
        None => c.arg("--clear-groups"),
    };
    c.args(["cat"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c.status().expect("setpriv").success()
}

/// Let anyone traverse the directories above the state directory (the tests'
/// temp dirs are 0700), so only the state directory's own mode decides.
fn open_path_to(log: &std::path::Path) {
    let mut p = log.parent().and_then(std::path::Path::parent);
    while let Some(dir) = p {
        if dir == std::path::Path::new("/") {
            break;
        }
        let _ = std::process::Command::new("chmod")
            .arg("o+x")
            .arg(dir)
            .status();
        p = dir.parent();
    }
}

#[test]
fn only_root_reads_the_log_unless_a_group_is_granted() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start("");
    d.stop();
    assert!(
        !cat_as_nobody(&d.log, None),
        "an unprivileged user cannot read the log"
    );
    // The state dir is inside a 0700 temp dir: open the path up to it for this test.
    open_path_to(&d.log);
    assert!(
        !cat_as_nobody(&d.log, Some("4")),
        "not even through a path it can reach"
    );
    let mut g = Daemon::start("log_group = \"adm\"");
    g.stop();
    open_path_to(&g.log);
    let adm = "4";
    assert!(
        cat_as_nobody(&g.log, Some(adm)),
        "a member of the granted group can read it"
    );
    assert!(!cat_as_nobody(&g.log, None), "others still cannot");
}

#[test]
fn notable_events_reach_the_journal_with_structured_fields() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("journal.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let d = Daemon::start(&format!(
        "journal = \"on\"\njournal_socket = {:?}",
        sock_path.display().to_string()
    ));
    let st = d
        .cli_cmd(&[
            "run",
            "--host",
            "journaled",
            "--",
            "/bin/sh",
            "-c",
            "/bin/true jmark; :",
        ])
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(st.success());
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(
            Instant::now() < deadline,
            "no launch entry reached the journal"
        );
        let n = sock.recv(&mut buf).expect("a journal datagram");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("MCPWATCH_KIND=launch\n") && text.contains("jmark") {
            assert!(text.contains("MCPWATCH_HOST=journaled\n"), "{text}");
            assert!(text.contains("SYSLOG_IDENTIFIER=mcpwatchd\n"), "{text}");
            assert!(text.contains("MCPWATCH_EVENT={"), "{text}");
            break;
        }
    }
    assert_eq!(d.status()["journal"], true);
}

/// Lazily unmounts a test's tmpfs, even when the test panics.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_is_reported_and_counted_and_enforcement_goes_on() {
    if !require_root() {
        return;
    }
    // The state directory on a small tmpfs that the test fills up.
    let mnt = tempfile::tempdir().expect("tmp");
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .expect("mount");
    assert!(st.success(), "mount tmpfs");
    let _guard = Unmount(mnt.path().to_path_buf());
    let state = mnt.path().join("state");
    let d = Daemon::start(&format!(
        "log_file = {:?}\n[defaults]\nmode = \"enforce\"",
        state.join("events.jsonl").display().to_string()
    ));
    let tool = mnt.path().join("tool");
    std::fs::copy("/usr/bin/touch", &tool).expect("tool");
    let ok = std::path::Path::new("/tmp").join(format!("mcpwatch-full-{}", std::process::id()));
    let out = d.cli(&[
        "approve",
        "--host",
        "full",
        "--yes",
        "--",
        tool.to_str().expect("utf-8"),
        ok.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{out:?}");
    // Fill the disk.
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", mnt.path().join("filler").display()))
        .stderr(Stdio::null())
        .status();
    let host = |script: &str| {
        d.cli_cmd(&["run", "--host", "full", "--", "/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &d.bus.address)
            .output()
            .expect("run")
    };
    let out = host(&format!(
        "for i in 1 2 3 4 5 6 7 8 9 10; do {t} {ok}; done; echo rc=$?; {t} {ok}-no; echo rc=$?",
        t = tool.display(),
        ok = ok.display()
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("rc=0\nrc=137"),
        "enforcing with a full disk: {text}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = d.status();
        if s["log_errors"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "log errors not counted: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        d.stderr_text().contains("event not written to the log"),
        "said loudly"
    );
    let _ = std::fs::remove_file(&ok);
}
