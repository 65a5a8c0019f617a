//! `cargo xtask test`: every test — unit tests of the default members (no root), then
//! the root integration tests of `mcpwatch-tests` against the real kernel.

use anyhow::{bail, Context, Result};

use crate::setup::{run_setup, Mode};
use crate::util::{bin_dir, build_bins, cargo, euid, is_root, metadata, say};

/// Test counts summed over the `test result:` lines of cargo test runs.
#[derive(Default, Clone, Copy)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    /// Parse `test result: ok. 9 passed; 0 failed; 1 ignored; ...`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Run a cargo test command with its stdout passed through line by line, counting
/// the tests it reports.
fn run_counted(cmd: &mut std::process::Command, counts: &mut Counts) -> Result<bool> {
    use std::io::{BufRead as _, Write as _};
    say!("+ {}", crate::util::show(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        counts.add_line(&line);
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(child.wait().context("waiting for cargo test")?.success())
}

/// The package of the root integration tests.
const ROOT_TESTS: &str = "mcpwatch-tests";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "SKIPPED",
        }
    }
}

/// Names of the workspace's default members except the root-test package.
fn unit_test_packages() -> Result<Vec<String>> {
    let meta = metadata()?;
    let ids = meta["workspace_default_members"]
        .as_array()
        .context("`cargo metadata` has no workspace_default_members (cargo too old?)")?;
    let packages = meta["packages"]
        .as_array()
        .context("`cargo metadata` has no packages")?;
    let mut names = Vec::new();
    for id in ids {
        let name = packages
            .iter()
            .find(|p| p["id"] == *id)
            .and_then(|p| p["name"].as_str())
            .with_context(|| format!("default member {id} not among the packages"))?;
        if name != ROOT_TESTS {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The kernel matrix (`cargo xtask kernels`), each kernel counted as one test.
/// Returns whether every kernel passed.
fn kernel_matrix(bins: &std::path::Path, counts: &mut Counts) -> bool {
    say!("test: the kernel matrix in QEMU guests (Debian 5.10, 6.1, 6.12, sid)");
    let guest_bins = crate::guest::Bins::in_dir(bins);
    match crate::kernels::run_matrix(&guest_bins, None, crate::kernels::default_jobs()) {
        Ok(outcomes) => {
            for o in &outcomes {
                say!("test: {}", o.line());
                if o.result.is_ok() {
                    counts.passed += 1;
                } else {
                    counts.failed += 1;
                }
            }
            outcomes.iter().all(|o| o.result.is_ok())
        }
        Err(e) => {
            say!("test: kernel matrix: FAILED: {e:#}");
            counts.failed += 1;
            false
        }
    }
}

pub fn run_tests(extra: &[String]) -> Result<()> {
    let root = is_root();
    // As root this is the full setup; otherwise the toolchain part, and the rest is
    // reported as skipped (the unit tests need none of it).
    run_setup(Mode::BestEffort)?;

    let packages = unit_test_packages()?;
    say!(
        "test: unit tests of {} (no root needed)",
        packages.join(", ")
    );
    let mut c = cargo();
    // --no-fail-fast: every test binary runs, so one failure does not hide others.
    c.args(["test", "--no-fail-fast"]);
    for p in &packages {
        c.args(["-p", p]);
    }
    if !extra.is_empty() {
        c.arg("--").args(extra);
    }
    let mut counts = Counts::default();
    let mut unit = if run_counted(&mut c, &mut counts)? {
        Outcome::Passed
    } else {
        Outcome::Failed
    };
    // The layering (ARCHITECTURE.md): no import cycle between the daemon's modules,
    // counted as one test.
    say!("test: module layering (cargo xtask modules --check)");
    match crate::modules::modules_command(true, false) {
        Ok(()) => counts.passed += 1,
        Err(e) => {
            say!("test: module layering: FAILED: {e:#}");
            counts.failed += 1;
            unit = Outcome::Failed;
        }
    }

    let mut skip_reason = None;
    let root_tests = if root {
        say!("test: root integration tests ({ROOT_TESTS}): real kernel, real processes");
        let built = build_bins(false);
        if let Err(e) = &built {
            say!("test: cannot build the daemon binaries: {e:#}");
            Outcome::Failed
        } else {
            let bins = bin_dir(false)?;
            let mut c = cargo();
            c.env("MCPWATCH_BIN_DIR", &bins)
                .args(["test", "--no-fail-fast", "-p", ROOT_TESTS])
                .args(["--", "--test-threads=1"])
                .args(extra);
            let mut outcome = if run_counted(&mut c, &mut counts)? {
                Outcome::Passed
            } else {
                Outcome::Failed
            };
            // Other kernels, and the BPF LSM branch this kernel refuses: the kernel
            // matrix in QEMU guests, one test per kernel.
            if extra.is_empty() {
                if !kernel_matrix(&bins, &mut counts) {
                    outcome = Outcome::Failed;
                }
            } else {
                say!("test: kernel matrix skipped (test arguments given)");
                counts.ignored += 1;
            }
            outcome
        }
    } else {
        let reason = format!(
            "not running as root (uid {}): they load eBPF programs, start mcpwatchd and \
             kill/stop real processes; run `sudo -E env PATH=\"$PATH\" cargo xtask test`",
            euid()
        );
        say!("test: SKIPPING root integration tests ({ROOT_TESTS}): {reason}");
        skip_reason = Some(reason);
        Outcome::Skipped
    };

    say!("test: summary");
    say!("  unit tests ({}): {}", packages.join(", "), unit.label());
    match &skip_reason {
        Some(r) => say!(
            "  root integration tests ({ROOT_TESTS}): {} ({r})",
            root_tests.label()
        ),
        None => say!(
            "  root integration tests ({ROOT_TESTS}): {}",
            root_tests.label()
        ),
    }
    // A plain closing line with the totals of every cargo test run above (the last
    // `test result:` line alone is a doc-test run with nothing in it).
    println!(
        "{} passed, {} failed, {} skipped",
        counts.passed, counts.failed, counts.ignored
    );
    if unit == Outcome::Failed || root_tests == Outcome::Failed {
        bail!("tests failed");
    }
    if root_tests == Outcome::Skipped
        && std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
    {
        bail!("CI is set but the root integration tests were skipped: CI must run as root");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Counts;

    #[test]
    fn test_result_lines_are_summed() {
        let mut c = Counts::default();
        c.add_line("test result: ok. 95 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 1.07s");
        c.add_line(
            "test result: FAILED. 8 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        c.add_line("running 9 tests");
        c.add_line("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        assert_eq!((c.passed, c.failed, c.ignored), (103, 1, 2));
    }
}
