//! `mcpwatch` subcommands. The CLI calls the library directly (reading the log) or
//! the daemon over D-Bus (run, status).
use std::{
    ffi::OsString,
    io::{self, BufRead as _, Seek as _, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use crate::{
    api::client::{self, DaemonProxy},
    cli::render,
    config::Config,
    event::Event,
    logfile,
};

/// mcpwatch: see and control what AI agent hosts (Claude Code, Cursor, VS Code,
/// Gemini CLI, Codex, …) execute on this machine. Talks to the mcpwatchd daemon over
/// D-Bus (system bus, or `DBUS_SYSTEM_BUS_ADDRESS` when set).
#[derive(Parser, Debug)]
#[command(name = "mcpwatch", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command as a tracked MCP host: everything it launches is recorded.
    ///
    /// Asks the daemon to track this process, then execs CMD in place (same pid).
    /// Refuses to run CMD untracked: if the daemon is not reachable, nothing runs.
    Run(RunArgs),
    /// Show whether the daemon is up and enforcing, with its counters.
    ///
    /// Exit status 0 when the daemon answers and has lost no events, 1 when it is
    /// not reachable, 3 when it is up but has lost events (see `lost`).
    Status(StatusArgs),
    /// Print recorded events from the audit log (works with the daemon stopped).
    ///
    /// Without --json: a tree per host (host → launch → session execs) with exact
    /// commands, exit statuses and durations. With --json: one JSON object per line,
    /// as documented in the README.
    Log(LogArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Host name to record for this tree (a profile name such as `claude-code`, or
    /// any name of your own).
    #[arg(long, default_value = "run")]
    pub host: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the full status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// One JSON object per event per line.
    #[arg(long)]
    pub json: bool,
    /// Keep printing new events as they are recorded.
    #[arg(long, short)]
    pub follow: bool,
    /// Log file to read (default: the one the daemon's config names).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Daemon config whose log to read (default: the embedded default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

pub fn main_with(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(a) => run(&a),
        Command::Status(a) => status(&a),
        Command::Log(a) => log(&a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mcpwatch: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn proxy() -> anyhow::Result<DaemonProxy<'static>> {
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "the system bus".into());
    let conn = client::connect()
        .await
        .with_context(|| format!("cannot connect to D-Bus ({bus})"))?;
    let proxy = DaemonProxy::new(&conn)
        .await
        .context("creating the D-Bus proxy")?;
    Ok(proxy)
}

fn daemon_down_hint(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    // The bus answers for a daemon that is not there: say that, not "refused".
    let absent = ["ServiceUnknown", "NameHasNoOwner"]
        .iter()
        .any(|n| text.contains(n));
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| "the system bus".into());
    if absent {
        format!(
            "mcpwatchd is not running on {bus} (nobody owns org.mcpwatch1)\nthe mcpwatch daemon is not reachable: start it with `cargo xtask run` (or `mcpwatchd`) as root"
        )
    } else {
        format!(
            "{text}\nthe mcpwatch daemon is not reachable: start it with `cargo xtask run` (or `mcpwatchd`) as root"
        )
    }
}

#[expect(
    clippy::unnecessary_debug_formatting,
    reason = "the program is an arbitrary OsString: Debug quotes and escapes it (spaces, control and non-UTF-8 bytes)"
)]
fn run(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let pid = std::process::id();
    let tracked: anyhow::Result<String> = rt.block_on(async {
        let p = proxy().await?;
        let notice = tokio::time::timeout(Duration::from_secs(10), p.track(pid, &a.host))
            .await
            .context("the daemon did not answer Track within 10 s")?
            .context("Track failed")?;
        Ok(notice)
    });
    match tracked {
        Ok(notice) if !notice.is_empty() => eprintln!("mcpwatch: note: {notice}"),
        Ok(_) => {}
        Err(err) => {
            // Never run the command untracked: that would defeat the point.
            bail!("not running {:?}: {}", a.command[0], daemon_down_hint(&err));
        }
    }
    drop(rt);
    let err = std::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .exec();
    bail!("cannot execute {:?}: {err}", a.command[0])
}

fn status(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let json = rt.block_on(async {
        let p = proxy().await?;
        let s = tokio::time::timeout(Duration::from_secs(10), p.status())
            .await
            .context("the daemon did not answer within 10 s")??;
        anyhow::Ok(s)
    });
    let json = match json {
        Ok(j) => j,
        Err(err) => {
            eprintln!("mcpwatch: {}", daemon_down_hint(&err));
            return Ok(ExitCode::from(1));
        }
    };
    let v: serde_json::Value =
        serde_json::from_str(&json).context("daemon sent invalid status JSON")?;
    let lost_total: u64 = ["ringbuf", "queue", "broadcast", "decode"]
        .iter()
        .filter_map(|k| v["lost"][k].as_u64())
        .sum();
    if a.json {
        println!("{json}");
    } else {
        print_status(&v);
    }
    Ok(if lost_total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print_status(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    println!(
        "mcpwatchd {} (pid {}) up since {}",
        s("version"),
        v["pid"],
        s("started")
    );
    println!("mode:      {}", s("mode"));
    println!("log:       {}", s("log_file"));
    println!("events:    {} recorded", v["events"]);
    println!(
        "lost:      ringbuf {} · queue {} · broadcast {} · decode {}",
        v["lost"]["ringbuf"], v["lost"]["queue"], v["lost"]["broadcast"], v["lost"]["decode"]
    );
    println!(
        "tracked:   {} processes in the kernel map, {} in the tracker",
        v["tracked_kernel"], v["tracked_user"]
    );
    if let Some(hosts) = v["hosts"].as_array() {
        let list: Vec<String> = hosts
            .iter()
            .map(|h| format!("{} ({})", h["name"].as_str().unwrap_or("?"), h["pid"]))
            .collect();
        println!(
            "hosts:     {}",
            if list.is_empty() {
                "none running".into()
            } else {
                list.join(", ")
            }
        );
    }
    println!(
        "profiles:  {} executables, {} script paths known",
        v["host_keys"]["executables"], v["host_keys"]["script_paths"]
    );
    println!("programs:");
    if let Some(att) = v["attachments"].as_array() {
        for a in att {
            let name = a["program"].as_str().unwrap_or("?");
            let stats = v["programs"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name));
            let runs = stats.map_or(String::new(), |p| {
                let cnt = p["run_cnt"].as_u64().unwrap_or(0);
                let ns = p["run_time_ns"].as_u64().unwrap_or(0);
                if cnt == 0 {
                    " (run stats off: sysctl kernel.bpf_stats_enabled=1)".into()
                } else {
                    #[expect(clippy::cast_precision_loss, reason = "display-only average")]
                    let avg = ns as f64 / cnt as f64;
                    format!(" runs {cnt}, avg {avg:.0} ns")
                }
            });
            println!(
                "  {:<20} {:<28} {}{runs}",
                name,
                a["hook"].as_str().unwrap_or("?"),
                a["method"].as_str().unwrap_or("?")
            );
        }
    }
    println!("kernel:    {}", v["kernel"]);
    println!("enforcement mechanisms:");
    if let Some(e) = v["enforcement"].as_array() {
        for line in e {
            println!("  {}", line.as_str().unwrap_or("?"));
        }
    }
}

fn log_path(a: &LogArgs) -> anyhow::Result<PathBuf> {
    if let Some(f) = &a.file {
        return Ok(f.clone());
    }
    let cfg = match &a.config {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => Config::embedded_default(),
    };
    Ok(cfg.log_path())
}

fn log(a: &LogArgs) -> anyhow::Result<ExitCode> {
    let path = log_path(a)?;
    if !path.exists() {
        bail!(
            "no event log at {} (has the daemon ever run with this config?)",
            path.display()
        );
    }
    if a.follow {
        return follow(&path, a.json);
    }
    let mut bad = 0usize;
    let events = logfile::read_all(&path, |e| {
        bad += 1;
        eprintln!("mcpwatch: warning: {e}");
    })?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if a.json {
        for e in &events {
            writeln!(out, "{}", e.to_json_line())?;
        }
    } else {
        write!(out, "{}", render::render_tree(&events))?;
    }
    out.flush()?;
    if bad > 0 {
        eprintln!(
            "mcpwatch: {bad} unreadable line(s) in {} (reported above)",
            path.display()
        );
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// Follow the log file itself: works whether or not the D-Bus API is reachable, and
/// never misses what the daemon wrote (the log is the record of truth).
fn follow(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(io::SeekFrom::End(0))?;
    let mut reader = io::BufReader::new(f);
    let mut line = Vec::new();
    let stdout = io::stdout();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // Partial line: wait for the rest.
            if n > 0 {
                let back = i64::try_from(n).unwrap_or(0);
                reader.seek_relative(-back)?;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let text = &line[..line.len() - 1];
        let mut out = stdout.lock();
        if json {
            out.write_all(text)?;
            out.write_all(b"\n")?;
        } else {
            match serde_json::from_slice::<Event>(text) {
                Ok(e) => writeln!(out, "{}", render::render_line(&e))?,
                Err(e) => writeln!(out, "?? unreadable record: {e}")?,
            }
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}
