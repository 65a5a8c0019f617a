//! The kernel seam: what the engine asks of the kernel's maps. [`super::ebpf::Sensor`]
//! implements it over the real maps; unit tests use an in-memory fake
//! (`engine::fake`), so the consent rules run without root.
//!
//! Every method is a map operation (a lookup, an insert, a sync of a small map),
//! never per-byte work: one dynamic call per operation costs nothing that matters.
use std::collections::BTreeMap;

use monitor_common::{AllowKey, AllowValue, ExeKey, PathKey, TaskState};

use super::ebpf::{Attachment, LsmSupport, PinReport, ProgramStats, Sensor, SensorError};

pub trait Kernel: Send {
    /// Insert or update the tracked entry of `pid`.
    fn track(&mut self, pid: u32, state: &TaskState) -> Result<(), SensorError>;
    /// Forget a pid the kernel still tracks but that no longer exists.
    fn untrack(&mut self, pid: u32);
    fn tracked_state(&self, pid: u32) -> Option<TaskState>;
    /// Every (pid, state) in the tracked map.
    fn tracked_entries(&self) -> Vec<(u32, TaskState)>;
    fn tracked_count(&self) -> usize;
    /// (host executables, host script paths) known to the kernel.
    fn host_key_counts(&self) -> (usize, usize);
    /// Make `ALLOW` hold exactly `entries`.
    fn sync_allow(&mut self, entries: &[(AllowKey, AllowValue)]) -> Result<(), SensorError>;
    fn allow_keys(&self) -> Vec<AllowKey>;
    /// The security-relevant env names (index = id).
    fn set_env_names(&mut self, names: &[String]) -> Result<(), SensorError>;
    /// Make `DENY_EXES` hold exactly `entries`.
    fn sync_deny(&mut self, entries: &[(ExeKey, u32)]) -> Result<(), SensorError>;
    /// The commands of MCP config entries, by exec filename (`HOST_PATHS`
    /// `ENTRY_MARK`): an untracked exec of one is reported for the daemon to compare.
    fn set_entry_paths(&mut self, entries: &[PathKey]) -> Result<(), SensorError>;
    /// The mode of every profile id (ids past the slice: monitor).
    fn set_modes(&mut self, modes: &[u32]) -> Result<(), SensorError>;
    /// The mode the kernel applies to a host id past the mode table.
    fn set_default_mode(&mut self, mode: u32) -> Result<(), SensorError>;
    /// The `SipHash` key the kernel's `ALLOW` keys are made with.
    fn sip_keys(&self) -> (u64, u64);
    /// Clear a process's `HELD` flag (it was continued or killed by the daemon).
    fn clear_held(&mut self, pid: u32);
    /// With no launch held: make the hold counters agree again.
    fn resync_holds(&mut self);
    /// Tell the kernel no daemon runs any more (ask degrades to enforce).
    fn release(&mut self);
    /// Kernel counters by name.
    fn counters(&self) -> BTreeMap<&'static str, u64>;
    fn program_stats(&self) -> Vec<ProgramStats>;
    fn attachments(&self) -> &[Attachment];
    fn lsm(&self) -> &LsmSupport;
    fn pins(&self) -> &PinReport;
}

/// The real kernel: each method is the sensor's own map operation.
impl Kernel for Sensor {
    fn track(&mut self, pid: u32, state: &TaskState) -> Result<(), SensorError> {
        Sensor::track(self, pid, state)
    }
    fn untrack(&mut self, pid: u32) {
        Sensor::untrack(self, pid);
    }
    fn tracked_state(&self, pid: u32) -> Option<TaskState> {
        Sensor::tracked_state(self, pid)
    }
    fn tracked_entries(&self) -> Vec<(u32, TaskState)> {
        Sensor::tracked_entries(self)
    }
    fn tracked_count(&self) -> usize {
        Sensor::tracked_count(self)
    }
    fn host_key_counts(&self) -> (usize, usize) {
        Sensor::host_key_counts(self)
    }
    fn sync_allow(&mut self, entries: &[(AllowKey, AllowValue)]) -> Result<(), SensorError> {
        Sensor::sync_allow(self, entries)
    }
    fn allow_keys(&self) -> Vec<AllowKey> {
        Sensor::allow_keys(self)
    }
    fn set_env_names(&mut self, names: &[String]) -> Result<(), SensorError> {
        Sensor::set_env_names(self, names)
    }
    fn sync_deny(&mut self, entries: &[(ExeKey, u32)]) -> Result<(), SensorError> {
        Sensor::sync_deny(self, entries)
    }
    fn set_entry_paths(&mut self, entries: &[PathKey]) -> Result<(), SensorError> {
        Sensor::set_entry_paths(self, entries)
    }
    fn set_modes(&mut self, modes: &[u32]) -> Result<(), SensorError> {
        Sensor::set_modes(self, modes)
    }
    fn set_default_mode(&mut self, mode: u32) -> Result<(), SensorError> {
        Sensor::set_default_mode(self, mode)
    }
    fn sip_keys(&self) -> (u64, u64) {
        (self.settings.sip_k0, self.settings.sip_k1)
    }
    fn clear_held(&mut self, pid: u32) {
        Sensor::clear_held(self, pid);
    }
    fn resync_holds(&mut self) {
        Sensor::resync_holds(self);
    }
    fn release(&mut self) {
        Sensor::release(self);
    }
    fn counters(&self) -> BTreeMap<&'static str, u64> {
        Sensor::counters(self)
    }
    fn program_stats(&self) -> Vec<ProgramStats> {
        Sensor::program_stats(self)
    }
    fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }
    fn lsm(&self) -> &LsmSupport {
        &self.lsm
    }
    fn pins(&self) -> &PinReport {
        &self.pins
    }
}
