//! The command line: clap definitions of `mcpwatch` and its subcommands (no
//! behaviour here; each command is in `cli/cmd/`).
use std::{ffi::OsString, path::PathBuf};

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::cli::filter::FilterArgs;

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
    /// List every host profile: how it is recognised, where it was found and which
    /// version, its mode, its processes running now, and the MCP configs it reads.
    ///
    /// A host is recognised at its first exec by the name it is executed under
    /// (`claude`, `gemini`, `code`: the last component of the path, wherever it is
    /// installed and whenever), by its executable's identity, or by its `#!`
    /// script's path, as the profile says. Run as root (or with --all-users) to see
    /// every user's installs and configs.
    Hosts(HostsArgs),
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
    Scan(ScanArgs),
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
pub struct HostsArgs {
    #[command(flatten)]
    pub sources: Sources,
    /// Only this host (a profile name: claude-code, cursor, vscode, …).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// One JSON document: one object per profile.
    #[arg(long)]
    pub json: bool,
    /// Instead: for each program that launched an MCP config's server without being
    /// a recognised host (the `launch` events of host `unknown` in the audit log),
    /// print the `[[host]]` profile that would cover it, to add to the config.
    #[arg(long)]
    pub suggest: bool,
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
    pub sources: Sources,
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
fn parse_until(t: &str) -> Result<String, crate::policy::record::TimeError> {
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

/// Where to look: shared by `scan` and `approve --from-config`.
#[derive(Args, Debug, Clone, Default)]
pub struct Sources {
    /// A project (workspace) directory whose project-level configs to read
    /// (`.mcp.json`, `.cursor/mcp.json`, `.vscode/mcp.json`, …). Repeatable. The
    /// current directory and the projects named in ~/.claude.json are always read.
    #[arg(long, value_name = "DIR")]
    pub project: Vec<PathBuf>,
    /// Read every user's home (root), not only yours.
    #[arg(long)]
    pub all_users: bool,
    /// Read host profiles from this daemon configuration file (its `[[host]]`
    /// entries) instead of asking the running daemon for the profiles it uses
    /// (the built-in ones when no daemon answers).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub sources: Sources,
    /// Only this host's configs (a profile name: claude-code, cursor, vscode, …).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// One JSON document: files, servers (with resolution, status, diff, risks),
    /// parse errors.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::error::ErrorKind;

    use super::*;
    use crate::cli::client::scope_arg;

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
}
