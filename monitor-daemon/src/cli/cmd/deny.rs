//! `mcpwatch deny`: kill a held launch.
use std::process::ExitCode;

use crate::cli::{
    args::DenyArgs,
    client::Daemon,
    term::{emit, json_text},
};

pub(crate) fn deny(a: &DenyArgs) -> anyhow::Result<ExitCode> {
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
