//! `bprm_check_security` (BPF LSM): a managed deny fails the exec with EPERM where
//! the kernel allows trampolines; `lsm_probe` tells the daemon whether it does.
use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::lsm, programs::LsmContext};
use monitor_common::{event_flags, kind, stat, ExeKey, KernelConfig};

use crate::{
    enforce,
    maps::{count, DENY_EXES, TRACKED},
    output::emit_header,
    rd, rd_ptr, Res,
};

/// BPF LSM, where the kernel allows it: an exec by a tracked process of a program
/// the managed policy denies fails with EPERM before anything of it runs (for a
/// `#!` script this hook sees the script file and then its interpreter). Monitor
/// mode only reports (the exec tracepoint flags it). Elsewhere the exec tracepoint
/// kills the new image instead.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    // Argument 1 of an int-returning LSM hook is the previous verdict.
    let prev: i32 = ctx.arg(1);
    if prev != 0 {
        return prev;
    }
    try_bprm_check(&ctx).unwrap_or(0)
}

const EPERM: i32 = 1;

fn try_bprm_check(ctx: &LsmContext) -> Res<i32> {
    if cfg!(ready) == 0 || cfg!(bprm_file) == KernelConfig::ABSENT {
        return Ok(0);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: value copied out of the map.
    let Some(st) = (unsafe { TRACKED.get(&tgid) }).copied() else {
        return Ok(0);
    };
    // Argument 0 of bprm_check_security is the linux_binprm.
    let bprm: *const u8 = ctx.arg(0);
    let file = rd_ptr(bprm, cfg!(bprm_file))?;
    let inode = rd_ptr(file, cfg!(file_f_inode))?;
    let ino: u64 = rd(inode, cfg!(inode_i_ino))?;
    let sb = rd_ptr(inode, cfg!(inode_i_sb))?;
    let dev: u32 = rd(sb, cfg!(sb_s_dev))?;
    let key = ExeKey { dev, _pad: 0, ino };
    // SAFETY: plain map lookup.
    if unsafe { DENY_EXES.get(&key) }.is_none() {
        return Ok(0);
    }
    let m = enforce::mode_of(st.host_profile);
    if m == monitor_common::mode::MONITOR {
        return Ok(0);
    }
    count(stat::LSM_DENIED);
    emit_header(
        &st,
        |h| {
            h.kind = kind::LSM_DENY;
            h.flags = event_flags::DENIED;
            h.exe_dev = dev;
            h.exe_ino = ino;
            h.mode = m;
        },
        true,
    );
    Ok(-EPERM)
}

/// Feature probe only: never attached. Loading it tells the daemon whether this
/// kernel accepts BPF LSM programs (trampolines), which decides whether a denied
/// exec can fail with EPERM or must be killed by signal.
#[lsm(hook = "bprm_check_security")]
pub fn lsm_probe(_ctx: LsmContext) -> i32 {
    0
}
