//! The engine's side of the kernel's verdicts: explaining them on each exec,
//! holding launches in ask mode, and answering held launches (allow, deny, the
//! timeout). The kernel decides every exec from the maps (`kernel_sync` loads
//! them); nothing here is on the exec path.
use std::{path::Path, time::Instant};

use monitor_common::event_flags as ef;
use serde_json::Value;
use tracing::{info, warn};

use super::{
    callers::{failed, home_of, ApiError, Caller},
    kernel_sync::{deny_path, mode_of},
};
use crate::{
    consent::{Pending, RecordState, MANAGED_ID_BASE},
    engine::core::Core,
    event::{raw::RawHoldBypass, Bytes, Decision, Event, Kind, Verdict},
    model::Mode,
    policy::{
        record::{RecordId, Scope, ANY_HOST, ANY_UID},
        risk::risk_flags,
    },
    reply as api, resolve,
    sys::procfs,
};

impl Core {
    /// Fill in the verdict of an exec event from the kernel's flags, and act on it
    /// (ask mode: remember the held launch; a used `once` record: retire it).
    pub fn verdict(&mut self, e: &mut Event, flags: u32, mode: u32, record_id: u64) {
        let f = |b| flags & b != 0;
        let checked = f(ef::LAUNCH) || (e.session.is_some() && !f(ef::TERMINAL | ef::HELPER));
        if checked && !f(ef::DENIED) {
            if let Some(v) = self.deny_by_content(e, mode) {
                e.verdict = Some(v);
                self.consent.remember(e);
                return;
            }
        }
        if !(f(ef::LAUNCH) || f(ef::DENIED)) {
            return;
        }
        let mut v = Verdict {
            decision: Decision::Unapproved,
            mode: mode_of(mode),
            record: None,
            reason: None,
            pending: None,
            killed: f(ef::KILLED),
        };
        if f(ef::DENIED) {
            v.decision = Decision::Denied;
            v.reason = Some(format!(
                "managed policy denies {} inside every session",
                e.exe
                    .as_ref()
                    .and_then(|x| x.path.as_ref())
                    .map_or_else(|| "this program".into(), |p| p.lossy().into_owned())
            ));
        } else if f(ef::ALLOWED) {
            v.decision = Decision::Allowed;
            v.record = Some(record_id);
            if f(ef::ONCE_CONSUMED) {
                self.retire_once(record_id);
            }
            if f(ef::VERIFY) {
                self.verify_held(e, record_id, flags, &mut v);
            }
        } else {
            v.decision = if f(ef::HELD) {
                Decision::Held
            } else if f(ef::KILLED) {
                Decision::Killed
            } else {
                Decision::Unapproved
            };
            let mut reason = self.explain_miss(e, flags);
            if f(ef::ASK_DEGRADED) {
                reason.push_str("; ask mode had no daemon to ask: killed");
            }
            if f(ef::SIGNAL_FAILED) {
                reason.push_str("; the kernel could not signal the process");
            }
            v.reason = Some(reason);
        }
        if f(ef::HELD) && !f(ef::VERIFY) {
            v.pending = Some(e.id);
            self.hold(e);
        }
        e.verdict = Some(v);
        self.consent.remember(e);
    }

    /// Why no record matched, and re-arm a record whose file only changed identity.
    fn explain_miss(&mut self, e: &Event, flags: u32) -> String {
        let Some(argv) = &e.argv else {
            return "no argv".into();
        };
        if flags & ef::TRACED != 0 {
            return "it was being traced (ptrace) at exec: a tracer can make it run anything, so no consent record applies".into();
        }
        if flags & ef::ENV_UNCHECKED != 0 {
            let cut = ef::ARGV_TRUNCATED
                | ef::ARGV_READ_FAILED
                | ef::ENV_TRUNCATED
                | ef::ENV_READ_FAILED
                | ef::CWD_TRUNCATED;
            if flags & cut != 0 {
                return "argv, environment or cwd longer than the kernel compares: never approved in the kernel".into();
            }
            return format!(
                "the kernel could not check its environment: a security-relevant variable is \
                 set twice, a member of a family ({}) is set that no record approves, or more \
                 than {} entries begin like one: never approved in the kernel",
                crate::event::SECURITY_ENV_FAMILIES
                    .iter()
                    .map(|(p, _)| format!("{p}…"))
                    .collect::<Vec<_>>()
                    .join(", "),
                monitor_common::ENV_CAND_MAX
            );
        }
        let host = e.host.as_ref().map(|h| h.name.clone()).unwrap_or_default();
        let candidates: Vec<RecordId> = self
            .consent
            .all_records()
            .filter(|r| &r.argv == argv && (r.host == host || r.host == ANY_HOST))
            .map(|r| r.id)
            .collect();
        if candidates.is_empty() {
            return format!(
                "no consent record for this command (host {host}, uid {}): approve it with `mcpwatch approve {}`",
                e.uid.unwrap_or(0),
                e.id
            );
        }
        // The command is approved; something else differs. Re-verify: a file that
        // only changed identity (same content) is re-armed for the next launch.
        self.sync_kernel();
        let mut why = Vec::new();
        for id in candidates {
            let r = self.consent.all_records().find(|r| r.id == id).cloned();
            let Some(r) = r else { continue };
            match self.consent.states.get(&id) {
                Some(RecordState::Stale(s)) => {
                    why.push(format!("record {id} no longer applies: {s}"));
                }
                Some(RecordState::Expired) => why.push(format!("record {id} expired")),
                _ => {
                    if r.uid != ANY_UID && Some(r.uid) != e.uid {
                        why.push(format!("record {id} approves it for uid {} only", r.uid));
                    } else if !crate::policy::record::env_matches(&r.normalized_env(), &e.env) {
                        why.push(format!(
                            "record {id}: the security-relevant environment differs"
                        ));
                    } else if r.cwd.is_some() && r.cwd != e.cwd {
                        why.push(format!("record {id}: the working directory differs"));
                    } else {
                        why.push(format!(
                            "record {id}: the executable changed on disk since it was verified; its content is unchanged, so the record is re-armed for the next launch"
                        ));
                    }
                }
            }
        }
        why.join("; ")
    }

    /// A `once` record did its one launch: take it out of the store.
    pub(super) fn retire_once(&mut self, id: RecordId) {
        if id >= MANAGED_ID_BASE {
            return;
        }
        match self.consent.store.remove(id) {
            Ok(Some(r)) => {
                let mut ev = self.new_event(Kind::Revoke);
                ev.record = Some(id);
                ev.message = Some(format!("once record used: {}", r.command_line()));
                self.record(&ev);
            }
            Ok(None) => {}
            Err(err) => warn!(record = id, error = %err, "could not retire a used once record"),
        }
        self.consent.keys.remove(&id);
        if self.consent.once_armed.remove(&id).is_some() {
            self.consent.save_once_armed();
        }
    }

    /// A launch allowed by a record with a script: the kernel holds it (enforce and
    /// ask mode) until the script is verified here, as the launching process sees
    /// it. Verified: resumed. Not: its whole session is killed (monitor mode: only
    /// reported).
    fn verify_held(&mut self, e: &Event, id: RecordId, flags: u32, v: &mut Verdict) {
        let held = flags & ef::HELD != 0;
        let Some(start) = procfs::live_start(e.pid) else {
            if held {
                self.sensor.clear_held(e.pid);
            }
            return;
        };
        let outcome = self.check_script(e, id);
        match outcome {
            Ok(()) if held => {
                // Clear the hold mark first: the SIGCONT must not look like a bypass.
                self.sensor.clear_held(e.pid);
                if !procfs::signal_if_same(e.pid, start, libc::SIGCONT) {
                    v.reason = Some("verified, but it was gone before it could resume".into());
                }
            }
            Ok(()) => {}
            Err(why) if held || flags & ef::KILLED == 0 && v.mode != Mode::Monitor => {
                let n = self.kill_session(e.pid, start);
                self.sensor.clear_held(e.pid);
                warn!(record = id, pid = e.pid, reason = %why, "script check failed: session killed");
                v.decision = Decision::Killed;
                v.killed = true;
                v.reason = Some(format!(
                    "record {id} matched, but {why}: session killed ({n} process{})",
                    if n == 1 { "" } else { "es" }
                ));
            }
            Err(why) => {
                v.reason = Some(format!("record {id} matched, but {why}"));
            }
        }
    }

    /// The record's script, as the launching process `e.pid` sees it: the argument
    /// it names, resolved through that process's own root and working directory
    /// (so its mount namespace and symlinks), must have the approved content; and
    /// the launch must run in its host's mount namespace.
    fn check_script(&mut self, e: &Event, id: RecordId) -> Result<(), ScriptCheckError> {
        let Some(r) = self.consent.all_records().find(|r| r.id == id).cloned() else {
            return Err(ScriptCheckError::Gone { id });
        };
        if r.script.is_none() && r.resolved.is_none() {
            return Ok(());
        }
        if let Some(host) = &e.host {
            match crate::taskpath::same_mount_ns(e.pid, host.pid) {
                Ok(true) => {}
                Ok(false) => return Err(ScriptCheckError::OtherMountNs { host_pid: host.pid }),
                Err(source) => return Err(ScriptCheckError::MountNs { source }),
            }
        }
        if let Some(prog) = &r.resolved {
            let Some((_, name)) = resolve::env_prog(Path::new(&r.exe.path), &r.argv) else {
                return Err(ScriptCheckError::NoEnvProgram);
            };
            let (at, sha) = resolve::env_program_of_task(e.pid, &name)?;
            if sha != prog.sha256 {
                return Err(ScriptCheckError::EnvMismatch {
                    at,
                    sha,
                    path: prog.path.clone(),
                    approved: prog.sha256.clone(),
                });
            }
        }
        let Some(script) = &r.script else {
            return Ok(());
        };
        let arg = match script.arg {
            Some(i) => Some(i),
            None => match resolve::script_of(Path::new(&r.exe.path), &r.argv) {
                crate::interp::ScriptArg::At(i) => Some(i),
                _ => None,
            },
        };
        let Some(written) = arg.and_then(|i| r.argv.get(i)) else {
            return Err(ScriptCheckError::NoScriptArg);
        };
        let mut found = crate::taskpath::open_as_task(e.pid, &written.0).map_err(|source| {
            ScriptCheckError::ScriptUnreadable {
                script: written.lossy().into_owned(),
                source,
            }
        })?;
        let sha = crate::sys::hash::sha256_open(&mut found.file).map_err(|source| {
            ScriptCheckError::ScriptHash {
                script: written.lossy().into_owned(),
                source,
            }
        })?;
        if sha != script.sha256 {
            return Err(ScriptCheckError::ScriptMismatch {
                script: written.lossy().into_owned(),
                sha,
                approved: script.sha256.clone(),
            });
        }
        Ok(())
    }

    /// Kill launch `pid` (started at `start`) and every process of its session:
    /// the kernel's tracked entries with that session, until none is left (it may
    /// fork meanwhile). Returns how many were killed.
    pub(crate) fn kill_session(&mut self, pid: u32, start: u64) -> usize {
        let mut n = usize::from(procfs::signal_if_same(pid, start, libc::SIGKILL));
        for _ in 0..8 {
            let members: Vec<u32> = self
                .sensor
                .tracked_entries()
                .into_iter()
                .filter(|(p, st)| st.session_pid == pid && *p != pid)
                .map(|(p, _)| p)
                .collect();
            let mut killed = 0;
            for m in members {
                if let Some(s) = procfs::live_start(m) {
                    if procfs::signal_if_same(m, s, libc::SIGKILL) {
                        killed += 1;
                    }
                }
            }
            n += killed;
            if killed == 0 {
                break;
            }
        }
        n
    }

    fn hold(&mut self, e: &Event) {
        let Some((start, _, _)) = procfs::proc_start(e.pid) else {
            return;
        };
        // The process that forked it (lineage, fixed at fork in the kernel), not the
        // live parent: a launch whose host already exited was reparented before it
        // even exec'd. If that process is gone by now, start 0 never matches and
        // the next tick kills the orphan.
        let ppid = e.lineage.get(1).copied().unwrap_or(e.ppid);
        let ppid_start = procfs::proc_start(ppid)
            .filter(|_| procfs::proc_start(e.pid).is_some_and(|(_, pp, _)| pp == ppid))
            .map_or(0, |(s, _, _)| s);
        info!(pid = e.pid, id = e.id, "launch held, waiting for the user");
        self.consent.pending.insert(
            e.id,
            Pending {
                id: e.id,
                pid: e.pid,
                start_time: start,
                ppid,
                ppid_start,
                host: e.host.as_ref().map(|h| h.name.clone()).unwrap_or_default(),
                uid: e.uid.unwrap_or(0),
                event: e.clone(),
                since: Instant::now(),
            },
        );
    }

    /// SIGCONT to a held process by someone else: it would run unapproved. The
    /// kernel kills it as it resumes (when its parent takes `CLD_CONTINUED` reports);
    /// the daemon kills it too, in case the kernel could not.
    pub fn hold_bypass(&mut self, b: &RawHoldBypass) {
        let target = b.target;
        let kernel_killed = b.common.flags & ef::KILLED != 0;
        let entry = self
            .consent
            .pending
            .iter()
            .find(|(_, p)| p.pid == target)
            .map(|(id, p)| (*id, p.start_time));
        // Not killed in the kernel: it may have run and forked; its whole session goes.
        let killed = kernel_killed
            || match entry.map(|(_, s)| s).or_else(|| procfs::live_start(target)) {
                Some(start) => self.kill_session(target, start) > 0,
                None => false,
            };
        if let Some((id, _)) = entry {
            if let Some(p) = self.consent.pending.remove(&id) {
                self.decision(
                    &p,
                    Decision::Killed,
                    "resumed by someone other than mcpwatch",
                );
            }
        }
        if b.signal == 17 && !kernel_killed {
            return;
        }
        self.sensor.clear_held(target);
        let mut e = self.new_event(Kind::HoldBypass);
        e.pid = target;
        let how = match b.signal {
            17 => Some("continued"),
            monitor_common::RESUMED_RUNNING => Some("resumed by someone else"),
            _ => None,
        };
        e.message = Some(if let Some(how) = how {
            let outcome = if kernel_killed {
                "the kernel killed it before it ran"
            } else if killed {
                "the kernel could not kill it; mcpwatch did"
            } else {
                "it was already gone"
            };
            format!("held launch {target} was {how} without an answer: {outcome}")
        } else {
            format!(
                "pid {} ({}) sent SIGCONT to held launch {target}; {}",
                b.common.pid,
                String::from_utf8_lossy(&b.common.comm),
                if killed {
                    "killed it"
                } else {
                    "it was already gone"
                }
            )
        });
        warn!(
            sender = b.common.pid,
            target, "SIGCONT to a held launch from outside mcpwatch"
        );
        self.record(&e);
    }

    /// The BPF LSM refused an exec of a denied program with EPERM.
    pub fn lsm_deny(&mut self, d: &crate::event::raw::RawLsmDeny) {
        let kind = if d.common.role == crate::event::raw::Role::Host {
            Kind::Launch
        } else {
            Kind::Exec
        };
        let mut e = self.base_event(kind, &d.common);
        let path = deny_path(&self.consent.managed.deny, d.dev, d.ino);
        let udev = crate::event::raw::kernel_dev_to_user(d.dev);
        e.exe = Some(crate::event::Exe {
            path: path.as_deref().map(Bytes::from),
            dev: format!("{}:{}", libc::major(udev), libc::minor(udev)),
            ino: d.ino,
            ..crate::event::Exe::default()
        });
        e.verdict = Some(Verdict {
            decision: Decision::Denied,
            mode: mode_of(d.mode),
            record: None,
            reason: Some(format!(
                "managed policy denies {} inside every session: execve refused with EPERM (BPF LSM)",
                path.as_deref().unwrap_or("this program")
            )),
            pending: None,
            killed: false,
        });
        self.record(&e);
    }

    /// Periodic work: reload changed policy, re-verify record files, time out or
    /// orphan-kill held launches.
    pub fn tick_consent(&mut self) {
        let (changed, problems) = self.consent.reload_if_changed();
        for p in problems {
            warn!(problem = %p, "consent store or policy problem; the last good copy stays in force");
            let mut e = self.new_event(Kind::PolicyError);
            e.message = Some(p);
            self.record(&e);
        }
        let mut resync = changed;
        if self.last_verify.elapsed().as_secs() >= 2 {
            self.last_verify = Instant::now();
            let moved = self
                .consent
                .watched
                .values()
                .flatten()
                .any(|(p, id)| crate::sys::hash::ident(p).ok().as_ref() != Some(id));
            let expired = {
                let now = time::OffsetDateTime::now_utc();
                self.consent.all_records().any(|r| {
                    r.is_expired(now)
                        && self.consent.states.get(&r.id) != Some(&RecordState::Expired)
                })
            };
            resync |= moved || expired;
            // A rename-style upgrade gives a denied path a new identity.
            self.sync_deny();
        }
        if resync {
            self.sync_kernel();
        }
        let timeout = self.config.ask_timeout_secs;
        let mut done = Vec::new();
        for (id, p) in &self.consent.pending {
            let alive = procfs::live_start(p.pid) == Some(p.start_time);
            if !alive {
                done.push((*id, "gone", false));
                continue;
            }
            let parent_alive = procfs::proc_start(p.ppid)
                .is_some_and(|(s, _, _)| s == p.ppid_start)
                && procfs::proc_start(p.pid).is_some_and(|(_, pp, _)| pp == p.ppid);
            if !parent_alive {
                done.push((*id, "its parent exited while it waited", true));
            } else if p.since.elapsed().as_secs() >= timeout {
                done.push((*id, "no answer in time", true));
            }
        }
        for (id, why, kill) in done {
            let Some(p) = self.consent.pending.remove(&id) else {
                continue;
            };
            if kill {
                procfs::signal_if_same(p.pid, p.start_time, libc::SIGKILL);
                self.decision(&p, Decision::Killed, why);
            }
            self.sensor.clear_held(p.pid);
        }
        if self.consent.pending.is_empty() {
            self.sensor.resync_holds();
        }
    }

    fn decision(&mut self, p: &Pending, decision: Decision, why: &str) {
        let mut e = self.new_event(Kind::Decision);
        e.pid = p.pid;
        e.host.clone_from(&p.event.host);
        e.argv.clone_from(&p.event.argv);
        e.verdict = Some(Verdict {
            decision,
            mode: Mode::Ask,
            record: None,
            reason: Some(why.into()),
            pending: Some(p.id),
            killed: decision == Decision::Killed,
        });
        e.message = Some(format!(
            "held launch {} ({}): {decision}: {why}",
            p.id, p.pid
        ));
        self.record(&e);
    }

    pub fn api_pending(&self) -> Value {
        let timeout = self.config.ask_timeout_secs;
        let list: Vec<api::PendingLaunch> = self
            .consent
            .pending
            .values()
            .map(|p| {
                let argv = p.event.argv.clone().unwrap_or_default();
                api::PendingLaunch {
                    id: p.id,
                    pid: p.pid,
                    host: p.host.clone(),
                    uid: p.uid,
                    risks: risk_flags(&argv, home_of(p.uid).as_deref())
                        .into_iter()
                        .map(Into::into)
                        .collect(),
                    argv,
                    command: p.event.command_line(),
                    held_secs: p.since.elapsed().as_secs_f64(),
                    timeout_secs: timeout,
                }
            })
            .collect();
        api::to_json(&list)
    }

    /// Held launch `id` exists and `caller` may answer it: its owner, or root.
    fn check_pending_owner(
        &mut self,
        id: u64,
        caller: &Caller,
        verb: &str,
    ) -> Result<(), ApiError> {
        let owner = self
            .consent
            .pending
            .get(&id)
            .ok_or_else(|| failed(format!("no held launch {id} (see `mcpwatch pending`)")))?
            .uid;
        if caller.uid != 0 && caller.uid != owner {
            let msg = format!(
                "uid {} may not {verb} launch {id} of uid {owner}",
                caller.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        Ok(())
    }

    pub fn api_allow(&mut self, id: u64, always: bool, caller: &Caller) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "allow")?;
        self.check_pending_owner(id, caller, "allow")?;
        let record = if always {
            let (_, r) = self.record_for_event(id, caller, Scope::Always, String::new())?;
            Some(self.add_record(r, caller.uid, Some(id))?)
        } else {
            None
        };
        let Some(p) = self.consent.pending.remove(&id) else {
            return Err(failed("the launch is no longer held"));
        };
        // Clear the hold mark first: the SIGCONT below must not look like a bypass.
        self.sensor.clear_held(p.pid);
        let continued = procfs::signal_if_same(p.pid, p.start_time, libc::SIGCONT);
        self.decision(
            &p,
            Decision::Continued,
            &format!(
                "allowed by uid {}{}",
                caller.uid,
                if always { " (always)" } else { " (once)" }
            ),
        );
        Ok(api::to_json(&api::Allowed {
            pid: p.pid,
            continued,
            record,
        }))
    }

    pub fn api_deny(&mut self, id: u64, caller: &Caller) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "deny")?;
        self.check_pending_owner(id, caller, "deny")?;
        let Some(p) = self.consent.pending.remove(&id) else {
            return Err(failed("the launch is no longer held"));
        };
        let killed = procfs::signal_if_same(p.pid, p.start_time, libc::SIGKILL);
        self.sensor.clear_held(p.pid);
        self.decision(
            &p,
            Decision::Killed,
            &format!("denied by uid {}", caller.uid),
        );
        Ok(api::to_json(&api::Denied { pid: p.pid, killed }))
    }
}

/// Why a held launch's script (or `env`'s program) is not what its record approved;
/// the text follows "record N matched, but" in the verdict's reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScriptCheckError {
    #[error("record {id} is gone")]
    Gone { id: RecordId },
    #[error("it runs in another mount namespace than its host (pid {host_pid})")]
    OtherMountNs { host_pid: u32 },
    #[error("its mount namespace could not be compared with its host's: {source}")]
    MountNs { source: std::io::Error },
    #[error("the record's `env` names no program")]
    NoEnvProgram,
    #[error(transparent)]
    EnvProgram(#[from] resolve::EnvProgramError),
    #[error(
        "env would run {at} (found through the launch's PATH), not the approved {path} \
         (sha256 {sha}, approved {approved})"
    )]
    EnvMismatch {
        at: String,
        sha: String,
        path: String,
        approved: String,
    },
    #[error("the record does not say which argument is its script")]
    NoScriptArg,
    #[error("its script {script} could not be read as it sees it: {source}")]
    ScriptUnreadable {
        script: String,
        source: std::io::Error,
    },
    #[error("its script {script}: {source}")]
    ScriptHash {
        script: String,
        source: std::io::Error,
    },
    #[error("its script {script} is not the approved content (sha256 {sha}, approved {approved})")]
    ScriptMismatch {
        script: String,
        sha: String,
        approved: String,
    },
}

#[cfg(test)]
mod script_check_error_tests {
    use super::ScriptCheckError;
    use crate::resolve::EnvProgramError;

    #[test]
    fn script_check_errors_read_as_the_verdict_reasons_always_did() {
        struct Prog {
            path: &'static str,
            sha256: &'static str,
        }
        let (at, sha) = ("/usr/bin/node", "ab");
        let prog = Prog {
            path: "/opt/node",
            sha256: "cd",
        };
        let (path, approved) = (prog.path, prog.sha256);
        let e = ScriptCheckError::EnvMismatch {
            at: at.into(),
            sha: sha.into(),
            path: path.into(),
            approved: approved.into(),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "env would run {at} (found through the launch's PATH), not the approved {} \
                 (sha256 {sha}, approved {})",
                prog.path, prog.sha256
            )
        );
        let e = ScriptCheckError::OtherMountNs { host_pid: 7 };
        assert_eq!(
            e.to_string(),
            format!(
                "it runs in another mount namespace than its host (pid {})",
                7
            )
        );
        let e: ScriptCheckError = EnvProgramError::NotFound {
            name: "node".into(),
            path_var: "/bin".into(),
        }
        .into();
        assert_eq!(
            e.to_string(),
            format!("env would find no `{}` in its PATH {}", "node", "/bin")
        );
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = EnvProgramError::Environ {
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(
            e.to_string(),
            format!("its environment could not be read: {io}")
        );
    }
}
