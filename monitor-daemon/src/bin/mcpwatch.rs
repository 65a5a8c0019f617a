//! `mcpwatch`: the command-line client. See `mcpwatch --help`.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    // A reader that goes away (`mcpwatch status | head`) ends us quietly, as it
    // does any Unix filter, instead of a panic in the middle of a print.
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    mcpwatch::cli::main_with(mcpwatch::cli::Cli::parse())
}
