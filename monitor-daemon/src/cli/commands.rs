//! `mcpwatch` subcommands. The CLI calls the library directly (reading the log) or
//! the daemon over D-Bus (run, status, and the consent commands: records, approve,
//! revoke, pending, allow, deny, mode).
//!
//! Exit status of the consent commands: 0 done; 1 the daemon is not reachable, the
//! call failed, or nothing was approved (answered no, or no terminal to ask on);
//! 2 usage error; 4 the daemon refused (D-Bus `AccessDenied`: called from inside an
//! AI agent's process tree, another user's launch, a mode locked by managed policy).
use std::{
    ffi::OsString,
    fmt::{self, Write as _},
    future::Future,
    io::{self, BufRead as _, IsTerminal as _, Seek as _, Write as _},
    os::unix::{ffi::OsStringExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Context as _};
use clap::{ArgGroup, Args, Parser, Subcommand};
use serde_json::Value;
use zbus::DBusError as _;

use crate::{
    api::client::{self, DaemonProxy},
    cli::{
        filter::{self, Filter, FilterArgs},
        render, review,
    },
    config::Config,
    event::Event,
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
    /// not reachable, 3 when it is up but has lost events (see `lost`) or the
    /// kernel's tracked map was full for a process (`kernel.tracked_full`).
    Status(StatusArgs),
    /// Print recorded events from the audit log (works with the daemon stopped).
    ///
    /// Without --json: a tree per host (host → launch → session execs) with exact
    /// commands, exit statuses and durations. With --json: one JSON object per line,
    /// as documented in the README, each the exact bytes of its log line (`prev`
    /// included, so each record still checks against the log's chain). With
    /// --follow: only new events, one line each (or their JSON lines).
    ///
    /// Filters narrow what is printed; all those given must match. In the tree, a
    /// matching event is shown where it belongs: under the start (or adoption) of
    /// its host and the launch of its session when the log has them, and with the
    /// exit status and duration of each process shown; these context lines need not
    /// match (a host started before --since is still shown). Forks, consent,
    /// daemon and log-rotation events are not drawn in the tree: how many matched
    /// is said on stderr; --json shows them. With --follow, filters apply to each new event, without
    /// context.
    ///
    /// --output FILE writes the matching JSON lines to FILE (created mode 0600; an
    /// existing file is refused unless --force) and prints how many were exported.
    /// Reading a long log on a terminal prints progress to stderr.
    ///
    /// Exit status: 0; 4 when some lines of the log are not event records (each is
    /// reported); 2 on a usage error.
    #[command(after_long_help = LOG_EXAMPLES)]
    Log(LogArgs),
    /// The host → launch → session tree of the audit log: `mcpwatch log` without
    /// --json, with the same filters.
    ///
    /// A matching event is shown under its host's start and its session's launch,
    /// with the exit status of each process shown (see `mcpwatch log --help`).
    #[command(after_long_help = TREE_EXAMPLES)]
    Tree(TreeArgs),
    /// Check the audit log's tamper-evident chain (works with the daemon stopped).
    ///
    /// Every record carries the SHA-256 of the record before it and consecutive
    /// ids; the daemon writes the chain head it last fsynced to `<log>.checkpoint`.
    /// `audit verify` recomputes the chain and names the first record that was
    /// edited, deleted, inserted, reordered or cut off. A torn last line (a write
    /// cut by a crash) is reported but is not tampering. Exit status 0 when the
    /// chain is intact, 1 when it is not (or the log cannot be read).
    Audit(AuditArgs),
    /// List consent records (approved commands), each host's mode, and policy problems.
    ///
    /// One row per record: id, host, scope (once, always, until T), state (active;
    /// stale when the executable or script no longer has the approved content;
    /// expired; used, for a `once` record already consumed), source (user:UID,
    /// managed:FILE, import:FILE#SERVER) and creation time, followed by the full
    /// command (never truncated) and what it is bound to. Then the mode of each host,
    /// and which are locked by managed policy. Problems in the consent store or the
    /// managed policy files are printed to stderr as warnings (exit status stays 0).
    #[command(after_long_help = RECORDS_EXAMPLES)]
    Records(RecordsArgs),
    /// List every local MCP server the hosts' config files name, resolved to the
    /// exact command the kernel will see, and whether it is approved.
    ///
    /// Reads the user-level configs of every known host (Claude Desktop, Claude
    /// Code, Cursor, VS Code, Windsurf, Zed, Gemini CLI, Codex, Goose, Cline, Roo
    /// Code, Continue, LM Studio) in your home, and the project-level ones of the
    /// current directory, of each --project and of the projects in ~/.claude.json;
    /// JSON, JSONC, TOML and YAML. Each entry is resolved as its host would:
    /// variables (`${workspaceFolder}`, `${env:X}`, `${VAR:-default}`, …), PATH
    /// lookup, symlinks, and a `#!` script's interpreter. For each server: host,
    /// file, name, the full command (never truncated), its risk flags and its
    /// status: approved, not approved, or changed since approval (with what
    /// changed). Remote (URL) servers are listed as such. A file that cannot be
    /// parsed is reported with its line and column; the others are still read.
    ///
    /// Exit status: 0 every local, enabled server is approved; 3 some are not
    /// approved or changed since approval; 1 a file could not be parsed or the
    /// daemon's records could not be read (the rest is still listed).
    #[command(after_long_help = SCAN_EXAMPLES)]
    Scan(super::scan::ScanArgs),
    /// Approve one exact command for a host, after showing it in full with its risks.
    ///
    /// Either a launch the daemon recorded (`EVENT_ID`, as shown by `mcpwatch log` and in
    /// block and alert messages), or a command given after `--` with `--host`.
    /// Before anything is approved the daemon's preview is shown: the full command, the
    /// executable's path and SHA-256 (the record is bound to that content), the script
    /// for `#!` launches, the working directory, the security-relevant environment
    /// variables and every risk flag (sudo, rm -rf, sh -c, network tools, secrets,
    /// ...). You are then asked to confirm on the terminal; without a terminal nothing
    /// is approved unless --yes is given. The record lasts until revoked unless
    /// --once or --until limits it. An AI agent cannot approve for itself: the
    /// daemon refuses calls from inside a tracked host's process tree (exit 4).
    ///
    /// Exit status: 0 approved; 1 nothing approved (answered no, no terminal,
    /// daemon unreachable or failed); 4 the daemon refused.
    #[command(after_long_help = APPROVE_EXAMPLES)]
    Approve(ApproveArgs),
    /// Remove a consent record: its command is no longer approved.
    ///
    /// The kernel stops allowing the command at once. Prints the removed record's
    /// command.
    #[command(after_long_help = "Example:\n  mcpwatch revoke 7")]
    Revoke(RevokeArgs),
    /// List launches held in `ask` mode, waiting for you to allow or deny them.
    ///
    /// A held process is stopped before its first instruction. Each entry shows its
    /// id (for `allow` and `deny`), pid, host, how long it has been held out of the
    /// timeout after which it is killed, its full command and its risk flags.
    #[command(after_long_help = "Examples:\n  mcpwatch pending\n  mcpwatch pending --json")]
    Pending(PendingArgs),
    /// Let a held launch run, after showing it with its risks and asking you.
    ///
    /// With --always, also approve its exact command for the host, so that it runs
    /// without asking next time. --yes skips the question.
    #[command(after_long_help = "Examples:\n  mcpwatch allow 3\n  mcpwatch allow 3 --always")]
    Allow(AllowArgs),
    /// Kill a held launch (it never runs a single instruction).
    #[command(after_long_help = "Example:\n  mcpwatch deny 3")]
    Deny(DenyArgs),
    /// Set how strictly a host is held to its consent records.
    ///
    /// monitor: record and alert; ask: hold each unapproved launch and ask (`mcpwatch
    /// pending`), killing it when nobody answers in time; enforce: unapproved launches
    /// never run. A mode locked by managed policy cannot be changed (exit 4).
    #[command(
        after_long_help = "Examples:\n  mcpwatch mode claude-code enforce\n  mcpwatch mode cursor ask"
    )]
    Mode(ModeArgs),
}

const LOG_EXAMPLES: &str = "\
Examples:
  mcpwatch log --host claude-code --since 1h
  mcpwatch log --kind launch,exec --verdict killed --json
  mcpwatch log --grep curl --since 2026-11-27T00:00:00Z --until 2026-11-28T00:00:00Z
  mcpwatch log --pid 4242            # process 4242 and everything below it
  mcpwatch log --record 7 --json     # record 7: approved, what it allowed, revoked
  mcpwatch log --since 2d --output incident.jsonl
  mcpwatch log --follow --host cursor --kind launch";

const TREE_EXAMPLES: &str = "\
Examples:
  mcpwatch tree --host claude-code --since 30m
  mcpwatch tree --grep 'curl' --verdict unapproved";

const RECORDS_EXAMPLES: &str = "\
Examples:
  mcpwatch records
  mcpwatch records --json > approvals.json";

const SCAN_EXAMPLES: &str = "Examples:
  mcpwatch scan
  mcpwatch scan --project ~/src/app --host cursor
  mcpwatch scan --json | jq '.servers[] | select(.status.status != \"approved\")'
  sudo mcpwatch scan --all-users";

const APPROVE_EXAMPLES: &str = "\
Examples:
  # a launch that was blocked or alerted on (the id is in the event)
  mcpwatch approve 1234
  # a command, before the host first launches it
  mcpwatch approve --host claude-code -- npx -y @modelcontextprotocol/server-filesystem /tmp
  # approved for one run only, or until a date
  mcpwatch approve 1234 --once
  mcpwatch approve 1234 --until 2026-12-31T23:59:59Z --note 'trial of the git server'
  # from a script, after reviewing the command yourself
  mcpwatch approve 1234 --yes
  # the servers of the hosts' config files (see `mcpwatch scan`): all, one host's, one
  mcpwatch approve --from-config
  mcpwatch approve --from-config cursor --project ~/src/app
  mcpwatch approve --from-config claude-code/filesystem --yes";

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
pub struct RecordsArgs {
    /// Print the daemon's JSON document unchanged (pretty-printed): records, modes
    /// and problems.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["event_id", "host", "from_config"])))]
pub struct ApproveArgs {
    /// Id of a recorded launch event to approve (see `mcpwatch log --json`).
    #[arg(value_name = "EVENT_ID", conflicts_with_all = ["host", "cwd", "command", "from_config"])]
    pub event_id: Option<u64>,
    /// Approve servers from the hosts' config files (as `mcpwatch scan` lists
    /// them): all of them, one host's (`cursor`), or one server (`cursor/github`).
    /// Each one not approved yet is shown in full with its risks and approved on
    /// a yes; the record's source says which file and server it came from.
    #[arg(
        long,
        value_name = "HOST[/SERVER]",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with_all = ["host", "cwd", "command"]
    )]
    pub from_config: Option<String>,
    #[command(flatten)]
    pub sources: super::scan::Sources,
    /// Host profile to approve the command for (with a command after `--`).
    #[arg(long, value_name = "HOST", requires = "command")]
    pub host: Option<String>,
    /// Working directory the command must be launched in (default: any).
    #[arg(long, value_name = "DIR", requires = "host")]
    pub cwd: Option<PathBuf>,
    /// Approve one run only: the record is used up by the first launch it allows.
    #[arg(long, conflicts_with = "until")]
    pub once: bool,
    /// Approve until this time (RFC 3339, e.g. 2026-12-31T23:59:59Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_until)]
    pub until: Option<String>,
    /// A note kept with the record (why it was approved).
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "",
        hide_default_value = true
    )]
    pub note: String,
    /// Do not ask for confirmation (the preview is still printed).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The exact command and its arguments, after `--` (with --host).
    #[arg(last = true, value_name = "CMD", requires = "host")]
    pub command: Vec<OsString>,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Id of the record to remove (see `mcpwatch records`).
    #[arg(value_name = "RECORD_ID")]
    pub record_id: u64,
}

#[derive(Args, Debug)]
pub struct PendingArgs {
    /// Print the daemon's JSON list unchanged (pretty-printed).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AllowArgs {
    /// Id of the held launch (see `mcpwatch pending`).
    #[arg(value_name = "PENDING_ID")]
    pub pending_id: u64,
    /// Also approve this exact command for the host (a consent record, scope always).
    #[arg(long)]
    pub always: bool,
    /// Do not ask for confirmation (the launch is still printed).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct DenyArgs {
    /// Id of the held launch (see `mcpwatch pending`).
    #[arg(value_name = "PENDING_ID")]
    pub pending_id: u64,
}

#[derive(Args, Debug)]
pub struct ModeArgs {
    /// Host profile name (e.g. claude-code, cursor).
    #[arg(value_name = "HOST")]
    pub host: String,
    /// The new mode.
    #[arg(value_name = "MODE", value_parser = ["monitor", "ask", "enforce"])]
    pub mode: String,
}

/// `--until`: an RFC 3339 time, checked here so a typo is a usage error.
fn parse_until(t: &str) -> Result<String, String> {
    crate::policy::record::parse_time(t).map(|_| t.to_owned())
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditAction,
}

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Verify the chain of the log and its checkpoint.
    Verify {
        /// Log file to verify (default: the one the daemon's config names).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Daemon config whose log to verify (default: the embedded default).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[allow(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches, as clap derives them"
)]
#[derive(Args, Debug)]
pub struct LogArgs {
    /// One JSON object per event per line, exactly as recorded.
    #[arg(long, conflicts_with = "tree")]
    pub json: bool,
    /// The host → launch → session tree (the default without --json; `mcpwatch
    /// tree` is the same).
    #[arg(long)]
    pub tree: bool,
    /// Keep printing new events as they are recorded.
    #[arg(long, short)]
    pub follow: bool,
    /// Log file to read, with its rotated files `FILE.NNNNNN` before it (default:
    /// the one the daemon's config names).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Daemon config whose log to read (default: the embedded default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Export: write the matching events' JSON lines to FILE, a new file (mode
    /// 0600), instead of stdout.
    #[arg(long, short, value_name = "FILE", conflicts_with = "follow")]
    pub output: Option<PathBuf>,
    /// With --output: replace FILE if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
    #[command(flatten)]
    pub filters: FilterArgs,
}

#[derive(Args, Debug)]
pub struct TreeArgs {
    /// Keep printing new events as they are recorded (one line each).
    #[arg(long, short)]
    pub follow: bool,
    /// Log file to read, with its rotated files `FILE.NNNNNN` before it (default:
    /// the one the daemon's config names).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Daemon config whose log to read (default: the embedded default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub filters: FilterArgs,
}

impl From<TreeArgs> for LogArgs {
    fn from(t: TreeArgs) -> Self {
        Self {
            json: false,
            tree: true,
            follow: t.follow,
            file: t.file,
            config: t.config,
            output: None,
            force: false,
            filters: t.filters,
        }
    }
}

pub fn main_with(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(a) => run(&a),
        Command::Status(a) => status(&a),
        Command::Log(a) => log(&a),
        Command::Tree(a) => log(&a.into()),
        Command::Audit(a) => audit(&a),
        Command::Records(a) => records(&a),
        Command::Scan(a) => super::scan::scan(&a),
        Command::Approve(a) => approve(&a),
        Command::Revoke(a) => revoke(&a),
        Command::Pending(a) => pending(&a),
        Command::Allow(a) => allow(&a),
        Command::Deny(a) => deny(&a),
        Command::Mode(a) => mode(&a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if let Some(call) = err.downcast_ref::<CallError>() {
                call.report()
            } else {
                eprintln!("mcpwatch: error: {err:#}");
                ExitCode::from(1)
            }
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
        .sum::<u64>()
        // A process the kernel could not track escaped every check: loss too.
        + v["kernel"]["tracked_full"].as_u64().unwrap_or(0);
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

/// The consent part of `mcpwatch status`: records, modes, how enforcement
/// survives the daemon, policy problems.
fn print_consent_status(v: &serde_json::Value) {
    let s = |k: &str| v[k].as_str().unwrap_or("?").to_string();
    println!(
        "consent:   {} of {} records active in the kernel, {} launches waiting (ask)",
        v["records_active"], v["records_total"], v["pending"]
    );
    if let Some(modes) = v["modes"].as_object() {
        let list: Vec<String> = modes
            .iter()
            .filter(|(_, m)| m["mode"] != "monitor" || m["locked"] == true)
            .map(|(h, m)| {
                format!(
                    "{h} {}{}",
                    m["mode"].as_str().unwrap_or("?"),
                    if m["locked"] == true { " (locked)" } else { "" }
                )
            })
            .collect();
        println!(
            "modes:     {} (every other host: {})",
            if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            },
            s("mode")
        );
    }
    let pins = &v["pins"];
    if pins.is_object() {
        println!(
            "survives:  links {} under {}{}{}",
            pins["links_held_by"].as_str().unwrap_or("?"),
            pins["dir"].as_str().unwrap_or("?"),
            pins["keeper_pid"]
                .as_u64()
                .map_or_else(String::new, |p| format!(" (keeper pid {p})")),
            if pins["reused_programs"] == true {
                ", taken over from the previous daemon"
            } else {
                ""
            }
        );
    }
    println!(
        "callers:   pinned by {}",
        v["caller_pinning"].as_str().unwrap_or("?")
    );
    if let Some(problems) = v["policy_problems"].as_array() {
        for p in problems {
            println!("PROBLEM:   {}", p.as_str().unwrap_or("?"));
        }
    }
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
        "profiles:  {} executables, {} script paths known; {} MCP config files watched",
        v["host_keys"]["executables"],
        v["host_keys"]["script_paths"],
        v["host_keys"]["configs_watched"]
    );
    println!("programs:");
    if let Some(att) = v["attachments"].as_array() {
        for a in att {
            let name = a["program"].as_str().unwrap_or("?");
            let stats = v["programs"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name));
            let insns = stats
                .and_then(|p| p["verified_insns"].as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .map_or_else(
                    || " verified insns: not reported".to_owned(),
                    |n| {
                        format!(
                            " {n} verified insns ({:.1} % of the limit)",
                            f64::from(n) / 1e4
                        )
                    },
                );
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
                "  {:<20} {:<28} {};{insns};{runs}",
                name,
                a["hook"].as_str().unwrap_or("?"),
                a["method"].as_str().unwrap_or("?")
            );
        }
    }
    print_consent_status(v);
    println!("kernel:    {}", v["kernel"]);
    println!("enforcement mechanisms:");
    if let Some(e) = v["enforcement"].as_array() {
        for line in e {
            println!("  {}", line.as_str().unwrap_or("?"));
        }
    }
}

fn audit(a: &AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditAction::Verify { file, config, json } = &a.action;
    let path = match file {
        Some(f) => f.clone(),
        None => match config {
            Some(p) => Config::load(p)
                .with_context(|| format!("loading {}", p.display()))?
                .log_path(),
            None => Config::embedded_default().log_path(),
        },
    };
    // The current file and its rotated predecessors, oldest first, as one chain.
    let (r, files) = crate::audit::verify_all(&path)
        .with_context(|| format!("reading {} and its rotated files", path.display()))?;
    if files.len() > 1 && !*json {
        println!(
            "files: {} (oldest first)",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if *json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        match &r.problem {
            None => println!(
                "ok: {} records, ids {}..{}, chain intact{}{}",
                r.records,
                r.first_id.map_or_else(|| "-".into(), |i| i.to_string()),
                r.last_id.map_or_else(|| "-".into(), |i| i.to_string()),
                r.checkpoint.as_ref().map_or_else(
                    || "; no checkpoint yet".to_owned(),
                    |c| format!(", matches the checkpoint of {} (record {})", c.ts, c.id)
                ),
                if r.unchained_prefix > 0 {
                    format!(
                        "; the first {} records predate the chain",
                        r.unchained_prefix
                    )
                } else {
                    String::new()
                }
            ),
            Some(p) => println!(
                "TAMPERED: {} at line {}{}: {}",
                p.kind,
                p.line,
                p.id.map_or_else(String::new, |i| format!(" (record {i})")),
                p.detail
            ),
        }
        if let Some(n) = r.torn_tail {
            println!(
                "note: the last line ({n} bytes) is torn (a write cut by a crash); it is not part of the chain and the daemon sets it aside on its next start"
            );
        }
    }
    Ok(if r.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
    let filter = match a.filters.to_filter(::time::OffsetDateTime::now_utc()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mcpwatch: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let path = log_path(a)?;
    if !path.exists() {
        bail!(
            "no event log at {} (has the daemon ever run with this config?)",
            path.display()
        );
    }
    if a.follow {
        return follow(&path, a.json, &filter);
    }
    // The rotated files, oldest first, then the current one: one log. All are
    // opened first, so that retention removing one meanwhile changes nothing.
    let mut files = crate::audit::rotated_files(&path);
    files.push(path.clone());
    let mut size = 0;
    let mut input = Vec::with_capacity(files.len());
    for f in &files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        size += file.metadata().map_or(0, |m| m.len());
        input.push(io::BufReader::with_capacity(1 << 16, file));
    }
    let on_bad = |source: usize, line: u64, err: &serde_json::Error| {
        eprintln!(
            "mcpwatch: warning: {}:{line}: not an event record ({err})",
            files[source].display()
        );
    };
    // JSON lines streaming to a terminal show their own progress.
    let streams_to_terminal = a.output.is_none() && a.json && io::stdout().is_terminal();
    let mut progress = Progress::new(size, io::stderr().is_terminal() && !streams_to_terminal);
    let reading = || format!("reading {}", path.display());
    let counts = if let Some(out) = &a.output {
        let counts = export(input, &filter, &path, out, a.force, on_bad, &mut progress);
        progress.clear();
        let counts = counts?;
        eprintln!(
            "mcpwatch: exported {} event(s) to {} ({} lines read)",
            counts.matched,
            out.display(),
            counts.lines
        );
        counts
    } else if a.json {
        let stdout = io::stdout();
        let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let r = filter::copy_matching(input, &filter, &mut out, on_bad, |c| progress.tick(c))
            .and_then(|c| out.flush().map(|()| c));
        progress.clear();
        match r {
            Ok(c) => c,
            // A reader that went away (`mcpwatch log --json | head`) is not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(anyhow::Error::new(e).context(reading())),
        }
    } else {
        let sel = filter::select_for_tree(input, &filter, on_bad, |c| progress.tick(c));
        progress.clear();
        let sel = sel.with_context(reading)?;
        if sel.counts.matched == 0 && !filter.is_empty() {
            emit("(no events match the filters)\n")?;
        } else {
            emit(&render::render_tree(&sel.events))?;
        }
        if sel.undrawn > 0 {
            eprintln!(
                "mcpwatch: note: {} matching event(s) of kinds the tree does not draw \
                 (fork, consent, daemon, log): see them with `mcpwatch log --json`",
                sel.undrawn
            );
        }
        sel.counts
    };
    if counts.bad > 0 {
        eprintln!(
            "mcpwatch: {} unreadable line(s) in {} (reported above)",
            counts.bad,
            path.display()
        );
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress line on stderr while a long log is read: after
/// [`Progress::AFTER_LINES`] lines, about once a second, when stderr is a terminal.
struct Progress {
    enabled: bool,
    /// Size of the log, for the percentage.
    size: u64,
    last: std::time::Instant,
    shown: bool,
}

impl Progress {
    const AFTER_LINES: u64 = 200_000;

    fn new(size: u64, enabled: bool) -> Self {
        Self {
            enabled,
            size,
            last: std::time::Instant::now(),
            shown: false,
        }
    }

    fn tick(&mut self, c: &filter::Counts) {
        if !self.enabled
            || c.lines < Self::AFTER_LINES
            || self.last.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        self.last = std::time::Instant::now();
        let pct = (c.bytes * 100).checked_div(self.size).unwrap_or(0).min(100);
        eprint!(
            "\r\x1b[Kmcpwatch: {} lines read ({pct}%), {} matching",
            c.lines, c.matched
        );
        self.shown = true;
    }

    /// Take the progress line away before the output.
    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

/// `--output`: the matching lines, byte for byte, into a new 0600 file. On failure
/// the incomplete file is removed: a partial export must not pass for a whole one.
fn export<R: io::BufRead>(
    input: impl IntoIterator<Item = R>,
    filter: &Filter,
    log: &Path,
    out_path: &Path,
    force: bool,
    on_bad: impl FnMut(usize, u64, &serde_json::Error),
    progress: &mut Progress,
) -> anyhow::Result<filter::Counts> {
    let file = create_export(log, out_path, force)?;
    let mut out = io::BufWriter::with_capacity(1 << 16, file);
    let r = filter::copy_matching(input, filter, &mut out, on_bad, |c| progress.tick(c)).and_then(
        |c| {
            out.flush()?;
            out.get_ref().sync_all()?;
            Ok(c)
        },
    );
    r.map_err(|e| {
        drop(out);
        let _ = std::fs::remove_file(out_path);
        anyhow::Error::new(e).context(format!(
            "exporting {} to {} (the incomplete file was removed)",
            log.display(),
            out_path.display()
        ))
    })
}

/// Create the export file: new, mode 0600; an existing one only with `force`, and
/// never the log being read.
fn create_export(log: &Path, out: &Path, force: bool) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !force {
                bail!(
                    "{} already exists: not overwriting it (--force replaces it)",
                    out.display()
                );
            }
            let same = match (std::fs::metadata(log), std::fs::metadata(out)) {
                (Ok(l), Ok(o)) => l.dev() == o.dev() && l.ino() == o.ino(),
                _ => false,
            };
            if same {
                bail!("{} is the log being read: not replacing it", out.display());
            }
            // Unlink, not truncate: never write through a symlink or into a file
            // someone else holds open.
            std::fs::remove_file(out).with_context(|| format!("removing {}", out.display()))?;
            open().with_context(|| format!("creating {}", out.display()))
        }
        r => r.with_context(|| format!("creating {}", out.display())),
    }
}

/// Follow the log file itself: works whether or not the D-Bus API is reachable, and
/// never misses what the daemon wrote (the log is the record of truth). Only events
/// that match `filter` are printed.
fn follow(path: &Path, json: bool, filter: &Filter) -> anyhow::Result<ExitCode> {
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
        // Raw JSON with no filter needs no parsing.
        let parsed = (!json || !filter.is_empty()).then(|| serde_json::from_slice::<Event>(text));
        let mut out = stdout.lock();
        match parsed {
            None => {
                out.write_all(text)?;
                out.write_all(b"\n")?;
            }
            Some(Ok(e)) if !filter.matches(&e) => continue,
            Some(Ok(e)) => {
                if json {
                    out.write_all(text)?;
                    out.write_all(b"\n")?;
                } else {
                    writeln!(out, "{}", render::render_line(&e))?;
                }
            }
            Some(Err(e)) if filter.is_empty() => writeln!(out, "?? unreadable record: {e}")?,
            Some(Err(e)) => {
                eprintln!("mcpwatch: warning: unreadable record skipped (cannot be filtered): {e}");
                continue;
            }
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

// ---------------------------------------------------------------------------
// Consent commands: records, approve, revoke, pending, allow, deny, mode.

/// How long a consent call may take (approving hashes the executable and script).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";

/// Why a daemon call did not give an answer; decides the exit status.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No bus, or nobody owns org.mcpwatch1: exit 1.
    Unreachable(anyhow::Error),
    /// The daemon refused (`AccessDenied`): exit 4, with its message.
    Refused(String),
    /// Any other failure: exit 1.
    Failed(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "{e:#}"),
            CallError::Refused(m) => write!(f, "refused: {m}"),
            CallError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CallError {}

impl CallError {
    fn report(&self) -> ExitCode {
        match self {
            CallError::Unreachable(e) => {
                eprintln!("mcpwatch: {}", daemon_down_hint(e));
                ExitCode::from(1)
            }
            CallError::Refused(m) => {
                eprintln!("refused: {m}");
                ExitCode::from(4)
            }
            CallError::Failed(m) => {
                eprintln!("mcpwatch: error: {m}");
                ExitCode::from(1)
            }
        }
    }
}

/// A D-Bus error reply, by its error name.
fn classify_reply(method: &str, name: &str, desc: Option<&str>) -> CallError {
    let msg = desc.unwrap_or("no message").to_owned();
    match name.strip_prefix("org.freedesktop.DBus.Error.") {
        _ if name == ACCESS_DENIED => CallError::Refused(msg),
        Some("ServiceUnknown" | "NameHasNoOwner" | "Disconnected") => {
            CallError::Unreachable(anyhow::anyhow!("{name}: {msg}"))
        }
        Some("UnknownMethod" | "UnknownInterface" | "UnknownObject") => CallError::Failed(format!(
            "this mcpwatchd has no {method} method (is it older than this mcpwatch?): {msg}"
        )),
        Some("InvalidArgs" | "Failed") => CallError::Failed(msg),
        _ => CallError::Failed(format!("{method} failed: {name}: {msg}")),
    }
}

/// A failed call, by what went wrong.
fn classify(method: &str, err: zbus::Error) -> CallError {
    match &err {
        zbus::Error::MethodError(name, desc, _) => classify_reply(method, name, desc.as_deref()),
        zbus::Error::FDO(e) => classify_reply(method, &e.name(), e.description()),
        zbus::Error::InputOutput(_)
        | zbus::Error::Connection(..)
        | zbus::Error::Handshake(_)
        | zbus::Error::Address(_) => CallError::Unreachable(err.into()),
        _ => CallError::Failed(format!("{method} failed: {err}")),
    }
}

/// A daemon answer: the JSON text as sent and parsed.
pub(crate) struct Answer {
    pub(crate) raw: String,
    pub(crate) json: Value,
}

/// A connection to the daemon for one command (a few calls, maybe a question to
/// the user in between).
pub(crate) struct Daemon {
    rt: tokio::runtime::Runtime,
    pub(crate) proxy: DaemonProxy<'static>,
}

impl Daemon {
    pub(crate) fn connect() -> anyhow::Result<Self> {
        let rt = runtime()?;
        let proxy = rt.block_on(proxy()).map_err(CallError::Unreachable)?;
        Ok(Self { rt, proxy })
    }

    pub(crate) fn call(
        &self,
        method: &str,
        call: impl Future<Output = zbus::Result<String>>,
    ) -> Result<Answer, CallError> {
        let raw = self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
            .map_err(|_| {
                CallError::Failed(format!(
                    "the daemon did not answer {method} within {} s",
                    CALL_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| classify(method, e))?;
        let json = serde_json::from_str(&raw).map_err(|e| {
            CallError::Failed(format!("the daemon sent invalid JSON for {method}: {e}"))
        })?;
        Ok(Answer { raw, json })
    }
}

/// Columns to wrap commands at: the terminal's width when stdout is one; `None`
/// (one line per command, for scripts and `grep`) otherwise.
pub(crate) fn out_width() -> Option<usize> {
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c >= 20)
    {
        return Some(c);
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &raw mut ws) };
    Some(if r == 0 && ws.ws_col >= 20 {
        usize::from(ws.ws_col)
    } else {
        100
    })
}

/// What the person at the terminal said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Confirm {
    Yes,
    No,
    /// stdin is not a terminal: nobody to ask.
    NoTerminal,
}

/// `y` or `yes` (any case) is yes; anything else, or end of input, is no.
fn is_yes(line: &str) -> bool {
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Ask `question [y/N]` of the person at the terminal. Only a terminal on stdin
/// answers: a pipe (`yes | mcpwatch approve …`) is not a person; use --yes.
/// `details` (already on stdout) are repeated on stderr when stdout is not the
/// terminal, so the person sees what they answer about.
pub(crate) fn confirm(question: &str, details: &str) -> io::Result<Confirm> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Ok(Confirm::NoTerminal);
    }
    let mut err = io::stderr().lock();
    if !io::stdout().is_terminal() {
        err.write_all(details.as_bytes())?;
    }
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(if is_yes(&line) {
        Confirm::Yes
    } else {
        Confirm::No
    })
}

/// Write to stdout; a reader that went away (`mcpwatch records | head`) is not an
/// error.
pub(crate) fn emit(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// Print problems from a records answer as warnings.
fn warn_problems(v: &Value) {
    let problems = review::problems(v);
    for p in &problems {
        eprintln!("mcpwatch: warning: {p}");
    }
    if !problems.is_empty() {
        eprintln!(
            "mcpwatch: warning: {} problem(s) in the consent store or managed policy (above)",
            problems.len()
        );
    }
}

fn records(a: &RecordsArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let ans = d.call("Records", d.proxy.records())?;
    if a.json {
        emit(&format!("{}\n", review::pretty_json(&ans.raw)))?;
    } else {
        emit(&review::render_records(&ans.json, out_width()))?;
    }
    warn_problems(&ans.json);
    Ok(ExitCode::SUCCESS)
}

/// The scope argument of Approve: empty for the daemon's default (always).
pub(crate) fn scope_arg(once: bool, until: Option<&str>) -> String {
    match (once, until) {
        (true, _) => "once".to_owned(),
        (false, Some(t)) => format!("until={t}"),
        (false, None) => String::new(),
    }
}

/// `--cwd` as the daemon needs it: absolute, UTF-8; empty for none.
fn cwd_arg(cwd: Option<&Path>) -> anyhow::Result<String> {
    let Some(dir) = cwd else {
        return Ok(String::new());
    };
    let abs = std::path::absolute(dir).with_context(|| format!("--cwd {}", dir.display()))?;
    abs.into_os_string().into_string().map_err(|p| {
        anyhow::anyhow!(
            "--cwd {} is not UTF-8: the daemon API takes it as text",
            crate::event::shell_quote(p.as_encoded_bytes())
        )
    })
}

fn approve(a: &ApproveArgs) -> anyhow::Result<ExitCode> {
    if let Some(selector) = &a.from_config {
        return super::scan::approve_from_config(&super::scan::FromConfig {
            selector,
            sources: &a.sources,
            once: a.once,
            until: a.until.as_deref(),
            note: &a.note,
            yes: a.yes,
        });
    }
    let scope = scope_arg(a.once, a.until.as_deref());
    let argv: Vec<Vec<u8>> = a.command.iter().map(|s| s.clone().into_vec()).collect();
    let cwd = cwd_arg(a.cwd.as_deref())?;
    let host = a.host.clone().unwrap_or_default();
    let d = Daemon::connect()?;
    let width = out_width();

    let preview = match a.event_id {
        Some(id) => d.call("Preview", d.proxy.preview(id))?,
        None => d.call(
            "PreviewCommand",
            d.proxy.preview_command(&host, argv.clone(), &cwd),
        )?,
    };
    let mut details = review::render_preview(&preview.json, width);
    let scope_line = match (a.once, &a.until) {
        (true, _) => "once (the record is used up by the first launch it allows)".to_owned(),
        (false, Some(t)) => format!("until {t}"),
        (false, None) => "always (until revoked; --once or --until limit it)".to_owned(),
    };
    let _ = writeln!(details, "{:<9}{scope_line}", "scope:");
    if !a.note.is_empty() {
        let _ = writeln!(details, "{:<9}{}", "note:", a.note);
    }
    emit(&details)?;

    let for_host = preview.json["host"]
        .as_str()
        .map_or_else(|| host.clone(), str::to_owned);
    if !a.yes {
        let question = format!("Approve this exact command for host {for_host}?");
        match confirm(&question, &details)? {
            Confirm::Yes => {}
            Confirm::No => {
                eprintln!("mcpwatch: not approved");
                return Ok(ExitCode::from(1));
            }
            Confirm::NoTerminal => {
                eprintln!(
                    "mcpwatch: not approved: there is no terminal to confirm on (stdin is not a terminal); \
                     review the command above and re-run with --yes to approve it"
                );
                return Ok(ExitCode::from(1));
            }
        }
    }

    let record = match a.event_id {
        Some(id) => d.call("Approve", d.proxy.approve(id, &scope, &a.note))?,
        None => d.call(
            "ApproveCommand",
            d.proxy.approve_command(&host, argv, &cwd, &scope, &a.note),
        )?,
    };
    let id = &record.json["id"];
    if let Some(why) = review::binding_mismatch(&preview.json, &record.json) {
        // What was approved is not what was shown: take it back.
        let undo = match id.as_u64() {
            Some(n) => match d.call("Revoke", d.proxy.revoke(n)) {
                Ok(_) => format!("record {n} was revoked again"),
                Err(e) => {
                    format!("revoking record {n} failed too ({e}): run `mcpwatch revoke {n}`")
                }
            },
            None => "the daemon returned no record id: check `mcpwatch records`".to_owned(),
        };
        return Err(CallError::Failed(format!(
            "{why}; {undo}. Nothing stays approved: review the command again"
        ))
        .into());
    }
    emit(&format!("approved as record {}\n", json_text(id)))?;
    Ok(ExitCode::SUCCESS)
}

/// A JSON scalar as text (`?` when absent).
pub(crate) fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    }
}

fn revoke(a: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let rec = d.call("Revoke", d.proxy.revoke(a.record_id))?;
    emit(&format!(
        "revoked record {}: {}\n",
        a.record_id,
        review::command_line(&rec.json)
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn pending(a: &PendingArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let list = d.call("Pending", d.proxy.pending())?;
    if a.json {
        emit(&format!("{}\n", review::pretty_json(&list.raw)))?;
    } else {
        emit(&review::render_pending(&list.json, out_width()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn allow(a: &AllowArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let list = d.call("Pending", d.proxy.pending())?;
    let Some(entry) = list
        .json
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"].as_u64() == Some(a.pending_id)))
    else {
        return Err(CallError::Failed(format!(
            "no launch #{} is waiting (already answered, timed out, or never held): see `mcpwatch pending`",
            a.pending_id
        ))
        .into());
    };
    let details = review::render_pending_entry(entry, out_width());
    emit(&details)?;
    let host = json_text(&entry["host"]);
    if !a.yes {
        let question = if a.always {
            format!("Let this exact command run and always approve it for host {host}?")
        } else {
            format!("Let this exact command run (this time only) for host {host}?")
        };
        let no = match confirm(&question, &details)? {
            Confirm::Yes => None,
            Confirm::No => Some("not allowed"),
            Confirm::NoTerminal => Some(
                "not allowed: there is no terminal to confirm on (stdin is not a terminal); \
                 review the launch above and re-run with --yes",
            ),
        };
        if let Some(no) = no {
            eprintln!(
                "mcpwatch: {no}; pid {} stays held until its timeout, then it is killed \
                 (`mcpwatch deny {}` kills it now)",
                json_text(&entry["pid"]),
                a.pending_id
            );
            return Ok(ExitCode::from(1));
        }
    }
    let ans = d.call("Allow", d.proxy.allow(a.pending_id, a.always))?;
    let v = &ans.json;
    if v["continued"].as_bool() == Some(false) {
        return Err(CallError::Failed(format!(
            "pid {} was not continued (has it exited?)",
            json_text(&v["pid"])
        ))
        .into());
    }
    let mut line = format!("continued pid {}", json_text(&v["pid"]));
    if v["record"].is_object() {
        let _ = write!(
            line,
            " and approved as record {}",
            json_text(&v["record"]["id"])
        );
    } else if a.always {
        line.push_str(" (the daemon returned no record: check `mcpwatch records`)");
    }
    emit(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn deny(a: &DenyArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let ans = d.call("Deny", d.proxy.deny(a.pending_id))?;
    let pid = json_text(&ans.json["pid"]);
    if ans.json["killed"].as_bool() == Some(false) {
        emit(&format!(
            "pid {pid} was not killed: it had already exited\n"
        ))?;
    } else {
        emit(&format!("killed pid {pid}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn mode(a: &ModeArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let ans = d.call("SetMode", d.proxy.set_mode(&a.host, &a.mode))?;
    let v = &ans.json;
    let host = v["host"].as_str().unwrap_or(&a.host);
    let new = v["mode"].as_str().unwrap_or(&a.mode);
    emit(&format!("{host}: {} -> {new}\n", json_text(&v["previous"])))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use zbus::fdo;

    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("mcpwatch").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    fn approve_args(args: &[&str]) -> ApproveArgs {
        match parse(args) {
            Ok(Command::Approve(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn approve_by_event_id_with_scope_note_and_yes() {
        let a = approve_args(&["approve", "12", "--once", "--note", "fs server", "-y"]);
        assert_eq!(a.event_id, Some(12));
        assert!(a.once && a.yes);
        assert_eq!(a.note, "fs server");
        assert!(a.host.is_none() && a.command.is_empty());
        assert_eq!(scope_arg(a.once, a.until.as_deref()), "once");

        let a = approve_args(&["approve", "12", "--until", "2026-12-31T23:59:59Z"]);
        assert_eq!(a.until.as_deref(), Some("2026-12-31T23:59:59Z"));
        assert_eq!(
            scope_arg(a.once, a.until.as_deref()),
            "until=2026-12-31T23:59:59Z"
        );
        let a = approve_args(&["approve", "12"]);
        assert_eq!(scope_arg(a.once, a.until.as_deref()), "");
    }

    #[test]
    fn approve_a_command_keeps_its_exact_arguments() {
        let a = approve_args(&[
            "approve",
            "--host",
            "claude-code",
            "--cwd",
            "/srv",
            "--",
            "npx",
            "-y",
            "--weird",
            "a b",
            "",
        ]);
        assert_eq!(a.host.as_deref(), Some("claude-code"));
        assert_eq!(a.cwd.as_deref(), Some(Path::new("/srv")));
        assert_eq!(a.event_id, None);
        assert_eq!(a.command, ["npx", "-y", "--weird", "a b", ""]);
    }

    #[test]
    fn approve_usage_errors() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        // Neither an event nor a command.
        assert_eq!(kind(&["approve"]), ErrorKind::MissingRequiredArgument);
        // Both.
        assert_eq!(
            kind(&["approve", "3", "--host", "h", "--", "ls"]),
            ErrorKind::ArgumentConflict
        );
        // A host without a command, a command without a host.
        assert_eq!(
            kind(&["approve", "--host", "h"]),
            ErrorKind::MissingRequiredArgument
        );
        assert!(parse(&["approve", "--", "ls"]).is_err());
        assert_eq!(
            kind(&["approve", "3", "--once", "--until", "2026-12-31T23:59:59Z"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["approve", "3", "--until", "next tuesday"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["approve", "x"]), ErrorKind::ValueValidation);
        // Usage errors exit 2.
        assert_eq!(parse(&["approve"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn other_consent_subcommands_parse() {
        assert!(matches!(
            parse(&["records", "--json"]),
            Ok(Command::Records(RecordsArgs { json: true }))
        ));
        assert!(matches!(
            parse(&["revoke", "7"]),
            Ok(Command::Revoke(RevokeArgs { record_id: 7 }))
        ));
        assert!(matches!(
            parse(&["pending"]),
            Ok(Command::Pending(PendingArgs { json: false }))
        ));
        assert!(matches!(
            parse(&["allow", "3", "--always", "--yes"]),
            Ok(Command::Allow(AllowArgs {
                pending_id: 3,
                always: true,
                yes: true
            }))
        ));
        assert!(matches!(
            parse(&["deny", "3"]),
            Ok(Command::Deny(DenyArgs { pending_id: 3 }))
        ));
        match parse(&["mode", "claude-code", "enforce"]) {
            Ok(Command::Mode(m)) => assert_eq!(
                (m.host.as_str(), m.mode.as_str()),
                ("claude-code", "enforce")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(&["mode", "claude-code", "strict"])
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidValue
        );
        assert!(parse(&["revoke"]).is_err());
        assert!(parse(&["deny", "-1"]).is_err());
    }

    #[test]
    fn daemon_errors_map_to_exit_statuses() {
        let refused = classify(
            "Approve",
            fdo::Error::AccessDenied("called from inside claude-code's process tree".into()).into(),
        );
        assert!(
            matches!(&refused, CallError::Refused(m) if m == "called from inside claude-code's process tree"),
            "{refused:?}"
        );
        assert_eq!(refused.report(), ExitCode::from(4));

        let unknown = classify(
            "Revoke",
            fdo::Error::InvalidArgs("no record 9".into()).into(),
        );
        assert!(
            matches!(&unknown, CallError::Failed(m) if m == "no record 9"),
            "{unknown:?}"
        );
        assert_eq!(unknown.report(), ExitCode::from(1));

        let absent = classify(
            "Records",
            fdo::Error::ServiceUnknown("The name org.mcpwatch1 was not provided".into()).into(),
        );
        assert!(matches!(absent, CallError::Unreachable(_)), "{absent:?}");

        let old = classify_reply(
            "Pending",
            "org.freedesktop.DBus.Error.UnknownMethod",
            Some("Unknown method 'Pending'"),
        );
        assert!(matches!(&old, CallError::Failed(m) if m.contains("no Pending method")));
        assert!(matches!(
            classify_reply("Approve", ACCESS_DENIED, None),
            CallError::Refused(_)
        ));
        let io = classify(
            "Records",
            zbus::Error::InputOutput(std::sync::Arc::new(io::Error::other("broken pipe"))),
        );
        assert!(matches!(io, CallError::Unreachable(_)));
    }

    #[test]
    fn refusals_survive_anyhow() {
        let err: anyhow::Error = CallError::Refused("locked by managed policy".into()).into();
        assert!(matches!(
            err.downcast_ref::<CallError>(),
            Some(CallError::Refused(_))
        ));
    }

    #[test]
    fn only_yes_is_yes() {
        for y in ["y\n", "Y", "yes\n", " YES "] {
            assert!(is_yes(y), "{y:?}");
        }
        for n in ["", "\n", "n", "no", "yess", "ye", "y y"] {
            assert!(!is_yes(n), "{n:?}");
        }
    }

    fn log_args(args: &[&str]) -> LogArgs {
        match parse(args) {
            Ok(Command::Log(a)) => a,
            Ok(Command::Tree(t)) => t.into(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn log_filters_and_export_parse() {
        let a = log_args(&[
            "log",
            "--host",
            "claude-code",
            "--since",
            "1h",
            "--until",
            "2026-11-27T11:30:00Z",
            "--kind",
            "launch,exec",
            "--kind",
            "exit",
            "--verdict",
            "killed",
            "--pid",
            "42",
            "--record",
            "7",
            "--grep",
            "a b",
            "--json",
            "--output",
            "out.jsonl",
            "--force",
        ]);
        assert!(a.json && a.force && !a.follow);
        assert_eq!(a.output.as_deref(), Some(Path::new("out.jsonl")));
        let now = ::time::macros::datetime!(2026-11-27 12:00 UTC);
        let f = a.filters.to_filter(now).unwrap();
        assert_eq!(f.host.as_deref(), Some("claude-code"));
        assert_eq!(
            f.since,
            Some(::time::macros::datetime!(2026-11-27 11:00 UTC))
        );
        assert_eq!(
            f.until,
            Some(::time::macros::datetime!(2026-11-27 11:30 UTC))
        );
        assert_eq!(
            f.kinds,
            [
                crate::event::Kind::Launch,
                crate::event::Kind::Exec,
                crate::event::Kind::Exit
            ]
        );
        assert_eq!(
            (f.verdict.as_deref(), f.pid, f.record, f.grep.as_deref()),
            (Some("killed"), Some(42), Some(7), Some("a b"))
        );
        let f = log_args(&["log", "--follow", "--kind", "launch"]);
        assert!(f.follow && f.output.is_none());
        assert!(log_args(&["log"])
            .filters
            .to_filter(now)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn tree_is_log_without_json() {
        let a = log_args(&["tree", "--host", "cursor", "--grep", "curl", "--file", "/x"]);
        assert!(!a.json && a.output.is_none() && !a.force);
        assert_eq!(a.filters.host.as_deref(), Some("cursor"));
        assert_eq!(a.file.as_deref(), Some(Path::new("/x")));
        assert!(log_args(&["tree", "-f"]).follow);
        assert_eq!(
            parse(&["tree", "--json"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert!(parse(&["tree", "--output", "x"]).is_err());
    }

    #[test]
    fn log_usage_errors_name_what_is_valid() {
        let err = |args: &[&str]| parse(args).unwrap_err();
        let e = err(&["log", "--kind", "launch,nope"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("unknown kind `nope`") && text.contains("host_start"),
            "{text}"
        );
        let text = err(&["tree", "--verdict", "approved"]).to_string();
        assert!(text.contains("allowed, unapproved, held"), "{text}");
        let text = err(&["log", "--since", "yesterday"]).to_string();
        assert!(text.contains("RFC 3339"), "{text}");
        assert_eq!(
            err(&["log", "--pid", "0"]).kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            err(&["log", "--pid", "x"]).kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            err(&["log", "--force"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            err(&["log", "--follow", "--output", "x"]).kind(),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn export_creates_0600_refuses_to_overwrite_and_never_replaces_the_log() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        let lines =
            "{\"schema\":1,\"id\":1,\"ts\":\"t\",\"kind\":\"launch\",\"pid\":5, \"prev\":\"00\"}\n\
                     {\"schema\":1,\"id\":2,\"ts\":\"t\",\"kind\":\"exec\",\"pid\":6}\n";
        std::fs::write(&log, lines).unwrap();
        let out = dir.path().join("export.jsonl");
        let launches = Filter {
            kinds: vec![crate::event::Kind::Launch],
            ..Filter::default()
        };
        let run = |force: bool, to: &Path| {
            let input = [io::BufReader::new(std::fs::File::open(&log).unwrap())];
            let mut progress = Progress::new(0, false);
            export(
                input,
                &launches,
                &log,
                to,
                force,
                |_, _, _| {},
                &mut progress,
            )
        };
        let counts = run(false, &out).unwrap();
        assert_eq!((counts.lines, counts.matched), (2, 1));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            lines.lines().next().unwrap().to_owned() + "\n",
            "the exact bytes of the line"
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let err = run(false, &out).unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        std::fs::write(&out, "old").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        run(true, &out).unwrap();
        assert!(std::fs::read_to_string(&out).unwrap().contains("\"id\":1"));
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "replaced, not rewritten in place");

        let err = format!("{:#}", run(true, &log).unwrap_err());
        assert!(err.contains("is the log being read"), "{err}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), lines);
    }

    #[test]
    fn cwd_is_made_absolute() {
        assert_eq!(cwd_arg(None).unwrap(), "");
        assert_eq!(cwd_arg(Some(Path::new("/srv/x"))).unwrap(), "/srv/x");
        let rel = cwd_arg(Some(Path::new("proj"))).unwrap();
        assert!(rel.starts_with('/') && rel.ends_with("/proj"), "{rel}");
        let bad = PathBuf::from(OsString::from_vec(b"/tmp/\xff".to_vec()));
        assert!(cwd_arg(Some(&bad)).is_err());
    }
}
