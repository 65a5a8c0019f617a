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
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context as _;
use monitor_common::{role, ExeKey, PathKey, TaskState};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use crate::{
    adopt,
    config::Config,
    engine::{
        core::{Core, UserCounters},
        shared::Shared,
        task::{Engine, Msg},
    },
    event::{
        raw::{self, kernel_dev_to_user, RawEvent, Role},
        Bytes, Exe, HostRef, Kind,
    },
    hosts::{self, HostProfile},
    logfile::LogWriter,
    sensor::{
        ebpf::{KernelHosts, Sensor, SensorOptions},
        offsets,
    },
    sys::{clock, hash::HashCache, procfs},
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

/// The `wrappers` of the config (path globs, `~/` for every home), by executable
/// identity: to the kernel they are what login shells are, never a host by name.
fn wrapper_executables(globs: &[String], fs: &dyn hosts::HostFs) -> Vec<ExeKey> {
    let (files, warnings) = hosts::glob_files(globs, "wrappers", fs);
    for w in &warnings {
        warn!(warning = %w, "wrappers");
    }
    let mut out = Vec::new();
    for f in files {
        let Ok(meta) = std::fs::metadata(&f) else {
            continue;
        };
        let key = hosts::exe_key(&meta);
        if meta.is_file() && !out.contains(&key) {
            out.push(key);
        }
    }
    out
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
        names: resolved.names.iter().map(|(k, id, _)| (*k, *id)).collect(),
        tails: resolved.tails.iter().map(|(k, id, _)| (*k, *id)).collect(),
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
    let mut shells = login_shells();
    for k in wrapper_executables(&config.wrappers, &hosts::RealFs) {
        if !shells.contains(&k) {
            shells.push(k);
        }
    }
    let keys = host_keys(&profiles, &resolved, &shells);
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
