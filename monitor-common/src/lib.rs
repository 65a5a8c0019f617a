//! Wire types shared by the mcpwatch eBPF programs (`monitor-ebpf`) and the daemon.
//!
//! Everything here is `#[repr(C)]` with fixed-width integers and explicit padding, so
//! the kernel and userspace agree on the layout byte for byte; the const asserts at the
//! bottom pin the sizes. No `bool`, `usize`, pointers or enums cross the boundary: a
//! `kind: u32` is converted with `TryFrom` in userspace decode.
#![no_std]

/// Map and global names, used by both sides so a rename cannot split them.
pub mod names {
    pub const TRACKED: &str = "TRACKED";
    pub const HOST_EXES: &str = "HOST_EXES";
    pub const HOST_PATHS: &str = "HOST_PATHS";
    pub const EVENTS: &str = "EVENTS";
    pub const STATS: &str = "STATS";
    pub const SCRATCH: &str = "SCRATCH";
    pub const CONFIG: &str = "CONFIG";
    pub const ALLOW: &str = "ALLOW";
    pub const DENY_EXES: &str = "DENY_EXES";
    pub const MODES: &str = "MODES";
    pub const SETTINGS: &str = "SETTINGS";
    pub const SECENV_NAMES: &str = "SECENV_NAMES";
    pub const CLASS_EXES: &str = "CLASS_EXES";
    pub const PROFILE_FLAGS: &str = "PROFILE_FLAGS";
    pub const SECENV_FILTER: &str = "SECENV_FILTER";
    pub const ENVSCAN: &str = "ENVSCAN";
    pub const HOLDS: &str = "HOLDS";
    pub const DOOMED: &str = "DOOMED";
    pub const SECENV_FAMILIES: &str = "SECENV_FAMILIES";
    /// Every pinned map, in the order the daemon re-opens them.
    pub const PINNED_MAPS: &[&str] = &[
        TRACKED,
        HOST_EXES,
        HOST_PATHS,
        EVENTS,
        STATS,
        ALLOW,
        DENY_EXES,
        MODES,
        SETTINGS,
        SECENV_NAMES,
        CLASS_EXES,
        PROFILE_FLAGS,
        SECENV_FILTER,
        HOLDS,
        DOOMED,
        SECENV_FAMILIES,
    ];
}

/// Bytes of the exec filename (as passed to execve) captured in the kernel.
pub const FILENAME_CAP: usize = 256;
/// Bytes of a path rebuilt by walking dentries in the kernel (exe path, cwd).
pub const PATH_CAP: usize = 1024;
/// Longest single path component read during a dentry walk (`NAME_MAX` + NUL).
pub const PATH_COMPONENT_CAP: usize = 256;
/// Deepest path the kernel rebuilds; deeper paths are flagged truncated.
pub const PATH_DEPTH_MAX: u32 = 40;
/// Bytes of argv (NUL-separated, as the kernel laid it out) captured at exec.
pub const ARGV_CAP: usize = 4096;
/// Bytes of the environment block captured at exec.
pub const ENV_CAP: usize = 16384;
/// Longest host script path the kernel can match (key size of `HOST_PATHS`).
pub const HOST_PATH_KEY: usize = 256;

/// First and last argv index at which a host's `#!` script counts as "argv names the
/// host script": the host relaunching itself through its interpreter (`node
/// /path/cli.js`, `node --flag /path/cli.js`, `node --a --b /path/cli.js`), which is
/// the host again and not a launch. `argv[0]` (the interpreter) never counts.
pub const HOST_SCRIPT_ARG_FIRST: usize = 1;
/// See [`HOST_SCRIPT_ARG_FIRST`].
pub const HOST_SCRIPT_ARG_LAST: usize = 3;

/// The rule "argv names the host script": one of `argv[HOST_SCRIPT_ARG_FIRST..=
/// HOST_SCRIPT_ARG_LAST]` is, byte for byte, a script path `is_script` accepts (a
/// relative path or a prefix is another string, so it does not match), and no
/// argument up to it is `HOST_PATH_KEY - 1` bytes or longer: the kernel reads each
/// argument into a `HOST_PATH_KEY`-byte key, and one that fills it ends the walk
/// (its first bytes, or bytes inside it, must never pass for the script).
///
/// The one definition for userspace. The kernel's copy is
/// `monitor-ebpf/src/classify.rs` `argv_names_host_script`, which walks the captured
/// argv block with bounded reads and `HOST_PATHS` lookups; the daemon's tests run
/// both on the same cases (`hosts::tests::argv_names_host_script_*`).
pub fn argv_names_host_script<A: AsRef<[u8]>>(
    argv: &[A],
    mut is_script: impl FnMut(&[u8]) -> bool,
) -> bool {
    for (i, arg) in argv.iter().take(HOST_SCRIPT_ARG_LAST + 1).enumerate() {
        let arg = arg.as_ref();
        if arg.len() >= HOST_PATH_KEY - 1 {
            return false;
        }
        if i >= HOST_SCRIPT_ARG_FIRST && is_script(arg) {
            return true;
        }
    }
    false
}

/// Host profile ids the mode table (`MODES`) covers; ids past it run in monitor mode.
pub const MODES_MAX: u32 = 256;
/// Longest security-relevant env name the kernel matches, `=` included.
pub const SECENV_NAME_CAP: usize = 32;
/// Security-relevant env names the kernel knows (`SecEnvName::id` is below it).
pub const SECENV_MAX: usize = 64;
/// Bytes of approved `NAME=value` entries an `ALLOW` value carries (each entry
/// NUL-terminated and padded to whole words).
pub const ENVSET_CAP: usize = 1024;
/// Words of `ENVSET_CAP`.
pub const ENVSET_WORDS: usize = ENVSET_CAP / 8;
/// Entries of one exec's environment whose first bytes pass `SECENV_FILTER` that
/// the kernel examines; more and the exec cannot be approved (fail closed).
pub const ENV_CAND_MAX: usize = 64;
/// Families of security-relevant names (`LD_…`) the kernel knows (`SECENV_FAMILIES`).
pub const SECENV_FAMILIES_MAX: u32 = 16;
/// Bits of `SECENV_FILTER` (a power of two): `envfilter_bit` picks one.
pub const ENV_FILTER_BITS: u32 = 4096;

/// Per-host modes (`MODES` values).
pub mod mode {
    pub const MONITOR: u32 = 0;
    pub const ASK: u32 = 1;
    pub const ENFORCE: u32 = 2;
}

/// `AllowKey::uid` / `AllowKey::profile` wildcard: the record applies to any.
pub const ANY: u32 = u32::MAX;

/// Event kinds (`EventHeader::kind`).
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    /// A signal of interest to a tracked process (SIGCONT to a held one).
    pub const SIGNAL: u32 = 4;
    /// BPF LSM: an exec refused with EPERM (managed deny) before it happened.
    pub const LSM_DENY: u32 = 5;
}

/// Roles of a tracked process (`TaskState::role`, `EventHeader::role`).
pub mod role {
    /// Not tracked (only seen in `EventHeader::prev_role`).
    pub const NONE: u32 = 0;
    /// A process of an MCP host application (or a fork of one that has not exec'd).
    pub const HOST: u32 = 1;
    /// Inside a session: the subtree rooted at a launch.
    pub const SESSION: u32 = 2;
    /// A terminal inside a host (a session leader on a pty, e.g. VS Code's ptyHost
    /// shell) and everything below it: recorded, not checked against consent.
    pub const TERMINAL: u32 = 3;
    /// The host's login-shell environment probe (`$SHELL -l -i -c …`) and what it
    /// runs: recorded, not checked against consent.
    pub const HELPER: u32 = 4;
}

/// `CLASS_EXES` values: low byte the class, the rest the host profile id.
pub mod class_exe {
    /// One of a host's own helper executables (`chrome-sandbox`, crash handler):
    /// not a launch, the process stays in the host role. Profile in bits 8..32.
    pub const HELPER: u32 = 1;
    /// A login shell from /etc/shells: a launch of it may be the env probe.
    pub const SHELL: u32 = 2;
    pub const MASK: u32 = 0xff;
}

/// `PROFILE_FLAGS` values, per host profile id.
pub mod profile_flags {
    /// The host runs `$SHELL -l -i -c …` to read the login environment.
    pub const ENV_PROBE: u32 = 1;
}

/// `TaskState::flags`.
pub mod task_flags {
    /// Set by `mcpwatch run` tracking itself: its next exec is the host's own image,
    /// not a launch. Cleared by that exec, never inherited by forks.
    pub const FIRST_EXEC_IS_HOST: u32 = 1;
    /// Stopped at exec by ask mode, waiting for the user (cleared by the daemon).
    pub const HELD: u32 = 1 << 1;
}

/// `EventHeader::flags`.
pub mod event_flags {
    pub const ARGV_TRUNCATED: u32 = 1 << 0;
    pub const ENV_TRUNCATED: u32 = 1 << 1;
    pub const CWD_TRUNCATED: u32 = 1 << 2;
    pub const EXE_PATH_TRUNCATED: u32 = 1 << 3;
    pub const FILENAME_TRUNCATED: u32 = 1 << 4;
    /// This exec made an untracked process a host (profile match in the kernel).
    pub const HOST_DETECTED: u32 = 1 << 5;
    /// This exec was the first exec of a process tracked by `mcpwatch run`.
    pub const HOST_RUN_EXEC: u32 = 1 << 6;
    /// This exec by a host process matched a host profile (host re-exec, helper).
    pub const HOST_REEXEC: u32 = 1 << 7;
    pub const ARGV_READ_FAILED: u32 = 1 << 8;
    pub const ENV_READ_FAILED: u32 = 1 << 9;
    pub const PATH_READ_FAILED: u32 = 1 << 10;
    /// Exit: this was the last thread of the process (`group_dead`).
    pub const GROUP_DEAD: u32 = 1 << 11;
    /// This exec by a host process started a new session (a launch).
    pub const LAUNCH: u32 = 1 << 12;
    /// An `ALLOW` entry matched: `record_id` names it.
    pub const ALLOWED: u32 = 1 << 13;
    /// A launch with no matching `ALLOW` entry.
    pub const UNAPPROVED: u32 = 1 << 14;
    /// The executable is in `DENY_EXES` (managed deny).
    pub const DENIED: u32 = 1 << 15;
    /// SIGSTOP sent (ask mode): the process waits for the user.
    pub const HELD: u32 = 1 << 16;
    /// SIGKILL sent: the new image never ran.
    pub const KILLED: u32 = 1 << 17;
    /// `bpf_send_signal` failed: the verdict could not be carried out.
    pub const SIGNAL_FAILED: u32 = 1 << 18;
    /// A `once` entry matched and was consumed.
    pub const ONCE_CONSUMED: u32 = 1 << 19;
    /// The kernel could not check the environment (too many security-relevant
    /// entries or a truncated capture): never a match.
    pub const ENV_UNCHECKED: u32 = 1 << 20;
    /// Ask mode with no daemon to ask: degraded to enforce.
    pub const ASK_DEGRADED: u32 = 1 << 21;
    /// Signal event: SIGCONT to a held process from someone other than the daemon.
    pub const HOLD_BYPASS: u32 = 1 << 22;
    /// A host process executed one of the host's helper executables, or the
    /// login-shell environment probe: not a launch.
    pub const HELPER: u32 = 1 << 23;
    /// A host process started a terminal (session leader on a pty): not a launch.
    pub const TERMINAL: u32 = 1 << 24;
    /// The launch was being traced (ptrace) at exec: a tracer can make it run
    /// anything, so no record applies.
    pub const TRACED: u32 = 1 << 25;
    /// Allowed by a record whose script the daemon verifies first: the launch is
    /// held (with `HELD`) until it did.
    pub const VERIFY: u32 = 1 << 26;
}

/// `mode` of a `SIGNAL` event that reports a held launch resumed behind the
/// daemon's back, caught at its first user-mode instruction (not a signal
/// number: above 64).
pub const RESUMED_RUNNING: u32 = 0x100;

/// `HOLDS` slots. A held launch's first user-mode instruction faults (its image
/// was never touched), and `page_fault_user` kills a held process there; that hook
/// looks anything up only while `HELD != KERNEL_RELEASED + DAEMON_RELEASED`.
pub mod holds {
    /// Holds begun (kernel, atomic).
    pub const HELD: u32 = 0;
    /// Holds ended in the kernel: killed as it resumed, or exited while held.
    pub const KERNEL_RELEASED: u32 = 1;
    /// Holds the daemon ended (cleared `HELD` of an entry that had it); written
    /// by the daemon only.
    pub const DAEMON_RELEASED: u32 = 2;
    /// Children doomed at fork (kernel, atomic): `TRACKED` was full under a host
    /// in enforce or ask mode, so the child is killed before it can run anything.
    pub const DOOMED: u32 = 3;
    /// Doomed children killed or gone (kernel, atomic).
    pub const DOOMED_DONE: u32 = 4;
    pub const COUNT: u32 = 8;
}

/// Indices into the per-CPU `STATS` array.
pub mod stat {
    /// `bpf_ringbuf_output` failed: the event was lost in the kernel.
    pub const RINGBUF_DROPS: u32 = 0;
    /// `TRACKED` insert failed (map full): a process escaped tracking.
    pub const TRACKED_FULL: u32 = 1;
    /// Exec events attempted (delivered or dropped; see `RINGBUF_DROPS`).
    pub const EXECS: u32 = 2;
    /// Fork events attempted.
    pub const FORKS: u32 = 3;
    /// Exit events attempted.
    pub const EXITS: u32 = 4;
    /// Hosts detected in the kernel by profile match.
    pub const HOSTS_DETECTED: u32 = 5;
    /// A kernel read (`probe_read`) failed while building an event.
    pub const READ_ERRORS: u32 = 6;
    /// Launches checked against `ALLOW`.
    pub const LAUNCHES: u32 = 7;
    /// Launches allowed by an `ALLOW` entry.
    pub const ALLOWED: u32 = 8;
    /// Processes killed at exec (enforce, deny, degraded ask).
    pub const KILLED: u32 = 9;
    /// Processes stopped at exec (ask).
    pub const HELD: u32 = 10;
    /// `bpf_send_signal` failures.
    pub const SIGNAL_FAILED: u32 = 11;
    /// SIGCONT sent to a held process by someone other than the daemon.
    pub const HOLD_BYPASS: u32 = 12;
    /// Execs refused with EPERM by the BPF LSM program.
    pub const LSM_DENIED: u32 = 13;
    /// Children killed because `TRACKED` was full under a host in enforce or ask
    /// mode (fail closed), and children that could not even be marked for that.
    pub const DOOMED_KILLED: u32 = 14;
    pub const DOOMED_FULL: u32 = 15;
    pub const COUNT: u32 = 16;
}

/// Per-process tracking state, `TRACKED` map value, keyed by tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    pub role: u32,
    pub flags: u32,
    /// tgid of the host process at the root of this tree.
    pub host_pid: u32,
    /// Host profile id (index into the daemon's profile table).
    pub host_profile: u32,
    /// tgid of the launch this process belongs to (0 for host processes).
    pub session_pid: u32,
    /// tgid of the process that forked this one (lineage, not the live parent).
    pub parent_pid: u32,
}

/// `HOST_EXES` key: an executable file as the kernel sees it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExeKey {
    /// `inode->i_sb->s_dev`: kernel encoding, `major << 20 | minor`.
    pub dev: u32,
    /// Explicit padding (always 0) so the key has no implicit padding bytes.
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
    pub ino: u64,
}

/// `HOST_PATHS` key: an exec filename, NUL-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathKey {
    pub path: [u8; HOST_PATH_KEY],
}

impl Default for PathKey {
    fn default() -> Self {
        Self {
            path: [0; HOST_PATH_KEY],
        }
    }
}

/// Fixed part of every event in the ring buffer. Exec events continue with an
/// [`ExecBody`]; fork and exit events are the header alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns`.
    pub ts_ns: u64,
    /// tgid (global pid namespace).
    pub pid: u32,
    /// Thread: exec: the thread that called execve (`old_pid`); fork: the forking
    /// thread; exit: the exiting thread.
    pub tid: u32,
    /// `real_parent->tgid` at the time of the event.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// pid in the process's own pid namespace, and that namespace's level / inode.
    pub ns_pid: u32,
    pub ns_level: u32,
    pub pidns_inum: u32,
    /// Tracking state after the event (for fork: the child's).
    pub role: u32,
    pub host_pid: u32,
    pub host_profile: u32,
    pub session_pid: u32,
    /// Role of the process before this exec (exec only).
    pub prev_role: u32,
    /// Fork: the new process's tgid.
    pub child_pid: u32,
    /// Exit: `task->exit_code` (wait status encoding).
    pub exit_code: u32,
    /// Exec: the executable actually mapped (`mm->exe_file`).
    pub exe_dev: u32,
    pub exe_ino: u64,
    pub exe_ctime_sec: i64,
    pub exe_ctime_nsec: u32,
    pub filename_len: u32,
    pub exe_path_len: u32,
    pub cwd_len: u32,
    /// Bytes of argv captured, and the real size (`arg_end - arg_start`).
    pub argv_len: u32,
    pub argv_total: u32,
    pub env_len: u32,
    pub env_total: u32,
    pub comm: [u8; 16],
    /// tgid of the process that forked this one, as the kernel recorded it at fork
    /// (`TaskState::parent_pid`; 0 for hosts and adopted roots). Lets userspace
    /// rebuild lineage exactly even when the fork event itself was lost.
    pub lineage_parent: u32,
    /// Exec: the host's mode (`mode::*`) the verdict was taken in. Signal event
    /// (`kind::SIGNAL`): the signal number.
    pub mode: u32,
    /// Exec: the consent record that allowed it (`ALLOWED`), else 0. Signal event:
    /// the tgid of the sender.
    pub record_id: u64,
}

/// Variable part of an exec event. Paths rebuilt by the dentry walk are stored
/// leaf-first, each component NUL-terminated (`bin\0usr\0`); userspace reverses them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecBody {
    pub filename: [u8; FILENAME_CAP],
    pub exe_path: [u8; PATH_CAP],
    pub cwd: [u8; PATH_CAP],
    pub argv: [u8; ARGV_CAP],
    pub env: [u8; ENV_CAP],
}

/// One exec event as built in the per-CPU scratch map, then copied to the ring
/// buffer up to the end of the captured environment.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    pub body: ExecBody,
}

pub const HEADER_SIZE: usize = core::mem::size_of::<EventHeader>();
pub const FILENAME_OFF: usize = HEADER_SIZE;
pub const EXE_PATH_OFF: usize = FILENAME_OFF + FILENAME_CAP;
pub const CWD_OFF: usize = EXE_PATH_OFF + PATH_CAP;
pub const ARGV_OFF: usize = CWD_OFF + PATH_CAP;
pub const ENV_OFF: usize = ARGV_OFF + ARGV_CAP;
pub const EXEC_EVENT_MAX: usize = ENV_OFF + ENV_CAP;

/// `ALLOW` key: one approved command as the kernel recomputes it at exec. The hash
/// only finds the entry; the kernel then compares the full argv (and cwd) bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllowKey {
    /// Executable identity (`mm->exe_file`), kernel `s_dev` encoding.
    pub dev: u32,
    /// Bytes of argv (NUL-separated, the last NUL included).
    pub argv_len: u32,
    pub ino: u64,
    pub ctime_sec: i64,
    /// ctime nanoseconds without the kernel's flag bits (`CTIME_NSEC_MASK`).
    pub ctime_nsec: u32,
    /// Whose launches: a uid, or `ANY`.
    pub uid: u32,
    /// Host profile id, or `ANY`.
    pub profile: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
    /// `sip::hash_bytes(SETTINGS key, argv)`.
    pub argv_hash: u64,
}

/// `AllowValue::flags`.
pub mod allow_flags {
    /// Consumed by its first match (scope `once`).
    pub const ONCE: u32 = 1;
    /// `cwd` must match too.
    pub const CWD: u32 = 2;
}

/// Set in `AllowValue::record_id` (ids stay below 2^49): the command runs a script
/// (a `#!` file or an interpreter's script argument) the interpreter opens by path
/// after exec, so the kernel holds the launch until the daemon verified that
/// script's content as the launching process sees it. In the id, not the flags, so
/// the kernel's match loop carries no extra state.
pub const RECORD_VERIFY: u64 = 1 << 62;

/// `ALLOW` value: the exact bytes the kernel compares before allowing.
///
/// The security-relevant environment is compared exactly too: `env_mask` names
/// (by `SecEnvName::id`) the entries that must be present, `env` holds them as
/// `NAME=value\0`, each padded with zeros to whole words, and every other
/// security-relevant name must be absent. `env_slot[id]` is the entry's byte offset
/// in `env` (low 16 bits) and its length with the NUL (high 16 bits);
/// `env_word_id[w]` is the id of the entry word `w` belongs to.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct AllowValue {
    pub record_id: u64,
    /// `bpf_ktime_get_boot_ns` after which the entry no longer applies; 0: never.
    pub expires_boot_ns: u64,
    /// Bit `id` set: the entry named by `SecEnvName::id` must be present, as in `env`.
    pub env_mask: u64,
    pub flags: u32,
    /// Bytes of `cwd` (leaf-first encoding, as the kernel's dentry walk writes it).
    pub cwd_len: u32,
    /// Words of `env` in use.
    pub env_words: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
    pub env_slot: [u32; SECENV_MAX],
    pub env_word_id: [u8; ENVSET_WORDS],
    pub argv: [u8; ARGV_CAP],
    pub cwd: [u8; PATH_CAP],
    pub env: [u8; ENVSET_CAP],
}

/// `SECENV_NAMES` value, keyed by `secenv_name_hash` of the name (`=` included):
/// one security-relevant env name, `=` included, compared in full after the lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecEnvName {
    pub len: u32,
    /// Index below `SECENV_MAX`: the bit of `AllowValue::env_mask`.
    pub id: u32,
    pub name: [u8; SECENV_NAME_CAP],
}

/// `SECENV_FILTER[0]`: bit `envfilter_bit(first 3 bytes of NAME=, key)` is set for
/// every security-relevant name, so the kernel's scan of an environment looks up
/// only the few entries whose first bytes pass (a keyed filter: who does not know
/// the key cannot aim entries at it; a false positive only costs a lookup).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvFilter {
    pub bits: [u64; (ENV_FILTER_BITS / 64) as usize],
}

impl Default for EnvFilter {
    fn default() -> Self {
        Self {
            bits: [0; (ENV_FILTER_BITS / 64) as usize],
        }
    }
}

/// Per-CPU scratch of the kernel's environment check (`ENVSCAN`): what the scan of
/// one exec's environment found.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvScan {
    /// Candidates in `cand` (entries whose first bytes pass the filter).
    pub ncand: u32,
    /// Non-zero: more than `ENV_CAND_MAX` candidates, or a security-relevant name
    /// present twice: nothing can match.
    pub spoiled: u32,
    /// Bit `id` set: that security-relevant entry is present, at `pos[id]`.
    pub found: u64,
    pub cand: [u32; ENV_CAND_MAX],
    pub pos: [u32; SECENV_MAX],
    /// Lookup keys of the entry being examined (map memory, not stack).
    pub keys: [u64; 4],
}

/// Bit of `SECENV_FILTER` for an env entry whose first three bytes, little-endian,
/// are `first3` (bytes past the entry's end read as 0), under the filter key.
#[inline(always)]
#[must_use]
#[allow(clippy::inline_always, reason = "the eBPF side needs it inlined")]
pub const fn envfilter_bit(first3: u32, key: u64) -> u32 {
    ((((first3 & 0x00ff_ffff) as u64) ^ key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as u32
}

/// `SETTINGS[0]`: state shared by the daemon and the programs; lives in a pinned
/// map so it survives a daemon restart.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `SipHash` key, generated once by the daemon.
    pub sip_k0: u64,
    pub sip_k1: u64,
    /// tgid of the running daemon; 0 while none runs (cleared in the kernel when
    /// the daemon exits, however it dies). Ask mode needs it to hold a launch.
    pub daemon_tgid: u32,
    /// Non-zero once the daemon loaded the enforcement maps (`ALLOW`, `MODES`).
    pub enforcing: u32,
    /// Bit `n` set: some `#!` host's exec filename is `n - 1` bytes long (`n` is
    /// what the exec tracepoint's `__data_loc` reports, NUL included). An
    /// untracked exec reads its filename only when its length is here.
    pub host_path_lens: [u64; 4],
    /// The mode of a host id the mode table does not cover (`mode::*`): the
    /// configured default, never a weaker one.
    pub default_mode: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
}

/// SipHash-2-4, streamed byte by byte or word by word, identical on both sides.
#[allow(
    clippy::inline_always,
    reason = "the eBPF side needs every step inlined (no calls across the verifier's frames)"
)]
pub mod sip {
    #[derive(Clone, Copy)]
    pub struct Sip {
        v0: u64,
        v1: u64,
        v2: u64,
        v3: u64,
        tail: u64,
        ntail: u32,
        len: u64,
    }

    impl Sip {
        #[inline(always)]
        #[must_use]
        pub const fn new(k0: u64, k1: u64) -> Self {
            Self {
                v0: k0 ^ 0x736f_6d65_7073_6575,
                v1: k1 ^ 0x646f_7261_6e64_6f6d,
                v2: k0 ^ 0x6c79_6765_6e65_7261,
                v3: k1 ^ 0x7465_6462_7974_6573,
                tail: 0,
                ntail: 0,
                len: 0,
            }
        }

        #[inline(always)]
        fn round(&mut self) {
            self.v0 = self.v0.wrapping_add(self.v1);
            self.v1 = self.v1.rotate_left(13) ^ self.v0;
            self.v0 = self.v0.rotate_left(32);
            self.v2 = self.v2.wrapping_add(self.v3);
            self.v3 = self.v3.rotate_left(16) ^ self.v2;
            self.v0 = self.v0.wrapping_add(self.v3);
            self.v3 = self.v3.rotate_left(21) ^ self.v0;
            self.v2 = self.v2.wrapping_add(self.v1);
            self.v1 = self.v1.rotate_left(17) ^ self.v2;
            self.v2 = self.v2.rotate_left(32);
        }

        #[inline(always)]
        fn compress(&mut self, m: u64) {
            self.v3 ^= m;
            self.round();
            self.round();
            self.v0 ^= m;
        }

        /// Eight bytes at once (little-endian); only when no partial word is
        /// pending, which holds while whole words are written from the start.
        #[inline(always)]
        pub fn write_word(&mut self, w: u64) {
            self.compress(w);
            self.len += 8;
        }

        /// The last `n` (1..=7) bytes of the input as a little-endian word with the
        /// bytes past them zero; only when no partial word is pending.
        #[inline(always)]
        pub fn write_tail(&mut self, w: u64, n: u32) {
            self.tail = w;
            self.ntail = n;
            self.len += u64::from(n);
        }

        #[inline(always)]
        pub fn write_u8(&mut self, b: u8) {
            self.tail |= u64::from(b) << (8 * (self.ntail & 7));
            self.ntail += 1;
            self.len += 1;
            if self.ntail == 8 {
                let t = self.tail;
                self.compress(t);
                self.tail = 0;
                self.ntail = 0;
            }
        }

        #[inline(always)]
        #[must_use]
        pub fn finish(mut self) -> u64 {
            let b = (self.len << 56) | self.tail;
            self.compress(b);
            self.v2 ^= 0xff;
            self.round();
            self.round();
            self.round();
            self.round();
            self.v0 ^ self.v1 ^ self.v2 ^ self.v3
        }
    }

    /// SipHash-2-4 of `data` under (k0, k1).
    #[must_use]
    pub fn hash_bytes(k0: u64, k1: u64, data: &[u8]) -> u64 {
        let mut s = Sip::new(k0, k1);
        for &b in data {
            s.write_u8(b);
        }
        s.finish()
    }
}

/// Lookup key of `SECENV_NAMES` for an env entry (or a name with its `=`): the
/// words of its name, `=` included (bytes after it zeroed; at most
/// `SECENV_NAME_CAP` bytes), folded by `envscan::name_mix`. The kernel computes the
/// same word by word (`envscan::name_key` of each); a byte-level reading.
#[must_use]
pub fn secenv_name_hash(entry: &[u8]) -> u64 {
    let end = entry
        .iter()
        .take(SECENV_NAME_CAP)
        .position(|&b| b == b'=' || b == 0)
        .map_or(entry.len().min(SECENV_NAME_CAP), |i| i + 1);
    let mut h = 0u64;
    for chunk in entry[..end].chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = envscan::name_mix(h, u64::from_le_bytes(w));
    }
    h
}

/// Key of `SECENV_FAMILIES` for a family of names (`LD_`): its prefix (3, 4 or 8
/// bytes), little-endian, lowercased when the family ignores case (then it must be
/// 8 bytes long: the kernel folds only its 8-byte lookup).
#[must_use]
pub fn secenv_family_key(prefix: &[u8], fold: bool) -> u64 {
    let mut w = [0u8; 8];
    let n = prefix.len().min(8);
    w[..n].copy_from_slice(&prefix[..n]);
    let w = u64::from_le_bytes(w);
    if fold {
        envscan::fold(w)
    } else {
        w
    }
}

/// Word-at-a-time steps of the kernel's environment scan, shared with userspace so
/// they are unit-tested against a byte-by-byte reading. A word is 8 bytes of the
/// block, little-endian (byte `k` in bits `8k..8k+8`); a *mark* is bit `8k + 7`.
#[allow(
    clippy::inline_always,
    reason = "the eBPF side needs every step inlined (no calls across the verifier's frames)"
)]
pub mod envscan {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;

    /// Marks of the non-zero bytes of `w`. Exact: no carry crosses a byte.
    #[inline(always)]
    #[must_use]
    pub const fn nonzero(w: u64) -> u64 {
        (((w & LOW7).wrapping_add(LOW7)) | w) & HIGH
    }

    /// Marks of the bytes of `w` that start an entry: non-zero, and the byte before
    /// is zero (for byte 0: `prev_zero`, the last byte of the previous word is zero,
    /// or this is the start of the block). At most four per word.
    #[inline(always)]
    #[must_use]
    pub const fn starts(w: u64, prev_zero: bool) -> u64 {
        let nz = nonzero(w);
        let z = !nz & HIGH;
        nz & ((z << 8) | if prev_zero { 0x80 } else { 0 })
    }

    /// Byte index (0..8) of the single mark in `mark`.
    #[inline(always)]
    #[must_use]
    pub const fn mark_byte(mark: u64) -> u32 {
        ((mark >> 7).wrapping_mul(0x0001_0203_0405_0607) >> 56) as u32
    }

    /// The 8 bytes that start at byte `k` (0..8) of `w` and continue into `next`.
    #[inline(always)]
    #[must_use]
    pub const fn window(w: u64, next: u64, k: u32) -> u64 {
        let k = k & 7;
        if k == 0 {
            w
        } else {
            (w >> (8 * k)) | (next << (64 - 8 * k))
        }
    }

    /// `w` with the bytes from `n` on zeroed (`n` >= 8: unchanged).
    #[inline(always)]
    #[must_use]
    pub const fn below(w: u64, n: u32) -> u64 {
        if n >= 8 {
            w
        } else {
            w & ((1u64 << (8 * n)) - 1)
        }
    }

    /// One word of an entry's name: the bytes after the first `=` or NUL zeroed
    /// (the stop byte itself kept).
    #[inline(always)]
    #[must_use]
    pub const fn name_key(w: u64) -> u64 {
        let stop = !nonzero(w) & HIGH | !nonzero(w ^ 0x3d3d_3d3d_3d3d_3d3d) & HIGH;
        if stop == 0 {
            return w;
        }
        let low = stop & stop.wrapping_neg();
        // Keep bytes 0..=k where k is the first stop byte.
        let keep = (low << 1).wrapping_sub(1);
        w & keep
    }

    /// Marks of the bytes of `w` that end a name: `=` or NUL.
    #[inline(always)]
    #[must_use]
    pub const fn stops(w: u64) -> u64 {
        (!nonzero(w) | !nonzero(w ^ 0x3d3d_3d3d_3d3d_3d3d)) & HIGH
    }

    /// One step of `secenv_name_hash`: fold the next word of a name into `h`.
    #[inline(always)]
    #[must_use]
    pub const fn name_mix(h: u64, w: u64) -> u64 {
        (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    }

    /// `w` with its ASCII capitals lowercased, every other byte unchanged. Exact:
    /// no carry crosses a byte.
    #[inline(always)]
    #[must_use]
    pub const fn fold(w: u64) -> u64 {
        let h = w & LOW7;
        // Bit 7 of a byte: its low 7 bits are >= 'A' (0x41), resp. > 'Z' (0x5a).
        let ge_a = h.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
        let gt_z = h.wrapping_add(0x2525_2525_2525_2525);
        let upper = ge_a & !gt_z & !w & HIGH;
        w | (upper >> 2)
    }
}

/// Kernel layout facts the programs need, resolved at startup from
/// `/sys/kernel/btf/vmlinux` and tracefs `format` files (Rust eBPF has no CO-RE),
/// handed over as the read-only global `CONFIG`. Every field is a byte offset unless
/// its name says otherwise. `ABSENT` marks a field this kernel does not have.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// Non-zero once userspace filled this in; programs do nothing before.
    pub ready: u32,
    // task_struct
    pub task_mm: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_exit_code: u32,
    pub task_fs: u32,
    pub task_thread_pid: u32,
    // mm_struct
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    pub mm_exe_file: u32,
    // file, path, inode, super_block
    pub file_f_inode: u32,
    pub file_f_path: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub sb_s_dev: u32,
    /// Offset of the ctime seconds (`i_ctime_sec`, or `tv_sec` of the timespec64).
    pub inode_ctime_sec: u32,
    /// Offset of the ctime nanoseconds.
    pub inode_ctime_nsec: u32,
    // fs_struct, dentry, qstr
    pub fs_pwd: u32,
    pub dentry_d_name: u32,
    pub dentry_d_parent: u32,
    pub qstr_name: u32,
    // struct mount / vfsmount
    /// Offset of `struct vfsmount mnt` inside `struct mount`.
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    pub vfsmount_mnt_root: u32,
    // struct pid / upid / pid_namespace
    pub pid_level: u32,
    pub pid_numbers: u32,
    /// Size in bytes of `struct upid` (stride of `pid.numbers[]`).
    pub upid_size: u32,
    pub upid_nr: u32,
    pub upid_ns: u32,
    /// Offset of `ns.inum` in `struct pid_namespace`.
    pub pidns_inum: u32,
    // tracepoint records (from tracefs format files)
    pub tp_exec_filename: u32,
    pub tp_exec_old_pid: u32,
    pub tp_fork_parent_pid: u32,
    pub tp_fork_child_pid: u32,
    pub tp_exit_group_dead: u32,
    /// Non-zero when `HOST_PATHS` has entries (skip the filename read otherwise).
    pub host_paths_enabled: u32,
    /// `linux_binprm.file` (BPF LSM `bprm_check_security`); `ABSENT` if unknown.
    pub bprm_file: u32,
    /// `linux_binprm.filename`.
    pub bprm_filename: u32,
    // Launch classification (helper, terminal): the session, the controlling tty
    // and what fd 0 is. `task->signal`, `signal->leader` (set by setsid),
    // `signal->tty`, `task->files->fdt->fd[0]->f_inode->{i_mode,i_rdev}`.
    pub task_signal: u32,
    pub signal_leader: u32,
    pub signal_tty: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub inode_i_mode: u32,
    pub inode_i_rdev: u32,
    /// `signal_struct.live.counter`: threads of the process not yet exiting. Where
    /// `sched_process_exit` has no `group_dead` (6.1, 6.12), the process is dead
    /// when it reads 0 there (`do_exit` decrements it before the tracepoint).
    pub signal_live: u32,
    /// `task_struct.ptrace`: non-zero while the task is traced.
    pub task_ptrace: u32,
    #[expect(
        clippy::pub_underscore_fields,
        reason = "explicit padding of a repr(C) wire type: public so both sides can build it, `_` because it carries nothing"
    )]
    pub _pad: u32,
}

impl KernelConfig {
    /// Marks a field this kernel does not have (e.g. `group_dead` on 6.1).
    pub const ABSENT: u32 = u32::MAX;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), made of integers and byte arrays, and have
    // no implicit padding (checked by the size asserts below).
    unsafe impl aya::Pod for super::TaskState {}
    unsafe impl aya::Pod for super::ExeKey {}
    unsafe impl aya::Pod for super::PathKey {}
    unsafe impl aya::Pod for super::KernelConfig {}
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::AllowKey {}
    unsafe impl aya::Pod for super::AllowValue {}
    unsafe impl aya::Pod for super::SecEnvName {}
    unsafe impl aya::Pod for super::EnvFilter {}
    unsafe impl aya::Pod for super::EnvScan {}
    unsafe impl aya::Pod for super::Settings {}
}

// Layout pins: a change here is a wire-format change on both sides.
const _: () = assert!(core::mem::size_of::<TaskState>() == 24);
const _: () = assert!(core::mem::size_of::<ExeKey>() == 16);
const _: () = assert!(core::mem::size_of::<PathKey>() == HOST_PATH_KEY);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 160);
const _: () = assert!(core::mem::size_of::<AllowKey>() == 48);
const _: () = assert!(
    core::mem::size_of::<AllowValue>()
        == 40 + 4 * SECENV_MAX + ENVSET_WORDS + ARGV_CAP + PATH_CAP + ENVSET_CAP
);
const _: () = assert!(core::mem::size_of::<SecEnvName>() == 8 + SECENV_NAME_CAP);
const _: () = assert!(core::mem::size_of::<EnvFilter>() == 512);
const _: () =
    assert!(core::mem::size_of::<EnvScan>() == 16 + 4 * ENV_CAND_MAX + 4 * SECENV_MAX + 32);
const _: () = assert!(core::mem::size_of::<Settings>() == 64);
const _: () = assert!(ENV_CAND_MAX.is_power_of_two() && SECENV_MAX == 64);
const _: () = assert!(SECENV_NAME_CAP.is_multiple_of(8));
const _: () = assert!(ENVSET_CAP <= 0xffff && ENVSET_WORDS <= 256);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == EXEC_EVENT_MAX);
const _: () = assert!(core::mem::size_of::<KernelConfig>() == 55 * 4);
// The dentry walk masks offsets with PATH_CAP - 1.
const _: () = assert!(PATH_CAP.is_power_of_two());
const _: () = assert!(ARGV_CAP.is_power_of_two() && ENV_CAP.is_power_of_two());
// Per-CPU array values are limited to 32 KiB (PCPU_MIN_UNIT_SIZE).
const _: () = assert!(EXEC_EVENT_MAX <= 32 * 1024);

#[cfg(test)]
mod tests {
    use super::argv_names_host_script;
    use super::sip::{hash_bytes, Sip};

    #[test]
    fn argv_names_host_script_looks_at_arguments_one_to_three() {
        let script: &[u8] = b"/p/cli.js";
        let names = |argv: &[&[u8]]| argv_names_host_script(argv, |a| a == script);
        assert!(names(&[b"node", script]));
        assert!(names(&[b"node", b"--flag", script]));
        assert!(names(&[b"node", b"--a", b"--b", script]));
        assert!(!names(&[b"node", b"--a", b"--b", b"--c", script]));
        assert!(!names(&[script, b"x"]));
        assert!(!names(&[b"node", b"cli.js"]));
        assert!(!names(&[b"node", b"/p/cli.jsx"]));
        assert!(!names(&[b"node", b"/p/cli"]));
        assert!(!names(&[b"node"]));
        assert!(!names(&[]));
    }

    /// The reference vectors of the `SipHash` paper (key 00..0f, message 00..len-1).
    #[test]
    fn siphash_reference_vectors() {
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: [u8; 15] = core::array::from_fn(|i| u8::try_from(i).expect("i < 15"));
        assert_eq!(hash_bytes(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        assert_eq!(hash_bytes(k0, k1, &msg[..1]), 0x74f8_39c5_93dc_67fd);
        assert_eq!(hash_bytes(k0, k1, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(hash_bytes(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn words_and_bytes_agree() {
        let data = b"node\0/srv/index.js\0--stdio\0";
        let mut s = Sip::new(7, 9);
        let words = data.len() / 8;
        for i in 0..words {
            let mut w = [0u8; 8];
            w.copy_from_slice(&data[i * 8..i * 8 + 8]);
            s.write_word(u64::from_le_bytes(w));
        }
        for &b in &data[words * 8..] {
            s.write_u8(b);
        }
        assert_eq!(s.finish(), hash_bytes(7, 9, data));
    }

    /// A deterministic byte source for the scan tests (no rand dependency here).
    fn bytes(seed: u64, n: usize, alphabet: &[u8]) -> [u8; 64] {
        let mut x = seed | 1;
        let mut out = [0u8; 64];
        for b in out.iter_mut().take(n) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = alphabet[usize::try_from(x % alphabet.len() as u64).unwrap_or(0)];
        }
        out
    }

    fn le(b: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    }

    #[test]
    fn word_steps_agree_with_bytes() {
        use super::envscan::{below, fold, mark_byte, name_key, nonzero, starts, stops, window};
        let alphabet = b"\0\0\0\x01\x7f\x80\xff\xc1\xda=AZaz@[`{";
        for seed in 0..20_000u64 {
            let buf = bytes(seed, 24, alphabet);
            let w = le(&buf[8..16]);
            let next = le(&buf[16..24]);
            let prev_zero = buf[7] == 0;
            let mut nz = 0u64;
            let mut st = 0u64;
            for k in 0..8 {
                if buf[8 + k] != 0 {
                    nz |= 0x80 << (8 * k);
                    if buf[7 + k] == 0 {
                        st |= 0x80 << (8 * k);
                    }
                }
            }
            assert_eq!(nonzero(w), nz, "{buf:?}");
            assert_eq!(starts(w, prev_zero), st, "{buf:?}");
            assert!(st.count_ones() <= 4);
            for k in 0..8u32 {
                let mark = 0x80u64 << (8 * k);
                assert_eq!(mark_byte(mark), k);
                let win = window(w, next, k);
                assert_eq!(win, le(&buf[8 + k as usize..16 + k as usize]));
                let wb = &buf[8 + k as usize..16 + k as usize];
                let keep = wb
                    .iter()
                    .position(|&b| b == b'=' || b == 0)
                    .map_or(8, |i| i + 1);
                assert_eq!(
                    name_key(win),
                    below(win, u32::try_from(keep).unwrap_or(8)),
                    "{wb:?}"
                );
                assert_eq!(below(w, k), le(&buf[8..8 + k as usize]));
            }
            assert_eq!(below(w, 8), w);
            let mut stop = 0u64;
            for k in 0..8 {
                if buf[8 + k] == 0 || buf[8 + k] == b'=' {
                    stop |= 0x80 << (8 * k);
                }
            }
            assert_eq!(stops(w), stop, "{buf:?}");
            assert_eq!(fold(w), le(&buf[8..16].to_ascii_lowercase()), "{buf:?}");
        }
    }

    /// The kernel's word-by-word name hash (enforce.rs `env_name_step`) over an
    /// entry anywhere in a block equals the byte-level `secenv_name_hash`.
    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::many_single_char_names,
        reason = "small test offsets"
    )]
    fn name_hash_word_by_word_matches_the_byte_reading() {
        use super::envscan::*;
        let alphabet = b"AB_=\0aZ";
        for seed in 0..20_000u64 {
            let body = bytes(seed, 64, alphabet);
            let off = (seed % 8) as usize;
            let mut block = [0u8; 88];
            block[..off].fill(0xee);
            block[off..off + body.len()].copy_from_slice(&body);
            let len = (off + body.len()) as u32;
            let word = |o: u32| le(&block[o as usize..o as usize + 8]);
            let at = |p: u32| window(word(p & !7), word((p & !7) + 8), p & 7);
            let p = off as u32;
            let rem = len - p;
            let mut h = 0u64;
            let mut j = 0u32;
            while j < (super::SECENV_NAME_CAP / 8) as u32 {
                let o = j * 8;
                if o >= rem {
                    break;
                }
                let w = below(at(p + o), rem - o);
                h = name_mix(h, name_key(w));
                if stops(w) != 0 {
                    break;
                }
                j += 1;
            }
            assert_eq!(h, super::secenv_name_hash(&body), "{body:?}");
        }
        assert_eq!(
            super::secenv_name_hash(b"LD_PRELOAD=/x.so"),
            super::secenv_name_hash(b"LD_PRELOAD=")
        );
        assert_ne!(
            super::secenv_name_hash(b"LD_PRELOAD=/x.so"),
            super::secenv_name_hash(b"LD_PRELOAF=")
        );
    }

    #[test]
    fn envfilter_bit_is_in_range_and_keyed() {
        let a = super::envfilter_bit(u32::from_le_bytes(*b"LD_\0"), 1);
        let b = super::envfilter_bit(u32::from_le_bytes(*b"LD_\0"), 2);
        assert!(a < super::ENV_FILTER_BITS && b < super::ENV_FILTER_BITS);
        assert_ne!(a, b);
        // Only the first three bytes count.
        assert_eq!(
            super::envfilter_bit(u32::from_le_bytes(*b"LD_P"), 1),
            super::envfilter_bit(u32::from_le_bytes(*b"LD_L"), 1)
        );
    }

    #[test]
    fn family_keys_fold_only_when_asked() {
        assert_eq!(
            super::secenv_family_key(b"LD_", false),
            u64::from_le_bytes(*b"LD_\0\0\0\0\0")
        );
        assert_eq!(
            super::secenv_family_key(b"NPM_CONF", true),
            u64::from_le_bytes(*b"npm_conf")
        );
    }
}
