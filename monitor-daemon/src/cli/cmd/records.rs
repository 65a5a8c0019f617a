//! `mcpwatch records`: the consent records.
use std::process::ExitCode;

use serde_json::Value;

use crate::cli::{
    args::RecordsArgs,
    client::Daemon,
    review,
    term::{emit, out_width},
};

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

pub(crate) fn records(a: &RecordsArgs) -> anyhow::Result<ExitCode> {
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
