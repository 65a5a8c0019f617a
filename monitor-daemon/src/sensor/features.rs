//! What this kernel must offer before anything is loaded: each feature the programs
//! rely on, probed for real (a map created, a two-instruction program calling the
//! helper loaded, as libbpf's probes do), never guessed from the version string, so
//! a vendor kernel with backports (RHEL 9's 5.14) passes and an old one is refused in
//! one line before a single program is loaded.
use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_helper_supported, is_map_supported, BpfHelper},
};

/// One thing the programs need from the kernel.
#[derive(Clone, Copy, Debug)]
pub struct Feature {
    /// What the kernel calls it.
    pub name: &'static str,
    /// The mainline release that brought it.
    pub since: &'static str,
    /// What mcpwatch uses it for.
    pub used_for: &'static str,
    probe: Probe,
}

#[derive(Clone, Copy, Debug)]
enum Probe {
    Map(MapType),
    Helper(BpfHelper),
}

/// Oldest first; the newest of them sets the minimum kernel (README: "Kernels").
pub const REQUIRED: &[Feature] = &[
    Feature {
        name: "bpf_send_signal",
        since: "5.3",
        used_for: "killing or stopping an unapproved launch before its first instruction",
        probe: Probe::Helper(BpfHelper::BPF_FUNC_send_signal),
    },
    Feature {
        name: "bpf_probe_read_kernel_str",
        since: "5.5",
        used_for: "reading paths and names out of kernel structures",
        probe: Probe::Helper(BpfHelper::BPF_FUNC_probe_read_kernel_str),
    },
    Feature {
        name: "BPF ring buffer (BPF_MAP_TYPE_RINGBUF)",
        since: "5.8",
        used_for: "events to the daemon, with every drop counted",
        probe: Probe::Map(MapType::RingBuf),
    },
    Feature {
        name: "bpf_ktime_get_boot_ns",
        since: "5.8",
        used_for: "expiry of time-limited approvals across suspend",
        probe: Probe::Helper(BpfHelper::BPF_FUNC_ktime_get_boot_ns),
    },
    Feature {
        name: "bpf_loop",
        since: "5.17",
        used_for: "comparing argv and environment within the verifier's budget",
        probe: Probe::Helper(BpfHelper::BPF_FUNC_loop),
    },
];

/// The minimum mainline kernel: the newest `since` of `REQUIRED`.
pub const MINIMUM: &str = "5.17";

/// The features this kernel lacks (empty: all there). A probe that cannot even be
/// run counts as missing, with its error.
pub fn missing() -> Vec<(Feature, Option<String>)> {
    REQUIRED
        .iter()
        .filter_map(|f| {
            let ok = match f.probe {
                Probe::Map(t) => is_map_supported(t).map_err(|e| e.to_string()),
                Probe::Helper(h) => {
                    is_helper_supported(ProgramType::TracePoint, h).map_err(|e| e.to_string())
                }
            };
            match ok {
                Ok(true) => None,
                Ok(false) => Some((*f, None)),
                Err(e) => Some((*f, Some(e))),
            }
        })
        .collect()
}

/// The one line that says why this kernel cannot be used.
pub fn describe(kernel: &str, missing: &[(Feature, Option<String>)]) -> String {
    let what: Vec<String> = missing
        .iter()
        .map(|(f, err)| {
            let mut s = format!("{} (Linux {}+, for {})", f.name, f.since, f.used_for);
            if let Some(e) = err {
                s = format!("{s}: probe failed: {e}");
            }
            s
        })
        .collect();
    format!(
        "this kernel (Linux {kernel}) lacks {}; mcpwatch needs Linux {MINIMUM} or newer, or a \
         vendor kernel with these backported; nothing was loaded",
        what.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_is_the_newest_requirement() {
        let newest = REQUIRED
            .iter()
            .map(|f| {
                let (a, b) = f.since.split_once('.').unwrap();
                (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap())
            })
            .max()
            .unwrap();
        assert_eq!(format!("{}.{}", newest.0, newest.1), MINIMUM);
    }

    #[test]
    fn the_refusal_is_one_line_naming_each_missing_feature() {
        let loop_ = REQUIRED
            .iter()
            .find(|f| f.name == "bpf_loop")
            .copied()
            .unwrap();
        let line = describe("5.10.0-35-amd64", &[(loop_, None)]);
        assert!(!line.contains('\n'));
        assert!(line.contains("bpf_loop (Linux 5.17+"), "{line}");
        assert!(line.contains("Linux 5.10.0-35-amd64"), "{line}");
        assert!(line.contains("nothing was loaded"), "{line}");
    }

    /// This kernel runs the root tests, so it must have everything.
    #[test]
    fn this_kernel_has_every_feature_when_we_may_probe() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: probing needs root");
            return;
        }
        let m = missing();
        assert!(m.is_empty(), "{m:?}");
    }
}
