//! Developer tasks for mcpwatch: `cargo xtask <setup|build|run|test|kernels|bench|modules>`.
//!
//! `cargo xtask run` sets the machine up and runs the daemon on its embedded default
//! config; `cargo xtask test` runs every test (unit, then root integration).

mod bench;
mod guest;
mod kernels;
mod modules;
mod peers;
mod setup;
mod test;
mod util;

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::util::{bin_dir, build_bins, say, show};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "mcpwatch developer tasks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install and start what building, testing and running need (idempotent):
    /// rust-src for nightly, bpf-linker 0.13 on the nightly's LLVM, the
    /// tracefs/bpffs/securityfs/debugfs mounts, dbus, the org.mcpwatch1 bus policy,
    /// a system bus; the real MCP peers of the root tests (tests/peers/: npm and
    /// Python packages in /opt/mcpwatch-peers, Claude Code with npm -g).
    Setup,
    /// setup, then build mcpwatchd, mcpwatch and the test binaries.
    Build {
        #[arg(long)]
        release: bool,
    },
    /// setup, build, then run mcpwatchd in the foreground (embedded default config
    /// unless DAEMON ARGS say otherwise, e.g. `-- --config FILE`).
    Run {
        #[arg(long)]
        release: bool,
        /// Arguments for mcpwatchd.
        #[arg(last = true, value_name = "DAEMON ARGS")]
        args: Vec<String>,
    },
    /// Every test: unit tests (no root), then the root integration tests.
    Test {
        /// Passed to the test binaries (e.g. a test name filter, --nocapture).
        #[arg(last = true, value_name = "TEST ARGS")]
        args: Vec<String>,
    },
    /// The kernel matrix: the host build of mcpwatchd and mcpwatch in QEMU (TCG)
    /// guests booting Debian's kernels (bullseye 5.10: must refuse to start;
    /// bookworm 6.1, trixie 6.12, sid: programs load within the verifier budget,
    /// exact argv, enforce, ask, `LD_PRELOAD`, BPF LSM EPERM). One line per kernel.
    /// Also run by `test` as root.
    Kernels {
        /// Only kernels whose release starts with this (`6.12`), or of this suite
        /// (`trixie`).
        filter: Option<String>,
        /// Guests at a time (default: one per core, at most 2).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Exec-storm benchmark: no daemon vs daemon (untracked) vs daemon (tracked)
    /// vs daemon (tracked, enforce mode, every launch approved).
    Bench {
        /// Execs of /bin/true per run (each a new process: clone + execve + wait).
        #[arg(long, default_value_t = 20_000)]
        execs: u64,
        /// Rounds; each runs the three configurations once, in a rotated order.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Config file for the daemon (default: the embedded defaults with
        /// `state_dir` in a temp dir, so the real audit log stays clean).
        #[arg(long, value_name = "FILE")]
        daemon_config: Option<PathBuf>,
        /// Remove pinned mcpwatch objects under /sys/fs/bpf/mcpwatch before starting.
        #[arg(long)]
        unpin: bool,
        /// Events in the synthetic audit log the query benchmark searches (0: skip).
        #[arg(long, default_value_t = 1_000_000)]
        query_events: u64,
        /// Only the query benchmark (no exec storm, no daemon, no root needed).
        #[arg(long)]
        query_only: bool,
    },
    /// The import graph between monitor-daemon's modules: each cycle (strongly
    /// connected component of more than one module) with the edges that make it.
    /// Test code is skipped; the parse's rules are in xtask/src/modules.rs.
    Modules {
        /// Exit non-zero if there is a cycle.
        #[arg(long)]
        check: bool,
        /// Also print every edge of the graph.
        #[arg(long)]
        edges: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the whole context chain on one line, no backtrace noise.
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Cmd::Modules { check, edges } = cli.cmd {
        return modules::modules_command(check, edges);
    }
    // Before anything else (single-threaded): children find `cargo install`ed tools.
    util::prepend_cargo_bin_to_path()?;
    match cli.cmd {
        Cmd::Setup => setup::run_setup(setup::Mode::Required),
        Cmd::Build { release } => {
            setup::run_setup(setup::Mode::BestEffort)?;
            build_bins(release)
        }
        Cmd::Run { release, args } => {
            setup::run_setup(setup::Mode::Required)?;
            build_bins(release)?;
            let mut cmd = Command::new(bin_dir(release)?.join("mcpwatchd"));
            cmd.args(&args);
            say!("+ exec {}", show(&cmd));
            let err = cmd.exec();
            bail!("cannot exec {}: {err}", cmd.get_program().to_string_lossy())
        }
        Cmd::Test { args } => test::run_tests(&args),
        Cmd::Kernels { filter, jobs } => {
            setup::run_setup(setup::Mode::BestEffort)?;
            build_bins(false)?;
            let dir = bin_dir(false)?;
            let bins = guest::Bins::in_dir(&dir);
            kernels::kernels_command(
                &bins,
                filter.as_deref(),
                jobs.unwrap_or_else(kernels::default_jobs),
            )
        }
        Cmd::Bench {
            execs,
            rounds,
            daemon_config,
            unpin,
            query_events,
            query_only,
        } => {
            let o = bench::Opts {
                execs,
                rounds,
                daemon_config,
                unpin,
            };
            if !query_only {
                bench::bench(&o)?;
            }
            if query_events > 0 {
                bench::query_bench(query_events)?;
            }
            Ok(())
        }
        Cmd::Modules { .. } => unreachable!("handled above"),
    }
}
