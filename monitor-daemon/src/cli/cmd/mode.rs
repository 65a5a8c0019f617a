//! `mcpwatch mode`: set a host's mode.
use std::process::ExitCode;

use crate::cli::{
    args::ModeArgs,
    client::Daemon,
    term::{emit, json_text},
};

pub(crate) fn mode(a: &ModeArgs) -> anyhow::Result<ExitCode> {
    let d = Daemon::connect()?;
    let ans = d.call("SetMode", d.proxy.set_mode(&a.host, &a.mode))?;
    let v = &ans.json;
    let host = v["host"].as_str().unwrap_or(&a.host);
    let new = v["mode"].as_str().unwrap_or(&a.mode);
    emit(&format!("{host}: {} -> {new}\n", json_text(&v["previous"])))?;
    Ok(ExitCode::SUCCESS)
}
