//! `signal_generate` (BTF): a held launch continued by anyone but the daemon. Also
//! the kill and the report shared with `page_fault_user`.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use monitor_common::{event_flags, kind, stat, task_flags, TaskState};

use crate::{
    enforce,
    maps::{count, TRACKED},
    output::emit_header,
    rd, Res,
};

/// `signal_generate(sig, info, task, group, result)`: someone other than the daemon
/// sending SIGCONT to a process ask mode holds would let it run unapproved. The
/// hook cannot stop the signal; it reports it at once (the daemon then kills the
/// process) and counts it.
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> u32 {
    match try_signal_generate(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

const SIGCONT: i32 = 18;
const SIGCHLD: i32 = 17;
/// `si_code` of the SIGCHLD a continued process sends its parent.
const CLD_CONTINUED: i32 = 6;
/// Offset of `si_code` in `kernel_siginfo` (`si_signo`, `si_errno`, `si_code`: ABI).
const SI_CODE_OFF: u32 = 8;

fn try_signal_generate(ctx: &BtfTracePointContext) -> Res<()> {
    if cfg!(ready) == 0 {
        return Ok(());
    }
    let sig: i32 = ctx.arg(0);
    if sig != SIGCONT && sig != SIGCHLD {
        return Ok(());
    }
    let current = (bpf_get_current_pid_tgid() >> 32) as u32;
    let (tgid, kill) = if sig == SIGCHLD {
        // A stopped process that was continued tells its parent (CLD_CONTINUED)
        // from its own context, in the kernel, before it returns to user mode. If
        // it is still held, nobody with the right to answer continued it: kill it
        // here, before its first instruction.
        let info: *const u8 = ctx.arg(1);
        if info.is_null() || rd::<i32>(info, SI_CODE_OFF)? != CLD_CONTINUED {
            return Ok(());
        }
        (current, true)
    } else {
        let target: *const u8 = ctx.arg(2);
        (rd(target, cfg!(task_tgid))?, false)
    };
    // SAFETY: value copied out of the map.
    let Some(st) = (unsafe { TRACKED.get(&tgid) }).copied() else {
        return Ok(());
    };
    if st.flags & task_flags::HELD == 0 {
        return Ok(());
    }
    let daemon = enforce::settings().map_or(0, |s| s.daemon_tgid);
    if !kill && current == daemon && daemon != 0 {
        return Ok(());
    }
    let mut flags = event_flags::HOLD_BYPASS;
    if kill {
        flags |= kill_current();
    } else {
        count(stat::HOLD_BYPASS);
    }
    report_bypass(&st, flags, tgid, sig as u32, current);
    Ok(())
}

/// SIGKILL the current process: `KILLED`, or `SIGNAL_FAILED` when refused.
#[inline(always)]
pub(crate) fn kill_current() -> u32 {
    // SAFETY: signals the current process.
    if unsafe { aya_ebpf::helpers::generated::bpf_send_signal(9) } < 0 {
        event_flags::SIGNAL_FAILED
    } else {
        event_flags::KILLED
    }
}

/// The urgent `SIGNAL` event of a held launch `target` resumed behind the
/// daemon's back; `how` is the signal seen (or `RESUMED_RUNNING`), `by` the pid
/// in whose context it was seen.
#[inline(always)]
pub(crate) fn report_bypass(st: &TaskState, flags: u32, target: u32, how: u32, by: u32) {
    emit_header(
        st,
        |h| {
            h.kind = kind::SIGNAL;
            h.flags = flags;
            h.child_pid = target;
            h.mode = how;
            h.record_id = u64::from(by);
        },
        true,
    );
}
