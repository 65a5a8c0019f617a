//! API callers: who they are (pinned by pidfd when the call arrives), the typed
//! refusal or failure of a call, and the rule that nothing inside an agent's tree
//! may change consent.

use tracing::warn;

use crate::{engine::core::Core, event::Kind, sys::procfs};

/// A refused or failed API call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The caller may not do this (D-Bus `AccessDenied`).
    #[error("{0}")]
    Refused(String),
    /// It could not be done (D-Bus `Failed`).
    #[error("{0}")]
    Failed(String),
}

/// Credentials of an API caller, as the bus daemon reports them.
#[derive(Clone, Debug)]
pub struct Caller {
    pub pid: u32,
    pub uid: u32,
    /// Who the caller is: a pidfd (from the bus, else opened when the call
    /// arrived) and the process's start time then. `None`: it could not be
    /// identified (already gone), and it may grant nothing.
    pub ident: Option<CallerIdent>,
}

/// A caller's process, pinned when its call arrived.
#[derive(Clone, Debug)]
pub struct CallerIdent {
    pub pidfd: std::sync::Arc<std::os::fd::OwnedFd>,
    /// Start time (clock ticks after boot, /proc/PID/stat field 22).
    pub start: u64,
    /// The bus gave the pidfd (`ProcessFD`, from `SO_PEERPIDFD`: the very process
    /// that connected); else the daemon opened it from the bus's pid.
    pub from_bus: bool,
}

/// Pin the caller `pid`: with the bus's pidfd when given (it must name `pid`),
/// else one opened now. `None` when the process is gone, a zombie, or the bus's
/// pidfd names another process.
pub fn identify(pid: u32, bus_fd: Option<std::os::fd::OwnedFd>) -> Option<CallerIdent> {
    let from_bus = bus_fd.is_some();
    let fd = match bus_fd {
        Some(fd) => fd,
        None => procfs::pidfd_open(pid).ok()?,
    };
    if procfs::pidfd_pid(&fd) != Some(pid) {
        return None;
    }
    let start = procfs::live_start(pid)?;
    // Read after the start time: the pidfd still names a live process, so the
    // start time read was its own, not a recycled pid's.
    if procfs::pidfd_exited(&fd) {
        return None;
    }
    Some(CallerIdent {
        pidfd: std::sync::Arc::new(fd),
        start,
        from_bus,
    })
}

/// 0: not known yet; 1: the bus gives `ProcessFD`; 2: it does not.
static BUS_PIDFD: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// How API callers are pinned (`mcpwatch status`): `bus ProcessFD`, `pidfd at
/// arrival`, or `unknown` (no bus).
pub fn caller_pinning() -> &'static str {
    match BUS_PIDFD.load(std::sync::atomic::Ordering::Relaxed) {
        1 => "bus ProcessFD",
        2 => "pidfd at arrival",
        _ => "unknown",
    }
}

/// Say whether the bus pins callers itself (`ProcessFD`): the D-Bus server asks
/// the bus once it is connected.
pub fn set_caller_pinning(bus_gives_pidfd: bool) {
    BUS_PIDFD.store(
        if bus_gives_pidfd { 1 } else { 2 },
        std::sync::atomic::Ordering::Relaxed,
    );
}

impl Caller {
    /// Whether the process pinned at arrival is still alive (not a zombie) and is
    /// still the one at `pid`.
    fn still_there(&self) -> bool {
        self.ident.as_ref().is_some_and(|id| {
            !procfs::pidfd_exited(&id.pidfd) && procfs::live_start(self.pid) == Some(id.start)
        })
    }
}

pub(super) fn refused(msg: impl Into<String>) -> ApiError {
    ApiError::Refused(msg.into())
}

pub(super) fn failed(msg: impl Into<String>) -> ApiError {
    ApiError::Failed(msg.into())
}

impl Core {
    /// Refuse consent operations from inside an agent's tree: the caller, or any
    /// ancestor, tracked by the kernel or the tracker. Records the refusal.
    pub fn refuse_if_agent(&mut self, caller: &Caller, what: &str) -> Result<(), ApiError> {
        // The bus names the pid that opened the connection. When that process is
        // gone (or a zombie), another one holds the socket, and nobody can say
        // which: refuse. (An agent's process that exits leaves its connection to
        // a child; looked up, the dead pid had no tracked entry and no ancestors.)
        if !caller.still_there() {
            let msg = format!(
                "{what}: the process that opened this bus connection (pid {}) has exited; whoever holds the connection now cannot be identified, so it cannot grant, revoke or continue anything",
                caller.pid
            );
            warn!(
                caller_pid = caller.pid,
                caller_uid = caller.uid,
                what,
                "consent call over a dead process's connection refused"
            );
            return Err(self.record_refusal(caller, &msg));
        }
        let mut pid = caller.pid;
        for _ in 0..64 {
            if pid <= 1 {
                break;
            }
            if let Some(st) = self.sensor.tracked_state(pid) {
                let host = self.host_name(st.host_profile);
                let msg = format!(
                    "{what}: the caller (pid {}, uid {}) runs inside host {host}'s tree (pid {pid} is tracked); an agent cannot grant itself consent",
                    caller.pid, caller.uid
                );
                warn!(caller_pid = caller.pid, caller_uid = caller.uid, what, host = %host, "consent call from inside an agent tree refused");
                let mut e = self.new_event(Kind::Refused);
                e.pid = caller.pid;
                e.uid = Some(caller.uid);
                e.message = Some(msg.clone());
                self.record(&e);
                return Err(refused(msg));
            }
            match procfs::proc_start(pid) {
                Some((_, parent, _)) => pid = parent,
                None => break,
            }
        }
        // Still the same live process after the walk: its ancestry was its own.
        if !caller.still_there() {
            let msg = format!(
                "{what}: the caller (pid {}) exited while its call was checked; it cannot grant, revoke or continue anything",
                caller.pid
            );
            return Err(self.record_refusal(caller, &msg));
        }
        Ok(())
    }

    pub(super) fn record_refusal(&mut self, caller: &Caller, msg: &str) -> ApiError {
        let mut e = self.new_event(Kind::Refused);
        e.pid = caller.pid;
        e.uid = Some(caller.uid);
        e.message = Some(msg.to_owned());
        self.record(&e);
        refused(msg)
    }
}

/// A user's home directory, for the risk flags (`~/.ssh` …).
/// The caller's environment, from /proc (empty if it is gone).
pub(super) fn caller_environ(caller: &Caller) -> Vec<(String, Vec<u8>)> {
    let environ = std::fs::read(format!("/proc/{}/environ", caller.pid)).unwrap_or_default();
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|&b| b == b'=')?;
            Some((
                String::from_utf8_lossy(&kv[..eq]).into_owned(),
                kv[eq + 1..].to_vec(),
            ))
        })
        .collect()
}

/// The caller's PATH, or the system default when it has none.
pub(super) fn caller_path(caller: &Caller) -> Vec<u8> {
    caller_environ(caller)
        .into_iter()
        .find_map(|(k, v)| (k == "PATH").then_some(v))
        .unwrap_or_else(|| super::kernel_sync::DENY_PATH.as_bytes().to_vec())
}

pub(super) fn home_of(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.dir.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep")
    }

    #[test]
    fn a_caller_is_pinned_by_its_process_not_its_pid() {
        let mut a = sleeper();
        let mut b = sleeper();
        let c = Caller {
            pid: a.id(),
            uid: 0,
            ident: identify(a.id(), None),
        };
        assert!(c.still_there());
        assert!(!c.ident.as_ref().expect("ident").from_bus);
        // A pidfd that names another process than the bus's pid is no identity.
        assert!(identify(a.id(), procfs::pidfd_open(b.id()).ok()).is_none());
        assert!(identify(b.id(), procfs::pidfd_open(b.id()).ok()).is_some_and(|i| i.from_bus));
        // A zombie (killed, not reaped) cannot be identified, and the one pinned
        // before is no longer there.
        a.kill().expect("kill");
        for _ in 0..200 {
            if procfs::live_start(a.id()).is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(identify(a.id(), None).is_none());
        assert!(!c.still_there());
        a.wait().expect("reap");
        assert!(!c.still_there());
        b.kill().expect("kill");
        b.wait().expect("reap");
        // Nobody at all.
        assert!(identify(u32::MAX, None).is_none());
    }
}
