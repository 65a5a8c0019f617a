//! The core: all the daemon's mutable state (tracker, consent, the log, the
//! kernel seam), owned by the engine task, and turning kernel events into
//! recorded events.
use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context as _;
use monitor_common::{event_flags as ef, role, task_flags, PathKey, TaskState, MODES_MAX};
use tokio::sync::broadcast;
use tracing::{error, info, warn};

use crate::{
    config::Config,
    engine::task::Engine,
    enrich,
    event::{
        raw::{self, kernel_dev_to_user, RawEvent, RawExec, Role},
        Bytes, Event, Exe, ExitStatus, HostRef, Kind, LostCounts,
    },
    hosts::{self, HostProfile},
    logfile::LogWriter,
    sensor::kernel::Kernel,
    sys::{
        clock::{self, Clock},
        hash::{HashError, HashResult},
        procfs,
    },
    tracker::Tracker,
};

/// Counters of losses outside the kernel.
#[derive(Default)]
pub struct UserCounters {
    /// Events the log could not take (disk full, I/O error).
    pub log_errors: AtomicU64,
    /// Events the journal did not take (socket gone or full).
    pub journal_drops: AtomicU64,
    pub queue_drops: AtomicU64,
    pub decode_errors: AtomicU64,
    pub broadcast_lag: AtomicU64,
    pub received: AtomicU64,
}

/// All of the daemon's mutable state, owned by the engine task (`engine::task`):
/// kernel events and API commands reach it through one channel, one at a time.
pub struct Core {
    pub sensor: Box<dyn Kernel>,
    pub tracker: Tracker,
    /// Host names by profile id; ids past the configured profiles are `mcpwatch run
    /// --host NAME` names.
    pub host_names: Vec<String>,
    pub(crate) profiles: Vec<HostProfile>,
    /// Resolved `#!` host script paths (`HOST_PATHS` entries with their profile),
    /// for relaunch recognition and adoption.
    pub(crate) host_scripts: Vec<(PathKey, u32, PathBuf)>,
    pub(crate) clock: Clock,
    pub(crate) log: LogWriter,
    pub(crate) events: u64,
    pub(crate) bcast: broadcast::Sender<Arc<str>>,
    pub(crate) counters: Arc<UserCounters>,
    pub(crate) last_lost: LostCounts,
    pub(crate) started: String,
    pub consent: crate::consent::Consent,
    /// The systemd journal, when events go there too.
    pub(crate) journal: Option<crate::journal::Journal>,
    pub config: Config,
    /// Last time watched record files were re-checked.
    pub(crate) last_verify: std::time::Instant,
    /// The hosts' MCP config files, watched for drift.
    pub(crate) configs: crate::configwatch::ConfigWatch,
    pub(crate) last_config_scan: std::time::Instant,
    pub(crate) last_config_poll: std::time::Instant,
    /// The way back to the engine, for work done off it (config rediscovery) whose
    /// result returns as a command. `None` before the engine runs (and in tests).
    pub(crate) engine: Option<Engine>,
    /// A config rediscovery is under way off the engine.
    pub(crate) rediscovering: bool,
    /// How each host process running now was recognised (`mcpwatch hosts`,
    /// `status`), by pid; removed at its exit.
    pub(crate) hosts_seen: std::collections::BTreeMap<u32, super::status::HostSeen>,
    /// The watched configs' server commands, for launches by unknown hosts.
    pub(crate) entry_commands: Vec<crate::unknown::EntryCommand>,
}

impl Core {
    /// A core over `sensor`, logging to `log`, with the consent store in
    /// `config.state_dir` and managed policy in `config.policy_dir` (no journal:
    /// set `journal` after). Tests build one in a temporary directory over a fake
    /// kernel.
    pub fn new(
        config: &Config,
        sensor: Box<dyn Kernel>,
        log: LogWriter,
        profiles: Vec<HostProfile>,
        host_scripts: Vec<(PathKey, u32, PathBuf)>,
    ) -> std::io::Result<Core> {
        let now = std::time::Instant::now();
        Ok(Core {
            sensor,
            tracker: Tracker::new(config.tracked_max as usize),
            host_names: profiles.iter().map(|p| p.name.clone()).collect(),
            profiles,
            host_scripts,
            clock: Clock::now(),
            log,
            events: 0,
            bcast: broadcast::channel(4096).0,
            counters: Arc::new(UserCounters::default()),
            last_lost: LostCounts::default(),
            started: clock::now_rfc3339(),
            consent: crate::consent::Consent::open(&config.state_dir, &config.policy_dir)?,
            journal: None,
            config: config.clone(),
            last_verify: now,
            configs: crate::configwatch::ConfigWatch::default(),
            last_config_scan: now,
            last_config_poll: now,
            engine: None,
            rediscovering: false,
            hosts_seen: std::collections::BTreeMap::new(),
            entry_commands: Vec::new(),
        })
    }

    fn next_id(&mut self) -> u64 {
        let id = self.log.next_id;
        self.log.next_id += 1;
        id
    }

    /// Record an event: log first (the record of truth), then followers.
    pub fn record(&mut self, event: &Event) {
        let line = match self.log.append_line(event.id, &event.to_json_line()) {
            Ok(chained) => chained,
            Err(e) => {
                // A full disk or an I/O error: say so loudly and count it; the
                // kernel keeps enforcing whatever happens to the log.
                self.counters.log_errors.fetch_add(1, Ordering::Relaxed);
                error!(error = %anyhow::Error::from(e), "event not written to the log");
                event.to_json_line()
            }
        };
        self.events += 1;
        if self.log.should_rotate() {
            self.rotate_log();
        }
        // The D-Bus stream carries what a live listener acts on; the high-rate
        // kinds (fork, exit, session exec) stay in the log, which `log --follow`
        // tails. No receivers is fine; lag is counted on the receiving side.
        if event.kind.is_signalled() {
            if let Some(j) = &self.journal {
                if j.send(event, &line).is_err() {
                    self.counters.journal_drops.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = self.bcast.send(Arc::from(line));
        }
    }

    /// Start a new log file; record where the old one went, and what retention
    /// removed (with the chain anchor, so the remaining files still verify).
    fn rotate_log(&mut self) {
        match self.log.rotate() {
            Ok(r) => {
                let mut e = self.new_event(Kind::LogRotate);
                e.message = Some(format!(
                    "records {}..{} are in {}",
                    r.first,
                    r.last,
                    r.to.display()
                ));
                self.record(&e);
                for (path, first, last, head) in r.removed {
                    let mut e = self.new_event(Kind::LogRetention);
                    e.message = Some(format!(
                        "retention removed {} (records {first}..{last}) last={last} head={head}",
                        path.display()
                    ));
                    self.record(&e);
                }
            }
            Err(e) => {
                self.counters.log_errors.fetch_add(1, Ordering::Relaxed);
                error!(error = %anyhow::Error::from(e), "log rotation failed; still writing the current file");
            }
        }
    }

    pub fn new_event(&mut self, kind: Kind) -> Event {
        let id = self.next_id();
        Event::new(kind, id, clock::now_rfc3339())
    }

    pub(crate) fn host_name(&self, profile: u32) -> String {
        self.host_names
            .get(profile as usize)
            .cloned()
            .unwrap_or_else(|| format!("profile-{profile}"))
    }

    /// Profile id for a host name, registering `mcpwatch run --host NAME` names.
    ///
    /// The kernel's mode table has `MODES_MAX` slots, so there are never more ids:
    /// when it is full, an id is taken back from a registered name that no tracked
    /// process and no consent record uses (a record's kernel entry carries the id,
    /// so such an id is never handed to another name). `None`: every id is in use;
    /// the caller refuses rather than run a host whose mode the kernel cannot hold.
    pub fn profile_id(&mut self, name: &str) -> Option<u32> {
        if let Some(i) = self.host_names.iter().position(|n| n == name) {
            return u32::try_from(i).ok();
        }
        let id = if self.host_names.len() < MODES_MAX as usize {
            self.host_names.push(name.to_string());
            self.host_names.len() - 1
        } else {
            let in_use: std::collections::BTreeSet<u32> = self
                .sensor
                .tracked_entries()
                .iter()
                .map(|(_, st)| st.host_profile)
                .collect();
            let named: std::collections::BTreeSet<String> =
                self.consent.all_records().map(|r| r.host.clone()).collect();
            let free = (self.profiles.len()..self.host_names.len()).find(|&i| {
                !in_use.contains(&u32::try_from(i).unwrap_or(u32::MAX))
                    && !named.contains(&self.host_names[i])
            })?;
            info!(id = free, old = %self.host_names[free], new = name, "host id reused: the table is full");
            self.host_names[free] = name.to_string();
            free
        };
        // A new host name needs its mode in the kernel before it launches anything.
        self.sync_modes();
        u32::try_from(id).ok()
    }

    /// Make `pid` a tracked host whose next exec is the host itself (`mcpwatch run`).
    ///
    /// A process already inside a tracked tree stays where it is: re-registering
    /// as a new host would let an agent's session move itself out of its host's
    /// tree (and, with enforcement, out of its host's mode). Returns a notice then.
    pub fn track_run(&mut self, pid: u32, host: &str) -> anyhow::Result<Option<String>> {
        if let Some(st) = self.sensor.tracked_state(pid) {
            let outer = self.host_name(st.host_profile);
            warn!(pid, host, outer_host = %outer, outer_host_pid = st.host_pid, "Track of an already tracked process: it stays in its tree");
            return Ok(Some(format!(
                "pid {pid} is already tracked under host {outer} (pid {}); it stays in that tree and is not registered as host {host}",
                st.host_pid
            )));
        }
        // A zombie has left TRACKED already and a dead pid may be reused: an entry
        // for either would outlive it and make a stranger's process a host.
        let Some(start) = procfs::live_start(pid) else {
            if procfs::proc_start(pid).is_some() {
                anyhow::bail!("pid {pid} has exited (a zombie): not tracked");
            }
            anyhow::bail!("no process {pid}");
        };
        let Some(profile) = self.profile_id(host) else {
            warn!(pid, host, "Track refused: every host id is in use");
            anyhow::bail!(
                "every one of the kernel's {MODES_MAX} host ids is in use (by running hosts or consent records): \
                 host {host} cannot be tracked, so it is not run"
            );
        };
        let st = TaskState {
            role: role::HOST,
            flags: task_flags::FIRST_EXEC_IS_HOST,
            host_pid: pid,
            host_profile: profile,
            session_pid: 0,
            parent_pid: 0,
        };
        self.sensor
            .track(pid, &st)
            .context("adding the process to the kernel's tracked map")?;
        // It may have exited between the check and the insert, with the exit hook
        // finding nothing to remove: look again, and take the entry back if so.
        // Exiting after this point, the kernel removes it.
        if procfs::live_start(pid) != Some(start) {
            self.sensor.untrack(pid);
            anyhow::bail!("pid {pid} exited while it was being tracked: not tracked");
        }
        self.tracker
            .adopt(pid, None, pid, profile, Role::Host, None, clock::boot_ns());
        info!(pid, host, "tracking process as host (mcpwatch run)");
        Ok(None)
    }

    /// Turn one kernel event into a recorded event. `hash` is the executable's
    /// hash for execs, computed before the event reached the engine (see
    /// `engine::task::hash_stage`).
    pub(crate) fn process(&mut self, ev: RawEvent, hash: Option<HashResult>) {
        match ev {
            RawEvent::Fork(f) => {
                let lineage = self.tracker.on_fork(&f);
                if let Some(st) = lineage.kernel_update {
                    self.kernel_update(f.child_pid, &st);
                }
                let mut e = self.base_event(Kind::Fork, &f.common);
                e.child_pid = Some(f.child_pid);
                e.lineage = lineage.pids;
                self.record(&e);
            }
            RawEvent::Exit(x) => {
                let info = self.tracker.on_exit(&x);
                self.hosts_seen.remove(&x.common.pid);
                let mut e = self.base_event(Kind::Exit, &x.common);
                e.exit = Some(ExitStatus::from_wait_status(x.exit_code));
                if let Some(info) = info {
                    e.lineage = info.lineage;
                    e.duration = Some(Duration::from_nanos(info.duration_ns).as_secs_f64());
                }
                self.record(&e);
            }
            RawEvent::Exec(x) if x.common.flags & ef::UNKNOWN_HOST != 0 => {
                let hash = hash.unwrap_or(Err(HashError::NotHashed));
                self.unknown_host_exec(x, hash);
            }
            RawEvent::Exec(x) => {
                let hash = hash.unwrap_or(Err(HashError::NotHashed));
                let flags = x.common.flags;
                let (mode, record_id) = (x.mode, x.record_id);
                let mut e = self.exec_event(x, hash);
                self.note_host(&e, flags);
                self.verdict(&mut e, flags, mode, record_id);
                flag_broker(&mut e);
                self.record(&e);
            }
            RawEvent::HoldBypass(b) => self.hold_bypass(&b),
            RawEvent::LsmDeny(d) => self.lsm_deny(&d),
        }
    }

    pub(crate) fn base_event(&mut self, kind: Kind, c: &raw::Common) -> Event {
        let id = self.next_id();
        let mut e = Event::new(kind, id, self.clock.rfc3339(c.ts_ns));
        e.pid = c.pid;
        e.tid = c.tid;
        e.ppid = c.ppid;
        e.uid = Some(c.uid);
        e.gid = Some(c.gid);
        e.ns_pid = Some(c.ns_pid);
        e.pidns = Some(c.pidns_inum);
        e.comm = Some(Bytes(c.comm.clone()));
        if c.role != Role::None {
            e.host = Some(HostRef {
                name: self.host_name(c.host_profile),
                pid: c.host_pid,
            });
        }
        if c.role == Role::Session && c.session_pid != 0 {
            e.session = Some(c.session_pid);
        }
        e.class = match c.role {
            Role::Terminal => Some("terminal".into()),
            Role::Helper => Some("helper".into()),
            _ => None,
        };
        e
    }

    /// An untracked exec of a config entry's command (`UNKNOWN_HOST`): recorded as
    /// a launch of the host `unknown` when its argv is exactly an entry's, else
    /// nothing (any other run of that program, e.g. `npx` in a terminal).
    fn unknown_host_exec(&mut self, x: RawExec, hash: HashResult) {
        let Some(cmd) = crate::unknown::matching(&self.entry_commands, &x.argv).cloned() else {
            return;
        };
        let ppid = x.common.ppid;
        let mut e = self.exec_event(x, hash);
        e.host = Some(HostRef {
            name: crate::unknown::UNKNOWN_HOST.to_owned(),
            pid: ppid,
        });
        let who = crate::unknown::describe(&cmd, ppid);
        let parent = who.parent_exe.as_ref().map_or_else(
            || format!("pid {ppid}"),
            |p| format!("{} (pid {ppid})", p.lossy()),
        );
        e.verdict = Some(crate::event::Verdict {
            decision: crate::event::Decision::Unapproved,
            mode: crate::model::Mode::Monitor,
            record: None,
            reason: Some(format!(
                "launched by {parent}, which no host profile recognises: server `{}` of {} ({}); \
                 `mcpwatch hosts --suggest` prints the [[host]] profile that would cover it",
                cmd.server,
                cmd.config.path.display(),
                cmd.config.host
            )),
            pending: None,
            killed: false,
        });
        e.unknown_host = Some(who);
        warn!(pid = e.pid, parent = %parent, server = %cmd.server, "launch by an unrecognised host");
        self.record(&e);
    }

    fn exec_event(&mut self, x: RawExec, hash: HashResult) -> Event {
        let scripts = &self.host_scripts;
        let cls = if x.common.flags & ef::UNKNOWN_HOST != 0 {
            // Not tracked: nothing for the tracker.
            crate::tracker::Classification {
                kind: Kind::Launch,
                lineage: vec![x.common.pid, x.common.ppid],
                session: None,
                make_host: false,
                kernel_update: None,
            }
        } else {
            self.tracker.on_exec(&x, &|profile: u32, argv: &[Vec<u8>]| {
                hosts::is_host_script(profile, scripts, argv)
            })
        };
        let c = &x.common;
        if let Some(st) = cls.kernel_update {
            // E.g. the host relaunched itself (`node … /path/to/host/cli.js`): it is
            // the host again, so what it spawns next are launches.
            self.kernel_update(c.pid, &st);
        }
        let mut e = self.base_event(cls.kind, c);
        e.lineage = cls.lineage;
        e.session = cls.session;
        if cls.make_host {
            e.session = None;
        }
        e.filename = Some(Bytes(x.filename));
        let flag = |f| c.flags & f != 0;
        let dev = kernel_dev_to_user(x.exe.dev);
        e.exe = Some(Exe {
            path: x.exe_path.map(Bytes),
            dev: format!("{}:{}", libc::major(dev), libc::minor(dev)),
            ino: x.exe.ino,
            ctime: format!("{}.{:09}", x.exe.ctime_sec, x.exe.ctime_nsec),
            sha256: hash.as_ref().ok().cloned(),
            hash_error: hash.err().map(|e| e.to_string()),
            path_truncated: flag(ef::EXE_PATH_TRUNCATED),
        });
        let mut argv = x.argv;
        if flag(ef::ARGV_TRUNCATED) {
            e.argv_truncated = true;
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.pid)).unwrap_or_default();
            if let Some(full) = enrich::complete_argv(&argv, &cmdline) {
                argv = full;
                e.argv_source = Some("proc".into());
            } else {
                e.argv_source = Some("partial".into());
            }
        } else if flag(ef::ARGV_READ_FAILED) {
            e.argv_source = Some("unavailable".into());
        }
        e.argv = Some(argv.into_iter().map(Bytes).collect());
        e.cwd = x.cwd.map(Bytes);
        if flag(ef::HOST_DROPPED) {
            e.message = Some(format!(
                "`{}` ran a login shell in place: a shell wrapper named like host {}, not the host; no longer tracked (the host is what it runs next)",
                String::from_utf8_lossy(&e.filename.as_ref().map(|f| f.0.clone()).unwrap_or_default()),
                self.host_name(c.host_profile)
            ));
        } else if flag(ef::HOST_BY_PACKAGE) {
            e.message = Some(format!(
                "recognised by its package script `{}`",
                x_script(&e)
            ));
        } else if flag(ef::HOST_BY_NAME) {
            e.message = Some(format!(
                "recognised by the name `{}` it was executed under",
                String::from_utf8_lossy(hosts::exec_name(
                    e.filename.as_ref().map_or(&[][..], |f| &f.0[..])
                ))
            ));
        }
        let is_env = e
            .exe
            .as_ref()
            .and_then(|x| x.path.as_ref())
            .is_some_and(|p| p.0.rsplit(|&b| b == b'/').next() == Some(b"env"));
        if is_env {
            e.path_var = x
                .env
                .iter()
                .find_map(|kv| kv.strip_prefix(b"PATH="))
                .map(|v| Bytes(v.to_vec()));
        }
        e.env = enrich::security_env(&x.env);
        if flag(ef::ENV_TRUNCATED) {
            e.env_truncated = true;
            // Complete from /proc while the process lives; it may have changed its
            // own environment by then, so say where the values came from.
            if let Ok(environ) = std::fs::read(format!("/proc/{}/environ", c.pid)) {
                let more = enrich::security_env(&raw::split_nul(&environ));
                for (k, v) in more {
                    e.env.entry(k).or_insert(v);
                }
                e.message =
                    Some("environment longer than the kernel capture; completed from /proc".into());
            }
        }
        e
    }

    pub(crate) fn kernel_update(&mut self, pid: u32, st: &TaskState) {
        if let Err(err) = self.sensor.track(pid, st) {
            warn!(pid, error = %err, "could not update the kernel's view of a tracked process");
        }
    }

    /// Every loss counter: the kernel's ring-buffer drops (from `counters`, the
    /// sensor's kernel counters) and the userspace ones.
    pub(super) fn lost_counts(
        &self,
        kernel: &std::collections::BTreeMap<&'static str, u64>,
    ) -> LostCounts {
        LostCounts {
            ringbuf: kernel.get("ringbuf_drops").copied().unwrap_or(0),
            queue: self.counters.queue_drops.load(Ordering::Relaxed),
            broadcast: self.counters.broadcast_lag.load(Ordering::Relaxed),
            decode: self.counters.decode_errors.load(Ordering::Relaxed),
        }
    }

    /// Emit a `lost` event when any loss counter moved.
    pub(crate) fn check_losses(&mut self) {
        let k = self.sensor.counters();
        let now = self.lost_counts(&k);
        if now != self.last_lost {
            let delta = now.total().saturating_sub(self.last_lost.total());
            warn!(
                ringbuf = now.ringbuf,
                queue = now.queue,
                broadcast = now.broadcast,
                decode = now.decode,
                delta,
                "events lost"
            );
            let mut e = self.new_event(Kind::Lost);
            e.lost = Some(now);
            e.message = Some(format!("{delta} more events lost since the last report"));
            self.last_lost = now;
            self.record(&e);
        }
    }
}

/// An agent can have a broker (`systemd-run --user`, `at`, a tmux server, D-Bus
/// activation) run a command outside its tree, where mcpwatch no longer follows
/// it: say so on the exec that asks the broker (DESIGN.md principle 7).
fn flag_broker(e: &mut Event) {
    if !matches!(e.kind, Kind::Launch | Kind::Exec) {
        return;
    }
    // The executable the kernel mapped first: argv[0] is the caller's to choose
    // (`exec -a innocent systemd-run …`); the exec filename too (a `#!` broker).
    let named = |b: Option<&Bytes>| b.and_then(|b| crate::policy::risk::broker_named(&b.lossy()));
    let Some(broker) = named(e.exe.as_ref().and_then(|x| x.path.as_ref()))
        .or_else(|| named(e.filename.as_ref()))
        .or_else(|| e.argv.as_deref().and_then(crate::policy::risk::broker_of))
    else {
        return;
    };
    let note = format!(
        "broker: `{broker}` has another process run a command, outside this session; what it runs is not tracked"
    );
    e.message = Some(match e.message.take() {
        Some(m) => format!("{m}; {note}"),
        None => note,
    });
}

/// argv[1] of an exec event (an interpreter's script), for messages.
fn x_script(e: &Event) -> String {
    e.argv
        .as_ref()
        .and_then(|a| a.get(1))
        .map_or_else(String::new, |a| a.lossy().into_owned())
}

#[cfg(test)]
mod broker_tests {
    use super::*;

    #[test]
    fn a_broker_is_known_by_its_executable_whatever_argv0_says() {
        let mut e = Event::new(Kind::Launch, 1, String::new());
        e.argv = Some(vec![Bytes::from("innocent"), Bytes::from("--user")]);
        e.exe = Some(crate::event::Exe {
            path: Some(Bytes::from("/usr/bin/systemd-run")),
            ..crate::event::Exe::default()
        });
        flag_broker(&mut e);
        assert!(
            e.message.as_deref().unwrap_or("").contains("`systemd-run`"),
            "{:?}",
            e.message
        );
        let mut plain = Event::new(Kind::Launch, 2, String::new());
        plain.argv = Some(vec![Bytes::from("systemd-run")]);
        plain.exe = Some(crate::event::Exe {
            path: Some(Bytes::from("/usr/bin/true")),
            ..crate::event::Exe::default()
        });
        flag_broker(&mut plain);
        assert!(plain.message.is_some(), "argv[0] still counts");
    }
}
