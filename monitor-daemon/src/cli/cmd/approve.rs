//! `mcpwatch approve`: review an exact command, then approve it.
use std::{fmt::Write as _, os::unix::ffi::OsStringExt as _, path::Path, process::ExitCode};

use anyhow::Context as _;

use crate::cli::{
    args::ApproveArgs,
    client::{scope_arg, CallError, Daemon},
    cmd::scan,
    review,
    term::{confirm, emit, json_text, out_width, Confirm},
};

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

pub(crate) fn approve(a: &ApproveArgs) -> anyhow::Result<ExitCode> {
    if let Some(selector) = &a.from_config {
        return scan::approve_from_config(&scan::FromConfig {
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

#[cfg(test)]
mod tests {
    use std::{ffi::OsString, path::PathBuf};

    use super::*;

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
