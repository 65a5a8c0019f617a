//! Every consent rule of the engine, over a fake kernel and a core in a temporary
//! directory: no root, no eBPF. Callers and held launches are real child
//! processes (`sleep`), so pinning, ancestry and signals are the real ones.
use std::{path::PathBuf, time::Instant};

use monitor_common::{event_flags as ef, role, TaskState};

use super::fake::{FakeHandle, FakeKernel};
use crate::{
    config::Config,
    consent::{Pending, RecordState},
    engine::callers::{identify, ApiError, Caller},
    engine::core::Core,
    event::{Bytes, Event, Kind},
    logfile::LogWriter,
    model::Mode,
    policy::{managed::ManagedLoader, record::Scope},
};

struct Env {
    core: Core,
    kernel: FakeHandle,
    dir: tempfile::TempDir,
}

fn env_with(tune: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        state_dir: dir.path().join("state"),
        policy_dir: dir.path().join("policy"),
        log_file: Some(dir.path().join("events.log")),
        ..Config::default()
    };
    std::fs::create_dir_all(&config.state_dir).expect("state dir");
    std::fs::create_dir_all(&config.policy_dir).expect("policy dir");
    tune(&mut config);
    let log = LogWriter::open(&config.log_path()).expect("log");
    let (kernel, handle) = FakeKernel::new();
    let core = Core::new(&config, Box::new(kernel), log, Vec::new(), Vec::new()).expect("core");
    Env {
        core,
        kernel: handle,
        dir,
    }
}

fn env() -> Env {
    env_with(|_| {})
}

impl Env {
    fn events(&mut self) -> Vec<Event> {
        self.core.log.flush().expect("flush");
        crate::logfile::read_all(self.core.log.path(), |_| {}).expect("read log")
    }

    fn has_event(&mut self, kind: Kind, text: &str) -> bool {
        self.events().iter().any(|e| {
            let reason = e.verdict.as_ref().and_then(|v| v.reason.as_deref());
            e.kind == kind
                && [e.message.as_deref(), reason]
                    .iter()
                    .flatten()
                    .any(|m| m.contains(text))
        })
    }

    /// A copy of a small real program in the temporary directory: its content is
    /// the test's to change.
    fn program(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::copy("/bin/true", &p).expect("copy /bin/true");
        p
    }

    /// Approve `argv` for host `test` as `caller`, with `scope`.
    fn approve(&mut self, prog: &std::path::Path, scope: &str, caller: &Caller) -> u64 {
        let argv = vec![prog.as_os_str().as_encoded_bytes().to_vec()];
        let v = self
            .core
            .api_approve_command("test", argv, "", scope, String::new(), caller)
            .expect("approve");
        v["id"].as_u64().expect("record id")
    }

    fn state(&self, id: u64) -> Option<RecordState> {
        self.core.consent.states.get(&id).cloned()
    }

    fn load_policy(&mut self, text: &str) {
        std::fs::write(self.core.consent.policy_dir.join("10-test.toml"), text).expect("policy");
        let (managed, problems) = ManagedLoader::new().load(&self.core.consent.policy_dir, false);
        assert!(problems.is_empty(), "{problems:?}");
        self.core.consent.managed = managed;
    }
}

/// A live child process, killed and reaped when dropped.
struct Proc(std::process::Child);

impl Proc {
    fn sleep() -> Self {
        Self(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("sleep"),
        )
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    /// A caller with uid `uid` whose process is this one, pinned now.
    fn caller(&self, uid: u32) -> Caller {
        Caller {
            pid: self.pid(),
            uid,
            ident: identify(self.pid(), None),
        }
    }
    /// Whether it is gone (dead or a zombie).
    fn gone(&self) -> bool {
        for _ in 0..200 {
            if crate::sys::procfs::live_start(self.pid()).is_none() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tracked_host() -> TaskState {
    TaskState {
        role: role::HOST,
        flags: 0,
        host_pid: 1,
        host_profile: 0,
        session_pid: 0,
        parent_pid: 0,
    }
}

/// Hold `p` as launch `id` of uid `uid` (what `verdict` does for a `HELD` exec).
fn hold(env: &mut Env, id: u64, p: &Proc, uid: u32) {
    let start = crate::sys::procfs::live_start(p.pid()).expect("start");
    let me = std::process::id();
    let me_start = crate::sys::procfs::live_start(me).expect("own start");
    let mut e = Event::new(Kind::Launch, id, String::new());
    e.pid = p.pid();
    e.uid = Some(uid);
    e.argv = Some(vec![Bytes::from("sleep"), Bytes::from("60")]);
    env.core.consent.pending.insert(
        id,
        Pending {
            id,
            pid: p.pid(),
            start_time: start,
            ppid: me,
            ppid_start: me_start,
            host: "test".into(),
            uid,
            event: e,
            since: Instant::now(),
        },
    );
}

/// (refused?, message) of an API error.
fn split(e: ApiError) -> (bool, String) {
    match e {
        ApiError::Refused(m) => (true, m),
        ApiError::Failed(m) => (false, m),
    }
}

const AGENT: &str = "an agent cannot grant itself consent";

// ---- self-approval ----------------------------------------------------------

#[test]
fn a_tracked_caller_can_grant_revoke_continue_or_set_nothing() {
    let mut env = env();
    let prog = env.program("prog");
    let admin = Proc::sleep();
    let id = env.approve(&prog, "always", &admin.caller(0));
    let agent = Proc::sleep();
    hold(&mut env, 7, &agent, 0);
    env.kernel
        .maps()
        .tracked
        .insert(agent.pid(), tracked_host());
    let from = agent.caller(0);
    let argv = vec![prog.as_os_str().as_encoded_bytes().to_vec()];
    let refusals = [
        env.core
            .api_approve_command("test", argv, "", "always", String::new(), &from)
            .map_err(split)
            .err(),
        env.core
            .api_approve(1, "", String::new(), &from)
            .map_err(split)
            .err(),
        env.core
            .api_approve_import(
                "test",
                "mcp-servers",
                "/x",
                "s",
                "",
                "",
                String::new(),
                &from,
            )
            .map_err(split)
            .err(),
        env.core.api_revoke(id, &from).map_err(split).err(),
        env.core.api_allow(7, true, &from).map_err(split).err(),
        env.core.api_deny(7, &from).map_err(split).err(),
        env.core
            .api_set_mode("test", "monitor", &from)
            .map_err(split)
            .err(),
    ];
    for r in refusals {
        let (denied, msg) = r.expect("refused");
        assert!(denied && msg.contains(AGENT), "{msg}");
    }
    assert!(env.core.consent.store.get(id).is_some(), "still approved");
    assert!(env.core.consent.pending.contains_key(&7), "still held");
    assert!(env.has_event(Kind::Refused, AGENT));
}

#[test]
fn a_caller_below_a_tracked_ancestor_is_refused() {
    let mut env = env();
    let child = Proc::sleep();
    // Untracked: root may set a mode.
    env.core
        .api_set_mode("test", "ask", &child.caller(0))
        .expect("untracked root caller");
    // The test process (the caller's parent) is tracked: now it may not.
    env.kernel
        .maps()
        .tracked
        .insert(std::process::id(), tracked_host());
    let (denied, msg) = env
        .core
        .api_set_mode("test", "monitor", &child.caller(0))
        .map_err(split)
        .expect_err("refused");
    assert!(denied && msg.contains(AGENT), "{msg}");
    assert!(
        msg.contains(&format!("pid {} is tracked", std::process::id())),
        "{msg}"
    );
}

#[test]
fn a_caller_whose_process_is_gone_is_refused() {
    let mut env = env();
    let nobody = Caller {
        pid: 4_000_000,
        uid: 0,
        ident: None,
    };
    let (denied, msg) = env
        .core
        .api_set_mode("test", "ask", &nobody)
        .map_err(split)
        .expect_err("unidentified");
    assert!(denied && msg.contains("has exited"), "{msg}");
    // Pinned while alive, gone (a zombie, then reaped) when the call is checked.
    let mut p = Proc::sleep();
    let pinned = p.caller(0);
    p.0.kill().expect("kill");
    assert!(p.gone());
    let (denied, msg) = env
        .core
        .api_set_mode("test", "ask", &pinned)
        .map_err(split)
        .expect_err("zombie");
    assert!(denied && msg.contains("has exited"), "{msg}");
    p.0.wait().expect("reap");
    let (denied, _) = env
        .core
        .api_set_mode("test", "ask", &pinned)
        .map_err(split)
        .expect_err("reaped");
    assert!(denied);
    assert!(env.has_event(Kind::Refused, "has exited"));
}

// ---- owner-only answers -----------------------------------------------------

#[test]
fn only_the_owner_or_root_may_allow_a_held_launch() {
    let mut env = env();
    let held = Proc::sleep();
    hold(&mut env, 11, &held, 1000);
    let other = Proc::sleep();
    let (denied, msg) = env
        .core
        .api_allow(11, false, &other.caller(1001))
        .map_err(split)
        .expect_err("another user");
    assert!(
        denied && msg.contains("may not allow launch 11 of uid 1000"),
        "{msg}"
    );
    assert!(env.core.consent.pending.contains_key(&11));
    assert!(env.kernel.maps().cleared.is_empty());
    let v = env
        .core
        .api_allow(11, false, &other.caller(1000))
        .expect("the owner");
    assert_eq!(v["continued"], true);
    assert!(!env.core.consent.pending.contains_key(&11));
    assert_eq!(env.kernel.maps().cleared, vec![held.pid()]);
    assert!(env.has_event(Kind::Decision, "allowed by uid 1000 (once)"));
    // Root may answer anyone's.
    let again = Proc::sleep();
    hold(&mut env, 12, &again, 1000);
    env.core
        .api_allow(12, false, &other.caller(0))
        .expect("root");
}

#[test]
fn only_the_owner_or_root_may_deny_a_held_launch() {
    let mut env = env();
    let held = Proc::sleep();
    hold(&mut env, 21, &held, 1000);
    let other = Proc::sleep();
    let (denied, msg) = env
        .core
        .api_deny(21, &other.caller(1001))
        .map_err(split)
        .expect_err("another user");
    assert!(
        denied && msg.contains("may not deny launch 21 of uid 1000"),
        "{msg}"
    );
    assert!(!held.gone() || crate::sys::procfs::live_start(held.pid()).is_some());
    let v = env.core.api_deny(21, &other.caller(0)).expect("root");
    assert_eq!(v["killed"], true);
    assert!(held.gone());
    assert!(env.has_event(Kind::Decision, "denied by uid 0"));
}

#[test]
fn users_approve_only_their_own_launches() {
    let mut env = env();
    let prog = env.program("prog");
    let mut e = Event::new(Kind::Launch, 31, String::new());
    e.uid = Some(1000);
    e.argv = Some(vec![Bytes::from(prog.to_str().expect("utf-8"))]);
    e.exe = Some(crate::event::Exe {
        path: Some(Bytes::from(prog.to_str().expect("utf-8"))),
        ..crate::event::Exe::default()
    });
    env.core.consent.remember(&e);
    let p = Proc::sleep();
    let (denied, msg) = env
        .core
        .api_approve(31, "", String::new(), &p.caller(1001))
        .map_err(split)
        .expect_err("another user's launch");
    assert!(
        denied && msg.contains("users approve their own launches"),
        "{msg}"
    );
    assert_eq!(env.core.consent.store.records().len(), 0);
}

#[test]
fn only_root_sets_modes() {
    let mut env = env();
    let p = Proc::sleep();
    let (denied, msg) = env
        .core
        .api_set_mode("test", "enforce", &p.caller(1000))
        .map_err(split)
        .expect_err("a user");
    assert!(denied && msg.contains("may not change modes"), "{msg}");
    env.core
        .api_set_mode("test", "enforce", &p.caller(0))
        .expect("root");
    let id = env.core.profile_id("test").expect("id") as usize;
    assert_eq!(env.kernel.maps().modes[id], monitor_common::mode::ENFORCE);
}

// ---- scopes -----------------------------------------------------------------

#[test]
fn a_once_record_is_retired_when_its_launch_used_it() {
    let mut env = env();
    let prog = env.program("prog");
    let admin = Proc::sleep();
    let id = env.approve(&prog, "once", &admin.caller(0));
    assert_eq!(env.kernel.maps().allow.len(), 1);
    assert!(env.core.consent.once_armed.contains_key(&id));
    // Still in the kernel: a resync keeps it armed.
    env.core.sync_kernel();
    assert!(env.core.consent.store.get(id).is_some());
    let mut e = Event::new(Kind::Launch, 41, String::new());
    e.uid = Some(0);
    env.core.verdict(
        &mut e,
        ef::LAUNCH | ef::ALLOWED | ef::ONCE_CONSUMED,
        monitor_common::mode::ENFORCE,
        id,
    );
    assert_eq!(
        e.verdict.as_ref().expect("verdict").decision,
        crate::event::Decision::Allowed
    );
    assert!(env.core.consent.store.get(id).is_none(), "retired");
    assert!(!env.core.consent.once_armed.contains_key(&id));
    assert!(env.has_event(Kind::Revoke, "once record used"));
}

#[test]
fn a_once_key_the_kernel_no_longer_has_retires_its_record() {
    let mut env = env();
    let prog = env.program("prog");
    let admin = Proc::sleep();
    let once = env.approve(&prog, "once", &admin.caller(0));
    let other = env.program("other");
    let always = env.approve(&other, "always", &admin.caller(0));
    let key = env.core.consent.keys[&once];
    // Consumed in the kernel before its event reached the daemon.
    env.kernel.maps().allow.retain(|(k, _)| *k != key);
    env.core.sync_kernel();
    assert!(
        env.core.consent.store.get(once).is_none(),
        "retired, not re-armed"
    );
    assert!(env.core.consent.store.get(always).is_some());
    assert_eq!(env.kernel.maps().allow.len(), 1);
}

#[test]
fn an_until_record_applies_until_its_time() {
    let mut env = env();
    let prog = env.program("prog");
    let admin = Proc::sleep();
    let later = env.approve(&prog, "until=2100-01-01T00:00:00Z", &admin.caller(0));
    assert_eq!(env.state(later), Some(RecordState::Active));
    assert_eq!(env.kernel.maps().allow.len(), 1);
    let other = env.program("other");
    let past = env.approve(&other, "until=2000-01-01T00:00:00Z", &admin.caller(0));
    assert_eq!(env.state(past), Some(RecordState::Expired));
    assert!(!env.core.consent.keys.contains_key(&past));
    assert_eq!(env.kernel.maps().allow.len(), 1, "only the live record");
    assert!(matches!(
        env.core.consent.store.get(later).map(|r| &r.scope),
        Some(Scope::Until(_))
    ));
}

// ---- managed policy over user records ----------------------------------------

#[test]
fn a_managed_mode_lock_holds_against_root_and_the_user_store() {
    let mut env = env();
    env.load_policy("[hosts.test]\nmode = \"enforce\"\nlock = true\n");
    let p = Proc::sleep();
    let (denied, msg) = env
        .core
        .api_set_mode("test", "monitor", &p.caller(0))
        .map_err(split)
        .expect_err("locked");
    assert!(denied && msg.contains("locked by managed policy"), "{msg}");
    // A user mode in the store (written before the lock) does not weaken it.
    env.core
        .consent
        .store
        .set_mode("test", Mode::Monitor)
        .expect("store");
    let id = env.core.profile_id("test").expect("id") as usize;
    env.core.sync_modes();
    assert_eq!(env.kernel.maps().modes[id], monitor_common::mode::ENFORCE);
}

#[test]
fn a_managed_deny_wins_over_a_user_record_of_the_same_program() {
    let mut env = env();
    let prog = env.program("denied");
    let admin = Proc::sleep();
    let id = env.approve(&prog, "always", &admin.caller(0));
    env.load_policy(&format!("[deny]\nprograms = [\"{}\"]\n", prog.display()));
    env.core.sync_kernel();
    let meta = std::fs::metadata(&prog).expect("stat");
    let key = crate::hosts::exe_key(&meta);
    assert!(
        env.kernel.maps().deny.iter().any(|(k, _)| *k == key),
        "denied in the kernel by identity"
    );
    // A copy elsewhere, launched and allowed by a record: denied by its content.
    let sha = crate::sys::hash::HashCache::default()
        .get(&prog)
        .expect("hash")
        .1;
    let mut e = Event::new(Kind::Launch, 51, String::new());
    e.pid = 4_000_000;
    e.uid = Some(0);
    e.exe = Some(crate::event::Exe {
        path: Some(Bytes::from(prog.to_str().expect("utf-8"))),
        sha256: Some(sha),
        ..crate::event::Exe::default()
    });
    env.core.verdict(
        &mut e,
        ef::LAUNCH | ef::ALLOWED,
        monitor_common::mode::MONITOR,
        id,
    );
    let v = e.verdict.expect("verdict");
    assert_eq!(v.decision, crate::event::Decision::Denied, "{v:?}");
    assert!(v
        .reason
        .as_deref()
        .unwrap_or("")
        .contains("managed policy denies"));
}

// ---- staleness --------------------------------------------------------------

#[test]
fn a_record_goes_stale_when_its_file_content_changes() {
    let mut env = env();
    let prog = env.program("prog");
    let admin = Proc::sleep();
    let id = env.approve(&prog, "always", &admin.caller(0));
    assert_eq!(env.state(id), Some(RecordState::Active));
    // Same content, new identity: still approved.
    let bytes = std::fs::read(&prog).expect("read");
    std::fs::remove_file(&prog).expect("rm");
    std::fs::write(&prog, &bytes).expect("rewrite");
    env.core.sync_kernel();
    assert_eq!(env.state(id), Some(RecordState::Active));
    assert_eq!(env.kernel.maps().allow.len(), 1);
    // Other content: stale, out of the kernel, reported.
    std::fs::write(&prog, b"#!/bin/sh\necho changed\n").expect("change");
    env.core.sync_kernel();
    assert!(
        matches!(env.state(id), Some(RecordState::Stale(ref why)) if why.contains("changed since approval")),
        "{:?}",
        env.state(id)
    );
    assert!(env.kernel.maps().allow.is_empty());
    assert!(env.has_event(Kind::RecordStale, "changed since approval"));
}

// ---- holds ------------------------------------------------------------------

#[test]
fn a_held_launch_without_an_answer_in_time_is_killed() {
    let mut env = env_with(|c| c.ask_timeout_secs = 3600);
    let held = Proc::sleep();
    hold(&mut env, 61, &held, 1000);
    env.core.tick_consent();
    assert!(
        env.core.consent.pending.contains_key(&61),
        "within the timeout"
    );
    env.core.config.ask_timeout_secs = 0;
    env.core.tick_consent();
    assert!(!env.core.consent.pending.contains_key(&61));
    assert!(held.gone(), "killed");
    assert_eq!(env.kernel.maps().cleared, vec![held.pid()]);
    assert!(env.has_event(Kind::Decision, "no answer in time"));
}

// ---- the engine task --------------------------------------------------------

#[tokio::test]
async fn the_engine_runs_commands_in_order_and_hands_its_core_back() {
    use super::task::{run, Engine, Msg};
    let Env {
        core,
        kernel,
        dir: _dir,
    } = env();
    let (engine, rx) = Engine::channel();
    let task = tokio::spawn(run(core, rx));
    let p = Proc::sleep();
    let from = p.caller(0);
    let set = engine
        .call(move |c| c.api_set_mode("test", "ask", &from).is_ok())
        .await;
    assert_eq!(set, Some(true));
    let id = engine
        .call(|c| c.profile_id("test").expect("id") as usize)
        .await
        .expect("engine");
    assert_eq!(kernel.maps().modes[id], monitor_common::mode::ASK);
    assert!(engine.send(Msg::Stop).await);
    let core = task.await.expect("engine task");
    assert_eq!(core.consent.store.modes().len(), 1);
    assert_eq!(engine.call(|_| ()).await, None, "stopped");
}

// ---- contracts --------------------------------------------------------------

#[test]
fn verdicts_serialise_their_decision_and_mode_as_the_same_strings() {
    use crate::event::{Decision, Verdict};
    let all = [
        (Decision::Allowed, "allowed"),
        (Decision::Unapproved, "unapproved"),
        (Decision::Held, "held"),
        (Decision::Killed, "killed"),
        (Decision::Denied, "denied"),
        (Decision::Continued, "continued"),
    ];
    for (d, s) in all {
        for (m, ms) in [
            (Mode::Monitor, "monitor"),
            (Mode::Ask, "ask"),
            (Mode::Enforce, "enforce"),
        ] {
            let v = Verdict {
                decision: d,
                mode: m,
                record: None,
                reason: None,
                pending: None,
                killed: false,
            };
            let text = serde_json::to_string(&v).expect("json");
            assert_eq!(text, format!(r#"{{"decision":"{s}","mode":"{ms}"}}"#));
            assert_eq!(serde_json::from_str::<Verdict>(&text).expect("parse"), v);
            assert_eq!(d.to_string(), s);
        }
    }
}

// ---- more owner and hold rules ----------------------------------------------

#[test]
fn users_revoke_only_their_own_records_and_nobody_revokes_managed_ones() {
    let mut env = env();
    let prog = env.program("prog");
    let user = Proc::sleep();
    let id = env.approve(&prog, "always", &user.caller(1000));
    let (denied, msg) = env
        .core
        .api_revoke(id, &user.caller(1001))
        .map_err(split)
        .expect_err("another user");
    assert!(denied && msg.contains("may not revoke record"), "{msg}");
    assert!(env.core.consent.store.get(id).is_some());
    let (denied, msg) = env
        .core
        .api_revoke(crate::consent::MANAGED_ID_BASE, &user.caller(0))
        .map_err(split)
        .expect_err("managed");
    assert!(denied && msg.contains("comes from managed policy"), "{msg}");
    env.core
        .api_revoke(id, &user.caller(1000))
        .expect("the owner");
    assert!(env.core.consent.store.get(id).is_none());
    assert!(env.kernel.maps().allow.is_empty(), "out of the kernel");
}

#[test]
fn a_held_launch_whose_parent_exited_is_killed() {
    let mut env = env_with(|c| c.ask_timeout_secs = 3600);
    let held = Proc::sleep();
    hold(&mut env, 81, &held, 1000);
    // As if another process (gone now) had forked it.
    if let Some(p) = env.core.consent.pending.get_mut(&81) {
        p.ppid = 4_000_000;
        p.ppid_start = 1;
    }
    env.core.tick_consent();
    assert!(!env.core.consent.pending.contains_key(&81));
    assert!(held.gone(), "killed");
    assert!(env.has_event(Kind::Decision, "its parent exited while it waited"));
}

#[test]
fn a_held_launch_continued_behind_our_back_loses_its_session() {
    use crate::event::raw::RawHoldBypass;
    let mut env = env();
    let held = Proc::sleep();
    let member = Proc::sleep();
    hold(&mut env, 91, &held, 1000);
    let session = TaskState {
        role: role::SESSION,
        session_pid: held.pid(),
        ..tracked_host()
    };
    env.kernel.maps().tracked.insert(member.pid(), session);
    env.core.hold_bypass(&RawHoldBypass {
        common: common(4_000_000),
        target: held.pid(),
        signal: 18,
    });
    assert!(held.gone() && member.gone(), "the whole session is killed");
    assert!(!env.core.consent.pending.contains_key(&91));
    assert!(env.kernel.maps().cleared.contains(&held.pid()));
    assert!(env.has_event(Kind::Decision, "resumed by someone other than mcpwatch"));
    assert!(env.has_event(Kind::HoldBypass, "sent SIGCONT to held launch"));
}

/// What every kernel event carries, for process `pid` (untracked).
fn common(pid: u32) -> crate::event::raw::Common {
    crate::event::raw::Common {
        ts_ns: 0,
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        ns_pid: pid,
        ns_level: 0,
        pidns_inum: 0,
        role: crate::event::raw::Role::None,
        host_pid: 0,
        host_profile: 0,
        session_pid: 0,
        comm: b"kill".to_vec(),
        flags: 0,
        lineage_parent: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hashing_stage_sends_urgent_events_first_then_the_rest_in_order() {
    use super::task::{hash_stage, Engine, Msg};
    use crate::event::raw::{RawEvent, RawFork, RawHoldBypass, Role};
    let fork = |child| {
        RawEvent::Fork(RawFork {
            common: common(10),
            child_pid: child,
            parent_role: Role::None,
        })
    };
    let bypass = RawEvent::HoldBypass(RawHoldBypass {
        common: common(11),
        target: 12,
        signal: 18,
    });
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for ev in [fork(1), bypass.clone(), fork(2)] {
        tx.send(ev).await.expect("queue");
    }
    drop(tx);
    let (engine, mut engine_rx) = Engine::channel();
    hash_stage(rx, std::sync::Arc::default(), engine).await;
    let mut got = Vec::new();
    while let Ok(msg) = engine_rx.try_recv() {
        let Msg::Events(batch) = msg else {
            panic!("only events")
        };
        got.push(batch.into_iter().map(|(ev, _)| ev).collect::<Vec<_>>());
    }
    assert_eq!(got, vec![vec![bypass], vec![fork(1), fork(2)]]);
}
