//! The daemon's side of consent: loading records into the kernel, explaining the
//! kernel's verdicts, answering held launches, and the API operations (approve,
//! revoke, allow, deny, mode). The kernel decides every exec from the maps; nothing
//! here is on the exec path.
use std::{collections::BTreeMap, path::Path, time::Instant};

use monitor_common::{event_flags as ef, role, task_flags, ExeKey};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::{
    consent::{self, Pending, RecordState, MANAGED_ID_BASE},
    engine::core::Core,
    event::{raw::RawHoldBypass, Bytes, Decision, Event, Kind, Verdict},
    hosts::{
        import::{parse_config_bytes, Entry, ImportContext},
        Schema,
    },
    model::{api, Mode},
    policy::{
        record::{FileBinding, Record, RecordError, RecordId, Scope, Source, ANY_HOST, ANY_UID},
        risk::risk_flags,
    },
    resolve,
    sys::{clock, hash::HashCache, procfs},
};

/// Where the deny list's bare names are looked up.
const DENY_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A refused or failed API call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The caller may not do this (D-Bus `AccessDenied`).
    #[error("{0}")]
    Refused(String),
    /// It could not be done (D-Bus `Failed`).
    #[error("{0}")]
    Failed(String),
}

/// Credentials of an API caller, as the bus daemon reports them.
#[derive(Clone, Debug)]
pub struct Caller {
    pub pid: u32,
    pub uid: u32,
    /// Who the caller is: a pidfd (from the bus, else opened when the call
    /// arrived) and the process's start time then. `None`: it could not be
    /// identified (already gone), and it may grant nothing.
    pub ident: Option<CallerIdent>,
}

/// A caller's process, pinned when its call arrived.
#[derive(Clone, Debug)]
pub struct CallerIdent {
    pub pidfd: std::sync::Arc<std::os::fd::OwnedFd>,
    /// Start time (clock ticks after boot, /proc/PID/stat field 22).
    pub start: u64,
    /// The bus gave the pidfd (`ProcessFD`, from `SO_PEERPIDFD`: the very process
    /// that connected); else the daemon opened it from the bus's pid.
    pub from_bus: bool,
}

/// Pin the caller `pid`: with the bus's pidfd when given (it must name `pid`),
/// else one opened now. `None` when the process is gone, a zombie, or the bus's
/// pidfd names another process.
pub fn identify(pid: u32, bus_fd: Option<std::os::fd::OwnedFd>) -> Option<CallerIdent> {
    let from_bus = bus_fd.is_some();
    let fd = match bus_fd {
        Some(fd) => fd,
        None => procfs::pidfd_open(pid).ok()?,
    };
    if procfs::pidfd_pid(&fd) != Some(pid) {
        return None;
    }
    let start = procfs::live_start(pid)?;
    // Read after the start time: the pidfd still names a live process, so the
    // start time read was its own, not a recycled pid's.
    if procfs::pidfd_exited(&fd) {
        return None;
    }
    Some(CallerIdent {
        pidfd: std::sync::Arc::new(fd),
        start,
        from_bus,
    })
}

/// 0: not known yet; 1: the bus gives `ProcessFD`; 2: it does not.
static BUS_PIDFD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// How API callers are pinned (`mcpwatch status`): `bus ProcessFD`, `pidfd at
/// arrival`, or `unknown` (no bus).
pub fn caller_pinning() -> &'static str {
    match BUS_PIDFD.load(std::sync::atomic::Ordering::Relaxed) {
        1 => "bus ProcessFD",
        2 => "pidfd at arrival",
        _ => "unknown",
    }
}

/// Say whether the bus pins callers itself (`ProcessFD`): the D-Bus server asks
/// the bus once it is connected.
pub fn set_caller_pinning(bus_gives_pidfd: bool) {
    BUS_PIDFD.store(
        if bus_gives_pidfd { 1 } else { 2 },
        std::sync::atomic::Ordering::Relaxed,
    );
}

impl Caller {
    /// Whether the process pinned at arrival is still alive (not a zombie) and is
    /// still the one at `pid`.
    fn still_there(&self) -> bool {
        self.ident.as_ref().is_some_and(|id| {
            !procfs::pidfd_exited(&id.pidfd) && procfs::live_start(self.pid) == Some(id.start)
        })
    }
}

fn refused(msg: impl Into<String>) -> ApiError {
    ApiError::Refused(msg.into())
}

fn failed(msg: impl Into<String>) -> ApiError {
    ApiError::Failed(msg.into())
}

/// The mode of the kernel's encoding (anything else: monitor).
fn mode_of(m: u32) -> Mode {
    match m {
        monitor_common::mode::ASK => Mode::Ask,
        monitor_common::mode::ENFORCE => Mode::Enforce,
        _ => Mode::Monitor,
    }
}

impl Core {
    /// The kernel's mode table from the store, managed policy and config.
    pub fn sync_modes(&mut self) {
        let default = self.config.defaults.mode;
        let modes: Vec<u32> = self
            .host_names
            .iter()
            .map(|h| self.consent.mode_of(h, default).0.kernel())
            .collect();
        if let Err(e) = self.sensor.set_modes(&modes) {
            warn!(error = %e, "could not update host modes in the kernel");
        }
        // What the kernel applies to an id it has no mode for: the default, with
        // managed policy for every host, never something weaker.
        let fallback = self.consent.mode_of(ANY_HOST, default).0.kernel();
        if let Err(e) = self.sensor.set_default_mode(fallback) {
            warn!(error = %e, "could not update the default mode in the kernel");
        }
    }

    /// The profile id a record's kernel entry carries (`ANY` for `*`).
    fn record_profile(&mut self, host: &str) -> Result<u32, String> {
        if host == ANY_HOST {
            return Ok(monitor_common::ANY);
        }
        self.profile_id(host).ok_or_else(|| {
            format!(
                "every one of the kernel's {} host ids is in use: host {host} has none",
                monitor_common::MODES_MAX
            )
        })
    }

    /// Compile every record and load the kernel maps: `ALLOW`, `DENY_EXES`, `MODES`.
    /// Records whose files changed are reported (once per change) and left out.
    pub fn sync_kernel(&mut self) {
        for p in self.consent.build_managed_records() {
            warn!(problem = %p, "managed approval not applied");
            if !self.consent.managed_problems.contains(&p) {
                self.consent.managed_problems.push(p.clone());
                let mut e = self.new_event(Kind::PolicyError);
                e.message = Some(p);
                self.record(&e);
            }
        }
        let hosts: Vec<String> = self.consent.all_records().map(|r| r.host.clone()).collect();
        for h in hosts {
            if h != ANY_HOST {
                let _ = self.profile_id(&h);
            }
        }
        // A `once` entry the kernel no longer has was used (perhaps while no
        // daemon ran, or before its event reached us): retire it, never re-arm it.
        // Maps that did not survive (a reboot, `--unload`) count as used too.
        let present: std::collections::HashSet<_> = self.sensor.allow_keys().into_iter().collect();
        let consumed: Vec<RecordId> = self
            .consent
            .once_armed
            .iter()
            .filter(|(_, k)| !present.contains(k))
            .map(|(id, _)| *id)
            .collect();
        for id in consumed {
            if self
                .consent
                .store
                .get(id)
                .is_some_and(|r| r.scope == Scope::Once)
            {
                self.retire_once(id);
            }
            self.consent.once_armed.remove(&id);
        }
        let (k0, k1) = self.sensor.sip_keys();
        let now = time::OffsetDateTime::now_utc();
        let records: Vec<Record> = self.consent.all_records().cloned().collect();
        let ids = consent::EnvIds::for_records(records.iter().filter(|r| !r.is_expired(now)));
        if let Err(e) = self.sensor.set_env_names(ids.names()) {
            warn!(error = %e, "could not load the security-relevant env names into the kernel");
        }
        let mut entries = Vec::new();
        let mut states = BTreeMap::new();
        let mut watched = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for r in &records {
            if r.is_expired(now) {
                states.insert(r.id, RecordState::Expired);
                continue;
            }
            let profile = match self.record_profile(&r.host) {
                Ok(id) => id,
                Err(why) => {
                    states.insert(r.id, RecordState::Stale(why));
                    continue;
                }
            };
            match consent::compile(r, profile, &mut self.consent.hashes, &ids, (k0, k1)) {
                Ok(c) => {
                    states.insert(r.id, RecordState::Active);
                    watched.insert(r.id, c.files.clone());
                    keys.insert(r.id, c.key);
                    entries.push((c.key, *c.value));
                }
                Err(why) => {
                    states.insert(r.id, RecordState::Stale(why));
                }
            }
        }
        for (id, st) in &states {
            if let RecordState::Stale(why) = st {
                if self.consent.states.get(id) != Some(st) {
                    warn!(record = id, reason = %why, "consent record no longer applies");
                    let mut e = self.new_event(Kind::RecordStale);
                    e.record = Some(*id);
                    e.message = Some(why.clone());
                    self.record(&e);
                }
            }
        }
        let armed: BTreeMap<RecordId, monitor_common::AllowKey> = records
            .iter()
            .filter(|r| r.scope == Scope::Once)
            .filter_map(|r| Some((r.id, *keys.get(&r.id)?)))
            .collect();
        if armed != self.consent.once_armed {
            self.consent.once_armed = armed;
            self.consent.save_once_armed();
        }
        self.consent.states = states;
        self.consent.watched = watched;
        self.consent.keys = keys;
        if let Err(e) = self.sensor.sync_allow(&entries) {
            warn!(error = %e, "could not load consent records into the kernel");
        }
        self.sync_deny();
        self.sync_modes();
    }

    /// Load the managed deny list into the kernel by identity (the files it names
    /// now, and copies found by content), and hash those files for the check by
    /// content. Cheap when nothing changed (hashes are cached by identity).
    pub(crate) fn sync_deny(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        let names = self.consent.managed.deny.clone();
        let mut keys = deny_keys(&names);
        let mut sha = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            for c in deny_candidates(name) {
                if let Ok((_, h)) = self.consent.hashes.get(&c) {
                    sha.entry(h).or_insert(i);
                }
            }
        }
        self.consent.deny_sha = sha;
        self.consent.deny_copies.retain(|(p, k, _)| {
            std::fs::metadata(p).is_ok_and(|m| {
                crate::hosts::user_dev_to_kernel(m.dev()) == k.dev && m.ino() == k.ino
            })
        });
        for (_, k, i) in &self.consent.deny_copies {
            if !keys.iter().any(|(x, _)| x == k) {
                keys.push((*k, *i));
            }
        }
        if keys == self.consent.deny_loaded {
            return;
        }
        match self.sensor.sync_deny(&keys) {
            Ok(()) => self.consent.deny_loaded = keys,
            Err(e) => warn!(error = %e, "could not load the managed deny list into the kernel"),
        }
    }

    /// A copy (or a renamed-over version) of a program the managed policy denies,
    /// found by its content: the kernel did not know this file. Killed now (after
    /// it started: the kernel decides before the daemon can hash), and denied by
    /// identity in the kernel from now on.
    fn deny_by_content(&mut self, e: &Event, mode: u32) -> Option<Verdict> {
        let exe = e.exe.as_ref()?;
        let sha = exe.sha256.as_ref()?;
        let idx = *self.consent.deny_sha.get(sha)?;
        let name = self.consent.managed.deny.get(idx)?.clone();
        let path = exe
            .path
            .as_ref()
            .map_or_else(|| "?".to_owned(), |p| p.lossy().into_owned());
        let enforce = mode_of(mode) != Mode::Monitor;
        let mut killed = false;
        if enforce {
            if let Some(start) = procfs::live_start(e.pid) {
                killed = procfs::signal_if_same(e.pid, start, libc::SIGKILL);
            }
        }
        if let Ok(m) =
            std::fs::metadata(format!("/proc/{}/exe", e.pid)).or_else(|_| std::fs::metadata(&path))
        {
            let key = crate::hosts::exe_key(&m);
            if !self.consent.deny_copies.iter().any(|(_, k, _)| *k == key) {
                if self.consent.deny_copies.len() >= DENY_COPIES_MAX {
                    self.consent.deny_copies.remove(0);
                }
                self.consent.deny_copies.push((
                    path.clone().into(),
                    key,
                    u32::try_from(idx).unwrap_or(0),
                ));
                self.sync_deny();
            }
        }
        warn!(pid = e.pid, program = %name, path = %path, "a copy of a denied program ran");
        Some(Verdict {
            decision: Decision::Denied,
            mode: mode_of(mode),
            record: None,
            reason: Some(format!(
                "managed policy denies {name} inside every session; {path} has its content (sha256 {sha}){}; the kernel denies this file from now on",
                if killed {
                    ": killed just after it started"
                } else if enforce {
                    ": it was gone before it could be killed"
                } else {
                    ""
                }
            )),
            pending: None,
            killed,
        })
    }

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
    fn retire_once(&mut self, id: RecordId) {
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
    fn check_script(&mut self, e: &Event, id: RecordId) -> Result<(), String> {
        let Some(r) = self.consent.all_records().find(|r| r.id == id).cloned() else {
            return Err(format!("record {id} is gone"));
        };
        if r.script.is_none() && r.resolved.is_none() {
            return Ok(());
        }
        if let Some(host) = &e.host {
            match crate::taskpath::same_mount_ns(e.pid, host.pid) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(format!(
                        "it runs in another mount namespace than its host (pid {})",
                        host.pid
                    ))
                }
                Err(err) => {
                    return Err(format!(
                        "its mount namespace could not be compared with its host's: {err}"
                    ))
                }
            }
        }
        if let Some(prog) = &r.resolved {
            let Some((_, name)) = resolve::env_prog(Path::new(&r.exe.path), &r.argv) else {
                return Err("the record's `env` names no program".into());
            };
            let (at, sha) = resolve::env_program_of_task(e.pid, &name)?;
            if sha != prog.sha256 {
                return Err(format!(
                    "env would run {at} (found through the launch's PATH), not the approved {} \
                     (sha256 {sha}, approved {})",
                    prog.path, prog.sha256
                ));
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
            return Err("the record does not say which argument is its script".into());
        };
        let mut found = crate::taskpath::open_as_task(e.pid, &written.0).map_err(|err| {
            format!(
                "its script {} could not be read as it sees it: {err}",
                written.lossy()
            )
        })?;
        let sha = crate::sys::hash::sha256_open(&mut found.file)
            .map_err(|err| format!("its script {}: {err}", written.lossy()))?;
        if sha != script.sha256 {
            return Err(format!(
                "its script {} is not the approved content (sha256 {sha}, approved {})",
                written.lossy(),
                script.sha256
            ));
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

    /// At start, with maps taken over from an earlier daemon: adopt the kernel's
    /// tracked processes, and kill launches held for a daemon that is gone.
    pub fn take_over_kernel_state(&mut self) -> usize {
        let mut n = 0;
        for (pid, st) in self.sensor.tracked_entries() {
            let Some((_, ppid, _)) = procfs::proc_start(pid) else {
                self.sensor.untrack(pid);
                continue;
            };
            if st.flags & task_flags::HELD != 0 {
                if let Some((start, _, _)) = procfs::proc_start(pid) {
                    procfs::signal_if_same(pid, start, libc::SIGKILL);
                }
                let mut e = self.new_event(Kind::Decision);
                e.pid = pid;
                e.verdict = Some(Verdict {
                    decision: Decision::Killed,
                    mode: Mode::Ask,
                    record: None,
                    reason: Some(
                        "held when the previous daemon stopped; nobody could answer".into(),
                    ),
                    pending: None,
                    killed: true,
                });
                self.record(&e);
                continue;
            }
            let r = if st.role == role::HOST {
                crate::event::raw::Role::Host
            } else {
                crate::event::raw::Role::Session
            };
            let session = (st.session_pid != 0).then_some(st.session_pid);
            let parent = (st.parent_pid != 0).then_some(st.parent_pid);
            self.tracker.adopt(
                pid,
                parent,
                st.host_pid,
                st.host_profile,
                r,
                session,
                clock::boot_ns(),
            );
            let mut e = self.new_event(Kind::Adopt);
            e.pid = pid;
            e.ppid = ppid;
            e.host = Some(crate::event::HostRef {
                name: self.host_name(st.host_profile),
                pid: st.host_pid,
            });
            e.session = session;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            e.argv = Some(
                crate::event::raw::split_nul(&cmdline)
                    .into_iter()
                    .map(Bytes)
                    .collect(),
            );
            e.message =
                Some("tracked by the kernel while no daemon ran (pinned state taken over)".into());
            self.record(&e);
            n += 1;
        }
        n
    }

    // ---- API operations -------------------------------------------------------

    /// Refuse consent operations from inside an agent's tree: the caller, or any
    /// ancestor, tracked by the kernel or the tracker. Records the refusal.
    pub fn refuse_if_agent(&mut self, caller: &Caller, what: &str) -> Result<(), ApiError> {
        // The bus names the pid that opened the connection. When that process is
        // gone (or a zombie), another one holds the socket, and nobody can say
        // which: refuse. (An agent's process that exits leaves its connection to
        // a child; looked up, the dead pid had no tracked entry and no ancestors.)
        if !caller.still_there() {
            let msg = format!(
                "{what}: the process that opened this bus connection (pid {}) has exited; whoever holds the connection now cannot be identified, so it cannot grant, revoke or continue anything",
                caller.pid
            );
            warn!(
                caller_pid = caller.pid,
                caller_uid = caller.uid,
                what,
                "consent call over a dead process's connection refused"
            );
            return Err(self.record_refusal(caller, &msg));
        }
        let mut pid = caller.pid;
        for _ in 0..64 {
            if pid <= 1 {
                break;
            }
            if let Some(st) = self.sensor.tracked_state(pid) {
                let host = self.host_name(st.host_profile);
                let msg = format!(
                    "{what}: the caller (pid {}, uid {}) runs inside host {host}'s tree (pid {pid} is tracked); an agent cannot grant itself consent",
                    caller.pid, caller.uid
                );
                warn!(caller_pid = caller.pid, caller_uid = caller.uid, what, host = %host, "consent call from inside an agent tree refused");
                let mut e = self.new_event(Kind::Refused);
                e.pid = caller.pid;
                e.uid = Some(caller.uid);
                e.message = Some(msg.clone());
                self.record(&e);
                return Err(refused(msg));
            }
            match procfs::proc_start(pid) {
                Some((_, parent, _)) => pid = parent,
                None => break,
            }
        }
        // Still the same live process after the walk: its ancestry was its own.
        if !caller.still_there() {
            let msg = format!(
                "{what}: the caller (pid {}) exited while its call was checked; it cannot grant, revoke or continue anything",
                caller.pid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        Ok(())
    }

    fn record_refusal(&mut self, caller: &Caller, msg: &str) -> ApiError {
        let mut e = self.new_event(Kind::Refused);
        e.pid = caller.pid;
        e.uid = Some(caller.uid);
        e.message = Some(msg.to_owned());
        self.record(&e);
        refused(msg)
    }

    /// The event to approve: recent in memory, else searched in the log.
    fn launch_event(&self, id: u64) -> Result<Event, ApiError> {
        if let Some(e) = self.consent.find_recent(id) {
            return Ok(e.clone());
        }
        let all = crate::logfile::read_all(self.log.path(), |_| {})
            .map_err(|e| failed(format!("reading the log: {e}")))?;
        all.into_iter()
            .find(|e| e.id == id)
            .filter(|e| matches!(e.kind, Kind::Launch | Kind::Exec))
            .ok_or_else(|| failed(format!("no launch event with id {id}")))
    }

    fn preview_of(&self, e: &Event, r: &Record) -> api::Preview {
        let home = e.uid.and_then(home_of);
        let mut risks = risk_flags(&r.argv, home.as_deref());
        let cwd = r.cwd.as_ref().or(e.cwd.as_ref()).map(|c| {
            use std::os::unix::ffi::OsStrExt as _;
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&c.0))
        });
        let uid = (r.uid != ANY_UID).then_some(r.uid).or(e.uid);
        risks.extend(resolve::binding_risks(
            Path::new(&r.exe.path),
            &r.argv,
            cwd.as_deref(),
            uid,
        ));
        let existing = self
            .consent
            .all_records()
            .find(|x| x.argv == r.argv && x.host == r.host && x.exe == r.exe && x.uid == r.uid)
            .map(|x| x.id);
        api::Preview {
            event_id: (e.id != 0).then_some(e.id),
            host: r.host.clone(),
            uid: r.uid,
            argv: r.argv.clone(),
            command: r.command_line(),
            exe: r.exe.clone(),
            script: r.script.clone(),
            resolved: r.resolved.clone(),
            cwd: r.cwd.clone(),
            env: r
                .env
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .collect::<BTreeMap<_, _>>(),
            risks: risks.into_iter().map(Into::into).collect(),
            existing_record: existing,
            source: None,
        }
    }

    fn record_for_event(
        &mut self,
        id: u64,
        caller: &Caller,
        scope: Scope,
        note: String,
    ) -> Result<(Event, Record), ApiError> {
        let e = self.launch_event(id)?;
        let owner = e.uid.unwrap_or(u32::MAX);
        if caller.uid != 0 && caller.uid != owner {
            let msg = format!(
                "uid {} may not approve launch {id} of uid {owner}: users approve their own launches (root any)",
                caller.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        let r = consent::record_from_event(
            &e,
            &mut self.consent.hashes,
            scope,
            note,
            Source::User(caller.uid),
            owner,
        )
        .map_err(failed)?;
        Ok((e, r))
    }

    pub fn api_preview(&mut self, id: u64, caller: &Caller) -> Result<Value, ApiError> {
        let (e, r) = self.record_for_event(id, caller, Scope::Always, String::new())?;
        Ok(api::to_json(&self.preview_of(&e, &r)))
    }

    pub fn api_approve(
        &mut self,
        id: u64,
        scope: &str,
        note: String,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "approve")?;
        let scope = parse_scope(scope)?;
        let (_, r) = self.record_for_event(id, caller, scope, note)?;
        self.add_record(r, caller.uid, Some(id))
            .map(|v| api::to_json(&v))
    }

    /// Off the engine: hash the files approving launch event `e` binds (`Preview`,
    /// `Approve`, `Allow` with `always`), as [`Self::record_for_event`] will.
    pub fn prehash_event(e: &Event) -> HashCache {
        let mut hashes = HashCache::default();
        let _ = consent::record_from_event(
            e,
            &mut hashes,
            Scope::Always,
            String::new(),
            Source::User(0),
            0,
        );
        hashes
    }

    /// Off the engine (a blocking thread): hash the files `PreviewCommand` and
    /// `ApproveCommand` will bind, resolved exactly as they resolve them. The engine
    /// takes the result into its cache ([`HashCache::absorb`]) and then
    /// finds every file there, unless it changed since (then it hashes it again).
    pub fn prehash_command(
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        caller: &Caller,
    ) -> HashCache {
        let mut hashes = HashCache::default();
        let _ = Self::command_record(
            &mut hashes,
            host,
            argv,
            cwd,
            Scope::Always,
            String::new(),
            caller,
        );
        hashes
    }

    /// Off the engine: hash the files `PreviewImport` and `ApproveImport` will
    /// bind (see [`Self::prehash_command`]).
    pub fn prehash_import(
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        caller: &Caller,
    ) -> HashCache {
        let mut hashes = HashCache::default();
        let _ = Self::import_record(
            &mut hashes,
            host,
            schema,
            file,
            server,
            project,
            Scope::Always,
            String::new(),
            caller,
        );
        hashes
    }

    fn command_record(
        hashes: &mut HashCache,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        scope: Scope,
        note: String,
        caller: &Caller,
    ) -> Result<Record, ApiError> {
        if host.is_empty() {
            return Err(failed(
                "a host name is required (`--host NAME`, or `*` for any host)",
            ));
        }
        let argv: Vec<Bytes> = argv.into_iter().map(Bytes).collect();
        // Resolve the command with the caller's PATH: the user's environment is the
        // closest thing to the environment the host will launch it with.
        let path_var = caller_path(caller);
        let dir = (!cwd.is_empty()).then(|| Path::new(cwd));
        let (kargv, exe, script) =
            resolve::kernel_command(&argv, &path_var, dir).map_err(failed)?;
        let prog = resolve::env_binding(&exe, &kargv, Some(&path_var)).map_err(failed)?;
        let resolved = Self::bind_program(hashes, prog.as_ref())?;
        let (exe, script) = Self::bind_files(hashes, &exe, script.as_ref())?;
        let r = Record {
            id: 0,
            host: host.to_owned(),
            exe,
            script,
            resolved,
            argv: kargv,
            cwd: (!cwd.is_empty()).then(|| Bytes::from(cwd)),
            env: crate::event::SECURITY_ENV
                .iter()
                .map(|n| ((*n).to_owned(), None))
                .collect(),
            scope,
            source: Source::User(caller.uid),
            created: clock::now_rfc3339(),
            note,
            uid: if caller.uid == 0 { ANY_UID } else { caller.uid },
        };
        r.validate().map_err(|e| failed(e.to_string()))?;
        Ok(r)
    }

    /// The executable's (and script's) content binding, hashed now.
    fn bind_files(
        hashes: &mut HashCache,
        exe: &Path,
        script: Option<&resolve::ScriptRef>,
    ) -> Result<(FileBinding, Option<FileBinding>), ApiError> {
        let mut bind = |p: &Path, arg: Option<usize>| {
            hashes
                .get(p)
                .map(|(_, sha256)| FileBinding {
                    path: p.display().to_string(),
                    sha256,
                    arg,
                })
                .map_err(|e| failed(format!("{}: {e}", p.display())))
        };
        let exe = bind(exe, None)?;
        let script = script.map(|s| bind(&s.path, Some(s.arg))).transpose()?;
        Ok((exe, script))
    }

    /// The binding of the program `env` runs, hashed now.
    fn bind_program(
        hashes: &mut HashCache,
        prog: Option<&resolve::ScriptRef>,
    ) -> Result<Option<FileBinding>, ApiError> {
        let Some(p) = prog else { return Ok(None) };
        let (_, sha256) = hashes
            .get(&p.path)
            .map_err(|e| failed(format!("{}: {e}", p.path.display())))?;
        Ok(Some(FileBinding {
            path: p.path.display().to_string(),
            sha256,
            arg: Some(p.arg),
        }))
    }

    /// The record approving server `server` of the config `file` that `host` reads
    /// (in format `schema`): the daemon reads and resolves the file itself, as the
    /// caller's host would (the caller's home, environment and PATH; `project` is the
    /// workspace folder), so what is recorded is what the file says now.
    #[expect(
        clippy::too_many_arguments,
        reason = "the D-Bus call's arguments, passed through"
    )]
    fn import_record(
        hashes: &mut HashCache,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        scope: Scope,
        note: String,
        caller: &Caller,
    ) -> Result<Record, ApiError> {
        use std::os::unix::fs::MetadataExt as _;
        let schema: Schema = serde_json::from_value(json!(schema))
            .map_err(|_| failed(format!("unknown config format `{schema}`")))?;
        let path = Path::new(file);
        if !path.is_absolute() {
            return Err(failed(format!(
                "{file}: the config file must be an absolute path"
            )));
        }
        let meta = std::fs::metadata(path).map_err(|e| failed(format!("{file}: {e}")))?;
        // The daemon reads as root: a user imports from their own files, or from a
        // system config (root's, readable by all), nothing else.
        if caller.uid != 0
            && meta.uid() != caller.uid
            && !(meta.uid() == 0 && meta.mode() & 0o004 != 0)
        {
            return Err(refused(format!(
                "{file}: owned by uid {}, not yours (uid {}): import from your own config files",
                meta.uid(),
                caller.uid
            )));
        }
        let bytes = crate::hosts::HostFs::read(&crate::hosts::RealFs, path)
            .map_err(|e| failed(format!("{file}: {e}")))?;
        let env: BTreeMap<String, String> = caller_environ(caller)
            .into_iter()
            .filter_map(|(k, v)| Some((k, String::from_utf8(v).ok()?)))
            .collect();
        let ctx = ImportContext {
            home: home_of(caller.uid).map(Into::into).unwrap_or_default(),
            project: (!project.is_empty()).then(|| project.into()),
            env,
        };
        let servers = parse_config_bytes(schema, host, path, &bytes, &ctx)
            .map_err(|e| failed(e.to_string()))?;
        let imp = servers
            .into_iter()
            .find(|s| s.server == server)
            .ok_or_else(|| failed(format!("{file} has no server named `{server}`")))?;
        match &imp.entry {
            Entry::Local { .. } => {}
            Entry::Remote { url, .. } => {
                return Err(failed(format!(
                    "{server} is a remote server ({url}): nothing runs on this machine, nothing to approve"
                )))
            }
            Entry::Unimportable { reason } => {
                return Err(failed(format!("{server} cannot be imported: {reason}")))
            }
        }
        let cmd = crate::scan::resolve(&imp, &caller_path(caller))
            .map_err(|e| failed(format!("{server}: {e}")))?;
        let script = cmd
            .script
            .as_ref()
            .zip(cmd.script_arg)
            .map(|(p, arg)| resolve::ScriptRef {
                arg,
                path: p.into(),
            });
        let path_var = match cmd.env.get("PATH") {
            Some(Some(p)) => p.0.clone(),
            _ => caller_path(caller),
        };
        let prog = resolve::env_binding(Path::new(&cmd.exe), &cmd.argv, Some(&path_var))
            .map_err(failed)?;
        let resolved = Self::bind_program(hashes, prog.as_ref())?;
        let (exe, script) = Self::bind_files(hashes, Path::new(&cmd.exe), script.as_ref())?;
        let r = Record {
            id: 0,
            host: host.to_owned(),
            exe,
            script,
            resolved,
            argv: cmd.argv,
            cwd: cmd.cwd.map(|c| Bytes::from(c.as_str())),
            env: cmd.env,
            scope,
            source: Source::Import {
                file: file.to_owned(),
                server: server.to_owned(),
            },
            created: clock::now_rfc3339(),
            note,
            uid: if caller.uid == 0 { ANY_UID } else { caller.uid },
        };
        r.validate().map_err(|e| failed(e.to_string()))?;
        Ok(r)
    }

    /// What `approve --from-config` would record for one server (see
    /// [`Self::import_record`]), with its risk flags. JSON, as `PreviewCommand`.
    pub fn api_preview_import(
        &mut self,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        let r = Self::import_record(
            &mut self.consent.hashes,
            host,
            schema,
            file,
            server,
            project,
            Scope::Always,
            String::new(),
            caller,
        )?;
        let mut e = Event::new(Kind::Approve, 0, String::new());
        e.uid = Some(caller.uid);
        let mut v = self.preview_of(&e, &r);
        v.source = Some(r.source.to_string());
        Ok(api::to_json(&v))
    }

    /// Approve one server of a config file (see [`Self::import_record`]); the
    /// record's source is `import:FILE#SERVER`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the D-Bus call's arguments, passed through"
    )]
    pub fn api_approve_import(
        &mut self,
        host: &str,
        schema: &str,
        file: &str,
        server: &str,
        project: &str,
        scope: &str,
        note: String,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "approve")?;
        let scope = parse_scope(scope)?;
        let r = Self::import_record(
            &mut self.consent.hashes,
            host,
            schema,
            file,
            server,
            project,
            scope,
            note,
            caller,
        )?;
        self.add_record(r, caller.uid, None)
            .map(|v| api::to_json(&v))
    }

    pub fn api_preview_command(
        &mut self,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        let r = Self::command_record(
            &mut self.consent.hashes,
            host,
            argv,
            cwd,
            Scope::Always,
            String::new(),
            caller,
        )?;
        let mut e = Event::new(Kind::Approve, 0, String::new());
        e.uid = Some(caller.uid);
        Ok(api::to_json(&self.preview_of(&e, &r)))
    }

    pub fn api_approve_command(
        &mut self,
        host: &str,
        argv: Vec<Vec<u8>>,
        cwd: &str,
        scope: &str,
        note: String,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "approve")?;
        let scope = parse_scope(scope)?;
        let r = Self::command_record(
            &mut self.consent.hashes,
            host,
            argv,
            cwd,
            scope,
            note,
            caller,
        )?;
        self.add_record(r, caller.uid, None)
            .map(|v| api::to_json(&v))
    }

    fn add_record(
        &mut self,
        r: Record,
        caller_uid: u32,
        from_event: Option<u64>,
    ) -> Result<api::RecordView, ApiError> {
        let imported = matches!(r.source, Source::Import { .. });
        let id = self
            .consent
            .store
            .add(r)
            .map_err(|e| failed(format!("saving the consent store: {e}")))?;
        self.sync_kernel();
        // A record imported from a project's config: watch that project too.
        if imported {
            self.refresh_config_watch();
        }
        let r = self
            .consent
            .store
            .get(id)
            .cloned()
            .ok_or_else(|| failed("record vanished"))?;
        let mut e = self.new_event(Kind::Approve);
        e.record = Some(id);
        e.uid = Some(caller_uid);
        e.host = None;
        e.argv = Some(r.argv.clone());
        e.message = Some(format!(
            "record {id} approved by uid {caller_uid}{} for host {}, scope {}: {}",
            from_event.map_or_else(String::new, |ev| format!(" from event {ev}")),
            r.host,
            r.scope,
            r.command_line()
        ));
        self.record(&e);
        Ok(self.record_view(&r))
    }

    pub fn record_json(&self, r: &Record) -> Value {
        api::to_json(&self.record_view(r))
    }

    pub fn record_view(&self, r: &Record) -> api::RecordView {
        let (state, reason) = self
            .consent
            .states
            .get(&r.id)
            .map_or(("unknown", None), RecordState::label);
        api::RecordView {
            record: r.clone(),
            state: state.to_owned(),
            state_reason: reason,
        }
    }

    pub fn api_records(&self) -> Value {
        api::to_json(&api::Records {
            records: self
                .consent
                .all_records()
                .map(|r| self.record_view(r))
                .collect(),
            modes: self.mode_views(),
            problems: self.policy_problems(),
            deny: self.consent.managed.deny.clone(),
        })
    }

    /// Every host's effective mode, whether it is locked, and who set it: the
    /// profiles, hosts named by managed policy and hosts the user set a mode for.
    pub fn modes_json(&self) -> Value {
        api::to_json(&self.mode_views())
    }

    fn mode_views(&self) -> BTreeMap<String, api::ModeView> {
        let default = self.config.defaults.mode;
        let mut modes = BTreeMap::new();
        let mut names: Vec<&String> = self.host_names.iter().collect();
        names.extend(self.consent.managed.hosts.keys().filter(|h| *h != ANY_HOST));
        names.extend(self.consent.store.modes().keys());
        names.sort();
        names.dedup();
        for h in names {
            let (m, locked, source) = self.consent.mode_of(h, default);
            modes.insert(
                h.clone(),
                api::ModeView {
                    mode: m,
                    locked,
                    source,
                },
            );
        }
        modes
    }

    /// The consent store's and the managed policy's problems (their last good
    /// copies are in force).
    pub fn policy_problems(&self) -> Vec<String> {
        self.consent
            .store_problem
            .iter()
            .chain(&self.consent.managed_problems)
            .cloned()
            .collect()
    }

    pub fn api_revoke(&mut self, id: RecordId, caller: &Caller) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "revoke")?;
        if id >= MANAGED_ID_BASE {
            return Err(refused(format!("record {id} comes from managed policy; only an administrator can remove it (edit the policy file)")));
        }
        let r = self
            .consent
            .store
            .get(id)
            .cloned()
            .ok_or_else(|| failed(format!("no record {id}")))?;
        if caller.uid != 0 && r.uid != caller.uid {
            let msg = format!(
                "uid {} may not revoke record {id} of uid {}",
                caller.uid, r.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        self.consent
            .store
            .remove(id)
            .map_err(|e| failed(format!("saving the consent store: {e}")))?;
        self.sync_kernel();
        let mut e = self.new_event(Kind::Revoke);
        e.record = Some(id);
        e.uid = Some(caller.uid);
        e.message = Some(format!(
            "record {id} revoked by uid {}: {}",
            caller.uid,
            r.command_line()
        ));
        self.record(&e);
        Ok(serde_json::to_value(&r).unwrap_or(Value::Null))
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

    pub fn api_set_mode(
        &mut self,
        host: &str,
        mode: &str,
        caller: &Caller,
    ) -> Result<Value, ApiError> {
        self.refuse_if_agent(caller, "mode")?;
        let m: Mode = match mode {
            "monitor" => Mode::Monitor,
            "ask" => Mode::Ask,
            "enforce" => Mode::Enforce,
            _ => {
                return Err(failed(format!(
                    "unknown mode `{mode}`: monitor, ask or enforce"
                )))
            }
        };
        if caller.uid != 0 {
            let msg = format!(
                "uid {} may not change modes: a host's mode applies to every user of this machine; ask root",
                caller.uid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        if let Err(locked) = crate::policy::check_mode_change(host, &self.consent.managed) {
            return Err(self.record_refusal(caller, &locked.to_string()));
        }
        let previous = self.consent.mode_of(host, self.config.defaults.mode).0;
        self.consent
            .store
            .set_mode(host, m)
            .map_err(|e| failed(format!("saving the consent store: {e}")))?;
        // Stored by name: a host with no id yet gets its mode when it registers.
        let _ = self.profile_id(host);
        self.sync_modes();
        let mut e = self.new_event(Kind::Mode);
        e.uid = Some(caller.uid);
        e.message = Some(format!(
            "host {host}: {} -> {} (by uid {})",
            previous.as_str(),
            m.as_str(),
            caller.uid
        ));
        self.record(&e);
        Ok(api::to_json(&api::ModeSet {
            host: host.to_owned(),
            mode: m,
            previous,
        }))
    }
}

fn parse_scope(s: &str) -> Result<Scope, ApiError> {
    if s.is_empty() {
        return Ok(Scope::Always);
    }
    s.parse().map_err(|e: RecordError| failed(e.to_string()))
}

/// A user's home directory, for the risk flags (`~/.ssh` …).
/// The caller's environment, from /proc (empty if it is gone).
fn caller_environ(caller: &Caller) -> Vec<(String, Vec<u8>)> {
    let environ = std::fs::read(format!("/proc/{}/environ", caller.pid)).unwrap_or_default();
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=')?;
            Some((
                String::from_utf8_lossy(&kv[..eq]).into_owned(),
                kv[eq + 1..].to_vec(),
            ))
        })
        .collect()
}

/// The caller's PATH, or the system default when it has none.
fn caller_path(caller: &Caller) -> Vec<u8> {
    caller_environ(caller)
        .into_iter()
        .find_map(|(k, v)| (k == "PATH").then_some(v))
        .unwrap_or_else(|| DENY_PATH.as_bytes().to_vec())
}

fn home_of(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.dir.display().to_string())
}

/// The files a deny-list entry names: an absolute path as is, a bare name in
/// every `DENY_PATH` directory.
/// Copies of denied programs denied by identity at most (the rest of the 1024
/// `DENY_EXES` entries are the list's own files).
const DENY_COPIES_MAX: usize = 256;

fn deny_candidates(name: &str) -> Vec<std::path::PathBuf> {
    if name.starts_with('/') {
        vec![name.into()]
    } else {
        DENY_PATH
            .split(':')
            .map(|d| Path::new(d).join(name))
            .collect()
    }
}

/// The path of a denied file, from the deny list, by its identity.
fn deny_path(names: &[String], kdev: u32, ino: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    names.iter().find_map(|name| {
        deny_candidates(name).into_iter().find_map(|c| {
            let m = std::fs::metadata(&c).ok()?;
            (crate::hosts::user_dev_to_kernel(m.dev()) == kdev && m.ino() == ino)
                .then(|| c.display().to_string())
        })
    })
}

/// `DENY_EXES` entries for the managed deny list: every file the names resolve to.
fn deny_keys(names: &[String]) -> Vec<(ExeKey, u32)> {
    let mut out: Vec<(ExeKey, u32)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for c in deny_candidates(name) {
            if let Ok(m) = std::fs::metadata(&c) {
                if !m.is_file() {
                    continue;
                }
                let key = crate::hosts::exe_key(&m);
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, u32::try_from(i).unwrap_or(0)));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep")
    }

    #[test]
    fn a_caller_is_pinned_by_its_process_not_its_pid() {
        let mut a = sleeper();
        let mut b = sleeper();
        let c = Caller {
            pid: a.id(),
            uid: 0,
            ident: identify(a.id(), None),
        };
        assert!(c.still_there());
        assert!(!c.ident.as_ref().expect("ident").from_bus);
        // A pidfd that names another process than the bus's pid is no identity.
        assert!(identify(a.id(), procfs::pidfd_open(b.id()).ok()).is_none());
        assert!(identify(b.id(), procfs::pidfd_open(b.id()).ok()).is_some_and(|i| i.from_bus));
        // A zombie (killed, not reaped) cannot be identified, and the one pinned
        // before is no longer there.
        a.kill().expect("kill");
        for _ in 0..200 {
            if procfs::live_start(a.id()).is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(identify(a.id(), None).is_none());
        assert!(!c.still_there());
        a.wait().expect("reap");
        assert!(!c.still_there());
        b.kill().expect("kill");
        b.wait().expect("reap");
        // Nobody at all.
        assert!(identify(u32::MAX, None).is_none());
    }
}
