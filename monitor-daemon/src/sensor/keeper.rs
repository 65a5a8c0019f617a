//! Keeping the programs attached when the daemon dies.
//!
//! The normal way is to pin the links on bpffs. Some kernels refuse that (on our own
//! VMs `BPF_OBJ_PIN` of a link or program fails with EPERM while map pins work), so
//! the fallback is a *link keeper*: a tiny root process (`mcpwatchd --hold-links`)
//! that inherits a duplicate of every link fd and does nothing else. A link stays
//! attached while any fd refers to it, so killing the daemon (even with SIGKILL)
//! leaves enforcement in place. A restarted daemon finds the keeper through
//! `<state_dir>/keeper.json`, checks it really is a keeper holding links, copies
//! the link fds back with `pidfd_getfd(2)` and takes over without attaching a second
//! set of programs. `mcpwatchd --unload` stops the keeper.
use std::{
    fs, io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
        unix::process::CommandExt as _,
    },
    path::{Path, PathBuf},
    process::Command,
};

use serde::{Deserialize, Serialize};

/// Argument that turns `mcpwatchd` into a link keeper.
pub const HOLD_ARG: &str = "--hold-links";
pub const STATE_FILE: &str = "keeper.json";
/// First fd number the keeper receives links on.
const FIRST_FD: RawFd = 3;

/// What the daemon writes about its keeper (atomically, 0600).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperState {
    pub pid: u32,
    /// Build id of the programs whose links the keeper holds.
    pub generation: String,
    /// Program name and the fd number it has in the keeper.
    pub links: Vec<(String, RawFd)>,
}

fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_FILE)
}

/// The new fd an fd-returning syscall gave back, or its error.
fn syscall_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(ret).map_err(io::Error::other)?;
    // SAFETY: a non-negative return of these syscalls is a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_getfd(pidfd: &OwnedFd, target: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; a non-negative return is a new fd (a duplicate).
    syscall_fd(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) })
}

/// Whether `pid` is a keeper: its argv carries `HOLD_ARG` (a recycled pid would
/// not) and each recorded fd is a BPF link.
fn is_keeper(state: &KeeperState) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{}/cmdline", state.pid)) else {
        return false;
    };
    if !cmdline.split(|&b| b == 0).any(|a| a == HOLD_ARG.as_bytes()) {
        return false;
    }
    state.links.iter().all(|(_, fd)| {
        fs::read_link(format!("/proc/{}/fd/{fd}", state.pid))
            .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf_link")
    })
}

/// The keeper recorded in `state_dir`, if it is alive and really a keeper.
pub fn find(state_dir: &Path) -> Option<KeeperState> {
    let text = fs::read_to_string(state_path(state_dir)).ok()?;
    let state: KeeperState = serde_json::from_str(&text).ok()?;
    is_keeper(&state).then_some(state)
}

/// Copies of a keeper's link fds, so the links also live as long as we do.
pub fn copy_fds(state: &KeeperState) -> io::Result<Vec<OwnedFd>> {
    let pidfd = crate::sys::procfs::pidfd_open(state.pid)?;
    state
        .links
        .iter()
        .map(|(_, fd)| pidfd_getfd(&pidfd, *fd))
        .collect()
}

/// `BPF_OBJ_PIN` of any BPF fd (aya's `FdLink::pin` consumes the link and drops it
/// on failure, which would detach it).
pub fn pin_fd(fd: RawFd, path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    #[repr(C)]
    struct ObjAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        /// The kernel checks that bytes past the last field are zero.
        pad: u32,
    }
    const BPF_OBJ_PIN: libc::c_long = 6;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: u32::try_from(fd).map_err(io::Error::other)?,
        file_flags: 0,
        path_fd: 0,
        pad: 0,
    };
    // SAFETY: attr and the path outlive the call; the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<ObjAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Every open fd of this process that is a BPF link.
pub fn own_link_fds() -> Vec<RawFd> {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut fds: Vec<RawFd> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: RawFd = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            (target.to_string_lossy() == "anon_inode:bpf_link").then_some(fd)
        })
        .collect();
    fds.sort_unstable();
    fds
}

/// Start a keeper holding `links` (program name, fd in this process) and record it.
pub fn spawn(
    state_dir: &Path,
    generation: &str,
    links: &[(String, RawFd)],
) -> io::Result<KeeperState> {
    let exe = std::env::current_exe()?;
    let sources: Vec<RawFd> = links.iter().map(|(_, fd)| *fd).collect();
    // Link i goes to fd FIRST_FD + i in the keeper. Counted here, before the fork:
    // the child may only make async-signal-safe calls.
    let count = RawFd::try_from(links.len()).map_err(io::Error::other)?;
    let mut cmd = Command::new(exe);
    cmd.arg(HOLD_ARG).arg(generation);
    // No inherited stdio: a keeper must not hold the daemon's pipes open.
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec: dup2 and setsid.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sources out of the way first so dup2 cannot clobber one.
            let base = 100;
            for (i, &fd) in (0..count).zip(&sources) {
                if libc::dup2(fd, base + i) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for i in 0..count {
                if libc::dup2(base + i, FIRST_FD + i) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(base + i);
            }
            // Its own session: not killed with the daemon's terminal or group.
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let state = KeeperState {
        pid: child.id(),
        generation: generation.to_owned(),
        links: (FIRST_FD..)
            .zip(links)
            .map(|(fd, (name, _))| (name.clone(), fd))
            .collect(),
    };
    // The child is reaped by nobody once we die; while we live it never exits on
    // its own. Forget the handle: dropping a Child does not kill it.
    drop(child);
    write_state(state_dir, &state)?;
    Ok(state)
}

fn write_state(state_dir: &Path, state: &KeeperState) -> io::Result<()> {
    fs::create_dir_all(state_dir)?;
    let text = serde_json::to_string(state).map_err(io::Error::other)?;
    crate::sys::fs::write_atomic(&state_path(state_dir), text.as_bytes())?;
    Ok(())
}

/// Stop the keeper recorded in `state_dir` (if it is one): its links detach unless
/// someone else holds them. Returns its pid.
pub fn stop(state_dir: &Path, only: Option<&KeeperState>) -> Option<u32> {
    let text = fs::read_to_string(state_path(state_dir)).ok()?;
    let state: KeeperState = serde_json::from_str(&text).ok()?;
    if only.is_some_and(|o| o != &state) {
        return None;
    }
    stop_state(&state);
    let _ = fs::remove_file(state_path(state_dir));
    Some(state.pid)
}

/// Stop one keeper (verified first: a recycled pid is left alone).
pub fn stop_state(state: &KeeperState) {
    if !is_keeper(state) {
        return;
    }
    // A verified keeper is a live process: its pid fits pid_t.
    if let Ok(pid) = libc::pid_t::try_from(state.pid) {
        // SAFETY: plain kill(2) of a verified keeper.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The keeper's main: hold the inherited fds, do nothing, exit only when killed.
pub fn hold() -> ! {
    // SAFETY: ignoring job-control and hangup signals; the keeper has no handlers.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    loop {
        // SAFETY: pause(2) just sleeps until a signal.
        unsafe { libc::pause() };
    }
}
