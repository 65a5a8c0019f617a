//! The consent check at exec: is this exact command approved, and what does the
//! host's mode say to do when it is not. Everything is decided from maps the daemon
//! filled; nothing waits for userspace.
use aya_ebpf::helpers::generated::{bpf_loop, bpf_send_signal};
use monitor_common::{
    allow_flags, envfilter_bit,
    envscan::{below, fold, mark_byte, name_key, name_mix, starts, stops, window},
    mode,
    sip::Sip,
    AllowKey, AllowValue, EnvScan, ExecEvent, Settings, ANY, ARGV_CAP, ENVSET_CAP, ENVSET_WORDS,
    ENV_CAND_MAX, ENV_CAP, PATH_CAP, SECENV_MAX, SECENV_NAME_CAP,
};

use crate::maps::{ALLOW, ENVSCAN, MODES, SECENV_FAMILIES, SECENV_FILTER, SECENV_NAMES, SETTINGS};

const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;

#[inline(always)]
pub fn settings() -> Option<Settings> {
    SETTINGS.get(0).copied()
}

/// `SETTINGS[0]` in place (no copy of its 56 bytes).
#[inline(always)]
pub fn settings_ref() -> Option<*const Settings> {
    SETTINGS.get_ptr(0)
}

#[inline(always)]
pub fn mode_of(profile: u32) -> u32 {
    if let Some(m) = MODES.get(profile) {
        return *m;
    }
    // Past the table: the configured default (the daemon keeps it in SETTINGS).
    // SAFETY: a map value pointer valid for this invocation.
    settings_ref().map_or(mode::ENFORCE, |s| unsafe { (*s).default_mode })
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

// The security-relevant environment, compared exactly, in three `bpf_loop`s whose
// steps are small and keep their state in map memory, so the verifier checks each
// step a few times instead of once per byte of the block:
//
// 1. `env_starts_step`, four words a step: find where entries start (word-at-a-time
//    zero-byte marks) and keep those whose first three bytes pass the keyed
//    `SECENV_FILTER` (a handful in a real environment);
// 2. `env_name_step`, one candidate a step: look its name up in `SECENV_NAMES` by
//    its first 8 bytes, compare the whole name (`=` included), and note where each
//    security-relevant entry is; one found twice spoils the scan;
// 3. `env_value_step`, one word of a record's approved entries a step: compare the
//    entries found with the record's, byte for byte, NUL included.
//
// A record matches when the set of names found is exactly its `env_mask` and every
// value is the same. No hash decides: the filter and the name key only find
// candidates. Passes 1 and 2 run once per exec, pass 3 per candidate record.

/// The 8 bytes of the environment block at byte `p` (any alignment), from the two
/// whole words around them.
#[inline(always)]
fn env_at(env: *const u8, p: u32) -> u64 {
    let a = p & !7;
    window(word(env, a, ENV_CAP), word(env, a + 8, ENV_CAP), p & 7)
}

/// Pass 1 context.
#[repr(C)]
struct EnvStarts {
    env: *const u8,
    filter: *const u64,
    scan: *mut EnvScan,
    key: u64,
    len: u32,
    _pad: u32,
}

/// Words of the block a pass-1 step covers.
const STEP_WORDS: u32 = 4;

/// One word at byte `o` (< len): note the entries starting in it that pass the
/// filter. Returns 1 when the scan is spoiled (too many candidates).
#[inline(always)]
fn env_word(c: &EnvStarts, o: u32) -> i64 {
    // Bytes past the block read as zero: no entry starts there.
    let w = below(word(c.env, o, ENV_CAP), c.len - o);
    let prev_zero = o == 0 || word(c.env, o.wrapping_sub(8), ENV_CAP) >> 56 == 0;
    let mut st = starts(w, prev_zero);
    if st == 0 {
        return 0;
    }
    // Bytes of `next` past the block are stale; they can only add a candidate.
    let next = word(c.env, o + 8, ENV_CAP);
    let mut n = 0;
    while n < 4 {
        if st == 0 {
            break;
        }
        let mark = st & st.wrapping_neg();
        st ^= mark;
        n += 1;
        let k = mark_byte(mark);
        let bit = envfilter_bit(window(w, next, k) as u32, c.key);
        // SAFETY: the index is masked into the filter's 64 words.
        let fw = unsafe { *c.filter.wrapping_add(((bit >> 6) & 63) as usize) };
        if (fw >> (bit & 63)) & 1 == 0 {
            continue;
        }
        // SAFETY: per-CPU scratch owned by this program invocation.
        let s = unsafe { &mut *c.scan };
        let i = s.ncand;
        if i as usize >= ENV_CAND_MAX {
            s.spoiled = 1;
            return 1;
        }
        s.cand[(i as usize) & (ENV_CAND_MAX - 1)] = o + k;
        s.ncand = i + 1;
    }
    0
}

unsafe extern "C" fn env_starts_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's EnvStarts on its stack.
    let c = unsafe { &*ctx.cast::<EnvStarts>() };
    let base = (index as u32) * STEP_WORDS * 8;
    let mut j = 0;
    while j < STEP_WORDS {
        let o = base + j * 8;
        if o >= c.len || env_word(c, o) != 0 {
            return 1;
        }
        j += 1;
    }
    0
}

// Pass 2 shares pass 1's context (one struct on the stack of `allow_step`, whose
// chain of frames 6.1 counts against 512 bytes).

unsafe extern "C" fn env_name_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's EnvStarts on its stack; scan is per-CPU scratch.
    let c = unsafe { &*ctx.cast::<EnvStarts>() };
    let s = unsafe { &mut *c.scan };
    let i = index as u32;
    if i >= s.ncand {
        return 1;
    }
    let p = s.cand[(i as usize) & (ENV_CAND_MAX - 1)];
    if p >= c.len {
        return 0;
    }
    let rem = c.len - p;
    // The name's hash, word by word up to its `=` (`secenv_name_hash`), kept in
    // the scratch (fewer registers to spill to the stack).
    s.keys[3] = 0;
    let mut nl: u32 = 0;
    let mut j: u32 = 0;
    while j < (SECENV_NAME_CAP / 8) as u32 {
        let off = j * 8;
        if off >= rem {
            break;
        }
        let w = below(env_at(c.env, p + off), rem - off);
        s.keys[3] = name_mix(s.keys[3], name_key(w));
        let st = stops(w);
        if st != 0 {
            nl = off + mark_byte(st & st.wrapping_neg()) + 1;
            break;
        }
        j += 1;
    }
    if nl != 0 && env_name_is(c, s, p, nl) {
        return 0;
    }
    // Not a name the kernel knows exactly: a member of a family (`LD_…`) that no
    // record approves, so nothing can match.
    // The keys live in the scratch, not on the stack: this step runs inside
    // `allow_step`, and 6.1 counts the stacks of the chain against 512 bytes.
    let w = below(env_at(c.env, p), rem);
    s.keys = [below(w, 3), below(w, 4), fold(w), 0];
    // SAFETY: plain map lookups, keyed by map memory.
    let member = unsafe {
        SECENV_FAMILIES.get(&s.keys[0]).is_some()
            || SECENV_FAMILIES.get(&s.keys[1]).is_some()
            || SECENV_FAMILIES.get(&s.keys[2]).is_some()
    };
    if member {
        s.spoiled = 1;
        return 1;
    }
    0
}

/// Whether the entry at `p` has the known name of `nl` bytes (`=` included) with
/// hash `s.keys[3]`; if so, note it in the scan (a name found twice spoils it).
#[inline(always)]
fn env_name_is(c: &EnvStarts, s: &mut EnvScan, p: u32, nl: u32) -> bool {
    // SAFETY: plain map lookup (keyed by map memory); the value stays valid for
    // this invocation.
    let Some(name) = (unsafe { SECENV_NAMES.get(&s.keys[3]) }) else {
        return false;
    };
    if name.len != nl || nl as usize > SECENV_NAME_CAP || p + nl > c.len {
        return false;
    }
    let words = name.name.as_ptr().cast::<u64>();
    let mut j: u32 = 0;
    while j < (SECENV_NAME_CAP / 8) as u32 {
        let off = j * 8;
        if off >= nl {
            break;
        }
        // SAFETY: j < SECENV_NAME_CAP / 8: inside the name.
        let want = unsafe { words.wrapping_add(j as usize).read_unaligned() };
        if below(env_at(c.env, p + off), nl - off) != below(want, nl - off) {
            return false;
        }
        j += 1;
    }
    let id = name.id & (SECENV_MAX as u32 - 1);
    let bit = 1u64 << id;
    if s.found & bit != 0 {
        // The same name twice: which one a program reads is its own business.
        s.spoiled = 1;
        return true;
    }
    s.found |= bit;
    s.pos[id as usize] = p;
    true
}

/// Pass 3 context.
#[repr(C)]
struct EnvValues {
    env: *const u8,
    scan: *const EnvScan,
    v: *const AllowValue,
    differ: u32,
    _pad: u32,
}

unsafe extern "C" fn env_value_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's EnvValues on its stack; the pointers are map values.
    let c = unsafe { &mut *ctx.cast::<EnvValues>() };
    let v = unsafe { &*c.v };
    let t = index as u32;
    if t >= v.env_words {
        return 1;
    }
    let t = t & (ENVSET_WORDS as u32 - 1);
    let id = u32::from(v.env_word_id[t as usize]) & (SECENV_MAX as u32 - 1);
    let slot = v.env_slot[id as usize];
    let rel = (t * 8).wrapping_sub(slot & 0xffff);
    let left = (slot >> 16).wrapping_sub(rel);
    if rel >= ENVSET_CAP as u32 || left == 0 || left > ENVSET_CAP as u32 {
        c.differ = 1;
        return 1;
    }
    // SAFETY: scan is per-CPU scratch.
    let p = unsafe { (*c.scan).pos[id as usize] } + rel;
    let got = below(env_at(c.env, p), left);
    if got != word(v.env.as_ptr(), t * 8, ENVSET_CAP) {
        c.differ = 1;
        return 1;
    }
    0
}

/// Passes 1 and 2 over the captured environment, into `ENVSCAN`. False when the
/// scan is spoiled (nothing can match) or the scratch is missing.
#[inline(always)]
fn env_scan(ev: &ExecEvent, key: u64) -> bool {
    let Some(scan) = ENVSCAN.get_ptr_mut(0) else {
        return false;
    };
    let Some(filter) = SECENV_FILTER.get_ptr(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch owned by this program invocation.
    unsafe {
        (*scan).ncand = 0;
        (*scan).spoiled = 0;
        (*scan).found = 0;
    }
    let len = ev.hdr.env_len;
    if len as usize > ENV_CAP {
        return false;
    }
    let mut starts = EnvStarts {
        env: ev.body.env.as_ptr(),
        // SAFETY: a map value pointer; `bits` is its first field.
        filter: unsafe { (*filter).bits.as_ptr() },
        scan,
        key,
        len,
        _pad: 0,
    };
    // SAFETY: bpf_loop calls the step with a pointer to `starts`.
    unsafe {
        bpf_loop(
            len.div_ceil(STEP_WORDS * 8),
            env_starts_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut starts).cast(),
            0,
        )
    };
    // SAFETY: scan is per-CPU scratch.
    let ncand = unsafe { (*scan).ncand };
    if ncand != 0 {
        // SAFETY: bpf_loop calls the step with a pointer to `starts`.
        unsafe {
            bpf_loop(
                ncand,
                env_name_step as *mut core::ffi::c_void,
                core::ptr::from_mut(&mut starts).cast(),
                0,
            )
        };
    }
    // SAFETY: as above.
    unsafe { (*scan).spoiled == 0 }
}

/// Whether the entries the scan found are exactly the record's, byte for byte.
#[inline(always)]
fn env_matches(ev: &ExecEvent, v: *const AllowValue) -> bool {
    let Some(scan) = ENVSCAN.get_ptr(0) else {
        return false;
    };
    // SAFETY: both are map values valid for this invocation.
    let (found, mask, words) = unsafe { ((*scan).found, (*v).env_mask, (*v).env_words) };
    if found != mask {
        return false;
    }
    if mask == 0 {
        return true;
    }
    let mut values = EnvValues {
        env: ev.body.env.as_ptr(),
        scan,
        v,
        differ: 0,
        _pad: 0,
    };
    // SAFETY: bpf_loop calls the step with a pointer to `values`.
    unsafe {
        bpf_loop(
            words,
            env_value_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut values).cast(),
            0,
        )
    };
    values.differ == 0
}

/// Outcome of the `ALLOW` check.
pub enum Allow {
    /// Record id, whether a `once` entry was consumed, and whether the record's
    /// script must be verified before the launch runs (`RECORD_VERIFY`).
    Yes(u64, bool, bool),
    No,
    /// The capture was incomplete: nothing can match.
    Unchecked,
}

/// `bpf_loop` context of the `ALLOW` check: one step per key variant.
#[repr(C)]
struct AllowScan {
    ev: *const ExecEvent,
    key: AllowKey,
    now: u64,
    filter_key: u64,
    record: u64,
    uid: u32,
    profile: u32,
    /// 0: environment not scanned yet; 1: scanned; 2: spoiled.
    env: u32,
    /// `ALLOW_*` below.
    result: u32,
}

const ALLOW_NO: u32 = 0;
const ALLOW_YES: u32 = 1;
const ALLOW_ONCE: u32 = 2;
const ALLOW_UNCHECKED: u32 = 3;

/// Key variant `index`: `uid` and `profile` exactly or as wildcards. Returns 1 (stop)
/// once a variant decided.
unsafe extern "C" fn allow_step(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's AllowScan on its stack; ev is the per-CPU scratch.
    let c = unsafe { &mut *ctx.cast::<AllowScan>() };
    let ev = unsafe { &*c.ev };
    let n = index as u32;
    c.key.uid = if n & 1 == 0 { c.uid } else { ANY };
    c.key.profile = if n & 2 == 0 { c.profile } else { ANY };
    let Some(vp) = ALLOW.get_ptr(&c.key) else {
        return 0;
    };
    // SAFETY: value pointer valid for this invocation.
    let v: &AllowValue = unsafe { &*vp };
    if v.expires_boot_ns != 0 && c.now >= v.expires_boot_ns {
        return 0;
    }
    let len = c.key.argv_len;
    if len as usize > ARGV_CAP || !same_bytes(ev.body.argv.as_ptr(), v.argv.as_ptr(), len, true) {
        return 0;
    }
    if v.flags & allow_flags::CWD != 0
        && (v.cwd_len != ev.hdr.cwd_len
            || v.cwd_len as usize > PATH_CAP
            || !same_bytes(ev.body.cwd.as_ptr(), v.cwd.as_ptr(), v.cwd_len, false))
    {
        return 0;
    }
    if c.env == 0 {
        c.env = if env_scan(ev, c.filter_key) { 1 } else { 2 };
    }
    if c.env != 1 {
        // Spoiled: too many candidates, or a name twice. Fail closed.
        c.result = ALLOW_UNCHECKED;
        return 1;
    }
    if !env_matches(ev, vp) {
        return 0;
    }
    c.record = v.record_id;
    if v.flags & allow_flags::ONCE != 0 {
        // Only the exec whose delete succeeds gets the one use.
        if ALLOW.remove(&c.key).is_err() {
            return 0;
        }
        c.result = ALLOW_ONCE;
        return 1;
    }
    c.result = ALLOW_YES;
    1
}

/// An allowed launch whose script the daemon must verify first: stopped (enforce
/// and ask mode) until the daemon resumes it, or killed when no daemon runs to
/// verify. Monitor mode lets it run; the daemon checks after the fact. Returns
/// (signal to send, event flags), like [`answer`].
#[inline(always)]
pub fn hold_for_verify(m: u32, daemon_alive: bool) -> (u32, u32) {
    use monitor_common::event_flags as f;
    if m == mode::MONITOR {
        (0, f::VERIFY)
    } else if daemon_alive {
        (SIGSTOP, f::VERIFY | f::HELD)
    } else {
        (SIGKILL, f::VERIFY | f::KILLED)
    }
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
    let mut scan = AllowScan {
        ev: core::ptr::from_ref(ev),
        key: AllowKey {
            dev: ev.hdr.exe_dev,
            argv_len: len,
            ino: ev.hdr.exe_ino,
            ctime_sec: ev.hdr.exe_ctime_sec,
            ctime_nsec: ev.hdr.exe_ctime_nsec & 0x3fff_ffff,
            uid: ev.hdr.uid,
            profile: ev.hdr.host_profile,
            _pad: 0,
            argv_hash: argv_hash(ev.body.argv.as_ptr(), len, s.sip_k0, s.sip_k1),
        },
        now,
        filter_key: s.sip_k0,
        record: 0,
        uid: ev.hdr.uid,
        profile: ev.hdr.host_profile,
        env: 0,
        result: ALLOW_NO,
    };
    // SAFETY: bpf_loop calls allow_step with a pointer to `scan`.
    unsafe {
        bpf_loop(
            4,
            allow_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut scan).cast(),
            0,
        )
    };
    // The daemon marks a record to verify in its id (no extra state in the loop).
    let verify = scan.record & monitor_common::RECORD_VERIFY != 0;
    let record = scan.record & !monitor_common::RECORD_VERIFY;
    match scan.result {
        ALLOW_YES => Allow::Yes(record, false, verify),
        ALLOW_ONCE => Allow::Yes(record, true, verify),
        ALLOW_UNCHECKED => Allow::Unchecked,
        _ => Allow::No,
    }
}

/// The mode's answer to an unapproved or denied exec: (signal to send, event
/// flags). `hold` is false for a managed deny and a traced launch (final: never
/// asked; a tracer could resume a held tracee without SIGCONT).
#[inline(always)]
pub fn answer(m: u32, hold: bool, daemon_alive: bool) -> (u32, u32) {
    use monitor_common::event_flags as f;
    match m {
        mode::MONITOR => (0, 0),
        mode::ASK if hold && daemon_alive => (SIGSTOP, f::HELD),
        mode::ASK if hold => (SIGKILL, f::KILLED | f::ASK_DEGRADED),
        _ => (SIGKILL, f::KILLED),
    }
}

/// Send `sig` (0: none) to the current process — the new image, before it runs.
/// Returns `SIGNAL_FAILED` when the kernel refused.
#[inline(always)]
pub fn send(sig: u32) -> u32 {
    if sig == 0 {
        return 0;
    }
    // SAFETY: signals the current process.
    if unsafe { bpf_send_signal(sig) } < 0 {
        monitor_common::event_flags::SIGNAL_FAILED
    } else {
        0
    }
}
