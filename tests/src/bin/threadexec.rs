//! `threadexec`: a host process whose threads do what the exit hook must not mistake
//! for the process dying (kernels without `sched_process_exit.group_dead`, 6.1).
//!
//! - `threadexec thread-exec PROG ARGS…`: a second thread execs `PROG`; the kernel
//!   makes it the leader and the old leader exits first (`de_thread`). The process
//!   lives on with the new image and must still be tracked: an unapproved `PROG` is
//!   killed in enforce mode (exit status 137).
//! - `threadexec leader-exit PROG ARGS…`: the leader thread calls `SYS_exit` (that
//!   thread only); a second thread then runs `PROG` as a child and prints
//!   `child_rc=N` (128 + signal when killed) before the process exits.
use std::ffi::CString;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, ExitCode};
use std::time::Duration;

fn cstrings(args: &[String]) -> Vec<CString> {
    args.iter()
        .map(|a| CString::new(a.as_bytes()).expect("no NUL in arguments"))
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), true) = (args.first(), args.len() >= 2) else {
        eprintln!("usage: threadexec thread-exec|leader-exit PROG [ARGS...]");
        return ExitCode::from(2);
    };
    let prog = args[1..].to_vec();
    match mode.as_str() {
        "thread-exec" => {
            let t = std::thread::spawn(move || {
                let c = cstrings(&prog);
                let _ = nix::unistd::execv(&c[0], &c);
                eprintln!("threadexec: execv {} failed", prog[0]);
                std::process::exit(127);
            });
            let _ = t.join();
            ExitCode::from(127)
        }
        "leader-exit" => {
            std::thread::spawn(move || {
                // Let the leader be gone first.
                std::thread::sleep(Duration::from_millis(300));
                let st = Command::new(&prog[0]).args(&prog[1..]).status();
                let rc = match st {
                    Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                    Err(_) => 127,
                };
                println!("child_rc={rc}");
                std::process::exit(0);
            });
            // SAFETY: ends this thread only; the other one carries the process.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("SYS_exit returned")
        }
        other => {
            eprintln!("threadexec: unknown mode {other:?}");
            ExitCode::from(2)
        }
    }
}
