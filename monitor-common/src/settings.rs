//! State handed to the programs: `SETTINGS` (shared with the daemon, pinned) and
//! the kernel layout facts in `CONFIG`.

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
    /// Non-zero when `HOST_NAMES` has entries (skip the filename's last component
    /// otherwise).
    pub host_names_enabled: u32,
}

impl KernelConfig {
    /// Marks a field this kernel does not have (e.g. `group_dead` on 6.1).
    pub const ABSENT: u32 = u32::MAX;
}

// Layout pins: a change here is a wire-format change on both sides.
const _: () = assert!(core::mem::size_of::<Settings>() == 64);
const _: () = assert!(core::mem::size_of::<KernelConfig>() == 55 * 4);
