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
            caller_pinning: super::callers::caller_pinning(),
        }
    }
}
