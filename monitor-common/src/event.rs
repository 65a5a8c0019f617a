//! The events the programs send through the ring buffer, and the per-process
//! tracking state: capture sizes, kinds, roles, flags, `STATS` and `HOLDS` slots,
//! and the layouts of the event header and the exec event.

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
/// Key size of `HOST_NAMES`: a host's name (the last component of the exec
/// filename, `claude`) is at most `HOST_NAME_KEY - 1` bytes.
pub const HOST_NAME_KEY: usize = 32;

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
    /// A host recognised by the name it was executed under (`HOST_NAMES`): its
    /// own later execs in place (`env` → `node`, `codex.js` → the native binary)
    /// are the host going on, not launches; one into a login shell means the name
    /// was a shell wrapper's, and tracking ends. Never inherited by forks.
    pub const NAMED_HOST: u32 = 1 << 2;
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
    /// With `HOST_DETECTED`: recognised by the last component of the exec filename
    /// (`HOST_NAMES`), not by executable identity or script path.
    pub const HOST_BY_NAME: u32 = 1 << 27;
    /// A host recognised by name executed a login shell in place: it was a shell
    /// wrapper (`#!/usr/bin/env bash` shim), not the host. No longer tracked.
    pub const HOST_DROPPED: u32 = 1 << 28;
    /// An untracked process executed a program that some MCP config file names as
    /// a server's command (`HOST_PATHS` value [`ENTRY_MARK`](crate::ENTRY_MARK)):
    /// reported, not tracked, for the daemon to compare with the entries' argv (a
    /// launch by a host mcpwatch has no profile for).
    pub const UNKNOWN_HOST: u32 = 1 << 29;
    /// With `HOST_DETECTED`: an interpreter (`node`) on a script whose path ends
    /// like a profile's package script (`HOST_SCRIPT_TAILS`): pnpm's shims, `node
    /// …/cli.js`.
    pub const HOST_BY_PACKAGE: u32 = 1 << 30;
}

/// `HOST_PATHS` value of a config entry's command (not a host's script).
pub const ENTRY_MARK: u32 = u32::MAX;
/// `HOST_NAMES` value of an interpreter's name (`node`, `bun`): the host is then
/// the script its argv[1] names, by that path's last `SCRIPT_TAIL` bytes
/// (`HOST_SCRIPT_TAILS`).
pub const NAME_INTERPRETER: u32 = u32::MAX;
/// Bytes of a package script's path the kernel compares (`HOST_SCRIPT_TAILS`).
pub const SCRIPT_TAIL: usize = 32;

/// `HOST_SCRIPT_TAILS` key: the last `SCRIPT_TAIL` bytes of a script's path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TailKey {
    pub tail: [u8; SCRIPT_TAIL],
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

/// `HOST_NAMES` key: the last component of an exec filename, NUL-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameKey {
    pub name: [u8; HOST_NAME_KEY],
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

// Layout pins: a change here is a wire-format change on both sides.
const _: () = assert!(core::mem::size_of::<TaskState>() == 24);
const _: () = assert!(core::mem::size_of::<ExeKey>() == 16);
const _: () = assert!(core::mem::size_of::<PathKey>() == HOST_PATH_KEY);
const _: () = assert!(core::mem::size_of::<NameKey>() == HOST_NAME_KEY);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 160);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == EXEC_EVENT_MAX);
// The dentry walk masks offsets with PATH_CAP - 1.
const _: () = assert!(PATH_CAP.is_power_of_two());
const _: () = assert!(ARGV_CAP.is_power_of_two() && ENV_CAP.is_power_of_two());
// Per-CPU array values are limited to 32 KiB (PCPU_MIN_UNIT_SIZE).
const _: () = assert!(EXEC_EVENT_MAX <= 32 * 1024);
