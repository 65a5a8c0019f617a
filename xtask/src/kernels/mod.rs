//! `cargo xtask kernels [FILTER]`: the host build of `mcpwatchd` and `mcpwatch` on
//! a matrix of Debian kernels, each booted in a QEMU (TCG) guest (`guest.rs`).
//!
//! Kernels come from Debian's own packages (`linux-image-amd64` of each suite,
//! resolved to its concrete `linux-image-<release>` dependency), fetched with a
//! private apt configuration (its own sources list, lists and cache; the machine's
//! apt sources are not touched) and cached as `vmlinuz-<release>` under
//! `$CARGO_HOME/mcpwatch-guest/<suite>/`, so a warm run downloads nothing.
//!
//! On a supported kernel the guest checks that every program loads (the daemon
//! runs) within the verifier budget, that a launch carries its exact argv, the three
//! modes (enforce kills an unapproved launch and one with `LD_PRELOAD` added before
//! their first instruction and lets the approved one run; ask holds a launch
//! stopped until `mcpwatch allow`), and EPERM from the BPF LSM for a managed deny.
//! On a kernel that is too old the daemon must refuse to start: exit status 2, one
//! line on stderr naming what is missing, nothing left pinned.
use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Instant,
};

use anyhow::{bail, Result};

use crate::guest::{self, tail, Bins};
use crate::util::{cargo_home, say};

mod fetch;
mod judge;

use fetch::{config_gaps, download, plan, PrivateApt};
use judge::{judge_refuses, judge_runs};

/// Every program must verify within this many instructions (DESIGN principle 11:
/// 20 % of the verifier's 1M limit), on every kernel of the matrix.
pub const VERIFIED_INSNS_BUDGET: u64 = 200_000;

/// What the daemon must do on a suite's kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Load everything and enforce.
    Runs,
    /// Refuse to start: exit 2, one line naming the missing feature.
    Refuses,
}

struct Suite {
    name: &'static str,
    /// Also use `<name>-security` (newer kernels of a stable release).
    security: bool,
    expect: Expect,
}

/// The matrix, oldest first.
const SUITES: [Suite; 4] = [
    Suite {
        name: "bullseye",
        security: true,
        expect: Expect::Refuses,
    },
    Suite {
        name: "bookworm",
        security: true,
        expect: Expect::Runs,
    },
    Suite {
        name: "trixie",
        security: true,
        expect: Expect::Runs,
    },
    Suite {
        name: "sid",
        security: false,
        expect: Expect::Runs,
    },
];

/// Kernel options the guest relies on being built in (there are no modules in
/// the initramfs). Reported when the guest fails, to say why.
const NEEDED_CONFIG: [&str; 8] = [
    "CONFIG_BPF_SYSCALL",
    "CONFIG_DEBUG_INFO_BTF",
    "CONFIG_BPF_LSM",
    "CONFIG_FTRACE",
    "CONFIG_DEVTMPFS",
    "CONFIG_BLK_DEV_INITRD",
    "CONFIG_SERIAL_8250_CONSOLE",
    "CONFIG_UNIX",
];

fn cache_root() -> PathBuf {
    cargo_home().join("mcpwatch-guest")
}

/// A kernel of the matrix, before or after download.
struct Planned {
    suite: &'static Suite,
    release: String,
    /// The packages to download: the one with the kernel image (`linux-image-…`,
    /// or `linux-binary-…` where Debian split the image from its modules), then
    /// `linux-base-…` of a split kernel (its config).
    packages: Vec<String>,
    size: Option<u64>,
    vmlinuz: Option<PathBuf>,
    /// The private apt configuration that resolved it (reused to download).
    apt: Option<PrivateApt>,
}

/// One kernel's result: `kernel <release>: ok (…)` or `… FAILED: …`.
pub struct Outcome {
    pub release: String,
    pub result: std::result::Result<String, String>,
}

impl Outcome {
    pub fn line(&self) -> String {
        match &self.result {
            Ok(facts) => format!("kernel {}: ok ({facts})", self.release),
            Err(why) => format!("kernel {}: FAILED: {why}", self.release),
        }
    }
}

/// Runs the matrix (the kernels matching `filter`: a suite name, or a prefix of
/// the kernel release), `jobs` guests at a time; prints one line per kernel on
/// stdout as it finishes and returns the outcomes in matrix order.
pub fn run_matrix(bins: &Bins, filter: Option<&str>, jobs: usize) -> Result<Vec<Outcome>> {
    let start = Instant::now();
    guest::ensure_packages()?;
    // The single-kernel cache of earlier versions (`mcpwatch-guest/root/boot/…`).
    let _ = fs::remove_dir_all(cache_root().join("root"));
    let planned = plan(filter)?;
    say!(
        "kernels: {} to run: {}",
        planned.len(),
        planned
            .iter()
            .map(|p| format!("{} ({})", p.release, p.suite.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let work = std::env::temp_dir().join(format!("mcpwatch-kernels.{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let initrd = work.join("initrd.img");
    guest::build_initramfs(bins, &initrd)?;
    say!(
        "kernels: initramfs {} MB (busybox, mcpwatchd, mcpwatch, dbus-daemon and their libraries)",
        fs::metadata(&initrd)?.len() / 1_000_000
    );

    // Newest kernel first: the newest verifier is the one most likely to take long
    // (a program it rejects runs it to its 1M-instruction limit, minutes under
    // TCG), and starting the longest guest first keeps the other job busy with
    // the rest meanwhile.
    let order: Vec<usize> = (0..planned.len()).rev().collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> =
        Mutex::new((0..planned.len()).map(|_| None).collect());
    let jobs = jobs.clamp(1, planned.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(&i) = order.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let p = &planned[i];
                    let outcome = run_one(p, &initrd, &work.join(format!("{i}-{}", p.suite.name)));
                    println!("{}", outcome.line());
                    results.lock().expect("results lock")[i] = Some(outcome);
                }
            });
        }
    });
    let outcomes: Vec<Outcome> = results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|o| o.expect("every kernel ran"))
        .collect();
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    let _ = fs::remove_file(&initrd);
    if failed == 0 {
        let _ = fs::remove_dir_all(&work);
    } else {
        say!(
            "kernels: consoles and reports of the failed guests are in {}",
            work.display()
        );
    }
    say!(
        "kernels: {} ok, {failed} failed, in {:.0} s",
        outcomes.len() - failed,
        start.elapsed().as_secs_f64()
    );
    Ok(outcomes)
}

fn run_one(p: &Planned, initrd: &Path, work: &Path) -> Outcome {
    let label = format!("{} ({})", p.release, p.suite.name);
    let result = (|| -> std::result::Result<String, String> {
        let vmlinuz = match &p.vmlinuz {
            Some(v) => v.clone(),
            None => download(p).map_err(|e| format!("download: {e:#}"))?,
        };
        say!("kernels: {label}: booting under QEMU (TCG, 1 vCPU)");
        let report = guest::boot(&label, &vmlinuz, initrd, work).map_err(|e| format!("{e:#}"))?;
        say!(
            "kernels: {label}: guest finished after {:.0} s",
            report.elapsed.as_secs_f64()
        );
        let verdict = match p.suite.expect {
            Expect::Runs => judge_runs(&report),
            Expect::Refuses => judge_refuses(&report),
        };
        verdict.map_err(|why| {
            let gaps = config_gaps(p.suite, &p.release);
            let mut why = why;
            if !gaps.is_empty() {
                let _ = write!(why, " (kernel config lacks {})", gaps.join(", "));
            }
            eprintln!(
                "--- {label}: console (tail)\n{}\n--- {label}: daemon stderr (tail)\n{}\n---",
                tail(&report.console, 40),
                tail(report.section("daemon_err"), 80)
            );
            why
        })
    })();
    Outcome {
        release: p.release.clone(),
        result,
    }
}

/// `cargo xtask kernels`: the matrix, and a failure when any kernel failed.
pub fn kernels_command(bins: &Bins, filter: Option<&str>, jobs: usize) -> Result<()> {
    let outcomes = run_matrix(bins, filter, jobs)?;
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} kernels failed: {}",
            failed.len(),
            outcomes.len(),
            failed
                .iter()
                .map(|o| o.release.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// How many guests to run at once: one per core, at most two (each is one TCG
/// thread; more would only share the cores).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

#[cfg(test)]
mod tests {
    use super::fetch::is_plain_image;
    use super::judge::{names_a_feature, program_facts};
    use serde_json::json;

    #[test]
    fn only_the_plain_image_package_is_picked() {
        assert!(is_plain_image("linux-image-6.12.117+deb13-amd64"));
        assert!(is_plain_image("linux-image-6.1.0-50-amd64"));
        assert!(!is_plain_image("linux-image-amd64"));
        assert!(!is_plain_image("linux-image-6.1.0-50-amd64-unsigned"));
        assert!(!is_plain_image("linux-image-6.1.0-50-cloud-amd64"));
        assert!(!is_plain_image("linux-image-6.1.0-50-rt-amd64"));
        assert!(!is_plain_image("linux-image-6.1.0-50-amd64-dbg"));
    }

    #[test]
    fn a_refusal_names_feature_and_kernel() {
        assert!(names_a_feature(
            "mcpwatchd: error: this kernel (5.10.0-46-amd64) lacks bpf_loop (Linux 5.17 or newer needed)"
        ));
        assert!(!names_a_feature("mcpwatchd: error: failed to load"));
        assert!(!names_a_feature("mcpwatchd: error: bpf_loop missing"));
    }

    #[test]
    fn a_version_filter_names_whole_components() {
        assert!(super::fetch::release_matches("6.1.0-57-amd64", "6.1"));
        assert!(!super::fetch::release_matches(
            "6.12.118+deb13-amd64",
            "6.1"
        ));
        assert!(super::fetch::release_matches(
            "6.12.118+deb13-amd64",
            "6.12"
        ));
        assert!(super::fetch::release_matches(
            "6.12.118+deb13-amd64",
            "6.12.118"
        ));
        assert!(super::fetch::release_matches("7.2.13+deb14-amd64", "7"));
        assert!(super::fetch::release_matches("6.12.118+deb13-amd64", "6."));
        assert!(!super::fetch::release_matches("5.10.0-46-amd64", "6"));
    }

    #[test]
    fn the_verifier_budget_is_checked_per_program() {
        let ok = json!({"programs": [
            {"name": "sched_process_exec", "verified_insns": 150_000, "load_ms": 10.0},
            {"name": "sched_process_fork", "verified_insns": 50, "load_ms": 1.5}]});
        let facts = program_facts(&ok).expect("within budget");
        assert!(
            facts.contains("verified insns: exec 150000, fork 50"),
            "{facts}"
        );
        let over = json!({"programs": [{"name": "sched_process_exec", "verified_insns": 200_001}]});
        let e = program_facts(&over).expect_err("over budget");
        assert!(e.contains("sched_process_exec verified 200001"), "{e}");
        let missing = json!({"programs": [{"name": "sched_process_exec", "run_cnt": 3}]});
        let e = program_facts(&missing).expect_err("field missing");
        assert!(e.contains("verified_insns not reported"), "{e}");
    }
}
