//! `mcpwatchd`: the daemon. Runs in the foreground; see `mcpwatchd --help`.
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use mcpwatch::config::Config;
use tracing_subscriber::EnvFilter;

/// mcpwatchd: follows every process an AI agent host (Claude Code, Cursor, VS Code,
/// Gemini CLI, Codex, …) spawns, using eBPF, and records each launch with its exact
/// command in an audit log.
///
/// Runs in the foreground as root. Without --config it uses the embedded default
/// (monitor mode, built-in host profiles, state under /var/lib/mcpwatch). It exits
/// non-zero with a one-line reason when it cannot do its job (not root, no BTF,
/// tracepoints missing, bad config). Stop it with SIGINT or SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "mcpwatchd", version)]
struct Args {
    /// Configuration file (TOML). Unknown keys are errors.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration (the embedded default, or FILE merged with
    /// the defaults) and exit.
    #[arg(long)]
    print_config: bool,
    /// Check the configuration and host profiles, then exit.
    #[arg(long)]
    check: bool,
    /// Remove the enforcement that outlives the daemon: detach the pinned programs
    /// (stop the link keeper), remove the pinned maps under `pin_dir`, then exit.
    /// Held and future launches are no longer checked until mcpwatchd starts again.
    #[arg(long)]
    unload: bool,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    // The link keeper (started by the daemon itself, see sensor::keeper): before any
    // argument parsing, so it carries nothing else.
    if std::env::args().nth(1).as_deref() == Some(mcpwatch::sensor::keeper::HOLD_ARG) {
        mcpwatch::sensor::keeper::hold();
    }
    let args = Args::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Ok(Config::embedded_default()),
    };
    let config = match config.and_then(|c| c.validate(&mcpwatch::hosts::RealFs).map(|()| c)) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("mcpwatchd: error: {}", chain(&err));
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        match toml::to_string_pretty(&config) {
            Ok(s) => {
                print!("{s}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("mcpwatchd: error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if args.check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    if args.unload {
        let keeper = mcpwatch::sensor::keeper::stop(&config.state_dir, None);
        match mcpwatch::sensor::ebpf::unload(&config.pin_dir) {
            Ok(removed) => {
                if let Some(pid) = keeper {
                    println!("stopped link keeper pid {pid}");
                }
                println!(
                    "{} {}",
                    if removed {
                        "removed"
                    } else {
                        "nothing pinned at"
                    },
                    config.pin_dir.display()
                );
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!(
                    "mcpwatchd: error: removing {}: {e}",
                    config.pin_dir.display()
                );
                return ExitCode::from(2);
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpwatchd: error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(mcpwatch::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcpwatchd: error: {}", one_line(&format!("{err:#}")));
            ExitCode::from(2)
        }
    }
}

/// An error as the one line a terminal or a unit's status shows: a multi-line source
/// (a kernel log quoted by a library) is cut to its first line, with a count.
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim_end();
    let rest = lines.count();
    let mut s: String = first.chars().take(2000).collect();
    if rest > 0 {
        s = format!("{s} [{rest} more lines not shown]");
    }
    s
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}
