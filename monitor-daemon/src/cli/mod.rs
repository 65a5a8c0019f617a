//! The `mcpwatch` command line. The CLI calls the library directly (reading the
//! log) or the daemon over D-Bus (run, status, and the consent commands: records,
//! approve, revoke, pending, allow, deny, mode).
//!
//! Exit status of the consent commands: 0 done; 1 the daemon is not reachable, the
//! call failed, or nothing was approved (answered no, or no terminal to ask on);
//! 2 usage error; 4 the daemon refused (D-Bus `AccessDenied`: called from inside an
//! AI agent's process tree, another user's launch, a mode locked by managed policy).
//!
//! Layout: [`args`] the clap definitions, [`cmd`] one module per command,
//! [`client`] the D-Bus client, [`term`] terminal helpers, and the pure
//! [`filter`], [`render`] and [`review`] the commands draw with.
pub mod args;
pub mod client;
pub mod cmd;
pub mod filter;
pub mod render;
pub mod review;
pub mod term;

use std::process::ExitCode;

pub use args::{Cli, Command};
use client::CallError;

pub fn main_with(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(&a),
        Command::Status(a) => cmd::status::status(&a),
        Command::Hosts(a) => cmd::hosts::hosts(&a),
        Command::Log(a) => cmd::log::log(&a),
        Command::Tree(a) => cmd::log::log(&a.into()),
        Command::Audit(a) => cmd::audit::audit(&a),
        Command::Records(a) => cmd::records::records(&a),
        Command::Scan(a) => cmd::scan::scan(&a),
        Command::Approve(a) => cmd::approve::approve(&a),
        Command::Revoke(a) => cmd::revoke::revoke(&a),
        Command::Pending(a) => cmd::pending::pending(&a),
        Command::Allow(a) => cmd::allow::allow(&a),
        Command::Deny(a) => cmd::deny::deny(&a),
        Command::Mode(a) => cmd::mode::mode(&a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if let Some(call) = err.downcast_ref::<CallError>() {
                call.report()
            } else {
                eprintln!("mcpwatch: error: {err:#}");
                ExitCode::from(1)
            }
        }
    }
}
