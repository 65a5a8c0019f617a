//! `sched_process_exit`: a tracked process leaves the tree.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{event_flags, holds, kind, stat, task_flags, KernelConfig};

use crate::{
    maps::{self, count, DOOMED, SETTINGS, TRACKED},
    output::emit_header,
    rd, rd_ptr, Res,
};

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    match try_sched_process_exit(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

fn try_sched_process_exit(ctx: &TracePointContext) -> Res<()> {
    if cfg!(ready) == 0 {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    let gd_off = cfg!(tp_exit_group_dead);
    let group_dead = if gd_off == KernelConfig::ABSENT {
        // 6.1 and 6.12 (among others) have no group_dead. The leader's exit is not the
        // process's: a second thread's execve makes the old leader exit first,
        // and a leader may SYS_exit alone. do_exit decrements signal->live
        // before this tracepoint, so the last thread out reads 0.
        let task = unsafe { bpf_get_current_task() } as *const u8;
        match rd_ptr(task, cfg!(task_signal)).and_then(|sig| rd::<i32>(sig, cfg!(signal_live))) {
            Ok(live) => live == 0,
            Err(_) => tid == tgid,
        }
    } else {
        unsafe { ctx.read_at::<u8>(gd_off as usize) }.unwrap_or(0) != 0
    };
    if !group_dead {
        return Ok(());
    }
    if let Some(s) = SETTINGS.get_ptr_mut(0) {
        // SAFETY: value pointer valid for this invocation.
        unsafe {
            if (*s).daemon_tgid == tgid {
                // The daemon is gone, however it died: ask mode cannot ask anyone.
                (*s).daemon_tgid = 0;
            }
        }
    }
    if maps::any_doomed() && DOOMED.remove(&tgid).is_ok() {
        maps::hold_count(holds::DOOMED_DONE);
    }
    // SAFETY: value copied out of the map.
    let Some(st) = (unsafe { TRACKED.get(&tgid) }).copied() else {
        return Ok(());
    };
    let _ = TRACKED.remove(&tgid);
    if st.role == monitor_common::role::HOST && st.host_pid == tgid {
        crate::names::forget_host(tgid);
    }
    if st.flags & task_flags::HELD != 0 {
        maps::hold_count(holds::KERNEL_RELEASED);
    }
    count(stat::EXITS);
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let exit_code = rd(task, cfg!(task_exit_code)).unwrap_or(0);
    emit_header(
        &st,
        |h| {
            h.kind = kind::EXIT;
            h.flags = event_flags::GROUP_DEAD;
            h.exit_code = exit_code;
        },
        false,
    );
    Ok(())
}
