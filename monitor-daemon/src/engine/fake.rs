//! An in-memory [`Kernel`] for unit tests (after aya's `sys/fake.rs`): it holds the
//! maps the engine writes and records every call, shared with the test through an
//! `Arc` so a test can look (and arrange the tracked map) while `Core` owns the box.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard},
};

use monitor_common::{AllowKey, AllowValue, ExeKey, PathKey, TaskState};

use crate::sensor::{
    ebpf::{Attachment, LsmSupport, PinReport, ProgramStats, SensorError},
    kernel::Kernel,
};

/// What the fake kernel holds, and the calls it saw (method names, in order).
#[derive(Default)]
pub struct FakeMaps {
    pub tracked: BTreeMap<u32, TaskState>,
    pub allow: Vec<(AllowKey, AllowValue)>,
    pub env_names: Vec<String>,
    pub deny: Vec<(ExeKey, u32)>,
    pub modes: Vec<u32>,
    pub default_mode: u32,
    pub entry_paths: Vec<PathKey>,
    pub released: bool,
    /// Pids whose `HELD` mark the engine cleared.
    pub cleared: Vec<u32>,
    pub calls: Vec<&'static str>,
}

pub struct FakeKernel {
    maps: Arc<Mutex<FakeMaps>>,
    attachments: Vec<Attachment>,
    lsm: LsmSupport,
    pins: PinReport,
}

/// The test's view of a [`FakeKernel`] the engine owns.
#[derive(Clone)]
pub struct FakeHandle(Arc<Mutex<FakeMaps>>);

impl FakeHandle {
    pub fn maps(&self) -> MutexGuard<'_, FakeMaps> {
        self.0.lock().expect("fake maps")
    }
}

impl FakeKernel {
    pub fn new() -> (Self, FakeHandle) {
        let maps = Arc::new(Mutex::new(FakeMaps::default()));
        let k = Self {
            maps: maps.clone(),
            attachments: Vec::new(),
            lsm: LsmSupport {
                bpf_in_lsm_list: false,
                loadable: false,
                reason: Some("fake kernel".into()),
            },
            pins: PinReport {
                dir: PathBuf::new(),
                generation: "fake".into(),
                reused_programs: false,
                reused_maps: Vec::new(),
                replaced: Vec::new(),
                incompatible: Vec::new(),
                links_held_by: "fake".into(),
                pin_refused: None,
                keeper_pid: None,
            },
        };
        (k, FakeHandle(maps))
    }

    fn m(&self, call: &'static str) -> MutexGuard<'_, FakeMaps> {
        let mut m = self.maps.lock().expect("fake maps");
        m.calls.push(call);
        m
    }
}

impl Kernel for FakeKernel {
    fn track(&mut self, pid: u32, state: &TaskState) -> Result<(), SensorError> {
        self.m("track").tracked.insert(pid, *state);
        Ok(())
    }
    fn untrack(&mut self, pid: u32) {
        self.m("untrack").tracked.remove(&pid);
    }
    fn tracked_state(&self, pid: u32) -> Option<TaskState> {
        self.m("tracked_state").tracked.get(&pid).copied()
    }
    fn tracked_entries(&self) -> Vec<(u32, TaskState)> {
        let m = self.m("tracked_entries");
        m.tracked.iter().map(|(p, s)| (*p, *s)).collect()
    }
    fn tracked_count(&self) -> usize {
        self.m("tracked_count").tracked.len()
    }
    fn host_key_counts(&self) -> (usize, usize) {
        (0, 0)
    }
    fn sync_allow(&mut self, entries: &[(AllowKey, AllowValue)]) -> Result<(), SensorError> {
        self.m("sync_allow").allow = entries.to_vec();
        Ok(())
    }
    fn allow_keys(&self) -> Vec<AllowKey> {
        self.m("allow_keys").allow.iter().map(|(k, _)| *k).collect()
    }
    fn set_env_names(&mut self, names: &[String]) -> Result<(), SensorError> {
        self.m("set_env_names").env_names = names.to_vec();
        Ok(())
    }
    fn sync_deny(&mut self, entries: &[(ExeKey, u32)]) -> Result<(), SensorError> {
        self.m("sync_deny").deny = entries.to_vec();
        Ok(())
    }
    fn set_entry_paths(&mut self, entries: &[PathKey]) -> Result<(), SensorError> {
        self.m("set_entry_paths").entry_paths = entries.to_vec();
        Ok(())
    }
    fn set_modes(&mut self, modes: &[u32]) -> Result<(), SensorError> {
        self.m("set_modes").modes = modes.to_vec();
        Ok(())
    }
    fn set_default_mode(&mut self, mode: u32) -> Result<(), SensorError> {
        self.m("set_default_mode").default_mode = mode;
        Ok(())
    }
    fn sip_keys(&self) -> (u64, u64) {
        (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)
    }
    fn clear_held(&mut self, pid: u32) {
        let mut m = self.m("clear_held");
        if let Some(st) = m.tracked.get_mut(&pid) {
            st.flags &= !monitor_common::task_flags::HELD;
        }
        m.cleared.push(pid);
    }
    fn resync_holds(&mut self) {
        drop(self.m("resync_holds"));
    }
    fn release(&mut self) {
        self.m("release").released = true;
    }
    fn counters(&self) -> BTreeMap<&'static str, u64> {
        BTreeMap::new()
    }
    fn program_stats(&self) -> Vec<ProgramStats> {
        Vec::new()
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
