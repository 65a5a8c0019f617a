//! The consent check at exec: is this exact command approved, and what does the
//! host's mode say to do when it is not. Everything is decided from maps the daemon
//! filled; nothing waits for userspace.
use aya_ebpf::helpers::generated::{bpf_loop, bpf_send_signal};
use monitor_common::{
    allow_flags, mode, sip::Sip, AllowKey, AllowValue, ExecEvent, Settings, ANY, ARGV_CAP, ENV_CAP,
    PATH_CAP, SECENV_NAME_CAP,
};

use crate::maps::{ALLOW, MODES, SECENV_NAMES, SETTINGS};

const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;

#[inline(always)]
pub fn settings() -> Option<Settings> {
    SETTINGS.get(0).copied()
}

#[inline(always)]
pub fn mode_of(profile: u32) -> u32 {
    MODES.get(profile).copied().unwrap_or(mode::MONITOR)
}

/// Read the little-endian word at byte `off` of `buf` (`cap` bytes, a power of two).
#[inline(always)]
fn word(buf: *const u8, off: u32, cap: usize) -> u64 {
    // SAFETY: the mask keeps the 8-byte read inside the `cap`-byte buffer.
    unsafe {
        buf.wrapping_add((off as usize) & (cap - 8))
            .cast::<u64>()
            .read_unaligned()
    }
}

/// `bpf_loop` context of the argv hash: whole words of the argv buffer.
#[repr(C)]
struct HashScan {
    argv: *const u8,
    words: u32,
    _pad: u32,
    sip: Sip,
}

unsafe extern "C" fn hash_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's HashScan on its stack.
    let c = unsafe { &mut *ctx.cast::<HashScan>() };
    let i = index as u32;
    if i >= c.words {
        return 1;
    }
    c.sip.write_word(word(c.argv, i * 8, ARGV_CAP));
    0
}

/// SipHash of `len` bytes of the argv buffer, word by word; the same value as
/// `sip::hash_bytes` over the bytes in userspace. A `bpf_loop`, so the verifier
/// checks the step once instead of once per iteration.
#[inline(always)]
fn argv_hash(argv: *const u8, len: u32, k0: u64, k1: u64) -> u64 {
    let full = len / 8;
    let mut scan = HashScan {
        argv,
        words: full,
        _pad: 0,
        sip: Sip::new(k0, k1),
    };
    // SAFETY: bpf_loop calls hash_step with a pointer to `scan`.
    unsafe {
        bpf_loop(
            full,
            hash_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut scan).cast(),
            0,
        )
    };
    let rem = len & 7;
    if rem != 0 {
        let w = word(argv, full * 8, ARGV_CAP) & ((1u64 << (rem * 8)) - 1);
        scan.sip.write_tail(w, rem);
    }
    scan.sip.finish()
}

/// `bpf_loop` context of a byte comparison of two `cap`-byte buffers.
#[repr(C)]
struct CmpScan {
    a: *const u8,
    b: *const u8,
    len: u32,
    differ: u32,
}

#[inline(always)]
fn cmp_word(c: &mut CmpScan, i: u32, cap: usize) -> i64 {
    let off = i * 8;
    if off >= c.len {
        return 1;
    }
    let mut x = word(c.a, off, cap);
    let y = word(c.b, off, cap);
    let left = c.len - off;
    if left < 8 {
        x &= (1u64 << (left * 8)) - 1;
    }
    if x != y {
        c.differ = 1;
        return 1;
    }
    0
}

unsafe extern "C" fn cmp_argv_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's CmpScan on its stack.
    cmp_word(
        unsafe { &mut *ctx.cast::<CmpScan>() },
        index as u32,
        ARGV_CAP,
    )
}

unsafe extern "C" fn cmp_path_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's CmpScan on its stack.
    cmp_word(
        unsafe { &mut *ctx.cast::<CmpScan>() },
        index as u32,
        PATH_CAP,
    )
}

/// `a[..len] == b[..len]`, word by word; bytes of `a` past `len` are ignored (the
/// event buffer is not cleared), those of `b` are zero (userspace writes them).
#[inline(always)]
fn same_bytes(a: *const u8, b: *const u8, len: u32, argv: bool) -> bool {
    let mut scan = CmpScan {
        a,
        b,
        len,
        differ: 0,
    };
    let step = if argv {
        cmp_argv_step as *mut core::ffi::c_void
    } else {
        cmp_path_step as *mut core::ffi::c_void
    };
    // SAFETY: bpf_loop calls the step with a pointer to `scan`.
    unsafe {
        bpf_loop(
            len.div_ceil(8),
            step,
            core::ptr::from_mut(&mut scan).cast(),
            0,
        )
    };
    scan.differ == 0
}

/// State of the environment scan (`bpf_loop` callback context).
#[repr(C)]
struct EnvScan {
    env: *const u8,
    len: u32,
    in_entry: u32,
    digest: u64,
    sip: Sip,
    k0: u64,
    k1: u64,
}

/// One byte of the environment block: find entries whose name is one of
/// `SECENV_NAMES` (exactly, `=` included) and add the SipHash of each whole entry
/// to the digest. The sum does not depend on the order of entries; a repeated or
/// extra entry changes it.
unsafe extern "C" fn env_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's EnvScan on its stack.
    let c = unsafe { &mut *ctx.cast::<EnvScan>() };
    let i = (index as u32) & (ENV_CAP as u32 - 1);
    if i >= c.len {
        return 1;
    }
    let at = |j: u32| -> u8 {
        // SAFETY: masked into the ENV_CAP-byte buffer.
        unsafe { *c.env.wrapping_add((j as usize) & (ENV_CAP - 1)) }
    };
    let b = at(i);
    if c.in_entry != 0 {
        if b == 0 {
            c.digest = c.digest.wrapping_add(c.sip.finish());
            c.in_entry = 0;
        } else {
            c.sip.write_u8(b);
        }
        return 0;
    }
    if b == 0 || (i != 0 && at(i - 1) != 0) {
        return 0;
    }
    // Start of an entry: its first 8 bytes, zeroed after the first `=`.
    let mut key = 0u64;
    let mut j: u32 = 0;
    while j < 8 {
        if i + j >= c.len {
            break;
        }
        let x = at(i + j);
        if x == 0 {
            break;
        }
        key |= u64::from(x) << (8 * j);
        if x == b'=' {
            break;
        }
        j += 1;
    }
    // SAFETY: plain map lookup, value copied.
    let Some(name) = (unsafe { SECENV_NAMES.get(&key) }).copied() else {
        return 0;
    };
    let mut j: u32 = 0;
    while j < SECENV_NAME_CAP as u32 {
        if j >= name.len {
            break;
        }
        if i + j >= c.len || at(i + j) != name.name[(j as usize) & (SECENV_NAME_CAP - 1)] {
            return 0;
        }
        j += 1;
    }
    c.in_entry = 1;
    c.sip = Sip::new(c.k0, c.k1);
    c.sip.write_u8(b);
    0
}

/// Digest of the security-relevant entries of the captured environment.
#[inline(always)]
fn env_digest(ev: &ExecEvent, k0: u64, k1: u64) -> u64 {
    let mut scan = EnvScan {
        env: ev.body.env.as_ptr(),
        len: ev.hdr.env_len,
        in_entry: 0,
        digest: 0,
        sip: Sip::new(k0, k1),
        k0,
        k1,
    };
    // SAFETY: bpf_loop calls env_step with a pointer to `scan` for each index.
    unsafe {
        bpf_loop(
            ev.hdr.env_len,
            env_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut scan).cast(),
            0,
        )
    };
    if scan.in_entry != 0 {
        // The block ended inside an entry (no final NUL): count it as it stands.
        scan.digest = scan.digest.wrapping_add(scan.sip.finish());
    }
    scan.digest
}

/// Outcome of the `ALLOW` check.
pub enum Allow {
    /// Record id, and whether a `once` entry was consumed.
    Yes(u64, bool),
    No,
    /// The capture was incomplete: nothing can match.
    Unchecked,
}

/// Look the launch up in `ALLOW` and compare the exact bytes. `uid` and `profile`
/// are tried exactly and as wildcards.
#[inline(always)]
pub fn allow(ev: &ExecEvent, s: &Settings, incomplete: bool, now: u64) -> Allow {
    if incomplete {
        return Allow::Unchecked;
    }
    let len = ev.hdr.argv_len;
    if len == 0 || len as usize > ARGV_CAP {
        return Allow::No;
    }
    let mut key = AllowKey {
        dev: ev.hdr.exe_dev,
        argv_len: len,
        ino: ev.hdr.exe_ino,
        ctime_sec: ev.hdr.exe_ctime_sec,
        ctime_nsec: ev.hdr.exe_ctime_nsec & 0x3fff_ffff,
        uid: ev.hdr.uid,
        profile: ev.hdr.host_profile,
        _pad: 0,
        argv_hash: argv_hash(ev.body.argv.as_ptr(), len, s.sip_k0, s.sip_k1),
    };
    let mut env: Option<u64> = None;
    let mut n = 0;
    while n < 4 {
        key.uid = if n & 1 == 0 { ev.hdr.uid } else { ANY };
        key.profile = if n & 2 == 0 { ev.hdr.host_profile } else { ANY };
        n += 1;
        let Some(v) = ALLOW.get_ptr(&key) else {
            continue;
        };
        // SAFETY: value pointer valid for this invocation.
        let v: &AllowValue = unsafe { &*v };
        if v.expires_boot_ns != 0 && now >= v.expires_boot_ns {
            continue;
        }
        if !same_bytes(ev.body.argv.as_ptr(), v.argv.as_ptr(), len, true) {
            continue;
        }
        if v.flags & allow_flags::CWD != 0
            && (v.cwd_len != ev.hdr.cwd_len
                || v.cwd_len as usize > PATH_CAP
                || !same_bytes(ev.body.cwd.as_ptr(), v.cwd.as_ptr(), v.cwd_len, false))
        {
            continue;
        }
        let digest = match env {
            Some(d) => d,
            None => {
                let d = env_digest(ev, s.sip_k0, s.sip_k1);
                env = Some(d);
                d
            }
        };
        if digest != v.env_digest {
            continue;
        }
        let record = v.record_id;
        if v.flags & allow_flags::ONCE != 0 {
            // Only the exec whose delete succeeds gets the one use.
            if ALLOW.remove(&key).is_err() {
                continue;
            }
            return Allow::Yes(record, true);
        }
        return Allow::Yes(record, false);
    }
    Allow::No
}

/// Carry out the mode's answer to an unapproved or denied exec. `hold` is false for
/// a managed deny (final: never asked). Returns the event flags describing it.
#[inline(always)]
pub fn act(m: u32, hold: bool, daemon_alive: bool) -> (u32, u32) {
    use monitor_common::event_flags as f;
    let (sig, mut flags) = match m {
        mode::MONITOR => return (0, 0),
        mode::ASK if hold && daemon_alive => (SIGSTOP, f::HELD),
        mode::ASK if hold => (SIGKILL, f::KILLED | f::ASK_DEGRADED),
        _ => (SIGKILL, f::KILLED),
    };
    // SAFETY: signals the current process (the new image, before it runs).
    if unsafe { bpf_send_signal(sig) } < 0 {
        flags |= f::SIGNAL_FAILED;
    }
    (sig, flags)
}
