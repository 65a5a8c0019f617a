//! `mcpwatch mode`: set a host's mode.
use std::process::ExitCode;

use crate::{
    cli::{args::ModeArgs, client::Daemon, term::emit},
    reply::ModeSet,
};

pub(crate) fn mode(a: &ModeArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let v: ModeSet = d
        .call("SetMode", d.proxy.set_mode(&a.host, &a.mode))?
        .reply("SetMode")?;
    emit(&format!(
        "{}: {} -> {}\n",
        v.host,
        v.previous.as_str(),
        v.mode.as_str()
    ))?;
    Ok(ExitCode::SUCCESS)
}
