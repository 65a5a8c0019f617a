//! `mcpwatch audit verify`: check the event log's hash chain.
use std::process::ExitCode;

use anyhow::Context as _;

use crate::{
    cli::args::{AuditAction, AuditArgs},
    config::Config,
};

pub(crate) fn audit(a: &AuditArgs) -> anyhow::Result<ExitCode> {
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
