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
