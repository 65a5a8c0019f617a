//! Reading and writing the kernel's maps: tracked processes, consent, modes,
//! settings and holds, and the security-relevant environment tables.
use aya::maps::{HashMap, MapData, RingBuf};
use monitor_common::{
    names, AllowKey, AllowValue, EnvFilter, ExeKey, PathKey, SecEnvName, TaskState, MODES_MAX,
    SECENV_NAME_CAP,
};

use super::{Sensor, SensorError};

/// `BPF_EXIST`: update an element only if it exists.
const BPF_EXIST: u64 = 2;

impl Sensor {
    /// The ring buffer, handed to the reader once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Start tracking `pid` (e.g. `mcpwatch run`, adoption, a host relaunch).
    pub fn track(&mut self, pid: u32, state: &TaskState) -> Result<(), SensorError> {
        self.tracked
            .insert(pid, state, 0)
            .map_err(|source| SensorError::Map {
                name: names::TRACKED,
                source,
            })
    }

    pub fn tracked_state(&self, pid: u32) -> Option<TaskState> {
        self.tracked.get(&pid, 0).ok()
    }

    pub fn tracked_count(&self) -> usize {
        self.tracked.keys().flatten().count()
    }

    pub fn host_key_counts(&self) -> (usize, usize) {
        (
            self.host_exes.keys().flatten().count(),
            self.host_paths.keys().flatten().count(),
        )
    }

    /// Make `ALLOW` hold exactly `entries` (insert or update first, then remove the
    /// rest, so an entry that stays is never briefly missing).
    pub fn sync_allow(&mut self, entries: &[(AllowKey, AllowValue)]) -> Result<(), SensorError> {
        sync_map(&mut self.allow, names::ALLOW, entries)
    }

    /// Make `SECENV_NAMES` know exactly `names` (index = id, as the `ALLOW` values
    /// use them). Values and names written at different moments cannot make a
    /// launch match wrongly: a value's entries carry their names, compared whole.
    pub fn set_env_names(&mut self, names: &[String]) -> Result<(), SensorError> {
        sync_map(&mut self.secenv, names::SECENV_NAMES, &secenv_names(names))
    }

    pub fn allow_keys(&self) -> Vec<AllowKey> {
        self.allow.keys().flatten().collect()
    }

    pub fn remove_allow(&mut self, key: &AllowKey) -> bool {
        self.allow.remove(key).is_ok()
    }

    /// Make `DENY_EXES` hold exactly `entries`.
    pub fn sync_deny(&mut self, entries: &[(ExeKey, u32)]) -> Result<(), SensorError> {
        sync_map(&mut self.deny, names::DENY_EXES, entries)
    }

    /// Make `HOST_PATHS` hold the hosts' script paths and `entries`, the commands
    /// of MCP config entries (`ENTRY_MARK`): an untracked exec of one of those is
    /// reported (`UNKNOWN_HOST`). A path that is a host's script stays the host's.
    pub fn set_entry_paths(&mut self, entries: &[PathKey]) -> Result<(), SensorError> {
        let mut all = self.host_script_keys.clone();
        for k in entries {
            if !all.iter().any(|(h, _)| h == k) {
                all.push((*k, monitor_common::ENTRY_MARK));
            }
        }
        sync_map(&mut self.host_paths, names::HOST_PATHS, &all)?;
        let lens = host_path_lens(&all);
        if self.settings.host_path_lens != lens {
            self.settings.host_path_lens = lens;
            self.store_settings()?;
        }
        Ok(())
    }

    /// Set the mode of every profile id (ids past the slice: monitor).
    pub fn set_modes(&mut self, modes: &[u32]) -> Result<(), SensorError> {
        for id in 0..MODES_MAX {
            let m = modes.get(id as usize).copied().unwrap_or(0);
            if self.modes.get(&id, 0).ok() != Some(m) {
                self.modes
                    .set(id, m, 0)
                    .map_err(|source| SensorError::Map {
                        name: names::MODES,
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// The mode the kernel applies to a host id past the mode table.
    pub fn set_default_mode(&mut self, mode: u32) -> Result<(), SensorError> {
        if self.settings.default_mode == mode {
            return Ok(());
        }
        self.settings.default_mode = mode;
        self.store_settings()
    }

    /// Write `self.settings` to the kernel's `SETTINGS[0]`.
    fn store_settings(&mut self) -> Result<(), SensorError> {
        self.settings_map
            .set(0, self.settings, 0)
            .map_err(|source| SensorError::Map {
                name: names::SETTINGS,
                source,
            })
    }

    /// Clear a process's `HELD` flag (it was continued or killed by the daemon).
    pub fn clear_held(&mut self, pid: u32) {
        let Ok(mut st) = self.tracked.get(&pid, 0) else {
            return;
        };
        if st.flags & monitor_common::task_flags::HELD == 0 {
            return;
        }
        st.flags &= !monitor_common::task_flags::HELD;
        // Only if it still exists: an entry the exit hook removed must stay gone.
        if self.tracked.insert(pid, st, BPF_EXIST).is_ok() {
            self.count_release();
        }
    }

    /// One more hold ended by the daemon (`HOLDS[DAEMON_RELEASED]`, ours only).
    fn count_release(&mut self) {
        use monitor_common::holds;
        let n = self.holds.get(&holds::DAEMON_RELEASED, 0).unwrap_or(0);
        let _ = self.holds.set(holds::DAEMON_RELEASED, n.wrapping_add(1), 0);
    }

    /// `HOLDS` as (held, released in the kernel, released by the daemon).
    pub fn hold_counts(&self) -> (u64, u64, u64) {
        use monitor_common::holds;
        let get = |i| self.holds.get(&i, 0).unwrap_or(0);
        (
            get(holds::HELD),
            get(holds::KERNEL_RELEASED),
            get(holds::DAEMON_RELEASED),
        )
    }

    /// With no launch held: make the counters agree again (a hold ended twice
    /// leaves them apart, and the page-fault hook then looks up every fault).
    /// Read before the scan, so a hold that begins meanwhile keeps them apart.
    pub fn resync_holds(&mut self) {
        let (held, kernel, daemon) = self.hold_counts();
        if held == kernel.wrapping_add(daemon) || !self.held_pids().is_empty() {
            return;
        }
        let _ = self.holds.set(
            monitor_common::holds::DAEMON_RELEASED,
            held.wrapping_sub(kernel),
            0,
        );
    }

    /// Every (pid, state) in the kernel's tracked map.
    pub fn tracked_entries(&self) -> Vec<(u32, TaskState)> {
        self.tracked.iter().flatten().collect()
    }

    /// Forget a pid the kernel still tracks but that no longer exists.
    pub fn untrack(&mut self, pid: u32) {
        let held = self
            .tracked
            .get(&pid, 0)
            .is_ok_and(|st| st.flags & monitor_common::task_flags::HELD != 0);
        if self.tracked.remove(&pid).is_ok() && held {
            self.count_release();
        }
    }

    /// Every tracked process the kernel holds (ask mode) right now.
    pub fn held_pids(&self) -> Vec<u32> {
        self.tracked
            .iter()
            .flatten()
            .filter(|(_, st)| st.flags & monitor_common::task_flags::HELD != 0)
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Tell the kernel no daemon runs any more (clean stop): ask mode degrades to
    /// enforce at once rather than holding launches nobody will answer.
    pub fn release(&mut self) {
        self.settings.daemon_tgid = 0;
        let _ = self.store_settings();
    }
}

/// `SECENV_NAMES` (by `secenv_name_hash` of `NAME=`) for `names` (index = id).
pub(crate) fn secenv_names(names: &[String]) -> Vec<(u64, SecEnvName)> {
    let mut want: Vec<(u64, SecEnvName)> = Vec::new();
    for (id, name) in names.iter().enumerate().take(monitor_common::SECENV_MAX) {
        let entry = format!("{name}=");
        if entry.len() > SECENV_NAME_CAP {
            continue;
        }
        let mut v = SecEnvName {
            len: u32::try_from(entry.len()).unwrap_or(u32::MAX),
            id: u32::try_from(id).unwrap_or(0),
            name: [0; SECENV_NAME_CAP],
        };
        v.name[..entry.len()].copy_from_slice(entry.as_bytes());
        let key = monitor_common::secenv_name_hash(entry.as_bytes());
        // Two names with one hash: the later one is not known (fail closed: the
        // kernel finds no record for a launch that sets it).
        if !want.iter().any(|(k, _)| *k == key) {
            want.push((key, v));
        }
    }
    want
}

/// `SECENV_FAMILIES`: the families' lookup keys.
pub(crate) fn secenv_families() -> Vec<(u64, u32)> {
    crate::event::SECURITY_ENV_FAMILIES
        .iter()
        .enumerate()
        .map(|(i, (prefix, fold))| {
            (
                monitor_common::secenv_family_key(prefix.as_bytes(), *fold),
                u32::try_from(i).unwrap_or(0),
            )
        })
        .collect()
}

/// The keyed filter of the first three bytes of every security-relevant name and
/// family (each case of a family that ignores case), which the kernel's
/// environment scan consults first.
pub(crate) fn secenv_filter(key: u64) -> EnvFilter {
    let mut filter = EnvFilter::default();
    let mut set = |first3: &[u8]| {
        let bit = monitor_common::envfilter_bit(
            u32::from_le_bytes([first3[0], first3[1], first3[2], 0]),
            key,
        );
        filter.bits[(bit >> 6) as usize] |= 1 << (bit & 63);
    };
    for name in crate::event::SECURITY_ENV {
        set(format!("{name}=").as_bytes());
    }
    for (prefix, fold) in crate::event::SECURITY_ENV_FAMILIES {
        let p = prefix.as_bytes();
        if *fold {
            for case in 0..8u8 {
                let mut f = [0u8; 3];
                for (i, b) in f.iter_mut().enumerate() {
                    *b = if case >> i & 1 == 1 {
                        p[i].to_ascii_uppercase()
                    } else {
                        p[i].to_ascii_lowercase()
                    };
                }
                set(&f);
            }
        } else {
            set(p);
        }
    }
    filter
}

/// `Settings::host_path_lens`: the `__data_loc` lengths (NUL included) of the
/// `#!` host paths, so the kernel copies an exec filename only when it could match.
pub(super) fn host_path_lens(paths: &[(PathKey, u32)]) -> [u64; 4] {
    let mut lens = [0u64; 4];
    for (key, _) in paths {
        let n = key
            .path
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(key.path.len())
            + 1;
        if n < 256 {
            lens[n / 64] |= 1 << (n % 64);
        }
    }
    lens
}

/// Make a hash map hold exactly `want`: insert or update every entry, then remove
/// keys that are not wanted. Entries that stay are never briefly absent.
pub(super) fn sync_map<K, V>(
    map: &mut HashMap<MapData, K, V>,
    name: &'static str,
    want: &[(K, V)],
) -> Result<(), SensorError>
where
    K: aya::Pod + PartialEq,
    V: aya::Pod,
{
    for (k, v) in want {
        map.insert(k, v, 0)
            .map_err(|source| SensorError::Map { name, source })?;
    }
    let stale: Vec<K> = map
        .keys()
        .flatten()
        .filter(|k| !want.iter().any(|(w, _)| w == k))
        .collect();
    for k in stale {
        let _ = map.remove(&k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_tables_hold_every_security_relevant_name() {
        let ids = crate::consent::EnvIds::fixed();
        let names = secenv_names(ids.names());
        let filter = secenv_filter(0x1234);
        assert_eq!(names.len(), crate::event::SECURITY_ENV.len());
        assert!(crate::event::SECURITY_ENV.len() <= monitor_common::SECENV_MAX);
        let has = |first3: &[u8]| {
            let bit = monitor_common::envfilter_bit(
                u32::from_le_bytes([first3[0], first3[1], first3[2], 0]),
                0x1234,
            );
            filter.bits[(bit >> 6) as usize] & (1 << (bit & 63)) != 0
        };
        for (i, (k, v)) in names.iter().enumerate() {
            // The kernel's filter reads three bytes of NAME=, and compares NAME= whole.
            assert!(v.len >= 3 && v.len as usize <= SECENV_NAME_CAP, "{v:?}");
            assert_eq!(v.id as usize, i);
            assert_eq!(*k, monitor_common::secenv_name_hash(&v.name));
            assert!(has(&v.name));
        }
        // Every case of npm's family passes the filter; each family has one key.
        for first3 in [b"npm", b"NPM", b"nPm", b"LD_", b"GIT"] {
            assert!(has(first3), "{first3:?}");
        }
        let fams = secenv_families();
        assert_eq!(fams.len(), crate::event::SECURITY_ENV_FAMILIES.len());
        assert!(fams.len() <= monitor_common::SECENV_FAMILIES_MAX as usize);
        for (prefix, fold) in crate::event::SECURITY_ENV_FAMILIES {
            // The kernel looks a family up by 3 or 4 bytes as they are, or by 8
            // bytes folded to lower case.
            assert!(
                if *fold {
                    prefix.len() == 8 && prefix.bytes().all(|b| !b.is_ascii_uppercase())
                } else {
                    prefix.len() == 3 || prefix.len() == 4
                },
                "{prefix}"
            );
        }
    }

    #[test]
    fn host_path_lens_are_the_data_loc_lengths() {
        let mut k = PathKey::default();
        k.path[..9].copy_from_slice(b"/bin/host");
        let lens = host_path_lens(&[(k, 0)]);
        assert_eq!(lens[0], 1 << 10);
        assert_eq!(lens[1..], [0, 0, 0]);
    }
}
