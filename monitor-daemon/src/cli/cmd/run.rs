//! `mcpwatch run`: track this process, then exec the command in place.
use std::{os::unix::process::CommandExt as _, process::ExitCode, time::Duration};

use anyhow::{bail, Context as _};

use crate::cli::{
    args::RunArgs,
    client::{daemon_down_hint, proxy, runtime},
};

#[expect(
    clippy::unnecessary_debug_formatting,
    reason = "the program is an arbitrary OsString: Debug quotes and escapes it (spaces, control and non-UTF-8 bytes)"
)]
pub(crate) fn run(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let pid = std::process::id();
    let tracked: anyhow::Result<String> = rt.block_on(async {
        let p = proxy().await?;
        let notice = tokio::time::timeout(Duration::from_secs(10), p.track(pid, &a.host))
            .await
            .context("the daemon did not answer Track within 10 s")?
            .context("Track failed")?;
        Ok(notice)
    });
    match tracked {
        Ok(notice) if !notice.is_empty() => eprintln!("mcpwatch: note: {notice}"),
        Ok(_) => {}
        Err(err) => {
            // Never run the command untracked: that would defeat the point.
            bail!("not running {:?}: {}", a.command[0], daemon_down_hint(&err));
        }
    }
    drop(rt);
    let err = std::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .exec();
    bail!("cannot execute {:?}: {err}", a.command[0])
}
