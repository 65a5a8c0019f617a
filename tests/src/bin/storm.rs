//! `storm`: an exec storm for the benchmark (`cargo xtask bench`).
//!
//! `storm N [--method spawn|fork] [--prog PATH]` starts `PATH` (default `/bin/true`,
//! no arguments) `N` times, one after the other, as fast as it can, waiting for each
//! child, and prints one JSON line on stdout:
//! `{"execs":N,"secs":S,"method":"...","failed":F}`.
//!
//! Both methods are a real process creation plus a real exec: the kernel runs
//! `sched_process_fork` for the new task, `sched_process_exec` for `/bin/true` and
//! `sched_process_exit`, i.e. every hook the daemon has on that path.
//! - `spawn` (default): `std::process::Command::status`. std uses glibc's
//!   `posix_spawn`, i.e. `clone3(CLONE_VM|CLONE_VFORK)` + `execve` + `waitpid`; the
//!   child borrows the parent's memory until it execs, so no page tables are copied.
//! - `fork`: `fork(2)` + `execv(2)` + `waitpid(2)` through libc (nothing allocated
//!   between fork and exec).
//!
//! `spawn` is the default because it has the lower overhead. On the 2-core VM
//! (2026-11-27, two runs of 10 alternating pairs × 4000 execs) the medians were
//! 877/887 µs per exec for `spawn` against 915/922 µs for `fork`, about 4 % less
//! (a run on a loaded machine was too noisy to tell them apart). A cheaper baseline
//! also makes the daemon's relative cost easier to see.
//!
//! `secs` covers only the loop (not start-up or printing), so running the storm
//! under `mcpwatch run -- storm N` measures the same thing as running it directly.
//! `failed` counts children that did not exit 0 (e.g. killed by an enforcing daemon).

use std::ffi::CString;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Fork,
    Spawn,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Fork => "libc fork+execv",
            Method::Spawn => "std::process::Command (posix_spawn: clone3 CLONE_VFORK+execve)",
        }
    }
}

struct Args {
    execs: u64,
    method: Method,
    prog: String,
}

const USAGE: &str = "usage: storm N [--method spawn|fork] [--prog PATH]";

fn parse_args() -> Result<Args, String> {
    let mut execs = None;
    let mut method = Method::Spawn;
    let mut prog = "/bin/true".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--method" => {
                method = match it.next().as_deref() {
                    Some("fork") => Method::Fork,
                    Some("spawn") => Method::Spawn,
                    other => return Err(format!("bad --method {other:?}; {USAGE}")),
                }
            }
            "--prog" => {
                prog = it
                    .next()
                    .ok_or_else(|| format!("--prog needs a value; {USAGE}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            n if execs.is_none() => {
                execs = Some(
                    n.parse::<u64>()
                        .map_err(|e| format!("bad N {n:?}: {e}; {USAGE}"))?,
                );
            }
            other => return Err(format!("unexpected argument {other:?}; {USAGE}")),
        }
    }
    Ok(Args {
        execs: execs.ok_or_else(|| USAGE.to_owned())?,
        method,
        prog,
    })
}

/// Runs the fork+execv loop; returns the number of children that did not exit 0.
fn storm_fork(prog: &str, n: u64) -> Result<u64, String> {
    let path = CString::new(prog).map_err(|e| format!("bad path: {e}"))?;
    let argv: [*const libc::c_char; 2] = [path.as_ptr(), std::ptr::null()];
    let mut failed = 0;
    for _ in 0..n {
        // SAFETY: the child only calls async-signal-safe functions (execv, _exit) on
        // memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; argv is NULL-terminated and outlives the call.
            unsafe {
                libc::execv(path.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        loop {
            // SAFETY: plain waitpid on our own child.
            let r = unsafe { libc::waitpid(pid, &raw mut status, 0) };
            if r == pid {
                break;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("waitpid: {err}"));
            }
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            failed += 1;
        }
    }
    Ok(failed)
}

/// Runs the `std::process::Command` loop; returns the number of failed children.
fn storm_spawn(prog: &str, n: u64) -> Result<u64, String> {
    let mut failed = 0;
    for _ in 0..n {
        let status = Command::new(prog)
            .status()
            .map_err(|e| format!("spawn {prog}: {e}"))?;
        if !status.success() {
            failed += 1;
        }
    }
    Ok(failed)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("storm: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let result = match args.method {
        Method::Fork => storm_fork(&args.prog, args.execs),
        Method::Spawn => storm_spawn(&args.prog, args.execs),
    };
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(failed) => {
            println!(
                "{{\"execs\":{},\"secs\":{secs:.6},\"method\":\"{}\",\"failed\":{failed}}}",
                args.execs,
                args.method.name()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("storm: {e}");
            ExitCode::FAILURE
        }
    }
}
