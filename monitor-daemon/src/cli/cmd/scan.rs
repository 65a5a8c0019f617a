//! `mcpwatch scan` and `mcpwatch approve --from-config`: every local MCP server the
//! hosts' config files name, resolved to the exact command the kernel will see,
//! next to the consent records.
//!
//! The files are read here, as the user running the command, with the user's
//! environment (variables in configs are the user's); an approval is then made by
//! the daemon, which re-reads the file itself (`ApproveImport`), so what is
//! recorded is what the file says at that moment.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::{
    cli::{
        args::{ScanArgs, Sources},
        client::{scope_arg, CallError, Daemon},
        review,
        term::{confirm, emit, json_text, out_width, Confirm},
    },
    config::Config,
    event::{shell_join, shell_words},
    hosts::{
        self,
        import::{self, ConfigFile, Entry, ImportContext, Imported, ParseError, UserHome},
        HostFs as _,
    },
    policy::risk::risk_flags,
    scan::{self, RecordView, Resolved, Status},
};

/// One server of one file, resolved and compared.
pub(crate) struct Row {
    pub(crate) imp: Imported,
    resolved: Result<Resolved, scan::ResolveError>,
    /// `None` when the records could not be read (daemon unreachable).
    status: Option<Status>,
}

pub(crate) struct ScanResult {
    pub(crate) files: Vec<ConfigFile>,
    pub(crate) rows: Vec<Row>,
    errors: Vec<ParseError>,
    warnings: Vec<String>,
    /// Why the statuses are unknown, when they are.
    records_error: Option<String>,
}

fn this_user() -> (u32, PathBuf) {
    let uid = nix::unistd::getuid().as_raw();
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .unwrap_or_else(|| PathBuf::from("/"));
    (uid, home)
}

fn env_map() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// The project dirs a user's ~/.claude.json names (Claude Code's local scope).
fn claude_projects(home: &Path) -> Vec<PathBuf> {
    let file = home.join(".claude.json");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Vec::new();
    };
    import::claude_code_approvals(&file, &text)
        .map(|m| m.into_keys().collect())
        .unwrap_or_default()
}

/// The host profiles to read configs for: `--config`'s, else the running daemon's,
/// else the built-in ones (said on stderr).
pub(crate) fn profiles(
    src: &Sources,
    daemon: Option<&Daemon>,
) -> anyhow::Result<Vec<hosts::HostProfile>> {
    if let Some(path) = &src.config {
        return Ok(Config::load(path)
            .with_context(|| format!("reading {}", path.display()))?
            .profiles());
    }
    let from_daemon = daemon.map(|d| {
        d.call("Profiles", d.proxy.profiles())
            .map_err(|e| e.to_string())
            .and_then(|a| serde_json::from_value(a.json).map_err(|e| e.to_string()))
    });
    match from_daemon {
        Some(Ok(p)) => Ok(p),
        Some(Err(e)) => {
            eprintln!("mcpwatch: the daemon did not give its host profiles ({e}); using the built-in ones");
            Ok(hosts::builtin_profiles())
        }
        None => Ok(hosts::builtin_profiles()),
    }
}

fn discover(
    src: &Sources,
    host: Option<&str>,
    daemon: Option<&Daemon>,
) -> anyhow::Result<ScanResult> {
    discover_with(src, host, profiles(src, daemon)?)
}

/// [`discover`] over these profiles.
pub(crate) fn discover_with(
    src: &Sources,
    host: Option<&str>,
    mut profiles: Vec<hosts::HostProfile>,
) -> anyhow::Result<ScanResult> {
    if let Some(h) = host {
        profiles.retain(|p| p.name == h);
        if profiles.is_empty() {
            anyhow::bail!("no host profile named `{h}` (see `mcpwatch scan` for the hosts)");
        }
    }
    let (_, my_home) = this_user();
    let env = env_map();
    let homes: Vec<UserHome> = if src.all_users {
        hosts::RealFs
            .home_dirs()
            .into_iter()
            .map(UserHome::new)
            .collect()
    } else {
        vec![UserHome {
            dir: my_home.clone(),
            env: env.clone(),
        }]
    };
    let mut projects: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        projects.push(cwd);
    }
    for p in &src.project {
        projects
            .push(std::path::absolute(p).with_context(|| format!("--project {}", p.display()))?);
    }
    for h in &homes {
        projects.extend(claude_projects(&h.dir));
    }
    projects.sort();
    projects.dedup();
    let found = import::discover(&profiles, &homes, &projects, &hosts::RealFs);
    let context = |f: &ConfigFile| ImportContext {
        home: f.home.clone().unwrap_or_else(|| my_home.clone()),
        project: f.project.clone(),
        env: env.clone(),
    };
    let (imported, errors) = import::import_all(&found.files, &hosts::RealFs, &context);
    let path_var = std::env::var_os("PATH").map_or_else(
        || b"/usr/local/bin:/usr/bin:/bin".to_vec(),
        std::os::unix::ffi::OsStringExt::into_vec,
    );
    let rows = imported
        .into_iter()
        .map(|imp| {
            let resolved = match &imp.entry {
                Entry::Local { .. } => scan::resolve(&imp, &path_var),
                // Not resolved, and nothing to say: the entry says why.
                _ => Err(scan::ResolveError::NotLocal),
            };
            Row {
                imp,
                resolved,
                status: None,
            }
        })
        .collect();
    Ok(ScanResult {
        files: found.files,
        rows,
        errors,
        warnings: found.warnings,
        records_error: None,
    })
}

/// Fill in each local row's status from the daemon's records.
fn compare(result: &mut ScanResult, daemon: Result<&Daemon, &anyhow::Error>) {
    let records = match daemon {
        Ok(d) => d
            .call("Records", d.proxy.records())
            .map(|a| scan::record_views(&a.json))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:#}")),
    };
    let views: Vec<RecordView> = match records {
        Ok(v) => v,
        Err(e) => {
            result.records_error = Some(e);
            return;
        }
    };
    let (uid, _) = this_user();
    for row in &mut result.rows {
        if let Ok(cmd) = &row.resolved {
            row.status = Some(scan::status(
                &row.imp.host,
                &row.imp.file,
                &row.imp.server,
                uid,
                cmd,
                &views,
            ));
        }
    }
}

/// The one-word state of a row.
fn state_of(row: &Row) -> String {
    match (&row.imp.entry, &row.resolved, &row.status) {
        (Entry::Remote { url, .. }, _, _) => format!("remote ({url}): runs nothing here"),
        (Entry::Unimportable { .. }, _, _) => "cannot be imported".into(),
        (_, Err(_), _) => "cannot be resolved".into(),
        (_, Ok(_), None) => "unknown (no records)".into(),
        (_, Ok(_), Some(s)) => s.label().into(),
    }
}

fn render(result: &ScanResult, width: Option<usize>) -> String {
    let mut out = String::new();
    let (_, home) = this_user();
    let home = home.to_str().map(str::to_owned);
    let mut last_file: Option<(&str, &Path)> = None;
    for row in &result.rows {
        let imp = &row.imp;
        if last_file != Some((imp.host.as_str(), imp.file.as_path())) {
            let _ = writeln!(out, "{}  {}", imp.host, imp.file.display());
            last_file = Some((imp.host.as_str(), imp.file.as_path()));
        }
        let mut state = state_of(row);
        if !imp.enabled {
            let why = imp.disabled_reason.as_deref().unwrap_or("disabled");
            let _ = write!(state, "; disabled in the config ({why})");
        }
        let _ = writeln!(out, "  {}: {state}", imp.server);
        match (&imp.entry, &row.resolved) {
            (Entry::Unimportable { reason }, _) => {
                let _ = writeln!(out, "    why:     {reason}");
            }
            (Entry::Local { argv, .. }, Err(e)) => {
                let _ = writeln!(
                    out,
                    "    config:  {}",
                    shell_join(&crate::event::Bytes::from_strs(argv))
                );
                let _ = writeln!(out, "    why:     {e}");
            }
            (Entry::Local { .. }, Ok(cmd)) => {
                // Shell-quoted: the argument boundaries are what a person approves.
                let words = shell_words(&cmd.argv);
                let _ = write!(
                    out,
                    "{}",
                    review::wrap_words(&words, "    command: ", 13, width)
                );
                let _ = writeln!(out, "    exe:     {}", cmd.exe);
                if let Some(s) = &cmd.script {
                    let _ = writeln!(out, "    script:  {s}");
                }
                let _ = writeln!(
                    out,
                    "    cwd:     {}",
                    cmd.cwd.as_deref().unwrap_or("(any)")
                );
                for (k, v) in cmd.env.iter().filter_map(|(k, v)| Some((k, v.as_ref()?))) {
                    let _ = writeln!(out, "    env:     {k}={}", v.lossy());
                }
                if let Entry::Local { env_unknown, .. } = &imp.entry {
                    for (k, why) in env_unknown {
                        let _ = writeln!(out, "    env:     {k}=<set by the host: {why}>");
                    }
                }
                match &row.status {
                    Some(Status::Approved { record }) => {
                        let _ = writeln!(out, "    record:  {record}");
                    }
                    Some(Status::ChangedSinceApproval { record, diff }) => {
                        let _ = writeln!(out, "    approved as record {record}, since then:");
                        for d in diff {
                            let _ = writeln!(out, "      {d}");
                        }
                    }
                    _ => {}
                }
                let mut risks = risk_flags(&cmd.argv, home.as_deref());
                risks.extend(binding_risks_of(cmd));
                if !risks.is_empty() {
                    out.push_str(&review::render_risks(&json!(risks), 4));
                }
            }
            (Entry::Remote { .. }, _) => {}
        }
        for note in &imp.notes {
            let _ = writeln!(out, "    note:    {note}");
        }
    }
    let count = |f: &dyn Fn(&Row) -> bool| result.rows.iter().filter(|r| f(r)).count();
    let _ = writeln!(
        out,
        "{} servers in {} config files: {} approved, {} not approved, {} changed since approval, {} remote, {} cannot be imported or resolved",
        result.rows.len(),
        result.files.len(),
        count(&|r| matches!(r.status, Some(Status::Approved { .. }))),
        count(&|r| matches!(r.status, Some(Status::NotApproved))),
        count(&|r| matches!(r.status, Some(Status::ChangedSinceApproval { .. }))),
        count(&|r| matches!(r.imp.entry, Entry::Remote { .. })),
        count(&|r| {
            matches!(r.imp.entry, Entry::Unimportable { .. })
                || (matches!(r.imp.entry, Entry::Local { .. }) && r.resolved.is_err())
        }),
    );
    out
}

fn to_json(result: &ScanResult) -> Value {
    let (_, home) = this_user();
    let home = home.to_str().map(str::to_owned);
    let servers: Vec<Value> = result
        .rows
        .iter()
        .map(|row| {
            let mut v = json!({
                "host": row.imp.host,
                "file": row.imp.file,
                "schema": row.imp.schema,
                "project": row.imp.project,
                "server": row.imp.server,
                "source": format!("import:{}", row.imp.source()),
                "enabled": row.imp.enabled,
                "disabled_reason": row.imp.disabled_reason,
                "entry": row.imp.entry,
                "notes": row.imp.notes,
                "state": state_of(row),
            });
            match &row.resolved {
                Ok(cmd) => {
                    v["resolved"] = json!(cmd);
                    v["command"] = json!(shell_join(&cmd.argv));
                    let mut risks = risk_flags(&cmd.argv, home.as_deref());
                    risks.extend(binding_risks_of(cmd));
                    v["risks"] = json!(risks);
                }
                Err(scan::ResolveError::NotLocal) => {}
                Err(e) => v["resolve_error"] = json!(e.to_string()),
            }
            if let Some(s) = &row.status {
                v["status"] = json!(s);
            }
            v
        })
        .collect();
    json!({
        "files": result.files,
        "servers": servers,
        "errors": result.errors.iter().map(|e| json!({
            "file": e.file, "line": e.line, "column": e.column, "message": e.message,
            "text": e.to_string(),
        })).collect::<Vec<_>>(),
        "warnings": result.warnings,
        "records_error": result.records_error,
    })
}

fn report_problems(result: &ScanResult) {
    for e in &result.errors {
        eprintln!("mcpwatch: {e} (this file was not imported; the others were)");
    }
    for w in &result.warnings {
        eprintln!("mcpwatch: warning: {w}");
    }
    if let Some(e) = &result.records_error {
        eprintln!("mcpwatch: statuses unknown: cannot read the consent records: {e}");
    }
}

/// `mcpwatch scan`.
///
/// Exit status: 0 every local, enabled server is approved; 3 some are not approved
/// or changed since approval; 1 a config file could not be read or parsed, or the
/// records could not be read (the rest is still listed).
pub fn scan(a: &ScanArgs) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::connect();
    let mut result = discover(&a.sources, a.host.as_deref(), daemon.as_ref().ok())?;
    compare(&mut result, daemon.as_ref());
    if a.json {
        emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&to_json(&result))?
        ))?;
    } else {
        emit(&render(&result, out_width()))?;
    }
    report_problems(&result);
    if !result.errors.is_empty() || result.records_error.is_some() {
        return Ok(ExitCode::from(1));
    }
    let pending = result.rows.iter().any(|r| {
        r.imp.enabled
            && matches!(
                r.status,
                Some(Status::NotApproved | Status::ChangedSinceApproval { .. })
            )
    });
    Ok(if pending {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `approve --from-config` was asked to do.
pub struct FromConfig<'a> {
    pub selector: &'a str,
    pub sources: &'a Sources,
    pub once: bool,
    pub until: Option<&'a str>,
    pub note: &'a str,
    pub yes: bool,
}

/// `mcpwatch approve --from-config [HOST[/SERVER]]`: each selected server that is
/// not approved yet is shown in full, with its risks, and approved on a yes.
pub fn approve_from_config(a: &FromConfig<'_>) -> anyhow::Result<ExitCode> {
    let (host, server) = match a.selector.split_once('/') {
        Some((h, s)) => (Some(h), Some(s)),
        None if a.selector.is_empty() => (None, None),
        None => (Some(a.selector), None),
    };
    let d = Daemon::connect()?;
    let mut result = discover(a.sources, host, Some(&d))?;
    compare(&mut result, Ok(&d));
    report_problems(&result);
    if let Some(e) = &result.records_error {
        return Err(CallError::Failed(format!("cannot read the consent records: {e}")).into());
    }
    let selected: Vec<&Row> = result
        .rows
        .iter()
        .filter(|r| server.is_none_or(|s| r.imp.server == s))
        .collect();
    if selected.is_empty() {
        anyhow::bail!(
            "no server matches `{}` in the config files read ({}); `mcpwatch scan` lists them",
            a.selector,
            result.files.len()
        );
    }
    let (mut approved, mut skipped, mut failed) = (0, 0, 0);
    for row in selected {
        match approve_row(&d, row, a, server.is_some())? {
            Outcome::Approved => approved += 1,
            Outcome::Already => {}
            Outcome::Skipped => skipped += 1,
            Outcome::Failed => failed += 1,
            Outcome::NoTerminal => {
                eprintln!(
                    "mcpwatch: not approved: there is no terminal to confirm on (stdin is not a terminal); \
                     review the commands above and re-run with --yes to approve them"
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    if approved + skipped + failed > 1 {
        emit(&format!(
            "{approved} approved, {skipped} skipped, {failed} could not be approved\n"
        ))?;
    }
    Ok(if failed > 0 || skipped > 0 && server.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What became of one selected server.
enum Outcome {
    Approved,
    Already,
    Skipped,
    Failed,
    NoTerminal,
}

/// Whether a row can be approved at all; `None` when it can, else what to report.
fn precheck(row: &Row, named: bool) -> anyhow::Result<Option<Outcome>> {
    let imp = &row.imp;
    let name = row_name(row);
    Ok(Some(match (&imp.entry, &row.resolved, &row.status) {
        (Entry::Remote { url, .. }, _, _) => {
            eprintln!(
                "mcpwatch: {name}: remote server ({url}); nothing runs here, nothing to approve"
            );
            Outcome::Skipped
        }
        (Entry::Unimportable { reason }, _, _) => {
            eprintln!("mcpwatch: {name}: cannot be imported: {reason}");
            Outcome::Failed
        }
        (_, Err(e), _) => {
            eprintln!("mcpwatch: {name}: cannot be resolved: {e}");
            Outcome::Failed
        }
        (_, _, Some(Status::Approved { record })) => {
            emit(&format!("{name}: already approved (record {record})\n"))?;
            Outcome::Already
        }
        _ if !imp.enabled && !named => {
            let why = imp.disabled_reason.as_deref().unwrap_or("disabled");
            eprintln!(
                "mcpwatch: {name}: skipped, disabled in the config ({why}); \
                 name it as HOST/SERVER to approve it anyway"
            );
            Outcome::Skipped
        }
        _ => return Ok(None),
    }))
}

fn row_name(row: &Row) -> String {
    let imp = &row.imp;
    format!("{} / {} ({})", imp.host, imp.server, imp.file.display())
}

/// Show one server as the daemon resolves it, ask, and approve it.
fn approve_row(d: &Daemon, row: &Row, a: &FromConfig<'_>, named: bool) -> anyhow::Result<Outcome> {
    if let Some(outcome) = precheck(row, named)? {
        return Ok(outcome);
    }
    let imp = &row.imp;
    let name = row_name(row);
    let project = imp
        .project
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let file = imp.file.display().to_string();
    let schema = imp.schema.to_string();
    let preview = match d.call(
        "PreviewImport",
        d.proxy
            .preview_import(&imp.host, &schema, &file, &imp.server, &project),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mcpwatch: {name}: {e}");
            return Ok(Outcome::Failed);
        }
    };
    let mut details = format!("{name}:\n");
    details.push_str(&review::render_preview(&preview.json, out_width()));
    let _ = writeln!(details, "{:<9}import:{}", "source:", imp.source());
    if let Some(Status::ChangedSinceApproval { record, diff }) = &row.status {
        let _ = writeln!(details, "changed since record {record} was approved:");
        for line in diff {
            let _ = writeln!(details, "  {line}");
        }
    }
    for note in &imp.notes {
        let _ = writeln!(details, "{:<9}{note}", "note:");
    }
    emit(&details)?;
    if !a.yes {
        let question = format!(
            "Approve this exact command for host {} (server {})?",
            imp.host, imp.server
        );
        match confirm(&question, &details)? {
            Confirm::Yes => {}
            Confirm::No => {
                eprintln!("mcpwatch: {name}: not approved");
                return Ok(Outcome::Skipped);
            }
            Confirm::NoTerminal => return Ok(Outcome::NoTerminal),
        }
    }
    let scope = scope_arg(a.once, a.until);
    let record = d.call(
        "ApproveImport",
        d.proxy.approve_import(
            &imp.host,
            &schema,
            &file,
            &imp.server,
            &project,
            &scope,
            a.note,
        ),
    )?;
    if let Some(why) = review::binding_mismatch(&preview.json, &record.json) {
        // The file changed between the preview and the approval.
        if let Some(n) = record.json["id"].as_u64() {
            let _ = d.call("Revoke", d.proxy.revoke(n));
        }
        eprintln!("mcpwatch: {name}: {why}; the record was revoked again: review it again");
        return Ok(Outcome::Failed);
    }
    emit(&format!(
        "approved as record {}\n",
        json_text(&record.json["id"])
    ))?;
    Ok(Outcome::Approved)
}

/// What a record of `cmd` would not bind, for the user running the scan.
fn binding_risks_of(cmd: &crate::scan::Resolved) -> Vec<crate::policy::risk::Risk> {
    crate::resolve::binding_risks(
        std::path::Path::new(&cmd.exe),
        &cmd.argv,
        cmd.cwd.as_deref().map(std::path::Path::new),
        Some(nix::unistd::getuid().as_raw()),
    )
}
