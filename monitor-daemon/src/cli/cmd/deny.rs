//! `mcpwatch deny`: kill a held launch.
use std::process::ExitCode;

use crate::{
    cli::{args::DenyArgs, client::Daemon, term::emit},
    reply::Denied,
};

pub(crate) fn deny(a: &DenyArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let ans: Denied = d.call("Deny", d.proxy.deny(a.pending_id))?.reply("Deny")?;
    let pid = ans.pid;
    if ans.killed {
        emit(&format!("killed pid {pid}\n"))?;
    } else {
        emit(&format!(
            "pid {pid} was not killed: it had already exited\n"
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
