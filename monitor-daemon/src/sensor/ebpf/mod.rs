//! Loading, attaching and talking to the kernel programs: the only code that touches
//! aya. A sensor is the set of programs and maps managed as one unit.
//!
//! This file holds the types the others share (the sensor, its options, errors and
//! reports, the program table); `load` loads and attaches, `pins` checks and
//! removes what an earlier daemon pinned, `lsm` probes for BPF LSM, `verifier`
//! turns a failed `BPF_PROG_LOAD` into one line, `maps` reads and writes the
//! maps, `stats` reads the counters and the programs' run statistics.
use std::{
    fs, io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{links::FdLink, ProgramError},
    Ebpf, EbpfError,
};
use monitor_common::{
    AllowKey, AllowValue, ExeKey, NameKey, PathKey, SecEnvName, Settings, TailKey, TaskState,
};
use serde::Serialize;

mod load;
mod lsm;
mod maps;
mod pins;
mod stats;
mod verifier;

/// The environment tables as `consent`'s tests check them.
#[cfg(test)]
pub(crate) use maps::{secenv_families, secenv_filter, secenv_names};
pub use pins::{generation, unload};
pub use verifier::last_verifier_line;

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
    /// The verifier refused a program: one line with its last word, the full log
    /// in a file (never thousands of lines on a terminal).
    #[error(
        "the kernel's verifier rejected program `{name}` on Linux {kernel}: \"{last}\" \
         (limit {VERIFIER_LIMIT} instructions per program; mcpwatch budgets {VERIFIED_INSNS_BUDGET}); \
         full verifier log: {}",
        log.as_ref().map_or_else(|| "not saved".to_owned(), |p| p.display().to_string())
    )]
    Rejected {
        name: &'static str,
        kernel: String,
        last: String,
        log: Option<PathBuf>,
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
    #[error("pin directory {}: {action} failed", path.display())]
    Pin {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

/// How a hook is attached (shown by `mcpwatch status`).
#[derive(Clone, Debug, Serialize)]
pub struct Attachment {
    pub program: &'static str,
    pub hook: &'static str,
    pub method: String,
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
    /// The kernel's count of instructions its verifier processed to accept the
    /// program (`bpf_prog_info.verified_insns`, 5.16+): the budget DESIGN.md keeps
    /// at or below `VERIFIED_INSNS_BUDGET`. `None` when the kernel does not say.
    pub verified_insns: Option<u32>,
    /// How long `BPF_PROG_LOAD` took when this daemon loaded it (`None`: taken over).
    pub load_ms: Option<f64>,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// The verifier budget of every program: 20 % of the kernel's 1M-instruction limit
/// (`BPF_COMPLEXITY_LIMIT_INSNS`), so a kernel point release, another CPU or another
/// LLVM has room to move the count before anything fails to load.
pub const VERIFIED_INSNS_BUDGET: u32 = 200_000;
/// The kernel's limit on instructions the verifier processes for one program.
pub const VERIFIER_LIMIT: u32 = 1_000_000;

/// What the kernel needs to know about hosts, from the resolved host profiles.
#[derive(Clone, Debug, Default)]
pub struct KernelHosts {
    /// `HOST_EXES`: executable identity → profile id.
    pub exes: Vec<(ExeKey, u32)>,
    /// `HOST_PATHS`: exec filename of a `#!` host → profile id.
    pub paths: Vec<(PathKey, u32)>,
    /// `HOST_NAMES`: last component of the exec filename → profile id.
    pub names: Vec<(NameKey, u32)>,
    /// `HOST_SCRIPT_TAILS`: a package script's path tail → profile id.
    pub tails: Vec<(TailKey, u32)>,
    /// `CLASS_EXES`: helper executables and login shells (`class_exe`).
    pub class_exes: Vec<(ExeKey, u32)>,
    /// `PROFILE_FLAGS`, indexed by profile id (`profile_flags`).
    pub profile_flags: Vec<u32>,
}

pub struct SensorOptions {
    pub ring_buffer_bytes: u32,
    pub tracked_max: u32,
    /// bpffs directory for pinned maps (`maps/`) and links (`links/`).
    pub pin_dir: PathBuf,
    /// Where the link keeper is recorded (see `keeper`).
    pub state_dir: PathBuf,
    /// Pin links (else, or when pinning fails, a keeper holds them).
    pub pin_links: bool,
}

/// What the sensor found pinned and did with it (shown by `mcpwatch status`).
#[derive(Clone, Debug, Serialize)]
pub struct PinReport {
    pub dir: PathBuf,
    /// Build id of the programs running now (hash of the eBPF object).
    pub generation: String,
    /// Programs of this build were already attached (daemon restart): taken over,
    /// not attached again.
    pub reused_programs: bool,
    /// Maps that already existed and were taken over (state kept).
    pub reused_maps: Vec<&'static str>,
    /// Pins of an older build that were replaced (after the new programs attached).
    pub replaced: Vec<String>,
    /// Pinned maps with a layout this build cannot use, removed and recreated.
    pub incompatible: Vec<String>,
    /// How the links outlive the daemon: `pinned` (bpffs) or `keeper` (a keeper
    /// process holds them because this kernel refuses to pin links).
    pub links_held_by: String,
    /// Why links are not pinned, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin_refused: Option<String>,
    /// The link keeper's pid, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keeper_pid: Option<u32>,
}

pub struct Sensor {
    ebpf: Ebpf,
    tracked: HashMap<MapData, u32, TaskState>,
    host_exes: HashMap<MapData, ExeKey, u32>,
    host_paths: HashMap<MapData, PathKey, u32>,
    /// The hosts' own `HOST_PATHS` entries, which config entries never replace.
    host_script_keys: Vec<(PathKey, u32)>,
    stats: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    allow: HashMap<MapData, AllowKey, AllowValue>,
    secenv: HashMap<MapData, u64, SecEnvName>,
    deny: HashMap<MapData, ExeKey, u32>,
    modes: Array<MapData, u32>,
    holds: Array<MapData, u64>,
    settings_map: Array<MapData, Settings>,
    pub settings: Settings,
    pub attachments: Vec<Attachment>,
    pub lsm: LsmSupport,
    pub pins: PinReport,
    /// Our own references to the links (attached here, or copied from a keeper).
    links: Vec<FdLink>,
    held: Vec<std::os::fd::OwnedFd>,
    /// Load time of each program this daemon loaded (name, ms).
    load_ms: Vec<(&'static str, f64)>,
    /// Where a rejected program's verifier log goes.
    state_dir: PathBuf,
}

/// Attached only where the kernel accepts BPF LSM programs.
const LSM_PROGRAM: (&str, &str) = ("bprm_check_security", "lsm/bprm_check_security");

const PROGRAMS: [(&str, &str); 5] = [
    ("sched_process_fork", "sched/sched_process_fork"),
    ("sched_process_exec", "sched/sched_process_exec"),
    ("sched_process_exit", "sched/sched_process_exit"),
    ("signal_generate", "signal/signal_generate"),
    // Kills a held launch resumed behind the daemon's back, at its first instruction.
    ("page_fault_user", "exceptions/page_fault_user"),
];

/// `uname -r`.
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_owned())
}

/// Raw fd of the ring buffer, for readiness polling.
pub fn ring_fd(rb: &RingBuf<MapData>) -> i32 {
    rb.as_raw_fd()
}

/// Whether bpffs is mounted where pins would go.
pub fn bpffs_mounted() -> bool {
    Path::new("/sys/fs/bpf").exists()
        && std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("bpf"))
        })
}
