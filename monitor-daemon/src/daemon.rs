//! The daemon: preflight, load the sensor, adopt running hosts, then turn kernel
//! events into recorded events until SIGINT/SIGTERM.
//!
//! Data path: ring buffer → reader thread (decode; bounded queue, overflow counted)
//! → hashing stage → the engine task (`engine::task`: tracker, enrichment, log,
//! broadcast to followers; it also runs the API's commands, in arrival order). Every place an
//! event can be lost has a counter, visible in `mcpwatch status` and as `lost` events.
use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context as _;
use monitor_common::{event_flags as ef, role, task_flags, ExeKey, PathKey, TaskState, MODES_MAX};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, error, info, warn};

use crate::{
    adopt,
    config::Config,
    engine::task::{Engine, Msg},
    enrich,
    event::{
        raw::{self, kernel_dev_to_user, RawEvent, RawExec, Role},
        Bytes, Event, Exe, ExitStatus, HostRef, Kind, LostCounts,
    },
    hosts::{self, HostProfile},
    logfile::LogWriter,
    sensor::{
        ebpf::{Attachment, KernelHosts, LsmSupport, ProgramStats, Sensor, SensorOptions},
        kernel::Kernel,
        offsets,
    },
    sys::{
        clock::{self, Clock},
        hash::{HashCache, HashResult},
        procfs,
    },
    tracker::Tracker,
};

/// Why the daemon cannot do its job: printed as one line, exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("mcpwatchd must run as root (it loads eBPF programs); effective uid is {euid}")]
    NotRoot { euid: u32 },
    #[error("kernel BTF is missing (/sys/kernel/btf/vmlinux): this kernel needs CONFIG_DEBUG_INFO_BTF=y")]
    NoBtf,
    #[error("tracefs is not mounted (looked in /sys/kernel/tracing and /sys/kernel/debug/tracing): run `mount -t tracefs tracefs /sys/kernel/tracing`")]
    NoTracefs,
    #[error("tracepoint sched/{name} is missing from tracefs: this kernel cannot be monitored")]
    NoTracepoint { name: &'static str },
    /// Said before anything is loaded: never a half-loaded sensor.
    #[error("{0}")]
    KernelTooOld(String),
}

pub fn preflight() -> Result<PathBuf, PreflightError> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(PreflightError::NotRoot { euid });
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    let events = offsets::tracefs_events_dir().ok_or(PreflightError::NoTracefs)?;
    for name in [
        "sched_process_exec",
        "sched_process_fork",
        "sched_process_exit",
    ] {
        if !events.join("sched").join(name).join("format").exists() {
            return Err(PreflightError::NoTracepoint { name });
        }
    }
    let missing = crate::sensor::features::missing();
    if !missing.is_empty() {
        return Err(PreflightError::KernelTooOld(
            crate::sensor::features::describe(&crate::sensor::ebpf::kernel_release(), &missing),
        ));
    }
    Ok(events)
}

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

/// The status the API serves (`mcpwatch status`).
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub pid: u32,
    pub started: String,
    pub mode: String,
    pub enforcing: bool,
    pub log_file: String,
    pub events: u64,
    pub lost: LostCounts,
    pub kernel: std::collections::BTreeMap<&'static str, u64>,
    pub tracked_kernel: usize,
    pub tracked_user: usize,
    pub hosts: Vec<HostStatus>,
    pub host_keys: HostKeys,
    pub attachments: Vec<Attachment>,
    pub programs: Vec<ProgramStats>,
    pub lsm: LsmSupport,
    pub enforcement: Vec<String>,
    pub tracker_overflow: u64,
    pub hash_cache: (u64, u64),
    /// How enforcement outlives the daemon (pins, link keeper).
    pub pins: crate::sensor::ebpf::PinReport,
    /// Effective mode per host, and whether managed policy locks it.
    pub modes: serde_json::Value,
    /// Consent records loaded into the kernel / known.
    pub records_active: usize,
    pub records_total: usize,
    /// Launches ask mode holds now.
    pub pending: usize,
    /// Consent store and managed policy problems (last good copies in force).
    pub policy_problems: Vec<String>,
    /// How API callers are identified (`api::caller_pinning`).
    pub caller_pinning: &'static str,
    /// Events the audit log could not take (disk full, I/O error).
    pub log_errors: u64,
    /// Whether events also go to the systemd journal, and how many it refused.
    pub journal: bool,
    pub journal_drops: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostStatus {
    pub pid: u32,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct HostKeys {
    pub executables: usize,
    pub script_paths: usize,
    pub profiles: Vec<String>,
    /// MCP config files watched for drift (`config_change` events).
    pub configs_watched: usize,
}

/// State shared by the processor and the API, behind one mutex (never held across
/// an await).
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
                let mut e = self.base_event(Kind::Exit, &x.common);
                e.exit = Some(ExitStatus::from_wait_status(x.exit_code));
                if let Some(info) = info {
                    e.lineage = info.lineage;
                    e.duration = Some(Duration::from_nanos(info.duration_ns).as_secs_f64());
                }
                self.record(&e);
            }
            RawEvent::Exec(x) => {
                let hash = hash.unwrap_or_else(|| Err("not hashed".into()));
                let flags = x.common.flags;
                let (mode, record_id) = (x.mode, x.record_id);
                let mut e = self.exec_event(x, hash);
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

    fn exec_event(&mut self, x: RawExec, hash: HashResult) -> Event {
        let scripts = &self.host_scripts;
        let cls = self.tracker.on_exec(&x, &|profile: u32, argv: &[Vec<u8>]| {
            hosts::is_host_script(profile, scripts, argv)
        });
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
            hash_error: hash.err(),
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
    fn lost_counts(&self, kernel: &std::collections::BTreeMap<&'static str, u64>) -> LostCounts {
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

    pub fn status(&self, cfg: &Config) -> Status {
        let k = self.sensor.counters();
        let (exes, paths) = self.sensor.host_key_counts();
        let lost = self.lost_counts(&k);
        let mut enforcement =
            vec!["signal (bpf_send_signal from sched_process_exec): available".to_string()];
        let lsm_attached = self
            .sensor
            .attachments()
            .iter()
            .any(|a| a.program == "bprm_check_security");
        enforcement.push(if lsm_attached {
            "BPF LSM (bprm_check_security): active: execs of denied programs fail with EPERM".to_string()
        } else if self.sensor.lsm().loadable {
            "BPF LSM (bprm_check_security): loadable, but this kernel's BTF lacks linux_binprm.file: denied programs are killed by signal".to_string()
        } else {
            format!(
                "BPF LSM: unavailable: {}",
                self.sensor.lsm().reason.clone().unwrap_or_default()
            )
        });
        Status {
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started: self.started.clone(),
            mode: cfg.defaults.mode.as_str().to_string(),
            enforcing: true,
            log_file: self.log.path().display().to_string(),
            events: self.events,
            lost,
            kernel: k,
            tracked_kernel: self.sensor.tracked_count(),
            tracked_user: self.tracker.len(),
            hosts: self
                .tracker
                .hosts()
                .into_iter()
                .map(|pid| HostStatus {
                    pid,
                    name: self
                        .tracker
                        .get(pid)
                        .map_or_else(|| "?".into(), |e| self.host_name(e.profile)),
                })
                .collect(),
            host_keys: HostKeys {
                executables: exes,
                script_paths: paths,
                profiles: self.profiles.iter().map(|p| p.name.clone()).collect(),
                configs_watched: self.configs.len(),
            },
            attachments: self.sensor.attachments().to_vec(),
            programs: self.sensor.program_stats(),
            lsm: self.sensor.lsm().clone(),
            enforcement,
            tracker_overflow: self.tracker.overflow(),
            hash_cache: (0, 0),
            pins: self.sensor.pins().clone(),
            modes: self.modes_json(),
            records_active: self
                .consent
                .states
                .values()
                .filter(|s| **s == crate::consent::RecordState::Active)
                .count(),
            records_total: self.consent.all_records().count(),
            pending: self.consent.pending.len(),
            log_errors: self.counters.log_errors.load(Ordering::Relaxed),
            journal: self.journal.is_some(),
            journal_drops: self.counters.journal_drops.load(Ordering::Relaxed),
            policy_problems: self.policy_problems(),
            caller_pinning: crate::api::caller_pinning(),
        }
    }
}

/// What the API handlers share: the way to the engine (which owns the core), and
/// what they read without it.
pub struct Shared {
    pub engine: Engine,
    /// Executable hashes, kept by the hashing stage outside the engine: hashing a
    /// large binary the first time must not hold up the API (Track, Status).
    pub hashes: Arc<Mutex<HashCache>>,
    pub config: Config,
    pub bcast: broadcast::Sender<Arc<str>>,
    pub counters: Arc<UserCounters>,
}

impl Shared {
    /// The status, from the engine; `None` once it has stopped.
    pub async fn status(&self) -> Option<Status> {
        let cfg = self.config.clone();
        let mut st = self.engine.call(move |core| core.status(&cfg)).await?;
        let h = self.hashes.lock().expect("hash lock");
        st.hash_cache = (h.hits, h.misses);
        Some(st)
    }
}

/// The login shells of /etc/shells, by executable identity (kernel `s_dev`
/// encoding): a launch of one may be a host's environment probe.
fn login_shells() -> Vec<ExeKey> {
    let text = std::fs::read_to_string("/etc/shells").unwrap_or_default();
    let mut out: Vec<ExeKey> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with('/')) {
        // stat(2) follows the links (/bin → /usr/bin on merged-/usr systems).
        let Ok(meta) = std::fs::metadata(line) else {
            continue;
        };
        let key = hosts::exe_key(&meta);
        if meta.is_file() && !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// The kernel's view of the host profiles: executables and scripts that make a
/// process a host, the helper executables and login shells that classify a
/// would-be launch, and which hosts run the login-shell environment probe.
fn host_keys(
    profiles: &[HostProfile],
    resolved: &hosts::Resolved,
    shells: &[ExeKey],
) -> KernelHosts {
    use monitor_common::{class_exe, profile_flags};
    let mut class_exes: Vec<(ExeKey, u32)> = resolved
        .helpers
        .iter()
        .map(|(k, id, _)| (*k, (id << 8) | class_exe::HELPER))
        .collect();
    for k in shells {
        if !class_exes.iter().any(|(c, _)| c == k) {
            class_exes.push((*k, class_exe::SHELL));
        }
    }
    KernelHosts {
        exes: resolved.exes.iter().map(|(k, id, _)| (*k, *id)).collect(),
        paths: resolved.paths.iter().map(|(k, id, _)| (*k, *id)).collect(),
        class_exes,
        profile_flags: profiles
            .iter()
            .map(|p| {
                if p.env_probe {
                    profile_flags::ENV_PROBE
                } else {
                    0
                }
            })
            .collect(),
    }
}

/// Run until SIGINT/SIGTERM.
#[expect(
    clippy::too_many_lines,
    reason = "the daemon's start-up sequence reads best in order, in one place"
)]
pub async fn run(config: Config) -> anyhow::Result<()> {
    let events_dir = preflight()?;
    let profiles = config.profiles();
    let resolved = hosts::resolve(&profiles, &hosts::RealFs);
    for w in &resolved.warnings {
        warn!(warning = %w, "host profile");
    }
    let keys = host_keys(&profiles, &resolved, &login_shells());
    info!(
        profiles = profiles.len(),
        executables = keys.exes.len(),
        scripts = keys.paths.len(),
        classifiers = keys.class_exes.len(),
        "host profiles resolved"
    );
    let kcfg = offsets::resolve_from(Path::new("/sys/kernel/btf/vmlinux"), &events_dir)
        .context("resolving kernel offsets")?;
    let opts = SensorOptions {
        ring_buffer_bytes: config.ring_buffer_bytes,
        tracked_max: config.tracked_max,
        pin_dir: config.pin_dir.clone(),
        state_dir: config.state_dir.clone(),
        pin_links: config.pin_links,
    };
    let mut sensor = Sensor::load(&opts, kcfg, &keys).context("loading the eBPF sensor")?;
    if let Some(reason) = &sensor.lsm.reason {
        warn!(reason = %reason, "BPF LSM not available; signal-based enforcement only");
    }
    for p in sensor.program_stats() {
        info!(
            program = p.name,
            verified_insns = p.verified_insns,
            load_ms = p.load_ms.map(|ms| (ms * 10.0).round() / 10.0),
            "program loaded"
        );
    }
    let ring = sensor.take_events().context("ring buffer already taken")?;
    release_startup_memory();
    let mut log = LogWriter::open(&config.log_path()).context("opening the event log")?;
    log.sync_window = Duration::from_millis(config.log_fsync_ms);
    if let Some(group) = &config.log_group {
        let gid = nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .with_context(|| format!("log_group = \"{group}\": no such group"))?
            .gid
            .as_raw();
        log.grant_group(gid).context("granting the log group")?;
    }
    log.rotation = crate::logfile::Rotation {
        max_bytes: config.log_rotate_bytes,
        max_age: Duration::from_secs(config.log_rotate_secs),
        keep: config.log_keep_files,
    };
    if let Some((aside, len)) = &log.torn_set_aside {
        warn!(bytes = len, to = %aside.display(), "the log ended in a torn record (a crash mid-write): set aside, not chained");
    }

    let mut core = Core::new(
        &config,
        Box::new(sensor),
        log,
        profiles.clone(),
        resolved.paths.clone(),
    )
    .context("opening the consent store")?;
    let (bcast, counters) = (core.bcast.clone(), core.counters.clone());
    core.journal = match config.journal.as_str() {
        "on" => Some(
            crate::journal::Journal::connect(&config.journal_socket).with_context(|| {
                format!(
                    "journal = \"on\": connecting to {}",
                    config.journal_socket.display()
                )
            })?,
        ),
        "auto" if crate::journal::under_systemd() => {
            crate::journal::Journal::connect(&config.journal_socket).ok()
        }
        _ => None,
    };
    core.refresh_config_watch();
    info!(
        files = core.configs.len(),
        "watching MCP config files for changes"
    );
    let mut start = core.new_event(Kind::DaemonStart);
    start.pid = std::process::id();
    start.message = Some(format!(
        "mcpwatchd {} mode={} attach=[{}] lsm={}",
        env!("CARGO_PKG_VERSION"),
        config.defaults.mode.as_str(),
        core.sensor
            .attachments()
            .iter()
            .map(|a| format!("{}:{}", a.hook, a.method))
            .collect::<Vec<_>>()
            .join(","),
        if core.sensor.lsm().loadable {
            "loadable"
        } else {
            "refused"
        },
    ));
    core.record(&start);
    if let Some((aside, len)) = core.log.torn_set_aside.clone() {
        let mut e = core.new_event(Kind::PolicyError);
        e.message = Some(format!(
            "the audit log ended in a torn record of {len} bytes (a write cut by a crash); it was set aside to {} and is not part of the chain",
            aside.display()
        ));
        core.record(&e);
    }
    if let Some(p) = core.consent.store_problem.clone() {
        error!(problem = %p, "consent store is broken; running on its last good copy");
        let mut e = core.new_event(Kind::PolicyError);
        e.message = Some(p);
        core.record(&e);
    }
    for p in core.consent.managed_problems.clone() {
        error!(problem = %p, "managed policy file problem");
        let mut e = core.new_event(Kind::PolicyError);
        e.message = Some(p);
        core.record(&e);
    }
    if !core.sensor.pins().reused_maps.is_empty() {
        let n = core.take_over_kernel_state();
        info!(adopted = n, "took over the pinned kernel state");
    }
    core.sync_kernel();

    // Programs are attached: adopt what was already running. Twice, so children
    // forked while the first pass ran are caught too.
    let host_exes: std::collections::HashMap<(u64, u64), u32> = resolved
        .exes
        .iter()
        .map(|(k, id, _)| ((kernel_dev_to_user(k.dev), k.ino), *id))
        .collect();
    for pass in 0..2 {
        let n = adopt_running(&mut core, &host_exes);
        debug!(pass, adopted = n, "adoption pass");
    }
    core.log.flush().ok();

    let (engine, engine_rx) = Engine::channel();
    let hashes = Arc::new(Mutex::new(HashCache::default()));
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        hashes: hashes.clone(),
        config: config.clone(),
        bcast: bcast.clone(),
        counters: counters.clone(),
    });

    // Reader thread: the ring buffer → decode → bounded queue.
    let (tx, rx) = mpsc::channel::<RawEvent>(config.queue_capacity);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("ringbuf".into())
            .spawn(move || read_ring(ring, &tx, &stop, &counters))
            .context("starting the ring buffer reader")?
    };
    core.engine = Some(engine.clone());
    let engine_task = tokio::spawn(crate::engine::task::run(core, engine_rx));
    let stage = tokio::spawn(crate::engine::task::hash_stage(rx, hashes, engine.clone()));

    let api = match crate::api::serve(shared.clone()).await {
        Ok(conn) => Some(conn),
        Err(err) => {
            error!(error = %format!("{err:#}"), "D-Bus API unavailable: `mcpwatch run`/`status` will not reach this daemon; monitoring continues");
            None
        }
    };
    if let Some(conn) = &api {
        tokio::spawn(crate::api::forward_events(conn.clone(), shared.clone()));
    }
    info!(log = %shared.config.log_path().display(), "mcpwatchd running");

    shutdown_signal().await;
    info!("shutting down");
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    // The stage ends when the reader's queue closes, after sending the rest.
    let _ = stage.await;
    engine.send(Msg::Stop).await;
    let mut core = engine_task.await.context("the engine task failed")?;
    {
        core.check_losses();
        // Nobody will answer held launches any more; from now on ask means enforce.
        core.sensor.release();
        let held: Vec<u64> = core.consent.pending.keys().copied().collect();
        for id in held {
            if let Some(p) = core.consent.pending.remove(&id) {
                procfs::signal_if_same(p.pid, p.start_time, libc::SIGKILL);
                core.sensor.clear_held(p.pid);
            }
        }
        let mut stop_ev = core.new_event(Kind::DaemonStop);
        stop_ev.pid = std::process::id();
        stop_ev.message = Some(format!("{} events recorded this run", core.events));
        core.record(&stop_ev);
        core.log.sync().context("syncing the event log")?;
    }
    drop(api);
    Ok(())
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

/// Parsing kernel BTF (aya's loader, the offset resolver) needs tens of MiB for a
/// moment; glibc keeps freed heap mapped. Hand it back so the daemon's steady-state
/// footprint is what it actually uses.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory at the top of the heap and in
    // free arenas; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Longest time an event waits in the ring buffer before the reader drains it.
const POLL_INTERVAL_MS: i32 = 10;

fn read_ring(
    mut ring: aya::maps::RingBuf<aya::maps::MapData>,
    tx: &mpsc::Sender<RawEvent>,
    stop: &AtomicBool,
    counters: &UserCounters,
) {
    let fd = crate::sensor::ebpf::ring_fd(&ring);
    loop {
        let mut drained_any = false;
        while let Some(item) = ring.next() {
            drained_any = true;
            counters.received.fetch_add(1, Ordering::Relaxed);
            match raw::decode(&item) {
                Ok(ev) => {
                    if tx.try_send(ev).is_err() {
                        counters.queue_drops.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(err) => {
                    counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %err, "undecodable ring buffer record");
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if !drained_any {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // The kernel wakes us only when the ring is filling up (see the eBPF
            // side's wakeup_flags); otherwise this timeout bounds the latency.
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&raw mut pfd, 1, POLL_INTERVAL_MS) };
        }
    }
}

/// The host profile of a running process: its executable's (dev, ino), else the
/// profile whose script its argv names (`hosts::script_profile`).
fn proc_host_profile(
    pid: u32,
    host_exes: &std::collections::HashMap<(u64, u64), u32>,
    host_scripts: &[(PathKey, u32, PathBuf)],
) -> Option<u32> {
    let by_exe = std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|m| host_exes.get(&(m.dev(), m.ino())).copied());
    by_exe.or_else(|| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        hosts::script_profile(host_scripts, &raw::split_nul(&cmdline))
    })
}

/// One adoption pass over `/proc`. Returns how many processes were newly adopted.
fn adopt_running(core: &mut Core, host_exes: &std::collections::HashMap<(u64, u64), u32>) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut procs = Vec::new();
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(procfs::Stat {
            ppid: parent,
            start_ticks,
            ..
        }) = procfs::parse_stat(&stat)
        else {
            continue;
        };
        let host_profile = proc_host_profile(pid, host_exes, &core.host_scripts);
        procs.push(adopt::ProcInfo {
            pid,
            ppid: parent,
            host_profile,
            start_ticks,
        });
    }
    let plan = adopt::plan(&procs);
    let mut n = 0;
    for a in plan {
        if core.tracker.get(a.pid).is_some() || core.sensor.tracked_state(a.pid).is_some() {
            continue;
        }
        let st = TaskState {
            role: a.role,
            flags: 0,
            host_pid: a.host_pid,
            host_profile: a.host_profile,
            session_pid: a.session_pid,
            parent_pid: a.parent.unwrap_or(0),
        };
        if let Err(err) = core.sensor.track(a.pid, &st) {
            warn!(pid = a.pid, error = %err, "could not adopt process");
            continue;
        }
        let r = if a.role == role::HOST {
            Role::Host
        } else {
            Role::Session
        };
        let session = (a.session_pid != 0).then_some(a.session_pid);
        core.tracker.adopt(
            a.pid,
            a.parent,
            a.host_pid,
            a.host_profile,
            r,
            session,
            clock::boot_ns(),
        );
        let mut e = core.new_event(Kind::Adopt);
        e.pid = a.pid;
        e.ppid = procs.iter().find(|p| p.pid == a.pid).map_or(0, |p| p.ppid);
        e.host = Some(HostRef {
            name: core.host_name(a.host_profile),
            pid: a.host_pid,
        });
        e.session = session;
        e.lineage = core
            .tracker
            .get(a.pid)
            .map(|t| t.lineage().to_vec())
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", a.pid)).unwrap_or_default();
        e.argv = Some(raw::split_nul(&cmdline).into_iter().map(Bytes).collect());
        e.exe = std::fs::read_link(format!("/proc/{}/exe", a.pid))
            .ok()
            .map(|p| Exe {
                path: Some(Bytes(p.as_os_str().as_encoded_bytes().to_vec())),
                ..Exe::default()
            });
        e.cwd = std::fs::read_link(format!("/proc/{}/cwd", a.pid))
            .ok()
            .map(|p| Bytes(p.as_os_str().as_encoded_bytes().to_vec()));
        e.message = Some(if a.role == role::HOST {
            "host already running at daemon start (argv from /proc)".into()
        } else {
            "descendant of a running host (argv from /proc)".into()
        });
        core.record(&e);
        n += 1;
    }
    n
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
