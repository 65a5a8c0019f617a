//! The status the API serves (`mcpwatch status`), as the core builds it.
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::core::Core;
use crate::{
    config::Config,
    event::LostCounts,
    sensor::ebpf::{Attachment, LsmSupport, ProgramStats},
};

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
    /// How API callers are identified (`engine::callers::caller_pinning`).
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
    /// How the kernel recognised it: `executable`, `script`, `name`, `package`, `run` or
    /// `adopted` (found running at start).
    pub recognised_by: String,
    /// The filename it was executed under, and its executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

/// How a host process was recognised, kept while it runs.
#[derive(Clone, Debug)]
pub struct HostSeen {
    pub how: &'static str,
    pub filename: Option<String>,
    pub exe: Option<String>,
}

/// Hosts remembered at most (a bound on a flood of short-lived hosts whose exits
/// were lost).
const HOSTS_SEEN_MAX: usize = 4096;

impl Core {
    /// Remember how a host start was recognised; a wrapper dropped forgets it.
    pub(crate) fn note_host(&mut self, e: &crate::event::Event, flags: u32) {
        use monitor_common::event_flags as ef;
        if flags & ef::HOST_DROPPED != 0 {
            self.hosts_seen.remove(&e.pid);
            return;
        }
        let how = if flags & ef::HOST_RUN_EXEC != 0 {
            "run"
        } else if flags & ef::HOST_BY_NAME != 0 {
            "name"
        } else if flags & ef::HOST_BY_PACKAGE != 0 {
            "package"
        } else if flags & ef::HOST_DETECTED != 0 {
            use std::os::unix::ffi::OsStrExt as _;
            let filename = e.filename.as_ref().map_or(&[][..], |f| &f.0[..]);
            // A `#!` host's image is its interpreter: it was its script's path.
            if self
                .host_scripts
                .iter()
                .any(|(_, _, p)| p.as_os_str().as_bytes() == filename)
            {
                "script"
            } else {
                "executable"
            }
        } else {
            return;
        };
        if self.hosts_seen.len() >= HOSTS_SEEN_MAX && !self.hosts_seen.contains_key(&e.pid) {
            return;
        }
        let text = |b: &crate::event::Bytes| String::from_utf8_lossy(&b.0).into_owned();
        self.hosts_seen.insert(
            e.pid,
            HostSeen {
                how,
                filename: e.filename.as_ref().map(text),
                exe: e.exe.as_ref().and_then(|x| x.path.as_ref()).map(text),
            },
        );
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HostKeys {
    pub executables: usize,
    pub script_paths: usize,
    pub profiles: Vec<String>,
    /// MCP config files watched for drift (`config_change` events).
    pub configs_watched: usize,
}

impl Core {
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
                .map(|pid| {
                    let seen = self.hosts_seen.get(&pid);
                    HostStatus {
                        pid,
                        name: self
                            .tracker
                            .get(pid)
                            .map_or_else(|| "?".into(), |e| self.host_name(e.profile)),
                        recognised_by: seen.map_or("adopted", |s| s.how).to_owned(),
                        filename: seen.and_then(|s| s.filename.clone()),
                        exe: seen.and_then(|s| s.exe.clone()),
                    }
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
            caller_pinning: super::callers::caller_pinning(),
        }
    }
}
