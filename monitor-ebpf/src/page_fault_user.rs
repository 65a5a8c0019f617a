//! `page_fault_user` (BTF): a held launch that runs at all was resumed behind the
//! daemon's back; it dies at its first fault.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use monitor_common::{event_flags, holds, stat, task_flags};

use crate::{
    maps::{self, count, TRACKED},
    signal_generate::{kill_current, report_bypass},
    Res,
};

/// `page_fault_user(address, regs, error_code)`, in the faulting process. A launch
/// held at exec never ran: its image is untouched, so its first user-mode
/// instruction faults. A held process faulting was resumed by someone other than
/// the daemon (which clears `HELD` first) — SIGCONT with SIGCHLD ignored, a
/// tracer's PTRACE_CONT, anything: it is killed there, before that instruction
/// completes. Nothing is looked up while no launch is held (`HOLDS`).
#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user(_ctx: BtfTracePointContext) -> u32 {
    if maps::any_doomed() {
        maps::kill_if_doomed((bpf_get_current_pid_tgid() >> 32) as u32);
    }
    if !maps::any_held() {
        return 0;
    }
    match try_page_fault_user() {
        Ok(()) => 0,
        Err(_) => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

fn try_page_fault_user() -> Res<()> {
    if cfg!(ready) == 0 {
        return Ok(());
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(p) = TRACKED.get_ptr_mut(&tgid) else {
        return Ok(());
    };
    // SAFETY: value pointer valid for this invocation.
    let st = unsafe { *p };
    if st.flags & task_flags::HELD == 0 {
        return Ok(());
    }
    // Released once: the SIGCHLD that may follow finds it no longer held.
    // SAFETY: as above.
    unsafe { (*p).flags &= !task_flags::HELD };
    maps::hold_count(holds::KERNEL_RELEASED);
    count(stat::HOLD_BYPASS);
    // With interrupts off the kill is queued (irq_work) and taken before the
    // return to user mode. `mode` is not a signal: how it was caught.
    let flags = event_flags::HOLD_BYPASS | kill_current();
    report_bypass(&st, flags, tgid, monitor_common::RESUMED_RUNNING, tgid);
    Ok(())
}
