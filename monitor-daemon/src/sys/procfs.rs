//! Processes: `/proc/PID/stat` (read in one place), pidfds, signalling a pid only
//! while it is the process it was.

/// The fields of `/proc/PID/stat` the daemon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 4.
    pub ppid: u32,
    /// Field 22: start time, clock ticks after boot.
    pub start_ticks: u64,
}

impl Stat {
    /// Whether the process is live: not a zombie, not dead.
    pub fn is_live(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// Parse the text of `/proc/PID/stat`. The comm field may contain spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3); ppid is field 4, starttime field 22.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of `pid`, `None` when there is no such process.
pub fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Start time (clock ticks since boot) and parent of a live process.
pub fn proc_start(pid: u32) -> Option<(u64, u32, char)> {
    read_stat(pid).map(|s| (s.start_ticks, s.ppid, s.state))
}

/// Start time of `pid` while it is a live process: not a zombie, not dead. A
/// zombie keeps `/proc/PID` but has already left the kernel's maps and lets go of
/// nothing it held, so nothing may be trusted to it.
pub fn live_start(pid: u32) -> Option<u64> {
    read_stat(pid).and_then(|s| s.is_live().then_some(s.start_ticks))
}

/// A pidfd for `pid`, or why not (`ESRCH`: no such process).
pub fn pidfd_open(pid: u32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    // A pid beyond pid_t would be negative to the kernel, which refuses it.
    let raw_pid =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall; on success we own the returned fd.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(std::io::Error::other)?;
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The pid a pidfd names now (`Pid:` of its fdinfo), `None` when its process
/// exited (-1) or lives in another pid namespace (0).
pub fn pidfd_pid(fd: &std::os::fd::OwnedFd) -> Option<u32> {
    use std::os::fd::AsRawFd as _;
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&p| p > 0)
        .and_then(|p| u32::try_from(p).ok())
}

/// Whether the process of a pidfd has exited (a pidfd is readable from then on,
/// zombie or reaped).
pub fn pidfd_exited(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    let n = unsafe { libc::poll(&raw mut p, 1, 0) };
    n != 0
}

/// Signal `pid` only if it is still the process that started at `start`.
pub fn signal_if_same(pid: u32, start: u64, sig: i32) -> bool {
    // pidfd first, then re-check the start time: a pid recycled in between is
    // caught by the check, one recycled after is not signalled (the pidfd is bound).
    // A pid beyond pid_t is no process (pidfd_open would refuse it as negative).
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: plain syscalls on our own fd.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, raw_pid, 0);
        if fd < 0 {
            return false;
        }
        let fd = i32::try_from(fd).unwrap_or(-1);
        let same = proc_start(pid).is_some_and(|(s, _, _)| s == start);
        let ok = same
            && libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) == 0;
        libc::close(fd);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_count_from_the_last_paren() {
        let s = "42 (a b) c)) S 77 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n";
        assert_eq!(
            parse_stat(s),
            Some(Stat {
                state: 'S',
                ppid: 77,
                start_ticks: 5555
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        let hostile =
            "1234 (a) b (c) S 77 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5555 0 0";
        assert_eq!(
            parse_stat(hostile).map(|s| (s.ppid, s.start_ticks)),
            Some((77, 5555))
        );
        assert!(!parse_stat(&s.replace(") S", ") Z")).unwrap().is_live());
    }

    #[test]
    fn reads_this_process() {
        let me = read_stat(std::process::id()).unwrap();
        assert!(me.is_live());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
    }
}
