//! Output: events into the `EVENTS` ring buffer, and when to wake the reader.
use aya_ebpf::helpers::{bpf_get_current_task, generated::bpf_ringbuf_output};
use monitor_common::{stat, EventHeader, TaskState};

use crate::{
    capture::{clear_exec_fields, fill_common},
    maps::{count, EVENTS},
};

/// `BPF_RB_NO_WAKEUP` / `BPF_RB_FORCE_WAKEUP` (include/uapi/linux/bpf.h).
const RB_NO_WAKEUP: u64 = 1;
const RB_FORCE_WAKEUP: u64 = 2;
/// `bpf_ringbuf_query` flags.
const RB_AVAIL_DATA: u64 = 0;
const RB_RING_SIZE: u64 = 1;

/// Waking the reader is an irq_work, which on these VMs costs an IPI (a VM exit,
/// ~25 µs measured per event with the default adaptive wake-up). Wake it only when
/// the ring is an eighth full; otherwise the reader drains on its own short poll
/// timeout. Bounded latency, no per-event interrupt.
#[inline(always)]
pub(crate) fn wakeup_flags() -> u64 {
    let avail = EVENTS.query(RB_AVAIL_DATA);
    let size = EVENTS.query(RB_RING_SIZE);
    if avail > size / 8 {
        RB_FORCE_WAKEUP
    } else {
        RB_NO_WAKEUP
    }
}

/// Copy an event into the ring buffer; `urgent` wakes the reader at once (a held
/// process waits for the user; a kill is an alert).
#[inline(always)]
pub(crate) fn output(data: *const u8, size: u64, urgent: bool) {
    let wake = if urgent {
        RB_FORCE_WAKEUP
    } else {
        wakeup_flags()
    };
    // SAFETY: data points into a map value of at least `size` bytes.
    let ret = unsafe {
        bpf_ringbuf_output(
            core::ptr::addr_of!(EVENTS).cast_mut().cast(),
            data.cast_mut().cast(),
            size,
            wake,
        )
    };
    if ret < 0 {
        count(stat::RINGBUF_DROPS);
    }
}

/// A header-only event about the current task (exit, signal, LSM deny): common
/// fields and state from `st`, exec fields cleared, then `fill` sets the rest.
#[inline(always)]
pub(crate) fn emit_header(st: &TaskState, fill: impl FnOnce(&mut EventHeader), urgent: bool) {
    let Some(mut entry) = EVENTS.reserve::<EventHeader>(0) else {
        count(stat::RINGBUF_DROPS);
        return;
    };
    // SAFETY: reserved ring buffer slot of size_of::<EventHeader>().
    let h = unsafe { &mut *entry.as_mut_ptr() };
    let task = unsafe { bpf_get_current_task() } as *const u8;
    fill_common(h, task, st);
    h.prev_role = st.role;
    h.child_pid = 0;
    h.exit_code = 0;
    clear_exec_fields(h);
    fill(h);
    entry.submit(if urgent {
        RB_FORCE_WAKEUP
    } else {
        wakeup_flags()
    });
}
