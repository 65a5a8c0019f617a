//! The daemon's view of tracked process trees. Pure: no I/O, no aya.
//!
//! The kernel decides a process's role at exec and keeps it in `TRACKED`; the
//! tracker follows the same trees from the event stream so that every recorded event
//! carries its context: the lineage up to the host, the session, how long a process
//! lived and what it last executed.
//!
//! It trusts the state the kernel reports with each event (role, host, session),
//! because that state is what the kernel enforces with. The one exception is a
//! process the daemon promoted back to host (`make_host`, a host relaunching itself
//! through an interpreter): until the daemon's `TRACKED` update lands, the kernel
//! still reports that process, and anything it forked meanwhile, inside the session
//! it believed was a launch. The tracker recognises that stale state, corrects its
//! own view and hands the caller the `TaskState` to write back
//! ([`Lineage::kernel_update`], [`Classification::kernel_update`]).
//!
//! Memory is bounded: at most `max_entries` processes (new ones beyond are refused
//! and counted, as the kernel counts `TRACKED_FULL`), each with a lineage of at most
//! [`LINEAGE_MAX_HOPS`] + 1 pids and a command cut at [`COMMAND_MAX`] bytes.
use std::collections::HashMap;

use monitor_common::{event_flags, role, TaskState};

use crate::event::{
    raw::{RawExec, RawExit, RawFork, Role},
    shell_quote, Kind,
};

/// Longest lineage kept, in hops from a process towards its host. Deeper trees keep
/// the nearest ancestors and the host (the last pid is always the host).
pub const LINEAGE_MAX_HOPS: usize = 64;

/// Longest command kept per process (bytes of the shell-quoted argv). The tracker's
/// copy is only a label for trees and status; the exact argv is in the exec event.
pub const COMMAND_MAX: usize = 256;

/// What a process last executed, short: for listing trees, not for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecSummary {
    /// Resolved path of the executable (the kernel's dentry walk), if it succeeded.
    pub exe: Option<Vec<u8>>,
    /// argv shell-quoted ([`crate::event::shell_join`] style), cut at
    /// [`COMMAND_MAX`] bytes with a trailing `…` when cut.
    pub command: String,
}

impl ExecSummary {
    pub fn new(exe: Option<&[u8]>, argv: &[Vec<u8>]) -> Self {
        let mut command = String::new();
        for arg in argv {
            let quoted = shell_quote(arg);
            let sep = usize::from(!command.is_empty());
            if command.len() + sep + quoted.len() > COMMAND_MAX {
                if !command.is_empty() {
                    command.push(' ');
                }
                // Cut inside the argument on a char boundary: the label stays
                // recognisable, and the cut is marked so it is never read as exact.
                let room = COMMAND_MAX.saturating_sub(command.len());
                let mut end = room.min(quoted.len());
                while !quoted.is_char_boundary(end) {
                    end -= 1;
                }
                command.push_str(&quoted[..end]);
                command.push('…');
                break;
            }
            if sep == 1 {
                command.push(' ');
            }
            command.push_str(&quoted);
        }
        Self {
            exe: exe.map(<[u8]>::to_vec),
            command,
        }
    }
}

/// One live tracked process (keyed by tgid in the [`Tracker`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The process that forked this one: lineage, fixed at fork. Reparenting (double
    /// fork, parent exit) never changes it. `None` for a host root, or when unknown.
    pub parent: Option<u32>,
    /// tgid of the host at the root of this tree.
    pub host_pid: u32,
    /// Host profile id (index into the daemon's profile table).
    pub profile: u32,
    pub role: Role,
    /// The launch this process belongs to; `None` for host processes.
    pub session: Option<u32>,
    /// `CLOCK_BOOTTIME` ns of the first event that showed this process.
    pub first_seen_ns: u64,
    /// The image it runs (inherited from the parent at fork until it execs).
    pub last_exec: Option<ExecSummary>,
    /// `[pid, parent, grandparent, …, host]`, computed when the process appears, so
    /// ancestors that exited since stay in it.
    lineage: Vec<u32>,
    /// Made a host by the daemon (`make_host`) while the kernel still has it as a
    /// session root: kernel state naming it as session is stale.
    promoted: bool,
}

impl Entry {
    /// `[pid, parent, grandparent, …, host pid]`, by lineage parents. When a link is
    /// unknown (events lost, process adopted without its parent) the host pid follows
    /// the last known ancestor, so the last pid is always the host.
    pub fn lineage(&self) -> &[u32] {
        &self.lineage
    }

    /// This entry as the kernel's `TRACKED` value. `flags` is 0: the only task flag
    /// (`FIRST_EXEC_IS_HOST`) belongs to `mcpwatch run` before its exec, never to a
    /// process the tracker has seen exec.
    pub fn task_state(&self) -> TaskState {
        TaskState {
            role: match self.role {
                Role::None => role::NONE,
                Role::Host => role::HOST,
                Role::Session => role::SESSION,
                Role::Terminal => role::TERMINAL,
                Role::Helper => role::HELPER,
            },
            flags: 0,
            host_pid: self.host_pid,
            host_profile: self.profile,
            session_pid: self.session.unwrap_or(0),
            parent_pid: self.parent.unwrap_or(0),
        }
    }
}

/// The new process's place in the tree, from [`Tracker::on_fork`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    /// The child's lineage: `[child, parent, …, host]`; `pids[1..]` is the forking
    /// parent's.
    pub pids: Vec<u32>,
    pub session: Option<u32>,
    /// The kernel gave the child stale state (see the module docs): write this to
    /// `TRACKED[child]`.
    pub kernel_update: Option<TaskState>,
}

/// What an exec was, from [`Tracker::on_exec`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub kind: Kind,
    pub lineage: Vec<u32>,
    pub session: Option<u32>,
    /// A host relaunching its own script through an interpreter: the kernel took it
    /// for a launch; the process is a host again (`kernel_update` says so).
    pub make_host: bool,
    /// The kernel's `TRACKED[pid]` must become this (set with `make_host`, and when
    /// the kernel's state was stale).
    pub kernel_update: Option<TaskState>,
}

/// What an exit ended, from [`Tracker::on_exit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    pub lineage: Vec<u32>,
    pub session: Option<u32>,
    pub role: Role,
    /// Since the process was first seen (fork, exec or adoption).
    pub duration_ns: u64,
}

/// Live tracked processes by tgid.
#[derive(Debug)]
pub struct Tracker {
    entries: HashMap<u32, Entry>,
    max_entries: usize,
    overflow: u64,
}

fn nonzero(pid: u32) -> Option<u32> {
    (pid != 0).then_some(pid)
}

impl Tracker {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max_entries,
            overflow: 0,
        }
    }

    pub fn get(&self, pid: u32) -> Option<&Entry> {
        self.entries.get(&pid)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// New processes refused because the tracker was full.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// Live processes in the host role, sorted: host roots, host re-execs, and host
    /// forks that have not exec'd yet (whose next exec is a launch).
    pub fn hosts(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, e)| e.role == Role::Host)
            .map(|(&p, _)| p)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// A tracked process forked: the child inherits the parent's place in the tree, with
    /// the forking process as its lineage parent (whatever its current parent is).
    pub fn on_fork(&mut self, f: &RawFork) -> Lineage {
        let c = &f.common;
        let st = self.kernel_state(c.role, c.host_pid, c.host_profile, c.session_pid);
        let parent = c.pid;
        let lineage = self.lineage_for(f.child_pid, Some(parent), st.host_pid);
        let entry = Entry {
            parent: Some(parent),
            host_pid: st.host_pid,
            profile: st.profile,
            role: st.role,
            session: st.session,
            first_seen_ns: c.ts_ns,
            // A fork runs its parent's image until it execs.
            last_exec: self.entries.get(&parent).and_then(|p| p.last_exec.clone()),
            lineage: lineage.clone(),
            promoted: false,
        };
        let kernel_update = st.stale.then(|| entry.task_state());
        // A pid we still hold is a recycled one whose exit we missed: replace it.
        self.insert(f.child_pid, entry);
        Lineage {
            pids: lineage,
            session: st.session,
            kernel_update,
        }
    }

    /// Classify an exec from the kernel's flags and roles, and record the process's
    /// new state. `host_scripts(profile, argv)` says whether argv runs the host's
    /// own script through an interpreter (`node … /path/gemini/dist/index.js`): the
    /// kernel, which matches executables, saw a launch there.
    pub fn on_exec(
        &mut self,
        e: &RawExec,
        host_scripts: &dyn Fn(u32, &[Vec<u8>]) -> bool,
    ) -> Classification {
        let c = &e.common;
        let pid = c.pid;
        let summary = ExecSummary::new(e.exe_path.as_deref(), &e.argv);

        if c.has(event_flags::HOST_DROPPED) {
            return self.dropped(pid);
        } else if c.has(event_flags::HOST_DETECTED) || c.has(event_flags::HOST_RUN_EXEC) {
            // HOST_DETECTED: the kernel had no state for this pid, so anything we hold
            // is a recycled pid whose exit we missed; it roots a new tree. HOST_RUN_EXEC:
            // `mcpwatch run` was tracked (and adopted) before this exec; keep that.
            let kept = self
                .entries
                .get(&pid)
                .filter(|_| !c.has(event_flags::HOST_DETECTED))
                .map(|old| (old.parent, old.first_seen_ns));
            let (parent, first_seen_ns) = kept.unwrap_or((None, c.ts_ns));
            let entry = Entry {
                parent,
                host_pid: c.host_pid,
                profile: c.host_profile,
                role: Role::Host,
                session: None,
                first_seen_ns,
                last_exec: Some(summary),
                lineage: self.lineage_for(pid, parent, c.host_pid),
                promoted: false,
            };
            let lineage = entry.lineage.clone();
            self.insert(pid, entry);
            return Classification {
                kind: Kind::HostStart,
                lineage,
                session: None,
                make_host: false,
                kernel_update: None,
            };
        }

        let st = self.kernel_state(c.role, c.host_pid, c.host_profile, c.session_pid);
        // Stale kernel state means the process was a host when it exec'd, whatever
        // prev_role says, and the kernel skipped its launch logic.
        let prev_role = if st.stale { Role::Host } else { e.prev_role };
        let (kind, role, session, make_host) = if c.has(event_flags::HOST_REEXEC) {
            // Electron re-executes its own binary for renderers, the GPU process,
            // utility processes and the zygote (`--type=…`): the host's helpers.
            let kind = if e.argv.iter().any(|a| a.starts_with(b"--type=")) {
                Kind::Helper
            } else {
                Kind::HostExec
            };
            (kind, Role::Host, None, false)
        } else if c.has(event_flags::TERMINAL) {
            (Kind::Terminal, Role::Terminal, None, false)
        } else if c.has(event_flags::HELPER) {
            (Kind::Helper, c.role, None, false)
        } else if prev_role == Role::Host && c.role == Role::Session {
            if host_scripts(st.profile, &e.argv) {
                (Kind::HostExec, Role::Host, None, true)
            } else {
                (Kind::Launch, Role::Session, Some(pid), false)
            }
        } else if c.role == Role::Host {
            // The kernel keeps a host a host only through HOST_REEXEC; should it ever
            // report one without the flag, it is still not a launch.
            (Kind::HostExec, Role::Host, None, false)
        } else {
            (Kind::Exec, c.role, st.session, false)
        };

        let entry = if let Some(old) = self.entries.get(&pid) {
            // Lineage and first sight stay: an exec changes the image, not the process.
            Entry {
                host_pid: st.host_pid,
                profile: st.profile,
                role,
                session,
                last_exec: Some(summary),
                promoted: make_host,
                parent: old.parent,
                first_seen_ns: old.first_seen_ns,
                lineage: old.lineage.clone(),
            }
        } else {
            // Never seen: its fork event was lost, or it overflowed. The kernel
            // recorded who forked it (`lineage_parent`); without that (older
            // records), the live parent is the best guess when it is in the same
            // tree (reparenting goes to init or a subreaper, which are not).
            let in_tree = |p: &u32| {
                self.entries
                    .get(p)
                    .is_some_and(|pe| pe.host_pid == st.host_pid)
            };
            let parent = Some(c.lineage_parent)
                .filter(|&p| p != 0)
                .or_else(|| Some(c.ppid).filter(in_tree));
            Entry {
                parent,
                host_pid: st.host_pid,
                profile: st.profile,
                role,
                session,
                first_seen_ns: c.ts_ns,
                last_exec: Some(summary),
                lineage: self.lineage_for(pid, parent, st.host_pid),
                promoted: make_host,
            }
        };
        let kernel_update = (make_host || st.stale).then(|| entry.task_state());
        let lineage = entry.lineage.clone();
        self.insert(pid, entry);
        Classification {
            kind,
            lineage,
            session,
            make_host,
            kernel_update,
        }
    }

    /// A host recognised by name executed a login shell in place: a wrapper named
    /// like its host. The kernel no longer tracks it; neither do we.
    fn dropped(&mut self, pid: u32) -> Classification {
        let lineage = self
            .entries
            .remove(&pid)
            .map_or_else(|| vec![pid], |old| old.lineage);
        Classification {
            kind: Kind::HostExec,
            lineage,
            session: None,
            make_host: false,
            kernel_update: None,
        }
    }

    /// A tracked process ended (the kernel reports only the last thread's exit).
    /// `None` when the tracker did not know it (events lost, or it overflowed).
    pub fn on_exit(&mut self, x: &RawExit) -> Option<ExitInfo> {
        let e = self.entries.remove(&x.common.pid)?;
        Some(ExitInfo {
            duration_ns: x.common.ts_ns.saturating_sub(e.first_seen_ns),
            lineage: e.lineage,
            session: e.session,
            role: e.role,
        })
    }

    /// A process found running at daemon start. Adopt parents before their children
    /// (walk down from the hosts), so that children take their parents' lineage.
    /// Returns false when refused because the tracker is full.
    #[expect(
        clippy::too_many_arguments,
        reason = "one positional call site in the adopter; a struct would only rename them"
    )]
    pub fn adopt(
        &mut self,
        pid: u32,
        lineage_parent: Option<u32>,
        host_pid: u32,
        profile: u32,
        role: Role,
        session: Option<u32>,
        ts_ns: u64,
    ) -> bool {
        let entry = Entry {
            parent: lineage_parent,
            host_pid,
            profile,
            role,
            session,
            first_seen_ns: ts_ns,
            last_exec: None,
            lineage: self.lineage_for(pid, lineage_parent, host_pid),
            promoted: false,
        };
        self.insert(pid, entry)
    }

    fn insert(&mut self, pid: u32, entry: Entry) -> bool {
        if !self.entries.contains_key(&pid) && self.entries.len() >= self.max_entries {
            self.overflow += 1;
            return false;
        }
        self.entries.insert(pid, entry);
        true
    }

    /// `[pid]` + the parent's lineage (bounded), or, when the parent is unknown,
    /// `[pid, parent, host]`.
    fn lineage_for(&self, pid: u32, parent: Option<u32>, host_pid: u32) -> Vec<u32> {
        let mut out = vec![pid];
        match parent.and_then(|p| self.entries.get(&p)) {
            Some(pe) => out.extend_from_slice(&pe.lineage),
            None => out.extend(parent),
        }
        if host_pid != 0 && !out.contains(&host_pid) {
            out.push(host_pid);
        }
        // Stored lineages are built from stored lineages, so one step past the bound
        // is the most this can be. The host stays last.
        if out.len() > LINEAGE_MAX_HOPS + 1 {
            let host = out.pop();
            out.truncate(LINEAGE_MAX_HOPS);
            out.extend(host);
        }
        out
    }

    /// The state the kernel reported, corrected when it names as session a process
    /// the daemon has made a host since.
    fn kernel_state(
        &self,
        role: Role,
        host_pid: u32,
        profile: u32,
        session_pid: u32,
    ) -> KernelState {
        let promoted = self
            .entries
            .get(&session_pid)
            .filter(|s| role == Role::Session && s.promoted && s.role == Role::Host);
        match promoted {
            Some(s) => KernelState {
                role: Role::Host,
                host_pid: s.host_pid,
                profile: s.profile,
                session: None,
                stale: true,
            },
            None => KernelState {
                role,
                host_pid,
                profile,
                session: nonzero(session_pid),
                stale: false,
            },
        }
    }
}

struct KernelState {
    role: Role,
    host_pid: u32,
    profile: u32,
    session: Option<u32>,
    stale: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::raw::{Common, ExeId};

    const HOST: u32 = 100;
    const PROFILE: u32 = 3;

    fn common(pid: u32, ts_ns: u64, role: Role, session_pid: u32, flags: u32) -> Common {
        Common {
            ts_ns,
            pid,
            tid: pid,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            ns_pid: pid,
            ns_level: 0,
            pidns_inum: 0xefff_fffc,
            role,
            host_pid: HOST,
            host_profile: PROFILE,
            session_pid,
            comm: b"x".to_vec(),
            flags,
            lineage_parent: 0,
        }
    }

    /// Fork event as the kernel sends it: `common` carries the child's state.
    fn fork(parent: u32, child: u32, ts_ns: u64, role: Role, session: u32) -> RawFork {
        RawFork {
            common: common(parent, ts_ns, role, session, 0),
            child_pid: child,
            parent_role: role,
        }
    }

    fn exec(
        pid: u32,
        ts_ns: u64,
        prev: Role,
        role: Role,
        session: u32,
        flags: u32,
        argv: &[&str],
    ) -> RawExec {
        RawExec {
            common: common(pid, ts_ns, role, session, flags),
            prev_role: prev,
            exe: ExeId {
                dev: 0xfe0_0000,
                ino: 42,
                ctime_sec: 1,
                ctime_nsec: 0,
            },
            filename: argv
                .first()
                .map(|a| a.as_bytes().to_vec())
                .unwrap_or_default(),
            exe_path: Some(b"/usr/bin/x".to_vec()),
            cwd: Some(b"/tmp".to_vec()),
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            argv_total: 0,
            env: Vec::new(),
            env_total: 0,
            mode: 0,
            record_id: 0,
        }
    }

    fn exit(pid: u32, ts_ns: u64) -> RawExit {
        RawExit {
            common: common(pid, ts_ns, Role::Session, 0, event_flags::GROUP_DEAD),
            exit_code: 0,
        }
    }

    fn no_scripts(_: u32, _: &[Vec<u8>]) -> bool {
        false
    }

    /// A tracker holding a detected host `HOST`.
    fn with_host() -> Tracker {
        let mut t = Tracker::new(1024);
        let c = t.on_exec(
            &exec(
                HOST,
                1,
                Role::None,
                Role::Host,
                0,
                event_flags::HOST_DETECTED,
                &["claude"],
            ),
            &no_scripts,
        );
        assert_eq!(
            (c.kind, c.lineage.as_slice()),
            (Kind::HostStart, &[HOST][..])
        );
        t
    }

    #[test]
    fn helpers_and_terminals_are_classified_from_kernel_flags_and_roles() {
        let mut t = with_host();
        // An Electron re-exec with `--type=`: a helper, still the host.
        t.on_fork(&fork(HOST, 101, 2, Role::Host, 0));
        let c = t.on_exec(
            &exec(
                101,
                3,
                Role::Host,
                Role::Host,
                0,
                event_flags::HOST_REEXEC,
                &["/usr/share/code/code", "--type=gpu-process"],
            ),
            &no_scripts,
        );
        assert_eq!((c.kind, c.session), (Kind::Helper, None));
        assert_eq!(t.get(101).unwrap().role, Role::Host);
        // A helper executable: the kernel keeps it a host.
        t.on_fork(&fork(HOST, 102, 4, Role::Host, 0));
        let c = t.on_exec(
            &exec(
                102,
                5,
                Role::Host,
                Role::Host,
                0,
                event_flags::HELPER,
                &["chrome_crashpad_handler"],
            ),
            &no_scripts,
        );
        assert_eq!(c.kind, Kind::Helper);
        assert_eq!(t.get(102).unwrap().role, Role::Host);
        // The env probe: role helper, and so are its children.
        t.on_fork(&fork(HOST, 103, 6, Role::Host, 0));
        let c = t.on_exec(
            &exec(
                103,
                7,
                Role::Host,
                Role::Helper,
                0,
                event_flags::HELPER,
                &["/bin/bash", "-ilc", "env"],
            ),
            &no_scripts,
        );
        assert_eq!((c.kind, c.session), (Kind::Helper, None));
        t.on_fork(&fork(103, 104, 8, Role::Helper, 0));
        let c = t.on_exec(
            &exec(104, 9, Role::Helper, Role::Helper, 0, 0, &["env"]),
            &no_scripts,
        );
        assert_eq!((c.kind, c.session), (Kind::Exec, None));
        assert_eq!(t.get(104).unwrap().role, Role::Helper);
        assert_eq!(c.lineage, [104, 103, HOST]);
        // A terminal: role terminal for it and what runs in it.
        t.on_fork(&fork(HOST, 105, 10, Role::Host, 0));
        let c = t.on_exec(
            &exec(
                105,
                11,
                Role::Host,
                Role::Terminal,
                0,
                event_flags::TERMINAL,
                &["/bin/bash"],
            ),
            &no_scripts,
        );
        assert_eq!((c.kind, c.session), (Kind::Terminal, None));
        t.on_fork(&fork(105, 106, 12, Role::Terminal, 0));
        let c = t.on_exec(
            &exec(106, 13, Role::Terminal, Role::Terminal, 0, 0, &["ls"]),
            &no_scripts,
        );
        assert_eq!(c.kind, Kind::Exec);
        assert_eq!(t.get(106).unwrap().role, Role::Terminal);
        assert_eq!(
            t.get(106).unwrap().task_state().role,
            monitor_common::role::TERMINAL
        );
    }

    #[test]
    fn launch_session_exec_and_host_reexec_are_classified_from_kernel_flags() {
        let mut t = with_host();
        // Host forks 101, which re-executes a host image (helper): host_exec.
        t.on_fork(&fork(HOST, 101, 2, Role::Host, 0));
        let c = t.on_exec(
            &exec(
                101,
                3,
                Role::Host,
                Role::Host,
                0,
                event_flags::HOST_REEXEC,
                &["claude", "--helper"],
            ),
            &no_scripts,
        );
        assert_eq!(
            (c.kind, c.session, c.make_host),
            (Kind::HostExec, None, false)
        );
        assert_eq!(t.get(101).unwrap().role, Role::Host);
        // Host forks 200, which execs npx: the kernel turned it into a session root.
        t.on_fork(&fork(HOST, 200, 4, Role::Host, 0));
        let c = t.on_exec(
            &exec(
                200,
                5,
                Role::Host,
                Role::Session,
                200,
                0,
                &["npx", "-y", "srv"],
            ),
            &no_scripts,
        );
        assert_eq!(
            (c.kind, c.session, c.lineage.as_slice()),
            (Kind::Launch, Some(200), &[200, HOST][..])
        );
        assert_eq!(c.kernel_update, None);
        // npx re-execs node in the same process: a session exec, not a new launch.
        let c = t.on_exec(
            &exec(
                200,
                6,
                Role::Session,
                Role::Session,
                200,
                0,
                &["node", "srv.js"],
            ),
            &no_scripts,
        );
        assert_eq!((c.kind, c.session), (Kind::Exec, Some(200)));
        // A child of the session execs sh: session exec, lineage through the launch.
        t.on_fork(&fork(200, 201, 7, Role::Session, 200));
        let c = t.on_exec(
            &exec(
                201,
                8,
                Role::Session,
                Role::Session,
                200,
                0,
                &["sh", "-c", "id"],
            ),
            &no_scripts,
        );
        assert_eq!(
            (c.kind, c.session, c.lineage.as_slice()),
            (Kind::Exec, Some(200), &[201, 200, HOST][..])
        );
        assert_eq!(
            t.get(201).unwrap().last_exec.as_ref().unwrap().command,
            "sh -c id"
        );
    }

    #[test]
    fn double_fork_grandchild_keeps_lineage_to_host_after_middle_exits() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 200, 2, Role::Host, 0));
        t.on_exec(
            &exec(
                200,
                3,
                Role::Host,
                Role::Session,
                200,
                0,
                &["sh", "-c", "daemonize"],
            ),
            &no_scripts,
        );
        t.on_fork(&fork(200, 201, 4, Role::Session, 200));
        t.on_fork(&fork(201, 202, 5, Role::Session, 200));
        assert!(t.on_exit(&exit(201, 6)).is_some());
        // 202 is now a child of init; it still descends from 201, 200 and the host.
        let mut x = exec(
            202,
            7,
            Role::Session,
            Role::Session,
            200,
            0,
            &["curl", "evil"],
        );
        x.common.ppid = 1;
        let c = t.on_exec(&x, &no_scripts);
        assert_eq!(c.lineage, vec![202, 201, 200, HOST]);
        assert_eq!(t.get(202).unwrap().parent, Some(201));
    }

    #[test]
    fn fork_after_parent_exit_and_reparent_to_init_keeps_lineage() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 200, 2, Role::Host, 0));
        t.on_exec(
            &exec(200, 3, Role::Host, Role::Session, 200, 0, &["npx", "srv"]),
            &no_scripts,
        );
        t.on_fork(&fork(200, 201, 4, Role::Session, 200));
        t.on_exit(&exit(200, 5));
        // 201 was reparented to init (the fork event's ppid says 1); its own fork
        // still links to it, and through it to the exited launch and the host.
        let mut f = fork(201, 202, 6, Role::Session, 200);
        f.common.ppid = 1;
        let l = t.on_fork(&f);
        assert_eq!(l.pids, vec![202, 201, 200, HOST]);
        assert_eq!(l.session, Some(200));
        assert_eq!(t.get(202).unwrap().parent, Some(201));
    }

    #[test]
    fn lineage_of_five_deep_chain_runs_up_to_host() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 200, 2, Role::Host, 0));
        t.on_exec(
            &exec(200, 3, Role::Host, Role::Session, 200, 0, &["npx", "srv"]),
            &no_scripts,
        );
        for (i, pid) in (201..=204).enumerate() {
            t.on_fork(&fork(pid - 1, pid, 4 + i as u64, Role::Session, 200));
        }
        let c = t.on_exec(
            &exec(204, 9, Role::Session, Role::Session, 200, 0, &["id"]),
            &no_scripts,
        );
        assert_eq!(c.lineage, vec![204, 203, 202, 201, 200, HOST]);
        assert_eq!(t.get(203).unwrap().lineage(), &[203, 202, 201, 200, HOST]);
    }

    #[test]
    fn lineage_is_bounded_and_keeps_host_last() {
        let mut t = with_host();
        let mut parent = HOST;
        for pid in 1000..1200 {
            t.on_fork(&fork(parent, pid, 2, Role::Host, 0));
            parent = pid;
        }
        let l = t.get(1199).unwrap().lineage();
        assert_eq!(l.len(), LINEAGE_MAX_HOPS + 1);
        assert_eq!(l[..3], [1199, 1198, 1197]);
        assert_eq!(l.last(), Some(&HOST));
    }

    #[test]
    fn exit_removes_entry_and_reports_duration_since_first_seen() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 200, 1_000, Role::Host, 0));
        t.on_exec(
            &exec(
                200,
                2_000,
                Role::Host,
                Role::Session,
                200,
                0,
                &["npx", "srv"],
            ),
            &no_scripts,
        );
        let info = t.on_exit(&exit(200, 3_500_001_000)).unwrap();
        assert_eq!(info.duration_ns, 3_500_000_000);
        assert_eq!(
            (info.session, info.role, info.lineage),
            (Some(200), Role::Session, vec![200, HOST])
        );
        assert!(t.get(200).is_none());
        assert_eq!(t.len(), 1);
        // A second exit of the same pid (or of a pid never seen) reports nothing.
        assert_eq!(t.on_exit(&exit(200, 4_000_000_000)), None);
    }

    #[test]
    fn max_entries_refuses_new_entries_and_counts_overflow() {
        let mut t = Tracker::new(2);
        t.on_exec(
            &exec(
                HOST,
                1,
                Role::None,
                Role::Host,
                0,
                event_flags::HOST_DETECTED,
                &["claude"],
            ),
            &no_scripts,
        );
        t.on_fork(&fork(HOST, 200, 2, Role::Host, 0));
        let l = t.on_fork(&fork(HOST, 201, 3, Role::Host, 0));
        // Refused, but the event still gets its lineage.
        assert_eq!(l.pids, vec![201, HOST]);
        assert!(!t.adopt(300, None, HOST, PROFILE, Role::Host, None, 4));
        let c = t.on_exec(
            &exec(202, 5, Role::Host, Role::Session, 202, 0, &["npx"]),
            &no_scripts,
        );
        assert_eq!(c.kind, Kind::Launch);
        assert_eq!((t.len(), t.overflow()), (2, 3));
        // Updating a process already held is not growth.
        t.on_exec(
            &exec(200, 6, Role::Host, Role::Session, 200, 0, &["npx"]),
            &no_scripts,
        );
        assert_eq!((t.len(), t.overflow()), (2, 3));
        // Room again after an exit.
        t.on_exit(&exit(200, 7));
        t.on_fork(&fork(HOST, 203, 8, Role::Host, 0));
        assert!(t.get(203).is_some());
        assert_eq!(t.overflow(), 3);
    }

    fn gemini_script(profile: u32, argv: &[Vec<u8>]) -> bool {
        profile == PROFILE && argv.iter().any(|a| a.ends_with(b"/gemini/dist/index.js"))
    }

    #[test]
    fn host_script_relaunch_is_host_exec_with_make_host_and_its_children_launch() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 101, 2, Role::Host, 0));
        // The kernel sees node (not a host executable): to it, a launch.
        let relaunch = [
            "node",
            "--max-old-space-size=8192",
            "/usr/lib/node_modules/@google/gemini/dist/index.js",
        ];
        let c = t.on_exec(
            &exec(101, 3, Role::Host, Role::Session, 101, 0, &relaunch),
            &gemini_script,
        );
        assert_eq!(
            (c.kind, c.session, c.make_host),
            (Kind::HostExec, None, true)
        );
        let upd = c.kernel_update.unwrap();
        assert_eq!(
            (upd.role, upd.session_pid, upd.host_pid, upd.parent_pid),
            (role::HOST, 0, HOST, HOST)
        );
        let e = t.get(101).unwrap();
        assert_eq!((e.role, e.session), (Role::Host, None));
        assert_eq!(t.hosts(), vec![HOST, 101]);
        // Once the kernel knows, the relaunched host's children launch normally.
        t.on_fork(&fork(101, 300, 4, Role::Host, 0));
        let c = t.on_exec(
            &exec(300, 5, Role::Host, Role::Session, 300, 0, &["npx", "srv"]),
            &gemini_script,
        );
        assert_eq!(
            (c.kind, c.session, c.lineage.as_slice()),
            (Kind::Launch, Some(300), &[300, 101, HOST][..])
        );
        assert_eq!(c.kernel_update, None);
    }

    #[test]
    fn stale_kernel_session_of_relaunched_host_is_corrected_for_forks_and_execs() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 101, 2, Role::Host, 0));
        let relaunch = ["node", "/opt/gemini/dist/index.js"];
        t.on_exec(
            &exec(101, 3, Role::Host, Role::Session, 101, 0, &relaunch),
            &gemini_script,
        );
        // Forked before the daemon's update landed: the kernel says session 101.
        let l = t.on_fork(&fork(101, 300, 4, Role::Session, 101));
        assert_eq!(l.session, None);
        let upd = l.kernel_update.unwrap();
        assert_eq!(
            (upd.role, upd.session_pid, upd.parent_pid),
            (role::HOST, 0, 101)
        );
        assert_eq!(t.get(300).unwrap().role, Role::Host);
        // Its exec was a launch, although the kernel filed it as a session exec.
        let c = t.on_exec(
            &exec(
                300,
                5,
                Role::Session,
                Role::Session,
                101,
                0,
                &["npx", "srv"],
            ),
            &gemini_script,
        );
        assert_eq!((c.kind, c.session), (Kind::Launch, Some(300)));
        let upd = c.kernel_update.unwrap();
        assert_eq!((upd.role, upd.session_pid), (role::SESSION, 300));
    }

    #[test]
    fn exec_of_unknown_pid_creates_entry_linked_to_tracked_live_parent() {
        let mut t = with_host();
        // Fork event of 200 lost: its exec is the first we hear of it.
        let mut x = exec(200, 5, Role::Host, Role::Session, 200, 0, &["npx", "srv"]);
        x.common.ppid = HOST;
        let c = t.on_exec(&x, &no_scripts);
        assert_eq!(
            (c.kind, c.lineage.as_slice()),
            (Kind::Launch, &[200, HOST][..])
        );
        let e = t.get(200).unwrap();
        assert_eq!(
            (e.parent, e.first_seen_ns, e.session),
            (Some(HOST), 5, Some(200))
        );
        // Unknown pid whose live parent is untracked (init): no parent, host last.
        let mut x = exec(400, 6, Role::Session, Role::Session, 200, 0, &["sh"]);
        x.common.ppid = 1;
        let c = t.on_exec(&x, &no_scripts);
        assert_eq!(
            (c.kind, c.lineage.as_slice()),
            (Kind::Exec, &[400, HOST][..])
        );
        assert_eq!(t.get(400).unwrap().parent, None);
    }

    #[test]
    fn lost_fork_lineage_comes_from_the_kernels_record_not_the_live_parent() {
        let mut t = with_host();
        t.on_fork(&fork(HOST, 200, 1, Role::Host, 0));
        // 300 was forked by 200 (the fork event was lost), 200 then exited and 300
        // was reparented to init: the kernel still says 200 forked it.
        let exit = RawExit {
            common: common(200, 2, Role::Host, 0, event_flags::GROUP_DEAD),
            exit_code: 0,
        };
        t.on_exit(&exit);
        let mut launch = exec(300, 3, Role::Host, Role::Session, 300, 0, &["srv"]);
        launch.common.ppid = 1;
        launch.common.lineage_parent = 200;
        let cls = t.on_exec(&launch, &no_scripts);
        assert_eq!(
            (cls.kind, cls.lineage.as_slice()),
            (Kind::Launch, &[300, 200, HOST][..])
        );
    }

    #[test]
    fn a_host_found_by_name_that_turns_out_a_shell_wrapper_is_forgotten() {
        let mut t = with_host();
        let mut x = exec(
            700,
            5,
            Role::None,
            Role::Host,
            0,
            event_flags::HOST_DETECTED | event_flags::HOST_BY_NAME,
            &["/usr/bin/env", "bash", "/home/a/.asdf/shims/claude"],
        );
        x.common.host_pid = 700;
        assert_eq!(t.on_exec(&x, &no_scripts).kind, Kind::HostStart);
        assert_eq!(t.hosts(), vec![HOST, 700]);
        // env executes bash in place: a wrapper; the kernel dropped it.
        let mut x = exec(
            700,
            6,
            Role::Host,
            Role::Host,
            0,
            event_flags::HOST_DROPPED,
            &["bash", "/home/a/.asdf/shims/claude"],
        );
        x.common.host_pid = 700;
        let c = t.on_exec(&x, &no_scripts);
        assert_eq!((c.kind, c.lineage.as_slice()), (Kind::HostExec, &[700][..]));
        assert!(t.get(700).is_none(), "no longer tracked");
        assert_eq!(t.hosts(), vec![HOST]);
    }

    #[test]
    fn host_detected_at_exec_replaces_a_recycled_pid_and_run_exec_keeps_adoption() {
        let mut t = with_host();
        // A stale entry for 500 (its exit was lost) is replaced by the new host.
        t.on_fork(&fork(HOST, 500, 2, Role::Host, 0));
        let mut x = exec(
            500,
            9,
            Role::None,
            Role::Host,
            0,
            event_flags::HOST_DETECTED,
            &["cursor"],
        );
        x.common.host_pid = 500;
        let c = t.on_exec(&x, &no_scripts);
        assert_eq!(
            (c.kind, c.lineage.as_slice()),
            (Kind::HostStart, &[500][..])
        );
        let e = t.get(500).unwrap();
        assert_eq!((e.parent, e.first_seen_ns, e.host_pid), (None, 9, 500));
        // `mcpwatch run` adopted at 10, then executes the host proper.
        assert!(t.adopt(600, None, 600, 7, Role::Host, None, 10));
        let mut x = exec(
            600,
            20,
            Role::Host,
            Role::Host,
            0,
            event_flags::HOST_RUN_EXEC,
            &["codex"],
        );
        x.common.host_pid = 600;
        let c = t.on_exec(&x, &no_scripts);
        assert_eq!(
            (c.kind, c.lineage.as_slice()),
            (Kind::HostStart, &[600][..])
        );
        assert_eq!(t.get(600).unwrap().first_seen_ns, 10);
        assert_eq!(t.hosts(), vec![HOST, 500, 600]);
    }

    #[test]
    fn adopted_children_take_their_adopted_parents_lineage() {
        let mut t = Tracker::new(16);
        assert!(t.adopt(HOST, None, HOST, PROFILE, Role::Host, None, 1));
        assert!(t.adopt(200, Some(HOST), HOST, PROFILE, Role::Session, Some(200), 1));
        assert!(t.adopt(201, Some(200), HOST, PROFILE, Role::Session, Some(200), 1));
        // Parent not adopted (not found, or adopted out of order): host still last.
        assert!(t.adopt(301, Some(300), HOST, PROFILE, Role::Session, Some(300), 1));
        assert_eq!(t.get(201).unwrap().lineage(), &[201, 200, HOST]);
        assert_eq!(t.get(301).unwrap().lineage(), &[301, 300, HOST]);
        let st = t.get(201).unwrap().task_state();
        assert_eq!(
            (st.role, st.session_pid, st.parent_pid, st.host_profile),
            (role::SESSION, 200, 200, PROFILE)
        );
        assert_eq!(t.hosts(), vec![HOST]);
        // A fork inherits the parent's last exec as its label.
        t.on_exec(
            &exec(
                201,
                2,
                Role::Session,
                Role::Session,
                200,
                0,
                &["python3", "-m", "srv"],
            ),
            &no_scripts,
        );
        t.on_fork(&fork(201, 202, 3, Role::Session, 200));
        assert_eq!(
            t.get(202).unwrap().last_exec.as_ref().unwrap().command,
            "python3 -m srv"
        );
    }

    #[test]
    fn exec_summary_is_cut_at_command_max_and_marked() {
        let long = "a".repeat(300);
        let s = ExecSummary::new(
            Some(b"/bin/echo"),
            &[b"echo".to_vec(), long.clone().into_bytes()],
        );
        assert_eq!(s.command.len(), COMMAND_MAX + '…'.len_utf8());
        assert!(s.command.starts_with("echo aaa") && s.command.ends_with('…'));
        let s = ExecSummary::new(None, &[b"a b".to_vec(), Vec::new(), vec![0xff]]);
        assert_eq!(s.command, r"'a b' '' $'\xff'");
    }
}
