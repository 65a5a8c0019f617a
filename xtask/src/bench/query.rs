//! `cargo xtask bench --query`: `mcpwatch log` over a large synthetic audit log.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Result};

use super::guards::TempDir;
use crate::util::{bin_dir, build_bins, say};

/// The investigator's query on a large log: `mcpwatch log` over `n` synthetic
/// events (a realistic mix: forks, execs with argv, exits, some launches), with a
/// filter that matches a few of them, timed with its peak RSS (from wait4), next
/// to `grep -c` over the same file as the baseline.
#[allow(clippy::cast_precision_loss)] // sizes far below 2^52
pub fn query_bench(n: u64) -> Result<()> {
    build_bins(true)?;
    let bins = bin_dir(true)?;
    let tmp = TempDir::new()?;
    let log = tmp.0.join("events.jsonl");
    say!("bench: writing a synthetic audit log of {n} events");
    {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::new(fs::File::create(&log)?);
        for id in 1..=n {
            let pid = 1000 + id % 30_000;
            let line = match id % 10 {
                0 => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"launch\",\"pid\":{pid},\"host\":{{\"name\":\"claude-code\",\"pid\":900}},\"argv\":[\"npx\",\"-y\",\"@modelcontextprotocol/server-filesystem\",\"/home/u/p{}\"],\"verdict\":{{\"decision\":\"{}\",\"mode\":\"enforce\"}}}}",
                    id % 977,
                    if id % 1000 == 0 { "killed" } else { "allowed" }
                ),
                1..=3 => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"fork\",\"pid\":{pid},\"child_pid\":{}}}",
                    pid + 1
                ),
                4..=6 => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"exec\",\"pid\":{pid},\"host\":{{\"name\":\"claude-code\",\"pid\":900}},\"session\":{pid},\"argv\":[\"node\",\"/usr/lib/node_modules/x/index.js\",\"--stdio\"],\"cwd\":\"/home/u\"}}"
                ),
                _ => format!(
                    "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:00:00.000000000Z\",\"kind\":\"exit\",\"pid\":{pid},\"exit\":{{\"code\":0,\"status\":0}}}}"
                ),
            };
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    let size = fs::metadata(&log)?.len();
    let run = |cmd: &mut Command| -> Result<(f64, u64, String)> {
        let start = Instant::now();
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let out = child.wait_with_output_rusage(pid)?;
        Ok((start.elapsed().as_secs_f64(), out.1, out.0))
    };
    let mut query = Command::new(bins.join("mcpwatch"));
    query
        .args([
            "log",
            "--json",
            "--kind",
            "launch",
            "--verdict",
            "killed",
            "--file",
        ])
        .arg(&log);
    let (q_secs, q_rss, q_out) = run(&mut query)?;
    let mut grep = Command::new("grep");
    grep.args(["-c", "\"decision\":\"killed\""]).arg(&log);
    let (g_secs, g_rss, g_out) = run(&mut grep)?;
    let matched = q_out.lines().count();
    println!(
        "\nquery over {n} events ({:.0} MiB): `mcpwatch log --json --kind launch --verdict killed`",
        size as f64 / f64::from(1u32 << 20)
    );
    println!(
        "  mcpwatch log   {q_secs:>7.2} s  peak RSS {:>6.1} MiB  {matched} events matched",
        q_rss as f64 / 1024.0
    );
    println!(
        "  grep -c        {g_secs:>7.2} s  peak RSS {:>6.1} MiB  {} lines matched (baseline: no parsing)",
        g_rss as f64 / 1024.0,
        g_out.trim()
    );
    println!("  ratio mcpwatch/grep: {:.1}x", q_secs / g_secs.max(1e-9));
    Ok(())
}

/// Wait for a child and return its stdout and peak RSS (KiB, from wait4).
trait WaitRusage {
    fn wait_with_output_rusage(self, pid: i32) -> Result<(String, u64)>;
}

impl WaitRusage for Child {
    fn wait_with_output_rusage(mut self, pid: i32) -> Result<(String, u64)> {
        use std::io::Read as _;
        let mut out = String::new();
        if let Some(mut so) = self.stdout.take() {
            so.read_to_string(&mut out)?;
        }
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid out-parameter for wait4.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child with valid out-pointers.
        let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut ru) };
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        Ok((out, u64::try_from(ru.ru_maxrss).unwrap_or(0)))
    }
}
