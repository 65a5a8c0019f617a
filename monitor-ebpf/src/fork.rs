//! `sched_process_fork` (BTF): a tracked process's child inherits its place in the
//! host tree.
use aya_ebpf::{
    helpers::bpf_get_current_task, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use monitor_common::{holds, kind, stat, EventHeader, TaskState};

use crate::{
    capture::{clear_exec_fields, fill_common, ns_pid},
    enforce,
    maps::{self, count, DOOMED, EVENTS, TRACKED},
    output::wakeup_flags,
    rd, Res,
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    match try_sched_process_fork(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

fn try_sched_process_fork(ctx: &BtfTracePointContext) -> Res<()> {
    if cfg!(ready) == 0 {
        return Ok(());
    }
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let parent_tgid: u32 = rd(parent, cfg!(task_tgid))?;
    let child_tgid: u32 = rd(child, cfg!(task_tgid))?;
    if child_tgid == parent_tgid {
        // A new thread: tracking is per process (tgid), nothing to do.
        return Ok(());
    }
    // SAFETY: value copied out of the map.
    let Some(pst) = (unsafe { TRACKED.get(&parent_tgid) }).copied() else {
        return Ok(());
    };
    // The child inherits the parent's place in the tree. Lineage is fixed here,
    // at fork: later reparenting (double fork, parent exit) changes nothing.
    let st = TaskState {
        role: pst.role,
        flags: 0,
        host_pid: pst.host_pid,
        host_profile: pst.host_profile,
        session_pid: pst.session_pid,
        parent_pid: parent_tgid,
    };
    if TRACKED.insert(&child_tgid, &st, 0).is_err() {
        count(stat::TRACKED_FULL);
        // Fail closed: under a host that checks its launches, an untracked child
        // would run anything unchecked. It dies at its first fault or exec.
        if enforce::mode_of(pst.host_profile) != monitor_common::mode::MONITOR {
            if DOOMED.insert(&child_tgid, &0, 0).is_ok() {
                maps::hold_count(holds::DOOMED);
            } else {
                count(stat::DOOMED_FULL);
            }
        }
    }
    // Counted as attempted, so `forks + execs + exits == delivered + ringbuf_drops`.
    count(stat::FORKS);
    let Some(mut entry) = EVENTS.reserve::<EventHeader>(0) else {
        count(stat::RINGBUF_DROPS);
        return Ok(());
    };
    let h = entry.as_mut_ptr();
    // SAFETY: reserved ring buffer slot of size_of::<EventHeader>().
    let h = unsafe { &mut *h };
    let task = unsafe { bpf_get_current_task() } as *const u8;
    fill_common(h, task, &st);
    h.kind = kind::FORK;
    h.flags = 0;
    h.prev_role = pst.role;
    h.child_pid = child_tgid;
    h.exit_code = 0;
    // The child's namespace pid (it may be the first process of a new namespace).
    let (nr, level, inum) = ns_pid(child);
    h.ns_pid = nr;
    h.ns_level = level;
    h.pidns_inum = inum;
    clear_exec_fields(h);
    entry.submit(wakeup_flags());
    Ok(())
}
