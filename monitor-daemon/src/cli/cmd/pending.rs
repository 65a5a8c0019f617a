//! `mcpwatch pending`: the launches held in `ask` mode.
use std::process::ExitCode;

use crate::cli::{
    args::PendingArgs,
    client::Daemon,
    review,
    term::{emit, out_width},
};

pub(crate) fn pending(a: &PendingArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let list = d.call("Pending", d.proxy.pending())?;
    if a.json {
        emit(&format!("{}\n", review::pretty_json(&list.raw)))?;
    } else {
        emit(&review::render_pending(&list.json, out_width()))?;
    }
    Ok(ExitCode::SUCCESS)
}
