//! What a host's exec of a non-host image is: the host relaunching itself through
//! its interpreter, one of its helpers, a terminal, its login-environment probe, or
//! (anything else) a launch.
use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use monitor_common::{
    class_exe, profile_flags, ExeKey, ExecEvent, ARGV_CAP, HOST_PATH_KEY, HOST_SCRIPT_ARG_FIRST,
    HOST_SCRIPT_ARG_LAST,
};

use crate::{
    maps::{CLASS_EXES, HOST_PATHS, KEYBUF, PROFILE_FLAGS},
    names, rd, rd_ptr,
};

/// Whether argv[1..=3] names a `#!` host script of `profile`, or the script host
/// `host_pid` was started under (`HOST_SELF`): the host relaunching itself through
/// its interpreter, `node …/cli.js`. Not a launch.
///
/// The kernel's copy of `monitor_common::argv_names_host_script`, the rule userspace
/// uses, over the captured argv block and `HOST_PATHS`. Each argument is read into the
/// key with a bounded read of at most `HOST_PATH_KEY - 1` bytes and its NUL; one that
/// fills the key (255 bytes or more) ends the walk with no match, as the rule says: its
/// first bytes must not pass for a script, and the next read would start inside it
/// (an argument ending in the script's path would then match). The daemon's `hosts`
/// tests run a model of this function and the rule on the same cases.
#[inline(always)]
pub(crate) fn argv_names_host_script(ev: &ExecEvent, profile: u32, host_pid: u32) -> bool {
    if cfg!(host_paths_enabled) == 0 && cfg!(host_names_enabled) == 0 {
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
    while n <= HOST_SCRIPT_ARG_LAST {
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
                HOST_PATH_KEY as u32,
                ev.body
                    .argv
                    .as_ptr()
                    .wrapping_add((off as usize) & (ARGV_CAP - 1))
                    .cast(),
            )
        };
        // A read that fills the key did not reach the argument's end.
        if ret <= 0 || ret as usize >= HOST_PATH_KEY {
            return false;
        }
        if n >= HOST_SCRIPT_ARG_FIRST {
            // SAFETY: plain map lookup.
            if unsafe { HOST_PATHS.get(&*key) }.is_some_and(|&p| p == profile) {
                return true;
            }
            // The script this host itself was started under (hosts found by name).
            if names::is_self_path(host_pid, key) {
                return true;
            }
        }
        off += ret as u32;
        n += 1;
    }
    false
}

/// `classify_launch` answers.
pub(crate) const CLASS_LAUNCH: u32 = 0;
pub(crate) const CLASS_HELPER_EXE: u32 = 1;
pub(crate) const CLASS_TERMINAL: u32 = 2;
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
pub(crate) fn classify_launch(ev: &ExecEvent, task: *const u8, exe: &ExeKey, profile: u32) -> u32 {
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
