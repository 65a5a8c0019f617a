//! Hosts recognised by the name they are executed under: the last component of the
//! exec filename (`claude`, `gemini`, `cursor`) in `HOST_NAMES`, wherever the host is
//! installed (any npm prefix, a project's `node_modules/.bin`, `npx`, the native
//! installer's link, an `AppImage` mount) and whenever (installed or upgraded after
//! the daemon started: no path or inode to resolve).
//!
//! Only a process that is not tracked yet (or a terminal's, which is recorded, not
//! checked) is recognised this way: becoming a host only adds checks. A host's own
//! child is never a host by name, so a config entry naming `/tmp/x/claude` is a
//! launch like any other.
use aya_ebpf::{
    helpers::generated::{bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str},
    programs::TracePointContext,
};
use monitor_common::{
    class_exe, ExeKey, NameKey, TailKey, HOST_NAME_KEY, HOST_PATH_KEY, NAME_INTERPRETER,
    SCRIPT_TAIL,
};

use crate::{
    maps::{CLASS_EXES, HOST_NAMES, HOST_ROOT_EXE, HOST_SCRIPT_TAILS, HOST_SELF, KEYBUF},
    rd_ptr,
};

/// Where the key is built in the per-CPU `KEYBUF` (the filename's tail is read to
/// offset 0).
const NAME_AT: usize = 64;
/// Where `start` goes through map memory (see its barrier).
const SLOT: usize = 128;
const WINDOW: u32 = HOST_NAME_KEY as u32;

/// Clear `KEYBUF` up to the end of the name key: keys are NUL-padded.
#[inline(always)]
fn clear(buf: *mut u8) {
    let words = buf.cast::<u64>();
    for i in 0..((NAME_AT + HOST_NAME_KEY) / 8) {
        // SAFETY: i < 12, inside the 256-byte per-CPU buffer.
        unsafe { words.add(i).write_volatile(0) };
    }
}

/// Whether `exe` is a login shell (`CLASS_EXES`).
#[inline(always)]
pub(crate) fn is_shell(exe: &ExeKey) -> bool {
    // SAFETY: plain map lookup; value copied out.
    unsafe { CLASS_EXES.get(exe) }.is_some_and(|c| *c & class_exe::MASK == class_exe::SHELL)
}

/// The host profile named by the last component of the exec filename, unless the
/// new image is a login shell (a `#!/bin/sh` wrapper named like its host: the host
/// is what the wrapper executes next, recognised then).
///
/// Reads only the filename's last `HOST_NAME_KEY` bytes; a last component of
/// `HOST_NAME_KEY` bytes or more names nothing.
#[inline(never)]
pub(crate) fn name_profile(ctx: &TracePointContext, exe: &ExeKey, mm: *const u8) -> Option<u32> {
    if cfg!(host_names_enabled) == 0 {
        return None;
    }
    // SAFETY: reads the `__data_loc` word of the tracepoint record.
    let loc: u32 = unsafe { ctx.read_at(cfg!(tp_exec_filename) as usize) }.ok()?;
    // Length with its NUL.
    let n = loc >> 16;
    if n < 2 {
        return None;
    }
    let len = n - 1;
    let take = if len > WINDOW { WINDOW } else { len };
    let buf = KEYBUF.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch owned by this program invocation.
    let path = unsafe { &mut (*buf).path };
    clear(path.as_mut_ptr());
    let src = ctx_ptr(ctx).wrapping_add(((loc & 0xffff) + len - take) as usize);
    // The filename's last `take` bytes and its NUL (a string read: its size is a
    // constant the verifier can check, where `take` would not be).
    // SAFETY: reads at most WINDOW + 1 bytes of the record into the 256-byte buffer.
    let ret =
        unsafe { bpf_probe_read_kernel_str(path.as_mut_ptr().cast(), WINDOW + 1, src.cast()) };
    if ret <= 0 || ret as u32 != take + 1 {
        return None;
    }
    // The last '/' in the window; none means the name starts before it (too long)
    // unless the window is the whole filename.
    let mut start = 0u32;
    let mut found = len <= take;
    let mut j = 0u32;
    while j < WINDOW {
        if j >= take {
            break;
        }
        let i = take - 1 - j;
        if path[(i & (WINDOW - 1)) as usize] == b'/' {
            start = i + 1;
            found = true;
            break;
        }
        j += 1;
    }
    if !found || start >= take || take - start >= WINDOW {
        return None;
    }
    // Verifier barrier: read back from map memory, `start` is one unknown value, so
    // what follows is verified once, not once per position of the '/'.
    // SAFETY: SLOT + 4 <= 256, 4-aligned, inside the per-CPU buffer.
    let start = unsafe {
        let slot = path.as_mut_ptr().add(SLOT).cast::<u32>();
        slot.write_volatile(start);
        slot.read_volatile()
    } & (WINDOW - 1);
    // The name is the rest of the filename: a string read stops at its NUL.
    // SAFETY: reads at most WINDOW bytes into the key at NAME_AT.
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            path.as_mut_ptr().add(NAME_AT).cast(),
            WINDOW,
            src.wrapping_add(start as usize).cast(),
        )
    };
    if ret <= 1 {
        return None;
    }
    // SAFETY: NAME_AT + HOST_NAME_KEY <= 256; NameKey is a byte array.
    let key = unsafe { &*path.as_ptr().add(NAME_AT).cast::<NameKey>() };
    // SAFETY: plain map lookup; value copied out.
    let profile = unsafe { HOST_NAMES.get(key) }.copied()?;
    if is_shell(exe) {
        return None;
    }
    if profile == NAME_INTERPRETER {
        return package_profile(mm).map(|p| p | BY_PACKAGE);
    }
    Some(profile)
}

/// `name_profile`'s mark on a host found by its package script: `HOST_SELF` then
/// already holds the script (not the interpreter's filename).
pub(crate) const BY_PACKAGE: u32 = 1 << 31;

/// An interpreter's argv[1] whose path ends like a profile's package script
/// (`HOST_SCRIPT_TAILS`): that profile. The script's path, NUL-padded, is left in
/// `HOST_SELF` for the host's relaunches.
#[inline(always)]
fn package_profile(mm: *const u8) -> Option<u32> {
    let start: u64 = crate::rd(mm, cfg!(mm_arg_start)).ok()?;
    let end: u64 = crate::rd(mm, cfg!(mm_arg_end)).ok()?;
    let buf = KEYBUF.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch owned by this program invocation.
    let path = unsafe { &mut (*buf).path };
    // argv[0], for where argv[1] starts.
    // SAFETY: a bounded string read of user memory into the 256-byte buffer.
    let n0 = unsafe {
        bpf_probe_read_user_str(
            path.as_mut_ptr().cast(),
            HOST_PATH_KEY as u32,
            start as *const _,
        )
    };
    if n0 <= 0 {
        return None;
    }
    let arg1 = start + n0 as u64;
    if arg1 >= end {
        return None;
    }
    let words = path.as_mut_ptr().cast::<u64>();
    for i in 0..(HOST_PATH_KEY / 8) {
        // SAFETY: i < 32, inside the 256-byte key.
        unsafe { words.add(i).write_volatile(0) };
    }
    // SAFETY: as above.
    let n1 = unsafe {
        bpf_probe_read_user_str(
            path.as_mut_ptr().cast(),
            (HOST_PATH_KEY - 1) as u32,
            arg1 as *const _,
        )
    };
    // A path that fills the key may go on: its tail is unknown.
    if n1 <= SCRIPT_TAIL as i64 || n1 as usize >= HOST_PATH_KEY - 1 {
        return None;
    }
    let mut tail = TailKey::default();
    // SAFETY: a constant-size read of user memory: the script path's last bytes.
    let ret = unsafe {
        bpf_probe_read_user(
            tail.tail.as_mut_ptr().cast(),
            SCRIPT_TAIL as u32,
            (arg1 + (n1 as u64 - 1) - SCRIPT_TAIL as u64) as *const _,
        )
    };
    if ret != 0 {
        return None;
    }
    // SAFETY: plain map lookup; value copied out.
    let profile = unsafe { HOST_SCRIPT_TAILS.get(&tail) }.copied()?;
    if path[0] == b'/' {
        // SAFETY: the key is a plain byte array in map memory.
        let tgid = (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32;
        let _ = HOST_SELF.insert(&tgid, unsafe { &*buf }, 0);
    }
    Some(profile)
}

/// Remember the executable of a host recognised by name when the executable's own
/// file name is a name of that host (the binary itself, not an interpreter running
/// it): its re-executions by the host's children are the host (`HOST_ROOT_EXE`).
#[inline(never)]
pub(crate) fn note_root_exe(tgid: u32, exe: &ExeKey, exe_file: *const u8, profile: u32) {
    let Some(buf) = KEYBUF.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch owned by this program invocation.
    let path = unsafe { &mut (*buf).path };
    clear(path.as_mut_ptr());
    let Ok(dentry) = rd_ptr(exe_file, cfg!(file_f_path) + cfg!(path_dentry)) else {
        return;
    };
    let Ok(name) = rd_ptr(dentry, cfg!(dentry_d_name) + cfg!(qstr_name)) else {
        return;
    };
    // One byte more than the key: a read that fills it is a name too long to be one.
    // SAFETY: reads at most HOST_NAME_KEY + 1 bytes into the buffer at NAME_AT.
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            path.as_mut_ptr().add(NAME_AT).cast(),
            WINDOW + 1,
            name.cast(),
        )
    };
    if ret <= 1 || ret > WINDOW as i64 {
        return;
    }
    // SAFETY: NAME_AT + HOST_NAME_KEY <= 256; NameKey is a byte array.
    let key = unsafe { &*path.as_ptr().add(NAME_AT).cast::<NameKey>() };
    // SAFETY: plain map lookup.
    if unsafe { HOST_NAMES.get(key) }.is_some_and(|&p| p == profile) {
        let _ = HOST_ROOT_EXE.insert(&tgid, exe, 0);
    }
}

/// Whether `exe` is the executable `note_root_exe` remembered for host `host_pid`.
#[inline(always)]
pub(crate) fn is_root_exe(host_pid: u32, exe: &ExeKey) -> bool {
    // SAFETY: plain map lookup.
    unsafe { HOST_ROOT_EXE.get(&host_pid) }.is_some_and(|k| k == exe)
}

/// Forget the executable an earlier host of this tgid left (`HOST_ROOT_EXE`).
#[inline(always)]
pub(crate) fn forget_root_exe(tgid: u32) {
    let _ = HOST_ROOT_EXE.remove(&tgid);
}

/// Forget what an earlier host of this tgid left (`HOST_ROOT_EXE`, `HOST_SELF`): a
/// new host, or the host's exit. A recycled pid inherits nothing.
#[inline(always)]
pub(crate) fn forget_host(tgid: u32) {
    let _ = HOST_ROOT_EXE.remove(&tgid);
    let _ = HOST_SELF.remove(&tgid);
}

/// Remember the absolute exec filename a host recognised by name was started
/// under (`HOST_SELF`). A relative one is not kept: an interpreter relaunching its
/// script names it absolute.
#[inline(never)]
pub(crate) fn note_self_path(ctx: &TracePointContext, tgid: u32) {
    // SAFETY: reads the `__data_loc` word of the tracepoint record.
    let Ok(loc) = (unsafe { ctx.read_at::<u32>(cfg!(tp_exec_filename) as usize) }) else {
        return;
    };
    let n = loc >> 16;
    if n < 2 || n as usize > HOST_PATH_KEY - 1 {
        return;
    }
    let Some(buf) = KEYBUF.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch owned by this program invocation.
    let path = unsafe { &mut (*buf).path };
    let words = path.as_mut_ptr().cast::<u64>();
    for i in 0..(HOST_PATH_KEY / 8) {
        // SAFETY: i < 32, inside the 256-byte key.
        unsafe { words.add(i).write_volatile(0) };
    }
    let src = ctx_ptr(ctx).wrapping_add((loc & 0xffff) as usize);
    // SAFETY: reads the filename (at most HOST_PATH_KEY - 1 bytes and its NUL).
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            path.as_mut_ptr().cast(),
            (HOST_PATH_KEY - 1) as u32,
            src.cast(),
        )
    };
    if ret <= 1 || path[0] != b'/' {
        return;
    }
    // SAFETY: the key is a plain byte array in map memory.
    let _ = HOST_SELF.insert(&tgid, unsafe { &*buf }, 0);
}

/// Whether `key` (an argument, NUL-padded) is the exec filename host `host_pid`
/// was started under (`HOST_SELF`).
#[inline(always)]
pub(crate) fn is_self_path(host_pid: u32, key: &monitor_common::PathKey) -> bool {
    // SAFETY: plain map lookup; the value stays valid for this invocation.
    let Some(own) = (unsafe { HOST_SELF.get(&host_pid) }) else {
        return false;
    };
    let a = key.path.as_ptr().cast::<u64>();
    let b = own.path.as_ptr().cast::<u64>();
    for i in 0..(HOST_PATH_KEY / 8) {
        // SAFETY: i < 32, inside both 256-byte keys.
        if unsafe { a.add(i).read_volatile() != b.add(i).read_volatile() } {
            return false;
        }
    }
    true
}

#[inline(always)]
fn ctx_ptr(ctx: &TracePointContext) -> *const u8 {
    use aya_ebpf::EbpfContext as _;
    ctx.as_ptr().cast::<u8>().cast_const()
}
