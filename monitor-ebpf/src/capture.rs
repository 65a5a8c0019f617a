//! Capture shared by the programs: the header fields every event carries and the
//! copy of argv and the environment out of the new image's memory.
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
    generated::{bpf_ktime_get_boot_ns, bpf_probe_read_user},
};
use monitor_common::{EventHeader, TaskState};

use crate::{rd, rd_ptr};

/// Copy `[start, end)` of the current process's memory (argv or environment).
/// Returns (bytes captured, real size, event flag): `(truncated, failed)` says
/// which flag marks a capture cut at `cap` and which a failed read.
#[inline(always)]
pub(crate) fn read_user_block(
    mm: *const u8,
    start_off: u32,
    end_off: u32,
    dst: *mut u8,
    cap: u64,
    (truncated, failed): (u32, u32),
) -> (u32, u32, u32) {
    let Ok(start) = rd::<u64>(mm, start_off) else {
        return (0, 0, failed);
    };
    let Ok(end) = rd::<u64>(mm, end_off) else {
        return (0, 0, failed);
    };
    let total = end.saturating_sub(start);
    let mut len = total;
    if len > cap {
        len = cap;
    }
    // Keep the size provably within [0, cap] for the verifier.
    len &= (cap << 1) - 1;
    if len > cap {
        return (0, total as u32, failed);
    }
    let cut = if total > len { truncated } else { 0 };
    if len == 0 {
        return (0, total as u32, cut);
    }
    // SAFETY: dst has room for `cap` bytes; the helper validates the user address.
    let ret = unsafe { bpf_probe_read_user(dst.cast(), len as u32, start as *const _) };
    if ret < 0 {
        return (0, total as u32, failed);
    }
    (len as u32, total as u32, cut)
}

/// Fork and exit events are a bare header in a reserved (not zeroed) ring-buffer
/// slot: clear the exec-only fields so no stale bytes reach userspace.
#[inline(always)]
pub(crate) fn clear_exec_fields(h: &mut EventHeader) {
    h.exe_dev = 0;
    h.exe_ino = 0;
    h.exe_ctime_sec = 0;
    h.exe_ctime_nsec = 0;
    h.filename_len = 0;
    h.exe_path_len = 0;
    h.cwd_len = 0;
    h.argv_len = 0;
    h.argv_total = 0;
    h.env_len = 0;
    h.env_total = 0;
}

/// Fill the fields every event carries: identity, credentials, namespace pid, state.
#[inline(always)]
pub(crate) fn fill_common(h: &mut EventHeader, task: *const u8, st: &TaskState) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    h.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    h.pid = (pid_tgid >> 32) as u32;
    h.tid = pid_tgid as u32;
    h.uid = uid_gid as u32;
    h.gid = (uid_gid >> 32) as u32;
    h.ppid = rd_ptr(task, cfg!(task_real_parent))
        .and_then(|p| rd::<u32>(p, cfg!(task_tgid)))
        .unwrap_or(0);
    let (ns_pid, level, inum) = ns_pid(task);
    h.ns_pid = ns_pid;
    h.ns_level = level;
    h.pidns_inum = inum;
    h.role = st.role;
    h.host_pid = st.host_pid;
    h.host_profile = st.host_profile;
    h.session_pid = st.session_pid;
    h.lineage_parent = st.parent_pid;
    h.mode = 0;
    h.record_id = 0;
    h.comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
}

/// The task's pid as seen in its own pid namespace: `thread_pid->numbers[level]`.
#[inline(always)]
pub(crate) fn ns_pid(task: *const u8) -> (u32, u32, u32) {
    let Ok(pid) = rd_ptr(task, cfg!(task_thread_pid)) else {
        return (0, 0, 0);
    };
    let level: u32 = rd(pid, cfg!(pid_level)).unwrap_or(0);
    let upid = pid
        .wrapping_add(cfg!(pid_numbers) as usize)
        .wrapping_add((level as usize) * (cfg!(upid_size) as usize));
    let nr: u32 = rd(upid, cfg!(upid_nr)).unwrap_or(0);
    let inum = rd_ptr(upid, cfg!(upid_ns))
        .and_then(|ns| rd::<u32>(ns, cfg!(pidns_inum)))
        .unwrap_or(0);
    (nr, level, inum)
}
