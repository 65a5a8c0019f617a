//! A stand-in for Volta's `volta-shim`, for the host-recognition tests: run through
//! a link named like a tool (`~/.volta/bin/claude` → `volta-shim`), it *spawns*
//! `$FAKESHIM_TOOLS/<that name>` with its arguments as a child and waits, exiting
//! with the child's status, as volta-shim spawns the tool's node or binary.
use std::{path::Path, process::Command};

fn main() {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0).file_name().unwrap_or_default().to_owned();
    let tools = std::env::var_os("FAKESHIM_TOOLS").unwrap_or_default();
    let status = Command::new(Path::new(&tools).join(name))
        .args(args)
        .status()
        .unwrap_or_else(|e| {
            eprintln!("fakeshim: {e}");
            std::process::exit(127)
        });
    std::process::exit(status.code().unwrap_or(128));
}
