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
pub const ENV_CAP: usize = 8192;
/// Longest host script path the kernel can match (key size of `HOST_PATHS`).
pub const HOST_PATH_KEY: usize = 256;

/// Event kinds (`EventHeader::kind`).
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
}

/// Roles of a tracked process (`TaskState::role`, `EventHeader::role`).
pub mod role {
    /// Not tracked (only seen in `EventHeader::prev_role`).
    pub const NONE: u32 = 0;
    /// A process of an MCP host application (or a fork of one that has not exec'd).
    pub const HOST: u32 = 1;
    /// Inside a session: the subtree rooted at a launch.
    pub const SESSION: u32 = 2;
}

/// `TaskState::flags`.
pub mod task_flags {
    /// Set by `mcpwatch run` tracking itself: its next exec is the host's own image,
    /// not a launch. Cleared by that exec, never inherited by forks.
    pub const FIRST_EXEC_IS_HOST: u32 = 1;
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
    pub const COUNT: u32 = 8;
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
    /// Explicit padding (keeps the header a multiple of 8 bytes).
    pub reserved: u32,
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
    /// Explicit padding, always 0 (part of the pinned size below).
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
}

// Layout pins: a change here is a wire-format change on both sides.
const _: () = assert!(core::mem::size_of::<TaskState>() == 24);
const _: () = assert!(core::mem::size_of::<ExeKey>() == 16);
const _: () = assert!(core::mem::size_of::<PathKey>() == HOST_PATH_KEY);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 152);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == EXEC_EVENT_MAX);
const _: () = assert!(core::mem::size_of::<KernelConfig>() == 43 * 4);
// The dentry walk masks offsets with PATH_CAP - 1.
const _: () = assert!(PATH_CAP.is_power_of_two());
const _: () = assert!(ARGV_CAP.is_power_of_two() && ENV_CAP.is_power_of_two());
// Per-CPU array values are limited to 32 KiB (PCPU_MIN_UNIT_SIZE).
const _: () = assert!(EXEC_EVENT_MAX <= 32 * 1024);
