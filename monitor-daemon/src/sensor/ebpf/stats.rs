//! The kernel's counters and each program's verifier and run statistics.
use std::{collections::BTreeMap, fs, path::PathBuf};

use aya::programs::links::FdLink;
use monitor_common::stat;

use super::{ProgramStats, Sensor, LSM_PROGRAM, PROGRAMS};

impl Sensor {
    /// Kernel counters, summed over CPUs, by name.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        let names = [
            (stat::RINGBUF_DROPS, "ringbuf_drops"),
            (stat::TRACKED_FULL, "tracked_full"),
            (stat::EXECS, "execs"),
            (stat::FORKS, "forks"),
            (stat::EXITS, "exits"),
            (stat::HOSTS_DETECTED, "hosts_detected"),
            (stat::READ_ERRORS, "read_errors"),
            (stat::LAUNCHES, "launches"),
            (stat::ALLOWED, "allowed"),
            (stat::KILLED, "killed"),
            (stat::HELD, "held"),
            (stat::SIGNAL_FAILED, "signal_failed"),
            (stat::HOLD_BYPASS, "hold_bypass"),
            (stat::LSM_DENIED, "lsm_denied"),
            (stat::DOOMED_KILLED, "tracked_full_killed"),
            (stat::DOOMED_FULL, "tracked_full_unkillable"),
        ];
        names
            .iter()
            .map(|&(idx, name)| {
                let sum = self.stats.get(&idx, 0).map_or(0, |v| v.iter().sum());
                (name, sum)
            })
            .collect()
    }

    /// Per program: the verifier's instruction count, load time, run counts and run
    /// time (those two need `kernel.bpf_stats_enabled=1`). For programs taken over
    /// from an earlier daemon, read through their pinned links.
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        let names = PROGRAMS
            .iter()
            .chain(std::iter::once(&LSM_PROGRAM))
            .filter(|(n, _)| self.attachments.iter().any(|a| a.program == *n))
            .map(|&(n, _)| n);
        if !self.pins.reused_programs {
            return names
                .filter_map(|name| {
                    let info = self.ebpf.program(name)?.info().ok()?;
                    Some(stats_of(name, &info, self.load_ms(name)))
                })
                .collect();
        }
        // Taken over: the program ids behind our pinned links.
        let pins: Vec<PathBuf> = fs::read_dir(self.pins.dir.join("links"))
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        let ids: Vec<(&'static str, u32)> = names
            .filter_map(|name| {
                let pin = pins.iter().find(|p| {
                    p.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}@")))
                })?;
                let link = FdLink::from(aya::programs::links::PinnedLink::from_pin(pin).ok()?);
                Some((name, link.info().ok()?.program_id()))
            })
            .collect();
        aya::programs::loaded_programs()
            .flatten()
            .filter_map(|info| {
                let &(name, _) = ids.iter().find(|(_, id)| *id == info.id())?;
                Some(stats_of(name, &info, None))
            })
            .collect()
    }

    fn load_ms(&self, name: &str) -> Option<f64> {
        self.load_ms
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, ms)| ms)
    }
}

fn stats_of(
    name: &'static str,
    info: &aya::programs::ProgramInfo,
    load_ms: Option<f64>,
) -> ProgramStats {
    ProgramStats {
        name,
        verified_insns: info.verified_instruction_count(),
        load_ms,
        run_cnt: info.run_count(),
        run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
    }
}
