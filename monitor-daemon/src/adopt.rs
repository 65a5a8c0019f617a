//! Hosts already running when the daemon starts are adopted from `/proc`, with their
//! existing descendants. The plan is pure (tested on synthetic process tables); the
//! `/proc` reading is a thin layer around it.
//!
//! Limits, said plainly: a descendant that was reparented away from its host before
//! the daemon started (double fork) cannot be tied to it from `/proc` — lineage is
//! only known for what the kernel saw fork. The scan runs after the programs are
//! attached, and twice, so children forked during the first scan are caught.
use std::collections::{BTreeMap, BTreeSet};

use monitor_common::role;

/// One process as read from `/proc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Host profile id when the process's executable or script is a host's.
    pub host_profile: Option<u32>,
    /// Boot-time start, in clock ticks (`/proc/PID/stat` field 22).
    pub start_ticks: u64,
}

/// What to record for one adopted process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adoption {
    pub pid: u32,
    pub parent: Option<u32>,
    pub role: u32,
    pub host_pid: u32,
    pub host_profile: u32,
    pub session_pid: u32,
}

/// Decide roles for every host in `procs` and its descendants. A host below another
/// host's tree is part of that tree (the outer host wins); a process whose exe is a
/// host image and whose parent is a host process is a host process too (helpers).
pub fn plan(procs: &[ProcInfo]) -> Vec<Adoption> {
    let by_pid: BTreeMap<u32, &ProcInfo> = procs.iter().map(|p| (p.pid, p)).collect();
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    // Roots: host processes whose ancestors are not hosts.
    let is_host = |pid: u32| by_pid.get(&pid).is_some_and(|p| p.host_profile.is_some());
    let mut roots = Vec::new();
    for p in procs.iter().filter(|p| p.host_profile.is_some()) {
        let mut anc = p.ppid;
        let mut seen = BTreeSet::new();
        let mut outer = false;
        while anc > 1 && seen.insert(anc) {
            if is_host(anc) {
                outer = true;
                break;
            }
            anc = by_pid.get(&anc).map_or(0, |a| a.ppid);
        }
        if !outer {
            roots.push(p.pid);
        }
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for root in roots {
        let profile = by_pid[&root].host_profile.unwrap_or(0);
        let mut stack = vec![(root, None::<u32>, role::HOST, 0u32)];
        while let Some((pid, parent, parent_role, parent_session)) = stack.pop() {
            if !done.insert(pid) {
                continue;
            }
            let (r, session) = match parent {
                None => (role::HOST, 0),
                Some(_) if parent_role == role::HOST => {
                    if is_host(pid) {
                        (role::HOST, 0)
                    } else {
                        (role::SESSION, pid)
                    }
                }
                Some(_) => (role::SESSION, parent_session),
            };
            out.push(Adoption {
                pid,
                parent,
                role: r,
                host_pid: root,
                host_profile: profile,
                session_pid: session,
            });
            if let Some(kids) = children.get(&pid) {
                for &k in kids.iter().rev() {
                    stack.push((k, Some(pid), r, session));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, parent: u32, host: Option<u32>) -> ProcInfo {
        ProcInfo {
            pid,
            ppid: parent,
            host_profile: host,
            start_ticks: 0,
        }
    }

    #[test]
    fn host_with_helper_launch_and_session_descendants() {
        // 10 host, 11 helper (host image), 12 launch (npx), 13 node under it, 14 sh.
        let procs = vec![
            p(1, 0, None),
            p(10, 1, Some(3)),
            p(11, 10, Some(3)),
            p(12, 10, None),
            p(13, 12, None),
            p(14, 13, None),
            p(20, 1, None), // unrelated
        ];
        let plan = plan(&procs);
        let get = |pid| plan.iter().find(|a| a.pid == pid).cloned();
        assert_eq!(get(10).unwrap().role, role::HOST);
        assert_eq!(get(11).unwrap().role, role::HOST);
        let launch = get(12).unwrap();
        assert_eq!(
            (launch.role, launch.session_pid, launch.parent),
            (role::SESSION, 12, Some(10))
        );
        assert_eq!(get(14).unwrap().session_pid, 12);
        assert_eq!(get(14).unwrap().host_pid, 10);
        assert!(get(20).is_none());
        assert!(get(1).is_none());
    }

    #[test]
    fn nested_host_belongs_to_the_outer_tree() {
        // A terminal in VS Code (host 10) runs claude (host 30) via a shell (20).
        let procs = vec![
            p(10, 1, Some(1)),
            p(20, 10, None),
            p(30, 20, Some(2)),
            p(31, 30, None),
        ];
        let plan = plan(&procs);
        assert!(plan.iter().all(|a| a.host_pid == 10));
        let c = plan.iter().find(|a| a.pid == 30).unwrap();
        assert_eq!((c.role, c.session_pid), (role::SESSION, 20));
    }

    #[test]
    fn ppid_cycles_do_not_hang() {
        let procs = vec![p(5, 6, None), p(6, 5, Some(1))];
        let plan = plan(&procs);
        assert!(plan.len() <= 2);
    }
}
