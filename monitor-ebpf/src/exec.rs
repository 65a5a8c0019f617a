//! `sched_process_exec`: where a tracked process's new image is captured, checked
//! and reported. An untracked exec costs one map lookup (and the filename key when
//! `#!` hosts are configured); a tracked one becomes a host, a launch (the consent
//! check) or a recorded exec inside a session.
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel_str_bytes,
        generated::bpf_ktime_get_boot_ns,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    event_flags, holds, kind, role, stat, task_flags, ExeKey, ExecEvent, TaskState, ARGV_CAP,
    ENTRY_MARK, ENV_CAP, ENV_OFF, FILENAME_CAP, HOST_PATH_KEY,
};

use crate::{
    capture::{fill_common, read_user_block},
    classify::{
        argv_names_host_script, classify_launch, CLASS_HELPER_EXE, CLASS_LAUNCH, CLASS_TERMINAL,
    },
    enforce,
    maps::{self, count, DENY_EXES, HOST_EXES, HOST_PATHS, KEYBUF, SCRATCH, TRACKED},
    names,
    output::output,
    path::walk_path,
    rd, rd_ptr, Res,
};

/// What the consent check looks at for an exec (see `emit_exec`).
const CHECK_NONE: u32 = 0;
/// An exec inside a session: managed denies apply.
const CHECK_SESSION: u32 = 1;
/// A launch: managed denies, then `ALLOW`.
const CHECK_LAUNCH: u32 = 2;

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
/// hosts) by the filename passed to execve. A config entry's command
/// (`ENTRY_MARK`) is no host.
#[inline(always)]
fn host_profile(ctx: &TracePointContext, exe: &ExeKey) -> Option<u32> {
    host_profile_or_entry(ctx, exe).filter(|&p| p != ENTRY_MARK)
}

/// [`host_profile`], or `ENTRY_MARK` when the filename is a config entry's command.
#[inline(always)]
fn host_profile_or_entry(ctx: &TracePointContext, exe: &ExeKey) -> Option<u32> {
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
    if n > 255 {
        return None;
    }
    let lens = enforce::settings_ref()?;
    // The word index through memory, masked after: the compiler would otherwise
    // drop the mask (n <= 255 makes it redundant) and index with a copy of `loc`
    // whose bound 6.1's verifier does not know.
    // SAFETY: a volatile read of a local.
    let word = unsafe { core::ptr::read_volatile(&(n >> 6)) } & 3;
    // SAFETY: the settings value lives in map memory for this invocation.
    let bits = unsafe { (*lens).host_path_lens.get(word as usize).copied() }?;
    if (bits >> (n & 63)) & 1 == 0 {
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

/// Whether this exec makes the (untracked, or terminal) process a host: by
/// executable identity, script path, or the name it was executed under. The new
/// state and the event flags to add.
#[inline(always)]
fn detect(
    ctx: &TracePointContext,
    tgid: u32,
    exe: &ExeKey,
    exe_file: *const u8,
    mm: *const u8,
) -> Option<(TaskState, u32)> {
    let by_path = host_profile_or_entry(ctx, exe);
    if let Some(profile) = by_path.filter(|&p| p != ENTRY_MARK) {
        names::forget_host(tgid);
        count(stat::HOSTS_DETECTED);
        return Some((new_host(tgid, profile), event_flags::HOST_DETECTED));
    }
    let Some(found) = names::name_profile(ctx, exe, mm) else {
        // A config entry's command run by a process no profile recognises: report
        // it (not tracked) for the daemon to compare with the entries; with no
        // daemon to read it, nothing (it would only fill the ring buffer).
        let alive = enforce::settings_ref().is_some_and(|s| {
            // SAFETY: the settings value lives in map memory for this invocation.
            unsafe { (*s).daemon_tgid != 0 }
        });
        return by_path
            .filter(|_| alive)
            .map(|_| (TaskState::default(), event_flags::UNKNOWN_HOST));
    };
    let profile = found & !names::BY_PACKAGE;
    let mut st = new_host(tgid, profile);
    st.flags |= task_flags::NAMED_HOST;
    count(stat::HOSTS_DETECTED);
    if found & names::BY_PACKAGE != 0 {
        // An interpreter on a package's script: `HOST_SELF` holds the script.
        names::forget_root_exe(tgid);
        return Some((
            st,
            event_flags::HOST_DETECTED | event_flags::HOST_BY_PACKAGE,
        ));
    }
    names::forget_host(tgid);
    names::note_root_exe(tgid, exe, exe_file, profile);
    names::note_self_path(ctx, tgid);
    Some((st, event_flags::HOST_DETECTED | event_flags::HOST_BY_NAME))
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
            // Untracked: the only work is these lookups (identity, the filename key
            // when script hosts are configured, the filename's last component).
            // Become a host before the first fork.
            let Some((st, f)) = detect(ctx, tgid, &exe, exe_file, mm) else {
                return Ok(());
            };
            if f & event_flags::UNKNOWN_HOST == 0 && TRACKED.insert(&tgid, &st, 0).is_err() {
                count(stat::TRACKED_FULL);
            }
            flags |= f;
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
                if st.flags & task_flags::NAMED_HOST != 0 && st.host_pid == tgid {
                    // A host recognised by name going on in place (`env` → `node`).
                    if names::is_shell(&exe) {
                        // It was a shell wrapper named like its host: the host is
                        // what the wrapper runs next. Tracking ends here (below).
                        flags |= event_flags::HOST_DROPPED;
                    } else {
                        flags |= event_flags::HOST_REEXEC;
                        names::note_root_exe(tgid, &exe, exe_file, st.host_profile);
                    }
                } else if host_profile(ctx, &exe).is_some() || names::is_root_exe(st.host_pid, &exe)
                {
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
                let detected = detect(ctx, tgid, &exe, exe_file, mm);
                if let Some((host, f)) =
                    detected.filter(|(_, f)| f & event_flags::UNKNOWN_HOST == 0)
                {
                    st = host;
                    flags |= f;
                }
            }
            if flags & event_flags::HOST_DROPPED != 0 {
                let _ = TRACKED.remove(&tgid);
            } else {
                // SAFETY: as above.
                unsafe { *p = st };
            }
            st
        }
    };
    emit_exec(
        ctx, task, mm, exe_file, inode, &exe, &state, prev_role, flags, check,
    )
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
    if check == CHECK_LAUNCH && argv_names_host_script(ev, st.host_profile, st.host_pid) {
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
