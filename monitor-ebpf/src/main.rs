//! mcpwatch kernel programs: follow MCP host process trees and report their execs.
//!
//! Thin by design: capture, look up, act, emit. Which processes are hosts comes from
//! `HOST_EXES` / `HOST_PATHS` / `HOST_NAMES` (filled by userspace from host profiles); everything the
//! programs read from kernel structs goes through offsets in `CONFIG`, resolved by the
//! daemon from BTF at startup (Rust eBPF has no CO-RE relocations).
//!
//! One file per hook (`exec`, `fork`, `exit`, `signal_generate`, `page_fault_user`,
//! `bprm_check_security`); what they share: `capture` (header fields, argv and
//! environment), `path` (dentry walk), `classify` (what a host's exec is), `names`
//! (hosts recognised by the name they are executed under),
//! `enforce` (the consent check and the mode's answer), `output` (ring buffer),
//! `maps`. This file holds the kernel layout (`CONFIG`) and the kernel reads.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

use aya_ebpf::helpers::bpf_probe_read_kernel;
use monitor_common::KernelConfig;

/// Kernel layout, filled in by the daemon before load (`EbpfLoader::set_global`).
/// All zero (and `ready == 0`) means "not configured": the programs then do nothing.
#[unsafe(no_mangle)]
pub(crate) static CONFIG: KernelConfig = unsafe { core::mem::zeroed() };

/// Read one field of `CONFIG`. Volatile so the compiler cannot fold the all-zero
/// initialiser into the code: userspace rewrites `.rodata` before load.
macro_rules! cfg {
    ($f:ident) => {
        $crate::conf(&$crate::CONFIG.$f)
    };
}

#[inline(always)]
pub(crate) fn conf(v: &u32) -> u32 {
    // SAFETY: a valid reference into CONFIG.
    unsafe { core::ptr::read_volatile(v) }
}

pub(crate) type Res<T> = Result<T, i64>;

/// Read a `T` at `base + off` from kernel memory.
#[inline(always)]
pub(crate) fn rd<T>(base: *const u8, off: u32) -> Res<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }.map_err(i64::from)
}

#[inline(always)]
pub(crate) fn rd_ptr(base: *const u8, off: u32) -> Res<*const u8> {
    let p: *const u8 = rd(base, off)?;
    if p.is_null() {
        Err(-14)
    } else {
        Ok(p)
    }
}

// The programs, one file per hook, after `cfg!` (which they use).
mod bprm_check_security;
mod exec;
mod exit;
mod fork;
mod page_fault_user;
mod signal_generate;

// What they share.
mod capture;
mod classify;
mod enforce;
mod maps;
mod names;
mod output;
mod path;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
