//! Process-tree generator for the root integration tests: does exactly one tricky
//! thing per mode with real fork/exec, so tests can assert what the kernel saw.
//!
//! treegen tricky MARKER        fork + exec /bin/echo with hostile argv
//! treegen double-fork MARKER   fork; child forks a grandchild and exits; the
//!                              grandchild (reparented) execs /bin/true MARKER
//! treegen thread-fork MARKER   a non-main thread forks; the child execs /bin/true
//! treegen setsid MARKER        child calls `setsid()` (new session/pgrp), then execs
//! treegen pidns MARKER         `unshare(CLONE_NEWPID)`; the child is pid 1 of a new
//!                              pid namespace and execs /bin/true MARKER
//! treegen memfd MARKER         fileless exec: a copy of /bin/true in a memfd,
//!                              run with fexecve (no path on any filesystem)
//! treegen all MARKER           all of the above in sequence (not memfd)
//! Prints one line per spawned process: `MODE PID` (global pid) for the tests.
use std::{ffi::CString, time::Duration};

use nix::{
    sys::wait::{waitpid, WaitStatus},
    unistd::{fork, ForkResult, Pid},
};

fn cstr(b: &[u8]) -> CString {
    CString::new(b).expect("no NUL in test argv")
}

fn exec(path: &str, argv: &[&[u8]]) -> ! {
    let argv: Vec<CString> = argv.iter().map(|a| cstr(a)).collect();
    let _ = nix::unistd::execv(&cstr(path.as_bytes()), &argv);
    // SAFETY: exiting a forked child without running destructors.
    unsafe { libc::_exit(127) }
}

fn wait(pid: Pid) -> i32 {
    match waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, c)) => c,
        Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        _ => -1,
    }
}

fn spawn(mode: &str, child: impl FnOnce()) -> i32 {
    // SAFETY: single-threaded at this point except in thread-fork, where the child
    // only calls async-signal-safe functions before exec.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            child();
            // SAFETY: the child must never return into the caller's code.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            println!("{mode} {child}");
            wait(child)
        }
    }
}

fn tricky(marker: &str) {
    let argv: [&[u8]; 7] = [
        b"echo",
        marker.as_bytes(),
        b"a b",
        b"",
        b"q\"'$`\\",
        b"nl\nx",
        b"\xff\xfe-bytes",
    ];
    spawn("tricky", || exec("/bin/echo", &argv));
}

fn double_fork(marker: &str) {
    let m = marker.to_string();
    spawn("double-fork-middle", move || {
        let parent = nix::unistd::getpid();
        // SAFETY: as above.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // Wait until the middle process is gone and we are reparented.
                for _ in 0..200 {
                    if nix::unistd::getppid() != parent {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                exec("/bin/true", &[b"true", m.as_bytes(), b"grandchild"]);
            }
            ForkResult::Parent { child } => {
                println!("double-fork-grandchild {child}");
                // SAFETY: leave without flushing twice.
                unsafe { libc::_exit(0) }
            }
        }
    });
    std::thread::sleep(Duration::from_millis(600));
}

fn thread_fork(marker: &str) {
    let m = marker.to_string();
    let t = std::thread::spawn(move || {
        spawn("thread-fork", move || {
            exec("/bin/true", &[b"true", m.as_bytes(), b"from-thread"])
        });
    });
    t.join().expect("thread");
}

fn setsid(marker: &str) {
    spawn("setsid", || {
        let _ = nix::unistd::setsid();
        exec("/bin/true", &[b"true", marker.as_bytes(), b"setsid"]);
    });
}

fn pidns(marker: &str) {
    // The unshare happens in a forked helper so this process stays in its namespace.
    spawn("pidns-helper", || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).expect("unshare(CLONE_NEWPID)");
        let code = spawn("pidns", || {
            exec("/bin/true", &[b"true", marker.as_bytes(), b"pidns"])
        });
        // SAFETY: leave the helper.
        unsafe { libc::_exit(code) }
    });
}

fn memfd(marker: &str) {
    let image = std::fs::read("/bin/true").expect("reading /bin/true");
    spawn("memfd", || {
        let name = cstr(b"fileless");
        // SAFETY: plain syscalls on our own fd and buffer.
        unsafe {
            let fd = libc::memfd_create(name.as_ptr(), 0);
            assert!(fd >= 0, "memfd_create");
            let n = libc::write(fd, image.as_ptr().cast(), image.len());
            assert_eq!(usize::try_from(n).ok(), Some(image.len()), "write");
            let argv = [cstr(b"true"), cstr(marker.as_bytes()), cstr(b"memfd")];
            let argv_ptrs = [
                argv[0].as_ptr(),
                argv[1].as_ptr(),
                argv[2].as_ptr(),
                std::ptr::null(),
            ];
            let envp: [*const libc::c_char; 1] = [std::ptr::null()];
            libc::fexecve(fd, argv_ptrs.as_ptr(), envp.as_ptr());
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, marker] = args.as_slice() else {
        eprintln!("usage: treegen tricky|double-fork|thread-fork|setsid|pidns|all MARKER");
        std::process::exit(2);
    };
    let (mode, marker) = (mode.as_str(), marker.as_str());
    match mode {
        "tricky" => tricky(marker),
        "double-fork" => double_fork(marker),
        "thread-fork" => thread_fork(marker),
        "setsid" => setsid(marker),
        "pidns" => pidns(marker),
        "memfd" => memfd(marker),
        "all" => {
            tricky(marker);
            double_fork(marker);
            thread_fork(marker);
            setsid(marker);
            pidns(marker);
        }
        other => {
            eprintln!("treegen: unknown mode {other}");
            std::process::exit(2);
        }
    }
}
