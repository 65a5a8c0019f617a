//! Loading, attaching and talking to the kernel programs: the only code that touches
//! aya. A sensor is the set of programs and maps managed as one unit.
use std::{collections::BTreeMap, os::fd::AsRawFd as _, path::Path};

use aya::{
    maps::{HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, Lsm, ProgramError, TracePoint},
    Btf, Ebpf, EbpfError, EbpfLoader,
};
use monitor_common::{names, stat, ExeKey, KernelConfig, PathKey, TaskState};
use serde::Serialize;

/// The eBPF object built by aya-build from monitor-ebpf (see build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error(
        "this binary was built without its eBPF programs (AYA_BUILD_SKIP); rebuild with `cargo xtask build`"
    )]
    NoObject,
    #[error("loading the eBPF object failed")]
    Load {
        #[source]
        source: EbpfError,
    },
    #[error("the eBPF object has no program `{name}`")]
    MissingProgram { name: &'static str },
    #[error("the eBPF object has no map `{name}`")]
    MissingMap { name: &'static str },
    #[error("map `{name}`")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("program `{name}` ({hook}): {action} failed")]
    Program {
        name: &'static str,
        hook: &'static str,
        action: &'static str,
        /// Boxed: aya's error is large and would bloat every `Result` here.
        #[source]
        source: Box<ProgramError>,
    },
    #[error("kernel BTF (/sys/kernel/btf/vmlinux) could not be read")]
    Btf {
        #[source]
        source: aya::BtfError,
    },
}

/// How a hook is attached (shown by `mcpwatch status`).
#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    pub program: &'static str,
    pub hook: &'static str,
    pub method: &'static str,
}

/// Whether this kernel lets us make a denied exec fail with EPERM (BPF LSM), found by
/// really loading a probe program, not by reading a config flag.
#[derive(Clone, Debug, Serialize)]
pub struct LsmSupport {
    /// `bpf` is in /sys/kernel/security/lsm.
    pub bpf_in_lsm_list: bool,
    /// A BPF LSM program on `bprm_check_security` passed `BPF_PROG_LOAD`.
    pub loadable: bool,
    /// Human-readable reason when not loadable.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProgramStats {
    pub name: &'static str,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

pub struct SensorOptions {
    pub ring_buffer_bytes: u32,
    pub tracked_max: u32,
}

pub struct Sensor {
    ebpf: Ebpf,
    tracked: HashMap<MapData, u32, TaskState>,
    host_exes: HashMap<MapData, ExeKey, u32>,
    host_paths: HashMap<MapData, PathKey, u32>,
    stats: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    pub attachments: Vec<Attachment>,
    pub lsm: LsmSupport,
}

const PROGRAMS: [(&str, &str); 3] = [
    ("sched_process_fork", "sched/sched_process_fork"),
    ("sched_process_exec", "sched/sched_process_exec"),
    ("sched_process_exit", "sched/sched_process_exit"),
];

impl Sensor {
    /// Load the programs with this kernel's layout, fill the host maps, attach.
    /// Host maps are filled *before* attaching so no host exec slips through between.
    pub fn load(
        opts: &SensorOptions,
        mut kcfg: KernelConfig,
        exes: &[(ExeKey, u32)],
        paths: &[(PathKey, u32)],
    ) -> Result<Self, SensorError> {
        if OBJECT.is_empty() {
            return Err(SensorError::NoObject);
        }
        kcfg.host_paths_enabled = u32::from(!paths.is_empty());
        let btf = Btf::from_sys_fs().map_err(|source| SensorError::Btf { source })?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .override_global(names::CONFIG, &kcfg, true)
            .map_max_entries(names::EVENTS, opts.ring_buffer_bytes)
            .map_max_entries(names::TRACKED, opts.tracked_max)
            .load(OBJECT)
            .map_err(|source| SensorError::Load { source })?;

        let lsm = probe_lsm(&mut ebpf, &btf);

        let mut host_exes: HashMap<MapData, ExeKey, u32> = take_map(&mut ebpf, names::HOST_EXES)?;
        for (key, id) in exes {
            host_exes
                .insert(key, id, 0)
                .map_err(|source| SensorError::Map {
                    name: names::HOST_EXES,
                    source,
                })?;
        }
        let mut host_paths: HashMap<MapData, PathKey, u32> =
            take_map(&mut ebpf, names::HOST_PATHS)?;
        for (key, id) in paths {
            host_paths
                .insert(key, id, 0)
                .map_err(|source| SensorError::Map {
                    name: names::HOST_PATHS,
                    source,
                })?;
        }
        let tracked = take_map(&mut ebpf, names::TRACKED)?;
        let stats = take_map(&mut ebpf, names::STATS)?;
        let events = Some(take_map(&mut ebpf, names::EVENTS)?);

        let mut sensor = Self {
            ebpf,
            tracked,
            host_exes,
            host_paths,
            stats,
            events,
            attachments: Vec::new(),
            lsm,
        };
        sensor.attach(&btf)?;
        Ok(sensor)
    }

    fn attach(&mut self, btf: &Btf) -> Result<(), SensorError> {
        // fork first: once exec detects a host, its forks must already be followed.
        let (name, hook) = PROGRAMS[0];
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut(name)
            .ok_or(SensorError::MissingProgram { name })?
            .try_into()
            .map_err(program_error(name, hook, "type check"))?;
        prog.load("sched_process_fork", btf)
            .map_err(program_error(name, hook, "load"))?;
        prog.attach().map_err(program_error(name, hook, "attach"))?;
        self.attachments.push(Attachment {
            program: name,
            hook,
            method: "tp_btf",
        });

        for (name, hook) in [PROGRAMS[2], PROGRAMS[1]] {
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut(name)
                .ok_or(SensorError::MissingProgram { name })?
                .try_into()
                .map_err(program_error(name, hook, "type check"))?;
            prog.load().map_err(program_error(name, hook, "load"))?;
            prog.attach("sched", name)
                .map_err(program_error(name, hook, "attach"))?;
            self.attachments.push(Attachment {
                program: name,
                hook,
                method: "tracepoint",
            });
        }
        Ok(())
    }

    /// The ring buffer, handed to the reader once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Start tracking `pid` (e.g. `mcpwatch run`, adoption, a host relaunch).
    pub fn track(&mut self, pid: u32, state: &TaskState) -> Result<(), SensorError> {
        self.tracked
            .insert(pid, state, 0)
            .map_err(|source| SensorError::Map {
                name: names::TRACKED,
                source,
            })
    }

    pub fn tracked_state(&self, pid: u32) -> Option<TaskState> {
        self.tracked.get(&pid, 0).ok()
    }

    pub fn tracked_count(&self) -> usize {
        self.tracked.keys().flatten().count()
    }

    pub fn host_key_counts(&self) -> (usize, usize) {
        (
            self.host_exes.keys().flatten().count(),
            self.host_paths.keys().flatten().count(),
        )
    }

    /// Kernel counters, summed over CPUs, by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let names = [
            (stat::RINGBUF_DROPS, "ringbuf_drops"),
            (stat::TRACKED_FULL, "tracked_full"),
            (stat::EXECS, "execs"),
            (stat::FORKS, "forks"),
            (stat::EXITS, "exits"),
            (stat::HOSTS_DETECTED, "hosts_detected"),
            (stat::READ_ERRORS, "read_errors"),
        ];
        names
            .iter()
            .map(|&(idx, name)| {
                let sum = self.stats.get(&idx, 0).map_or(0, |v| v.iter().sum());
                (name, sum)
            })
            .collect()
    }

    /// Per-program run counts and time (needs `kernel.bpf_stats_enabled=1`).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        PROGRAMS
            .iter()
            .filter_map(|&(name, _)| {
                let info = self.ebpf.program(name)?.info().ok()?;
                Some(ProgramStats {
                    name,
                    run_cnt: info.run_count(),
                    run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                })
            })
            .collect()
    }
}

/// Error mapper for one step of loading or attaching a program.
fn program_error(
    name: &'static str,
    hook: &'static str,
    action: &'static str,
) -> impl FnOnce(ProgramError) -> SensorError {
    move |source| SensorError::Program {
        name,
        hook,
        action,
        source: Box::new(source),
    }
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, SensorError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(SensorError::MissingMap { name })?;
    T::try_from(map).map_err(|source| SensorError::Map { name, source })
}

fn probe_lsm(ebpf: &mut Ebpf, btf: &Btf) -> LsmSupport {
    let bpf_in_lsm_list = std::fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
    let result = (|| -> Result<(), String> {
        let prog: &mut Lsm = ebpf
            .program_mut("lsm_probe")
            .ok_or("probe program missing")?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        prog.load("bprm_check_security", btf).map_err(|e| {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        })
    })();
    match result {
        Ok(()) => LsmSupport {
            bpf_in_lsm_list,
            loadable: true,
            reason: None,
        },
        Err(err) => {
            let reason = if bpf_in_lsm_list {
                format!("the kernel refused to load a BPF LSM program ({err}); denied launches are killed by signal instead")
            } else {
                format!("`bpf` is not in /sys/kernel/security/lsm ({err}); denied launches are killed by signal instead")
            };
            LsmSupport {
                bpf_in_lsm_list,
                loadable: false,
                reason: Some(reason),
            }
        }
    }
}

/// Raw fd of the ring buffer, for readiness polling.
pub fn ring_fd(rb: &RingBuf<MapData>) -> i32 {
    rb.as_raw_fd()
}

/// Pin directory for state that must survive the daemon (used by enforcement).
pub const PIN_DIR: &str = "/sys/fs/bpf/mcpwatch";

/// Whether bpffs is mounted where pins would go.
pub fn bpffs_mounted() -> bool {
    Path::new("/sys/fs/bpf").exists()
        && std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
        })
}
