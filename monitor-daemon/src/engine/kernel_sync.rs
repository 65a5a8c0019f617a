//! Consent compiled into the kernel: the mode table, the records' allow maps and
//! the managed deny list (by identity and by content), and taking the kernel's
//! state over from an earlier daemon at start.
use std::{collections::BTreeMap, path::Path};

use monitor_common::{role, task_flags, ExeKey};
use tracing::warn;

use crate::{
    consent::{self, RecordState},
    engine::core::Core,
    event::{Bytes, Decision, Event, Kind, Verdict},
    model::Mode,
    policy::record::{Record, RecordId, Scope, ANY_HOST},
    sys::{clock, procfs},
};

/// Where the deny list's bare names are looked up.
pub(super) const DENY_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The mode of the kernel's encoding (anything else: monitor).
pub(super) fn mode_of(m: u32) -> Mode {
    match m {
        monitor_common::mode::ASK => Mode::Ask,
        monitor_common::mode::ENFORCE => Mode::Enforce,
        _ => Mode::Monitor,
    }
}

impl Core {
    /// The kernel's mode table from the store, managed policy and config.
    pub fn sync_modes(&mut self) {
        let default = self.config.defaults.mode;
        let modes: Vec<u32> = self
            .host_names
            .iter()
            .map(|h| self.consent.mode_of(h, default).0.kernel())
            .collect();
        if let Err(e) = self.sensor.set_modes(&modes) {
            warn!(error = %e, "could not update host modes in the kernel");
        }
        // What the kernel applies to an id it has no mode for: the default, with
        // managed policy for every host, never something weaker.
        let fallback = self.consent.mode_of(ANY_HOST, default).0.kernel();
        if let Err(e) = self.sensor.set_default_mode(fallback) {
            warn!(error = %e, "could not update the default mode in the kernel");
        }
    }

    /// The profile id a record's kernel entry carries (`ANY` for `*`).
    fn record_profile(&mut self, host: &str) -> Result<u32, NoHostId> {
        if host == ANY_HOST {
            return Ok(monitor_common::ANY);
        }
        self.profile_id(host).ok_or_else(|| NoHostId {
            host: host.to_owned(),
        })
    }

    /// Compile every record and load the kernel maps: `ALLOW`, `DENY_EXES`, `MODES`.
    /// Records whose files changed are reported (once per change) and left out.
    pub fn sync_kernel(&mut self) {
        for p in self.consent.build_managed_records() {
            warn!(problem = %p, "managed approval not applied");
            if !self.consent.managed_problems.contains(&p) {
                self.consent.managed_problems.push(p.clone());
                let mut e = self.new_event(Kind::PolicyError);
                e.message = Some(p);
                self.record(&e);
            }
        }
        let hosts: Vec<String> = self.consent.all_records().map(|r| r.host.clone()).collect();
        for h in hosts {
            if h != ANY_HOST {
                let _ = self.profile_id(&h);
            }
        }
        // A `once` entry the kernel no longer has was used (perhaps while no
        // daemon ran, or before its event reached us): retire it, never re-arm it.
        // Maps that did not survive (a reboot, `--unload`) count as used too.
        let present: std::collections::HashSet<_> = self.sensor.allow_keys().into_iter().collect();
        let consumed: Vec<RecordId> = self
            .consent
            .once_armed
            .iter()
            .filter(|(_, k)| !present.contains(k))
            .map(|(id, _)| *id)
            .collect();
        for id in consumed {
            if self
                .consent
                .store
                .get(id)
                .is_some_and(|r| r.scope == Scope::Once)
            {
                self.retire_once(id);
            }
            self.consent.once_armed.remove(&id);
        }
        let (k0, k1) = self.sensor.sip_keys();
        let now = time::OffsetDateTime::now_utc();
        let records: Vec<Record> = self.consent.all_records().cloned().collect();
        let ids = consent::EnvIds::for_records(records.iter().filter(|r| !r.is_expired(now)));
        if let Err(e) = self.sensor.set_env_names(ids.names()) {
            warn!(error = %e, "could not load the security-relevant env names into the kernel");
        }
        let mut entries = Vec::new();
        let mut states = BTreeMap::new();
        let mut watched = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for r in &records {
            if r.is_expired(now) {
                states.insert(r.id, RecordState::Expired);
                continue;
            }
            let profile = match self.record_profile(&r.host) {
                Ok(id) => id,
                Err(why) => {
                    states.insert(r.id, RecordState::Stale(why.to_string()));
                    continue;
                }
            };
            match consent::compile(r, profile, &mut self.consent.hashes, &ids, (k0, k1)) {
                Ok(c) => {
                    states.insert(r.id, RecordState::Active);
                    watched.insert(r.id, c.files.clone());
                    keys.insert(r.id, c.key);
                    entries.push((c.key, *c.value));
                }
                Err(why) => {
                    states.insert(r.id, RecordState::Stale(why.to_string()));
                }
            }
        }
        for (id, st) in &states {
            if let RecordState::Stale(why) = st {
                if self.consent.states.get(id) != Some(st) {
                    warn!(record = id, reason = %why, "consent record no longer applies");
                    let mut e = self.new_event(Kind::RecordStale);
                    e.record = Some(*id);
                    e.message = Some(why.clone());
                    self.record(&e);
                }
            }
        }
        let armed: BTreeMap<RecordId, monitor_common::AllowKey> = records
            .iter()
            .filter(|r| r.scope == Scope::Once)
            .filter_map(|r| Some((r.id, *keys.get(&r.id)?)))
            .collect();
        if armed != self.consent.once_armed {
            self.consent.once_armed = armed;
            self.consent.save_once_armed();
        }
        self.consent.states = states;
        self.consent.watched = watched;
        self.consent.keys = keys;
        if let Err(e) = self.sensor.sync_allow(&entries) {
            warn!(error = %e, "could not load consent records into the kernel");
        }
        self.sync_deny();
        self.sync_modes();
    }

    /// Load the managed deny list into the kernel by identity (the files it names
    /// now, and copies found by content), and hash those files for the check by
    /// content. Cheap when nothing changed (hashes are cached by identity).
    pub(crate) fn sync_deny(&mut self) {
        use std::os::unix::fs::MetadataExt as _;
        let names = self.consent.managed.deny.clone();
        let mut keys = deny_keys(&names);
        let mut sha = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            for c in deny_candidates(name) {
                if let Ok((_, h)) = self.consent.hashes.get(&c) {
                    sha.entry(h).or_insert(i);
                }
            }
        }
        self.consent.deny_sha = sha;
        self.consent.deny_copies.retain(|(p, k, _)| {
            std::fs::metadata(p).is_ok_and(|m| {
                crate::hosts::user_dev_to_kernel(m.dev()) == k.dev && m.ino() == k.ino
            })
        });
        for (_, k, i) in &self.consent.deny_copies {
            if !keys.iter().any(|(x, _)| x == k) {
                keys.push((*k, *i));
            }
        }
        if keys == self.consent.deny_loaded {
            return;
        }
        match self.sensor.sync_deny(&keys) {
            Ok(()) => self.consent.deny_loaded = keys,
            Err(e) => warn!(error = %e, "could not load the managed deny list into the kernel"),
        }
    }

    /// A copy (or a renamed-over version) of a program the managed policy denies,
    /// found by its content: the kernel did not know this file. Killed now (after
    /// it started: the kernel decides before the daemon can hash), and denied by
    /// identity in the kernel from now on.
    pub(super) fn deny_by_content(&mut self, e: &Event, mode: u32) -> Option<Verdict> {
        let exe = e.exe.as_ref()?;
        let sha = exe.sha256.as_ref()?;
        let idx = *self.consent.deny_sha.get(sha)?;
        let name = self.consent.managed.deny.get(idx)?.clone();
        let path = exe
            .path
            .as_ref()
            .map_or_else(|| "?".to_owned(), |p| p.lossy().into_owned());
        let enforce = mode_of(mode) != Mode::Monitor;
        let mut killed = false;
        if enforce {
            if let Some(start) = procfs::live_start(e.pid) {
                killed = procfs::signal_if_same(e.pid, start, libc::SIGKILL);
            }
        }
        if let Ok(m) =
            std::fs::metadata(format!("/proc/{}/exe", e.pid)).or_else(|_| std::fs::metadata(&path))
        {
            let key = crate::hosts::exe_key(&m);
            if !self.consent.deny_copies.iter().any(|(_, k, _)| *k == key) {
                if self.consent.deny_copies.len() >= DENY_COPIES_MAX {
                    self.consent.deny_copies.remove(0);
                }
                self.consent.deny_copies.push((
                    path.clone().into(),
                    key,
                    u32::try_from(idx).unwrap_or(0),
                ));
                self.sync_deny();
            }
        }
        warn!(pid = e.pid, program = %name, path = %path, "a copy of a denied program ran");
        Some(Verdict {
            decision: Decision::Denied,
            mode: mode_of(mode),
            record: None,
            reason: Some(format!(
                "managed policy denies {name} inside every session; {path} has its content (sha256 {sha}){}; the kernel denies this file from now on",
                if killed {
                    ": killed just after it started"
                } else if enforce {
                    ": it was gone before it could be killed"
                } else {
                    ""
                }
            )),
            pending: None,
            killed,
        })
    }

    /// At start, with maps taken over from an earlier daemon: adopt the kernel's
    /// tracked processes, and kill launches held for a daemon that is gone.
    pub fn take_over_kernel_state(&mut self) -> usize {
        let mut n = 0;
        for (pid, st) in self.sensor.tracked_entries() {
            let Some((_, ppid, _)) = procfs::proc_start(pid) else {
                self.sensor.untrack(pid);
                continue;
            };
            if st.flags & task_flags::HELD != 0 {
                if let Some((start, _, _)) = procfs::proc_start(pid) {
                    procfs::signal_if_same(pid, start, libc::SIGKILL);
                }
                let mut e = self.new_event(Kind::Decision);
                e.pid = pid;
                e.verdict = Some(Verdict {
                    decision: Decision::Killed,
                    mode: Mode::Ask,
                    record: None,
                    reason: Some(
                        "held when the previous daemon stopped; nobody could answer".into(),
                    ),
                    pending: None,
                    killed: true,
                });
                self.record(&e);
                continue;
            }
            let r = if st.role == role::HOST {
                crate::event::raw::Role::Host
            } else {
                crate::event::raw::Role::Session
            };
            let session = (st.session_pid != 0).then_some(st.session_pid);
            let parent = (st.parent_pid != 0).then_some(st.parent_pid);
            self.tracker.adopt(
                pid,
                parent,
                st.host_pid,
                st.host_profile,
                r,
                session,
                clock::boot_ns(),
            );
            let mut e = self.new_event(Kind::Adopt);
            e.pid = pid;
            e.ppid = ppid;
            e.host = Some(crate::event::HostRef {
                name: self.host_name(st.host_profile),
                pid: st.host_pid,
            });
            e.session = session;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            e.argv = Some(
                crate::event::raw::split_nul(&cmdline)
                    .into_iter()
                    .map(Bytes)
                    .collect(),
            );
            e.message =
                Some("tracked by the kernel while no daemon ran (pinned state taken over)".into());
            self.record(&e);
            n += 1;
        }
        n
    }

    // ---- API operations -------------------------------------------------------
}

/// The files a deny-list entry names: an absolute path as is, a bare name in
/// every `DENY_PATH` directory.
/// Copies of denied programs denied by identity at most (the rest of the 1024
/// `DENY_EXES` entries are the list's own files).
const DENY_COPIES_MAX: usize = 256;

fn deny_candidates(name: &str) -> Vec<std::path::PathBuf> {
    if name.starts_with('/') {
        vec![name.into()]
    } else {
        DENY_PATH
            .split(':')
            .map(|d| Path::new(d).join(name))
            .collect()
    }
}

/// The path of a denied file, from the deny list, by its identity.
pub(super) fn deny_path(names: &[String], kdev: u32, ino: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    names.iter().find_map(|name| {
        deny_candidates(name).into_iter().find_map(|c| {
            let m = std::fs::metadata(&c).ok()?;
            (crate::hosts::user_dev_to_kernel(m.dev()) == kdev && m.ino() == ino)
                .then(|| c.display().to_string())
        })
    })
}

/// `DENY_EXES` entries for the managed deny list: every file the names resolve to.
fn deny_keys(names: &[String]) -> Vec<(ExeKey, u32)> {
    let mut out: Vec<(ExeKey, u32)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for c in deny_candidates(name) {
            if let Ok(m) = std::fs::metadata(&c) {
                if !m.is_file() {
                    continue;
                }
                let key = crate::hosts::exe_key(&m);
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, u32::try_from(i).unwrap_or(0)));
                }
            }
        }
    }
    out
}

/// A record's host got no kernel host id: the mode table is full.
#[derive(Debug, thiserror::Error)]
#[error(
    "every one of the kernel's {} host ids is in use: host {host} has none",
    monitor_common::MODES_MAX
)]
pub(crate) struct NoHostId {
    host: String,
}

#[cfg(test)]
mod no_host_id_tests {
    #[test]
    fn no_host_id_reads_as_the_stale_reason_always_did() {
        let host = "claude";
        let e = super::NoHostId { host: host.into() };
        assert_eq!(
            e.to_string(),
            format!(
                "every one of the kernel's {} host ids is in use: host {host} has none",
                monitor_common::MODES_MAX
            )
        );
    }
}
