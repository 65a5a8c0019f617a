//! `mcpwatch`: the command-line client. See `mcpwatch --help`.
use clap::Parser as _;

fn main() -> std::process::ExitCode {
    mcpwatch::cli::commands::main_with(mcpwatch::cli::commands::Cli::parse())
}
