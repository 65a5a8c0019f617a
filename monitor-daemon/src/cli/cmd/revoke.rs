//! `mcpwatch revoke`: take a consent record back.
use std::process::ExitCode;

use crate::cli::{args::RevokeArgs, client::Daemon, review, term::emit};

pub(crate) fn revoke(a: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let rec = d.call("Revoke", d.proxy.revoke(a.record_id))?;
    emit(&format!(
        "revoked record {}: {}\n",
        a.record_id,
        review::command_line(&rec.json)
    ))?;
    Ok(ExitCode::SUCCESS)
}
