//! `mcpwatch allow`: let a held launch run (and maybe approve it).
use std::{fmt::Write as _, process::ExitCode};

use crate::{
    cli::{
        args::AllowArgs,
        client::{CallError, Daemon},
        review,
        term::{confirm, emit, json_text, out_width, Confirm},
    },
    reply::{Allowed, RecordRef},
};

pub(crate) fn allow(a: &AllowArgs) -> anyhow::Result<ExitCode> {
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
    let v: Allowed<RecordRef> = d
        .call("Allow", d.proxy.allow(a.pending_id, a.always))?
        .reply("Allow")?;
    if !v.continued {
        return Err(
            CallError::Failed(format!("pid {} was not continued (has it exited?)", v.pid)).into(),
        );
    }
    let mut line = format!("continued pid {}", v.pid);
    if let Some(r) = &v.record {
        let _ = write!(line, " and approved as record {}", r.id);
    } else if a.always {
        line.push_str(" (the daemon returned no record: check `mcpwatch records`)");
    }
    emit(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}
