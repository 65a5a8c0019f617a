//! mcpwatch kernel programs: follow MCP host process trees and report their execs.
//!
//! Thin by design: capture, look up, act, emit. Which processes are hosts comes from
//! `HOST_EXES` / `HOST_PATHS` (filled by userspace from host profiles); everything the
//! programs read from kernel structs goes through offsets in `CONFIG`, resolved by the
//! daemon from BTF at startup (Rust eBPF has no CO-RE relocations).
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod enforce;
mod maps;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
        generated::{
            bpf_ktime_get_boot_ns, bpf_loop, bpf_probe_read_kernel_str, bpf_probe_read_user,
            bpf_ringbuf_output,
        },
    },
    macros::{btf_tracepoint, lsm, tracepoint},
    programs::{BtfTracePointContext, LsmContext, TracePointContext},
};
use maps::{
    count, CLASS_EXES, DENY_EXES, DOOMED, EVENTS, HOST_EXES, HOST_PATHS, KEYBUF, PROFILE_FLAGS,
    SCRATCH, SETTINGS, TRACKED,
};
use monitor_common::{
    class_exe, event_flags, holds, kind, profile_flags, role, stat, task_flags, EventHeader,
    ExeKey, ExecEvent, KernelConfig, TaskState, ARGV_CAP, ENV_CAP, ENV_OFF, FILENAME_CAP,
    HOST_PATH_KEY, PATH_CAP, PATH_COMPONENT_CAP, PATH_DEPTH_MAX,
};

/// Kernel layout, filled in by the daemon before load (`EbpfLoader::set_global`).
/// All zero (and `ready == 0`) means "not configured": the programs then do nothing.
#[unsafe(no_mangle)]
static CONFIG: KernelConfig = unsafe { core::mem::zeroed() };

/// Read one field of `CONFIG`. Volatile so the compiler cannot fold the all-zero
/// initialiser into the code: userspace rewrites `.rodata` before load.
macro_rules! cfg {
    ($f:ident) => {
        conf(&CONFIG.$f)
    };
}

#[inline(always)]
fn conf(v: &u32) -> u32 {
    // SAFETY: a valid reference into CONFIG.
    unsafe { core::ptr::read_volatile(v) }
}

type Res<T> = Result<T, i64>;

/// What the consent check looks at for an exec (see `emit_exec`).
const CHECK_NONE: u32 = 0;
/// An exec inside a session: managed denies apply.
const CHECK_SESSION: u32 = 1;
/// A launch: managed denies, then `ALLOW`.
const CHECK_LAUNCH: u32 = 2;

/// Read a `T` at `base + off` from kernel memory.
#[inline(always)]
fn rd<T>(base: *const u8, off: u32) -> Res<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }.map_err(i64::from)
}

#[inline(always)]
fn rd_ptr(base: *const u8, off: u32) -> Res<*const u8> {
    let p: *const u8 = rd(base, off)?;
    if p.is_null() {
        Err(-14)
    } else {
        Ok(p)
    }
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    match try_sched_process_exec(&ctx) {
        Ok(()) => 0,
        Err(_) => {
            count(stat::READ_ERRORS);
            0
        }
    }
}

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

/// Executable identity of the current task: `mm->exe_file`'s inode (dev, ino) and its
/// ctime, so a file modified in place is not confused with what was hashed before.
#[inline(always)]
fn exe_identity(mm: *const u8) -> Res<(ExeKey, *const u8, *const u8)> {
    let exe_file = rd_ptr(mm, cfg!(mm_exe_file))?;
    let inode = rd_ptr(exe_file, cfg!(file_f_inode))?;
    let ino: u64 = rd(inode, cfg!(inode_i_ino))?;
    let sb = rd_ptr(inode, cfg!(inode_i_sb))?;
    let dev: u32 = rd(sb, cfg!(sb_s_dev))?;
    Ok((ExeKey { dev, _pad: 0, ino }, exe_file, inode))
}

/// Host profile matching the new image: by executable identity, then (for `#!`
/// hosts) by the filename passed to execve.
#[inline(always)]
fn host_profile(ctx: &TracePointContext, exe: &ExeKey) -> Option<u32> {
    // SAFETY: plain map lookup; value is copied out.
    if let Some(id) = unsafe { HOST_EXES.get(exe) } {
        return Some(*id);
    }
    if cfg!(host_paths_enabled) == 0 {
        return None;
    }
    let loc: u32 = unsafe { ctx.read_at(cfg!(tp_exec_filename) as usize) }.ok()?;
    // Only a filename as long as some host script's is worth copying and hashing
    // (256 bytes of key): most execs stop here.
    let n = loc >> 16;
    let lens = enforce::settings_ref()?;
    // SAFETY: n is masked into the 256-bit table.
    let bits = unsafe { (*lens).host_path_lens[((n >> 6) & 3) as usize] };
    if n > 255 || (bits >> (n & 63)) & 1 == 0 {
        return None;
    }
    let key = KEYBUF.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch owned by this program invocation.
    let key = unsafe { &mut *key };
    // Keys are NUL-padded: clear what a previous lookup left behind.
    let words = key.path.as_mut_ptr().cast::<u64>();
    for i in 0..(HOST_PATH_KEY / 8) {
        // SAFETY: i < HOST_PATH_KEY / 8, inside the 256-byte key.
        unsafe { words.add(i).write_volatile(0) };
    }
    let src = ctx_ptr(ctx).wrapping_add((loc & 0xffff) as usize);
    // SAFETY: kernel string read into the key buffer, bounded by its size.
    unsafe { bpf_probe_read_kernel_str_bytes(src, &mut key.path[..HOST_PATH_KEY - 1]) }.ok()?;
    // SAFETY: plain map lookup.
    unsafe { HOST_PATHS.get(&*key) }.copied()
}

#[inline(always)]
fn ctx_ptr(ctx: &TracePointContext) -> *const u8 {
    use aya_ebpf::EbpfContext as _;
    ctx.as_ptr().cast::<u8>().cast_const()
}

/// The state of a process that just became the root of a host tree.
#[inline(always)]
fn new_host(tgid: u32, profile: u32) -> TaskState {
    TaskState {
        role: role::HOST,
        flags: 0,
        host_pid: tgid,
        host_profile: profile,
        session_pid: 0,
        parent_pid: 0,
    }
}

fn try_sched_process_exec(ctx: &TracePointContext) -> Res<()> {
    if cfg!(ready) == 0 {
        return Ok(());
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // A child `TRACKED` had no room for (a vfork child can exec before it faults).
    if maps::any_doomed() && maps::kill_if_doomed(tgid) {
        return Ok(());
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let mm = rd_ptr(task, cfg!(task_mm))?;
    let (exe, exe_file, inode) = exe_identity(mm)?;

    let mut flags = 0u32;
    let mut check = CHECK_NONE;
    let prev_role;
    let state = match TRACKED.get_ptr_mut(&tgid) {
        None => {
            // Untracked: the only work is this lookup (and the filename key when
            // script hosts are configured). Become a host before the first fork.
            let Some(profile) = host_profile(ctx, &exe) else {
                return Ok(());
            };
            let st = new_host(tgid, profile);
            if TRACKED.insert(&tgid, &st, 0).is_err() {
                count(stat::TRACKED_FULL);
            }
            count(stat::HOSTS_DETECTED);
            flags |= event_flags::HOST_DETECTED;
            prev_role = role::NONE;
            st
        }
        Some(p) => {
            // SAFETY: value pointer from the map, valid for this invocation.
            let mut st = unsafe { *p };
            prev_role = st.role;
            if st.flags & task_flags::FIRST_EXEC_IS_HOST != 0 {
                // `mcpwatch run` tracked itself and now execs the host proper.
                st.flags &= !task_flags::FIRST_EXEC_IS_HOST;
                flags |= event_flags::HOST_RUN_EXEC;
            } else if st.role == role::HOST {
                if host_profile(ctx, &exe).is_some() {
                    // The host re-executing a host image (helpers, relaunch).
                    flags |= event_flags::HOST_REEXEC;
                } else {
                    // A launch: this process roots a new session.
                    st.role = role::SESSION;
                    st.session_pid = tgid;
                    check = CHECK_LAUNCH;
                }
            } else if st.role == role::SESSION {
                check = CHECK_SESSION;
            } else if st.role == role::TERMINAL || st.role == role::HELPER {
                // Recorded, never checked. A host started from a terminal (`claude`
                // typed in VS Code's terminal) is a host of its own from here on.
                if let Some(profile) = host_profile(ctx, &exe) {
                    st = new_host(tgid, profile);
                    count(stat::HOSTS_DETECTED);
                    flags |= event_flags::HOST_DETECTED;
                }
            }
            // SAFETY: as above.
            unsafe { *p = st };
            st
        }
    };
    emit_exec(
        ctx, task, mm, exe_file, inode, &exe, &state, prev_role, flags, check,
    )
}

/// Whether argv[1..=3] names a `#!` host script of `profile` (the host relaunching
/// itself through its interpreter, `node …/cli.js`): not a launch.
#[inline(always)]
fn argv_names_host_script(ev: &ExecEvent, profile: u32) -> bool {
    if cfg!(host_paths_enabled) == 0 {
        return false;
    }
    let Some(key) = KEYBUF.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch owned by this program invocation.
    let key = unsafe { &mut *key };
    let len = ev.hdr.argv_len;
    let mut off: u32 = 0;
    let mut n = 0;
    while n < 4 {
        if off >= len || off as usize >= ARGV_CAP {
            return false;
        }
        let words = key.path.as_mut_ptr().cast::<u64>();
        for i in 0..(HOST_PATH_KEY / 8) {
            // SAFETY: i < HOST_PATH_KEY / 8, inside the 256-byte key.
            unsafe { words.add(i).write_volatile(0) };
        }
        // SAFETY: reads one NUL-terminated argument out of the captured argv.
        let ret = unsafe {
            bpf_probe_read_kernel_str(
                key.path.as_mut_ptr().cast(),
                (HOST_PATH_KEY - 1) as u32,
                ev.body
                    .argv
                    .as_ptr()
                    .wrapping_add((off as usize) & (ARGV_CAP - 1))
                    .cast(),
            )
        };
        if ret <= 0 {
            return false;
        }
        if n > 0 {
            // SAFETY: plain map lookup.
            if unsafe { HOST_PATHS.get(&*key) }.is_some_and(|&p| p == profile) {
                return true;
            }
        }
        off += ret as u32;
        n += 1;
    }
    false
}

/// `classify_launch` answers.
const CLASS_LAUNCH: u32 = 0;
const CLASS_HELPER_EXE: u32 = 1;
const CLASS_TERMINAL: u32 = 2;
const CLASS_PROBE: u32 = 3;

const S_IFMT: u16 = 0o170_000;
const S_IFCHR: u16 = 0o020_000;
const S_IFIFO: u16 = 0o010_000;
const S_IFSOCK: u16 = 0o140_000;
/// `UNIX98_PTY_SLAVE_MAJOR` .. `+ UNIX98_PTY_MAJOR_COUNT - 1`: /dev/pts/N.
const PTS_MAJOR_FIRST: u32 = 136;
const PTS_MAJOR_LAST: u32 = 143;

/// What an exec by a host process of a non-host image is, from signals the
/// exec'ing process cannot fake through the host's MCP config:
///
/// - one of this host's helper executables (`CLASS_EXES`): a helper;
/// - a session leader (`setsid`) with a controlling tty and a pty on stdin: a
///   terminal (VS Code's ptyHost, Zed's terminal). Hosts spawn MCP servers on pipes
///   or socketpairs and never give them a controlling tty;
/// - a login shell (`/etc/shells`) run as `-l -i -c …` (any order, joined or not)
///   by a host that probes its login environment (`PROFILE_FLAGS`), with stdin
///   neither a pipe nor a socket: the environment probe. An MCP server always
///   has its protocol pipe on stdin, so a config entry `bash -lic …` stays a launch.
///
/// Anything else is a launch.
#[inline(always)]
fn classify_launch(ev: &ExecEvent, task: *const u8, exe: &ExeKey, profile: u32) -> u32 {
    // SAFETY: plain map lookup; value copied out.
    let class = unsafe { CLASS_EXES.get(exe) }.copied().unwrap_or(0);
    if class & class_exe::MASK == class_exe::HELPER && class >> 8 == profile {
        return CLASS_HELPER_EXE;
    }
    let stdin = stdin_mode(task);
    if let Ok(signal) = rd_ptr(task, cfg!(task_signal)) {
        let leader: i32 = rd(signal, cfg!(signal_leader)).unwrap_or(0);
        if leader != 0 && rd_ptr(signal, cfg!(signal_tty)).is_ok() {
            if let Some((mode, rdev)) = stdin {
                let major = rdev >> 20;
                if mode & S_IFMT == S_IFCHR && (PTS_MAJOR_FIRST..=PTS_MAJOR_LAST).contains(&major) {
                    return CLASS_TERMINAL;
                }
            }
        }
    }
    if class & class_exe::MASK != class_exe::SHELL {
        return CLASS_LAUNCH;
    }
    let probes = PROFILE_FLAGS
        .get(profile)
        .is_some_and(|f| *f & profile_flags::ENV_PROBE != 0);
    if !probes {
        return CLASS_LAUNCH;
    }
    if let Some((mode, _)) = stdin {
        let t = mode & S_IFMT;
        if t == S_IFIFO || t == S_IFSOCK {
            return CLASS_LAUNCH;
        }
    }
    if login_shell_args(ev) {
        CLASS_PROBE
    } else {
        CLASS_LAUNCH
    }
}

/// `(i_mode, i_rdev)` of the file on fd 0, `None` when fd 0 is closed.
#[inline(always)]
fn stdin_mode(task: *const u8) -> Option<(u16, u32)> {
    let files = rd_ptr(task, cfg!(task_files)).ok()?;
    let fdt = rd_ptr(files, cfg!(files_fdt)).ok()?;
    let fds = rd_ptr(fdt, cfg!(fdtable_fd)).ok()?;
    let file = rd_ptr(fds, 0).ok()?;
    let inode = rd_ptr(file, cfg!(file_f_inode)).ok()?;
    let mode: u16 = rd(inode, cfg!(inode_i_mode)).ok()?;
    let rdev: u32 = rd(inode, cfg!(inode_i_rdev)).unwrap_or(0);
    Some((mode, rdev))
}

/// Whether argv is `SHELL -l -i -c CMD` with the three options in any order and
/// grouping (`-ilc`, `-i -l -c`, `-lic`), `c` last, and a command after it.
#[inline(always)]
fn login_shell_args(ev: &ExecEvent) -> bool {
    let Some(key) = KEYBUF.get_ptr_mut(0) else {
        return false;
    };
    let len = ev.hdr.argv_len;
    // Length of argv[0], NUL included.
    // SAFETY: reads one NUL-terminated argument out of the captured argv into the
    // per-CPU scratch key.
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            (*key).path.as_mut_ptr().cast(),
            (HOST_PATH_KEY - 1) as u32,
            ev.body.argv.as_ptr().cast(),
        )
    };
    if ret <= 0 {
        return false;
    }
    let mut off = ret as u32;
    let mut seen = 0u32;
    let mut word = 0;
    while word < 3 {
        if off >= len || off as usize >= ARGV_CAP - 8 {
            return false;
        }
        let at = |i: u32| ev.body.argv[((off + i) as usize) & (ARGV_CAP - 1)];
        if at(0) != b'-' {
            return false;
        }
        let mut i = 1;
        let mut end = 0;
        while i < 5 {
            match at(i) {
                0 => {
                    end = i;
                    break;
                }
                b'l' => seen |= 1,
                b'i' => seen |= 2,
                b'c' => seen |= 4,
                _ => return false,
            }
            i += 1;
        }
        if end < 2 {
            return false;
        }
        off += end + 1;
        if seen & 4 != 0 {
            // `c` ends the options: the command must follow.
            return seen == 7 && off < len;
        }
        word += 1;
    }
    false
}

/// The consent check and the mode's answer, on a fully captured exec event. Returns
/// the event flags to add.
#[inline(always)]
fn verdict(ev: &mut ExecEvent, task: *const u8, exe: &ExeKey, check: u32, flags: u32) -> u32 {
    let settings = enforce::settings().unwrap_or_default();
    let m = enforce::mode_of(ev.hdr.host_profile);
    ev.hdr.mode = m;
    let alive = settings.daemon_tgid != 0;
    // One signal site for every outcome: (signal, flags) first, sent at the end.
    // SAFETY: plain map lookup.
    let (sig, out) = if unsafe { DENY_EXES.get(exe) }.is_some() {
        let (sig, f) = enforce::answer(m, false, alive);
        (sig, event_flags::DENIED | f)
    } else if check != CHECK_LAUNCH {
        (0, 0)
    } else {
        count(stat::LAUNCHES);
        launch_verdict(ev, task, &settings, m, alive, flags)
    };
    out | enforce::send(sig)
}

/// The consent check of a launch: (signal, event flags).
#[inline(always)]
fn launch_verdict(
    ev: &mut ExecEvent,
    task: *const u8,
    settings: &monitor_common::Settings,
    m: u32,
    alive: bool,
    flags: u32,
) -> (u32, u32) {
    // A tracer can rewrite a traced launch into anything once it runs: it never
    // matches a record (PTRACE_TRACEME, then exec of an approved binary), and it is
    // never held: its tracer could resume it with PTRACE_CONT, no SIGCONT needed.
    if rd::<u32>(task, cfg!(task_ptrace)).map_or(true, |p| p != 0) {
        let (sig, f) = enforce::answer(m, false, alive);
        return (sig, event_flags::UNAPPROVED | event_flags::TRACED | f);
    }
    let incomplete = flags
        & (event_flags::ARGV_TRUNCATED
            | event_flags::ARGV_READ_FAILED
            | event_flags::ENV_TRUNCATED
            | event_flags::ENV_READ_FAILED
            | event_flags::CWD_TRUNCATED)
        != 0;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    match enforce::allow(ev, settings, incomplete, now) {
        enforce::Allow::Yes(record, once, verify) => {
            count(stat::ALLOWED);
            ev.hdr.record_id = record;
            let (sig, f) = if verify {
                enforce::hold_for_verify(m, alive)
            } else {
                (0, 0)
            };
            let once = if once { event_flags::ONCE_CONSUMED } else { 0 };
            (sig, event_flags::ALLOWED | f | once)
        }
        enforce::Allow::No => {
            let (sig, f) = enforce::answer(m, true, alive);
            (sig, event_flags::UNAPPROVED | f)
        }
        enforce::Allow::Unchecked => {
            let (sig, f) = enforce::answer(m, true, alive);
            (
                sig,
                event_flags::UNAPPROVED | event_flags::ENV_UNCHECKED | f,
            )
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn emit_exec(
    ctx: &TracePointContext,
    task: *const u8,
    mm: *const u8,
    exe_file: *const u8,
    inode: *const u8,
    exe: &ExeKey,
    st: &TaskState,
    prev_role: u32,
    mut flags: u32,
    check: u32,
) -> Res<()> {
    let ev = SCRATCH.get_ptr_mut(0).ok_or(-12i64)?;
    // SAFETY: per-CPU scratch owned by this invocation.
    let ev: &mut ExecEvent = unsafe { &mut *ev };
    fill_common(&mut ev.hdr, task, st);
    ev.hdr.kind = kind::EXEC;
    ev.hdr.prev_role = prev_role;
    ev.hdr.tid = unsafe { ctx.read_at::<u32>(cfg!(tp_exec_old_pid) as usize) }.unwrap_or(0);
    ev.hdr.child_pid = 0;
    ev.hdr.exit_code = 0;
    ev.hdr.exe_dev = exe.dev;
    ev.hdr.exe_ino = exe.ino;
    ev.hdr.exe_ctime_sec = rd(inode, cfg!(inode_ctime_sec)).unwrap_or(0);
    ev.hdr.exe_ctime_nsec = rd(inode, cfg!(inode_ctime_nsec)).unwrap_or(0);

    // Filename as passed to execve (the tracepoint's copy: bprm->filename).
    ev.hdr.filename_len = 0;
    if let Ok(loc) = unsafe { ctx.read_at::<u32>(cfg!(tp_exec_filename) as usize) } {
        let src = ctx_ptr(ctx).wrapping_add((loc & 0xffff) as usize);
        if let Ok(s) = unsafe { bpf_probe_read_kernel_str_bytes(src, &mut ev.body.filename) } {
            ev.hdr.filename_len = s.len() as u32;
            if s.len() >= FILENAME_CAP - 1 && (loc >> 16) as usize > FILENAME_CAP {
                flags |= event_flags::FILENAME_TRUNCATED;
            }
        }
    }

    // Paths the process cannot change: the mapped executable and the cwd, rebuilt
    // from dentries (bpf_d_path is not allowed in tracepoints).
    let exe_path = exe_file.wrapping_add(cfg!(file_f_path) as usize);
    let (len, truncated) = walk_path(exe_path, ev.body.exe_path.as_mut_ptr());
    ev.hdr.exe_path_len = len;
    if truncated {
        flags |= event_flags::EXE_PATH_TRUNCATED;
    }
    ev.hdr.cwd_len = 0;
    if let Ok(fs) = rd_ptr(task, cfg!(task_fs)) {
        let pwd = fs.wrapping_add(cfg!(fs_pwd) as usize);
        let (len, truncated) = walk_path(pwd, ev.body.cwd.as_mut_ptr());
        ev.hdr.cwd_len = len;
        if truncated {
            flags |= event_flags::CWD_TRUNCATED;
        }
    } else {
        flags |= event_flags::PATH_READ_FAILED;
    }

    // argv and environment exactly as the kernel just laid them out on the new
    // stack: readable here, before the first instruction (PLATFORM.md).
    let (len, total, f) = read_user_block(
        mm,
        cfg!(mm_arg_start),
        cfg!(mm_arg_end),
        ev.body.argv.as_mut_ptr(),
        ARGV_CAP as u64,
        (event_flags::ARGV_TRUNCATED, event_flags::ARGV_READ_FAILED),
    );
    ev.hdr.argv_len = len;
    ev.hdr.argv_total = total;
    flags |= f;
    let (len, total, f) = read_user_block(
        mm,
        cfg!(mm_env_start),
        cfg!(mm_env_end),
        ev.body.env.as_mut_ptr(),
        ENV_CAP as u64,
        (event_flags::ENV_TRUNCATED, event_flags::ENV_READ_FAILED),
    );
    ev.hdr.env_len = len;
    ev.hdr.env_total = total;
    flags |= f;

    // Verifier barrier: the capture above leaves many combinations of known flag
    // bits and lengths; read back from map memory they are one unknown value, so
    // the consent check below is verified once, not once per combination.
    // SAFETY: plain volatile store/load of a field of our scratch value.
    let mut flags = unsafe {
        core::ptr::write_volatile(&mut ev.hdr.flags, flags);
        core::ptr::read_volatile(&ev.hdr.flags)
    };
    ev.hdr.mode = 0;
    ev.hdr.record_id = 0;
    let mut check = check;
    if check == CHECK_LAUNCH && argv_names_host_script(ev, st.host_profile) {
        // The host relaunching itself through its interpreter: undo the launch.
        check = CHECK_NONE;
        flags |= event_flags::HOST_REEXEC;
        ev.hdr.role = role::HOST;
        ev.hdr.session_pid = 0;
        if let Some(p) = TRACKED.get_ptr_mut(&ev.hdr.pid) {
            // SAFETY: value pointer valid for this invocation.
            unsafe {
                (*p).role = role::HOST;
                (*p).session_pid = 0;
            }
        }
    }
    if check == CHECK_LAUNCH {
        let class = classify_launch(ev, task, exe, st.host_profile);
        if class != CLASS_LAUNCH {
            // Not a launch: a helper keeps the host role (what it executes next is
            // checked); a terminal or the env probe roots a recorded, unchecked tree.
            check = CHECK_NONE;
            let new_role = match class {
                CLASS_HELPER_EXE => {
                    flags |= event_flags::HELPER;
                    role::HOST
                }
                CLASS_TERMINAL => {
                    flags |= event_flags::TERMINAL;
                    role::TERMINAL
                }
                _ => {
                    flags |= event_flags::HELPER;
                    role::HELPER
                }
            };
            ev.hdr.role = new_role;
            ev.hdr.session_pid = 0;
            if let Some(p) = TRACKED.get_ptr_mut(&ev.hdr.pid) {
                // SAFETY: value pointer valid for this invocation.
                unsafe {
                    (*p).role = new_role;
                    (*p).session_pid = 0;
                }
            }
        }
    }
    if check != CHECK_NONE {
        if check == CHECK_LAUNCH {
            flags |= event_flags::LAUNCH;
        }
        let v = verdict(ev, task, exe, check, flags);
        flags |= v;
        if v & event_flags::KILLED != 0 {
            count(stat::KILLED);
        }
        if v & event_flags::HELD != 0 {
            count(stat::HELD);
            if let Some(p) = TRACKED.get_ptr_mut(&ev.hdr.pid) {
                // SAFETY: value pointer valid for this invocation.
                unsafe {
                    if (*p).flags & task_flags::HELD == 0 {
                        maps::hold_count(holds::HELD);
                    }
                    (*p).flags |= task_flags::HELD;
                }
            }
        }
        if v & event_flags::SIGNAL_FAILED != 0 {
            count(stat::SIGNAL_FAILED);
        }
    }
    ev.hdr.flags = flags;

    let mut size = ENV_OFF as u64 + u64::from(ev.hdr.env_len);
    if size > core::mem::size_of::<ExecEvent>() as u64 {
        size = core::mem::size_of::<ExecEvent>() as u64;
    }
    count(stat::EXECS);
    output(
        core::ptr::from_mut(ev).cast(),
        size,
        flags & (event_flags::HELD | event_flags::KILLED | event_flags::DENIED) != 0,
    );
    Ok(())
}

/// Copy `[start, end)` of the current process's memory (argv or environment).
/// Returns (bytes captured, real size, event flag): `(truncated, failed)` says
/// which flag marks a capture cut at `cap` and which a failed read.
#[inline(always)]
fn read_user_block(
    mm: *const u8,
    start_off: u32,
    end_off: u32,
    dst: *mut u8,
    cap: u64,
    (truncated, failed): (u32, u32),
) -> (u32, u32, u32) {
    let Ok(start) = rd::<u64>(mm, start_off) else {
        return (0, 0, failed);
    };
    let Ok(end) = rd::<u64>(mm, end_off) else {
        return (0, 0, failed);
    };
    let total = end.saturating_sub(start);
    let mut len = total;
    if len > cap {
        len = cap;
    }
    // Keep the size provably within [0, cap] for the verifier.
    len &= (cap << 1) - 1;
    if len > cap {
        return (0, total as u32, failed);
    }
    let cut = if total > len { truncated } else { 0 };
    if len == 0 {
        return (0, total as u32, cut);
    }
    // SAFETY: dst has room for `cap` bytes; the helper validates the user address.
    let ret = unsafe { bpf_probe_read_user(dst.cast(), len as u32, start as *const _) };
    if ret < 0 {
        return (0, total as u32, failed);
    }
    (len as u32, total as u32, cut)
}

/// `bpf_loop` context of the dentry walk.
#[repr(C)]
struct Walk {
    dentry: *const u8,
    vfsmnt: *const u8,
    mnt: *const u8,
    out: *mut u8,
    off: u32,
    /// `WALK_*` below.
    state: u32,
}

const WALK_GOING: u32 = 0;
const WALK_DONE: u32 = 1;
const WALK_TRUNCATED: u32 = 2;

/// One step up the tree: a component added, or a mount point crossed.
unsafe extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: ctx is the caller's Walk on its stack.
    let w = unsafe { &mut *ctx.cast::<Walk>() };
    let (Ok(mnt_root), Ok(parent)) = (
        rd_ptr(w.vfsmnt, cfg!(vfsmount_mnt_root)),
        rd_ptr(w.dentry, cfg!(dentry_d_parent)),
    ) else {
        w.state = WALK_TRUNCATED;
        return 1;
    };
    if w.dentry == mnt_root || w.dentry == parent {
        if w.dentry != mnt_root {
            // A dentry with no parent that is not a mount root: a pseudo file
            // (memfd, anonymous inode) or a disconnected one. Stop here.
            w.off = own_name(w.dentry, w.out, w.off);
            w.state = WALK_DONE;
            return 1;
        }
        let (Ok(mnt_parent), Ok(mountpoint)) = (
            rd_ptr(w.mnt, cfg!(mount_mnt_parent)),
            rd_ptr(w.mnt, cfg!(mount_mnt_mountpoint)),
        ) else {
            w.state = WALK_TRUNCATED;
            return 1;
        };
        if mnt_parent == w.mnt {
            w.off = own_name(w.dentry, w.out, w.off);
            w.state = WALK_DONE;
            return 1;
        }
        w.dentry = mountpoint;
        w.mnt = mnt_parent;
        w.vfsmnt = mnt_parent.wrapping_add(cfg!(mount_mnt) as usize);
        return 0;
    }
    let off = w.off;
    if off as usize > PATH_CAP - PATH_COMPONENT_CAP {
        w.state = WALK_TRUNCATED;
        return 1;
    }
    let Ok(name) = rd_ptr(w.dentry, cfg!(dentry_d_name) + cfg!(qstr_name)) else {
        w.state = WALK_TRUNCATED;
        return 1;
    };
    // SAFETY: off <= PATH_CAP - PATH_COMPONENT_CAP, so the write stays inside the
    // PATH_CAP field; the mask only makes that visible to the verifier.
    let ret = unsafe {
        bpf_probe_read_kernel_str(
            w.out.wrapping_add((off as usize) & (PATH_CAP - 1)).cast(),
            PATH_COMPONENT_CAP as u32,
            name.cast(),
        )
    };
    if ret <= 0 {
        w.state = WALK_TRUNCATED;
        return 1;
    }
    w.off = (off + ret as u32) & (2 * PATH_CAP as u32 - 1);
    w.dentry = parent;
    0
}

/// Rebuild a `struct path` into `out` (PATH_CAP bytes plus slack inside the scratch
/// value), leaf first, each component NUL-terminated. Crosses mount points through
/// `struct mount`. Returns (bytes written, truncated). A `bpf_loop` with its state
/// in the context, so the verifier checks one step, not `PATH_DEPTH_MAX` of them.
#[inline(always)]
fn walk_path(path: *const u8, out: *mut u8) -> (u32, bool) {
    let (Ok(dentry), Ok(vfsmnt)) = (
        rd_ptr(path, cfg!(path_dentry)),
        rd_ptr(path, cfg!(path_mnt)),
    ) else {
        return (0, true);
    };
    let mut w = Walk {
        dentry,
        vfsmnt,
        mnt: vfsmnt.wrapping_sub(cfg!(mount_mnt) as usize),
        out,
        off: 0,
        state: WALK_GOING,
    };
    // SAFETY: bpf_loop calls walk_step with a pointer to `w`.
    unsafe {
        bpf_loop(
            PATH_DEPTH_MAX,
            walk_step as *mut core::ffi::c_void,
            core::ptr::from_mut(&mut w).cast(),
            0,
        )
    };
    (w.off & (2 * PATH_CAP as u32 - 1), w.state != WALK_DONE)
}

/// Fork and exit events are a bare header in a reserved (not zeroed) ring-buffer
/// slot: clear the exec-only fields so no stale bytes reach userspace.
#[inline(always)]
fn clear_exec_fields(h: &mut EventHeader) {
    h.exe_dev = 0;
    h.exe_ino = 0;
    h.exe_ctime_sec = 0;
    h.exe_ctime_nsec = 0;
    h.filename_len = 0;
    h.exe_path_len = 0;
    h.cwd_len = 0;
    h.argv_len = 0;
    h.argv_total = 0;
    h.env_len = 0;
    h.env_total = 0;
}

/// At the end of a walk that found no component (`off == 0`), the dentry's own
/// name: for the real root it is "/" (nothing to add); for files on internal,
/// never-mounted filesystems (a memfd, an anonymous inode) it is the file's own
/// name, e.g. `memfd:x` — without it a fileless exec would show as `/`.
#[inline(always)]
fn own_name(dentry: *const u8, out: *mut u8, off: u32) -> u32 {
    if off != 0 {
        return off;
    }
    let Ok(name) = rd_ptr(dentry, cfg!(dentry_d_name) + cfg!(qstr_name)) else {
        return off;
    };
    // SAFETY: off == 0 and a component fits the PATH_CAP field.
    let ret =
        unsafe { bpf_probe_read_kernel_str(out.cast(), PATH_COMPONENT_CAP as u32, name.cast()) };
    // SAFETY: out has at least one byte.
    let first = unsafe { *out };
    if ret > 2 || (ret == 2 && first != b'/') {
        (ret as u32) & (PATH_CAP as u32 - 1)
    } else {
        off
    }
}

/// Fill the fields every event carries: identity, credentials, namespace pid, state.
#[inline(always)]
fn fill_common(h: &mut EventHeader, task: *const u8, st: &TaskState) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    h.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    h.pid = (pid_tgid >> 32) as u32;
    h.tid = pid_tgid as u32;
    h.uid = uid_gid as u32;
    h.gid = (uid_gid >> 32) as u32;
    h.ppid = rd_ptr(task, cfg!(task_real_parent))
        .and_then(|p| rd::<u32>(p, cfg!(task_tgid)))
        .unwrap_or(0);
    let (ns_pid, level, inum) = ns_pid(task);
    h.ns_pid = ns_pid;
    h.ns_level = level;
    h.pidns_inum = inum;
    h.role = st.role;
    h.host_pid = st.host_pid;
    h.host_profile = st.host_profile;
    h.session_pid = st.session_pid;
    h.lineage_parent = st.parent_pid;
    h.mode = 0;
    h.record_id = 0;
    h.comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0; 16]);
}

/// The task's pid as seen in its own pid namespace: `thread_pid->numbers[level]`.
#[inline(always)]
fn ns_pid(task: *const u8) -> (u32, u32, u32) {
    let Ok(pid) = rd_ptr(task, cfg!(task_thread_pid)) else {
        return (0, 0, 0);
    };
    let level: u32 = rd(pid, cfg!(pid_level)).unwrap_or(0);
    let upid = pid
        .wrapping_add(cfg!(pid_numbers) as usize)
        .wrapping_add((level as usize) * (cfg!(upid_size) as usize));
    let nr: u32 = rd(upid, cfg!(upid_nr)).unwrap_or(0);
    let inum = rd_ptr(upid, cfg!(upid_ns))
        .and_then(|ns| rd::<u32>(ns, cfg!(pidns_inum)))
        .unwrap_or(0);
    (nr, level, inum)
}

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
fn wakeup_flags() -> u64 {
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
fn output(data: *const u8, size: u64, urgent: bool) {
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

/// A header-only event about the current task (exit, signal, LSM deny): common
/// fields and state from `st`, exec fields cleared, then `fill` sets the rest.
#[inline(always)]
fn emit_header(st: &TaskState, fill: impl FnOnce(&mut EventHeader), urgent: bool) {
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

/// SIGKILL the current process: `KILLED`, or `SIGNAL_FAILED` when refused.
#[inline(always)]
fn kill_current() -> u32 {
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
fn report_bypass(st: &TaskState, flags: u32, target: u32, how: u32, by: u32) {
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

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
