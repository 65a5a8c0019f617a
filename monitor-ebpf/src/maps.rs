//! Every map of the sensor, in one place. Sizes here are defaults: the daemon can
//! override `max_entries` at load time (e.g. the ring buffer size from its config).
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    stat, AllowKey, AllowValue, EnvFilter, EnvScan, ExeKey, ExecEvent, NameKey, PathKey,
    SecEnvName, Settings, TailKey, TaskState, MODES_MAX, SECENV_FAMILIES_MAX, SECENV_MAX,
};

/// `BPF_F_NO_PREALLOC`: `ALLOW` values are 5 KiB; allocate only what is used.
const NO_PREALLOC: u32 = 1;

/// Approved commands (consent records the daemon verified), see `AllowKey`.
#[map(name = "ALLOW")]
pub static ALLOW: HashMap<AllowKey, AllowValue> = HashMap::with_max_entries(4096, NO_PREALLOC);

/// Executables denied inside every session (managed policy), value: deny id.
#[map(name = "DENY_EXES")]
pub static DENY_EXES: HashMap<ExeKey, u32> = HashMap::with_max_entries(1024, 0);

/// Mode per host profile id (`monitor_common::mode`).
#[map(name = "MODES")]
pub static MODES: Array<u32> = Array::with_max_entries(MODES_MAX, 0);

/// `SETTINGS[0]`: SipHash key and the daemon's tgid.
#[map(name = "SETTINGS")]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Security-relevant env names by `secenv_name_hash` of the whole name.
#[map(name = "SECENV_NAMES")]
pub static SECENV_NAMES: HashMap<u64, SecEnvName> = HashMap::with_max_entries(SECENV_MAX as u32, 0);

/// Families of security-relevant names (`LD_…`) by `secenv_family_key`: an entry
/// of a family whose exact name is not in `SECENV_NAMES` spoils the scan.
#[map(name = "SECENV_FAMILIES")]
pub static SECENV_FAMILIES: HashMap<u64, u32> = HashMap::with_max_entries(SECENV_FAMILIES_MAX, 0);

/// `SECENV_FILTER[0]`: the keyed filter of the names' first three bytes.
#[map(name = "SECENV_FILTER")]
pub static SECENV_FILTER: Array<EnvFilter> = Array::with_max_entries(1, 0);

/// What the environment scan of the current exec found (per CPU: map memory, so
/// the scan's steps see unknown values and the verifier's states converge).
#[map(name = "ENVSCAN")]
pub static ENVSCAN: PerCpuArray<EnvScan> = PerCpuArray::with_max_entries(1, 0);

/// Executables that classify a would-be launch (`monitor_common::class_exe`): the
/// hosts' helper executables and the login shells of /etc/shells.
#[map(name = "CLASS_EXES")]
pub static CLASS_EXES: HashMap<ExeKey, u32> = HashMap::with_max_entries(1024, 0);

/// Per host profile id: `monitor_common::profile_flags`.
#[map(name = "PROFILE_FLAGS")]
pub static PROFILE_FLAGS: Array<u32> = Array::with_max_entries(MODES_MAX, 0);

/// Tracked processes, keyed by tgid: hosts and everything below them.
/// Hold counters (`holds::*`), so the page-fault hook costs nothing while no
/// launch is held.
#[map(name = "HOLDS")]
pub static HOLDS: Array<u64> = Array::with_max_entries(monitor_common::holds::COUNT, 0);

/// Atomically add one to `HOLDS[index]`.
#[inline(always)]
pub fn hold_count(index: u32) {
    if let Some(p) = HOLDS.get_ptr_mut(index) {
        // SAFETY: a map value pointer, 8-byte aligned; other CPUs add atomically too
        // (BPF_ATOMIC add; the target has no `AtomicU64::fetch_add`).
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p, 1,
            )
        };
    }
}

/// Children of hosts in enforce or ask mode that `TRACKED` had no room for: killed
/// at their first fault or exec (fail closed). Entries live only until then.
#[map(name = "DOOMED")]
pub static DOOMED: HashMap<u32, u32> = HashMap::with_max_entries(4096, 0);

/// Whether some child may be doomed right now.
#[inline(always)]
pub fn any_doomed() -> bool {
    use monitor_common::holds;
    let get = |i| HOLDS.get(i).copied().unwrap_or(0);
    get(holds::DOOMED) != get(holds::DOOMED_DONE)
}

/// Kill the current process if it is doomed. True when it was.
#[inline(always)]
pub fn kill_if_doomed(tgid: u32) -> bool {
    // SAFETY: plain map lookup.
    if unsafe { DOOMED.get(&tgid) }.is_none() || DOOMED.remove(&tgid).is_err() {
        return false;
    }
    hold_count(monitor_common::holds::DOOMED_DONE);
    count(monitor_common::stat::DOOMED_KILLED);
    // SAFETY: signals the current process.
    unsafe { aya_ebpf::helpers::generated::bpf_send_signal(9) };
    true
}

/// Whether some launch may be held right now.
#[inline(always)]
pub fn any_held() -> bool {
    use monitor_common::holds;
    let get = |i| HOLDS.get(i).copied().unwrap_or(0);
    get(holds::HELD) != get(holds::KERNEL_RELEASED).wrapping_add(get(holds::DAEMON_RELEASED))
}

#[map(name = "TRACKED")]
pub static TRACKED: HashMap<u32, TaskState> = HashMap::with_max_entries(65_536, 0);

/// Host profiles by executable identity: value is the profile id.
#[map(name = "HOST_EXES")]
pub static HOST_EXES: HashMap<ExeKey, u32> = HashMap::with_max_entries(4096, 0);

/// Host profiles by exec filename (for `#!` hosts): value is the profile id.
#[map(name = "HOST_PATHS")]
pub static HOST_PATHS: HashMap<PathKey, u32> = HashMap::with_max_entries(1024, 0);

/// Host profiles by the last component of the exec filename (`claude`, `gemini`):
/// a process not yet tracked becomes a host by the name it is executed under,
/// wherever it is installed. Never consulted for a host's own children.
#[map(name = "HOST_NAMES")]
pub static HOST_NAMES: HashMap<NameKey, u32> = HashMap::with_max_entries(256, 0);

/// The executable of a host recognised by name, by the host's tgid, when the
/// executable's own file name is a name of that host (`cursor` in an `AppImage`
/// mount): the host's children re-executing it (Electron's `--type=` processes)
/// are the host, as `HOST_EXES` entries are. LRU: an entry outlives its host only
/// until the slot is needed, and a new host of the same tgid overwrites it.
#[map(name = "HOST_ROOT_EXE")]
pub static HOST_ROOT_EXE: LruHashMap<u32, ExeKey> = LruHashMap::with_max_entries(4096, 0);

/// The exec filename a host recognised by name was started under, by the host's
/// tgid: a launch by that host of an interpreter on exactly this script (`node
/// --max-old-space-size=… /x/bin/gemini`, Gemini CLI relaunching itself) is the
/// host, as for `HOST_PATHS` scripts. Per host, so a script some other host (one an
/// agent started through a broker) was started under is nothing to this one. Set
/// or cleared at every host detection, removed at the host's exit.
#[map(name = "HOST_SELF")]
pub static HOST_SELF: LruHashMap<u32, PathKey> = LruHashMap::with_max_entries(4096, 0);

/// Host profiles by the last `SCRIPT_TAIL` bytes of a package script's path
/// (`…/gemini-cli/bundle/gemini.js`): an interpreter named in `HOST_NAMES` with
/// `NAME_INTERPRETER` on such a script, by a process not tracked yet, is a host.
#[map(name = "HOST_SCRIPT_TAILS")]
pub static HOST_SCRIPT_TAILS: HashMap<TailKey, u32> = HashMap::with_max_entries(256, 0);

/// Events to userspace.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Counters, indexed by `monitor_common::stat::*`.
#[map(name = "STATS")]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Where an exec event is built before it is copied into the ring buffer: it is too
/// large for the 512-byte BPF stack.
#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Key buffer for `HOST_PATHS` lookups (256 bytes, also too large for the stack).
#[map(name = "KEYBUF")]
pub static KEYBUF: PerCpuArray<PathKey> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn count(index: u32) {
    if let Some(p) = STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}
