//! One module per `mcpwatch` subcommand (`tree` is `log` drawn as a tree). Each
//! depends on the clap definitions ([`crate::cli::args`]), the daemon client
//! ([`crate::cli::client`]) and the terminal helpers ([`crate::cli::term`]), never
//! on another command, except `approve --from-config`, which is `scan`'s, and
//! `hosts`, which lists the config files `scan` discovers.
pub mod allow;
pub mod approve;
pub mod audit;
pub mod deny;
pub mod hosts;
pub mod log;
pub mod mode;
pub mod pending;
pub mod records;
pub mod revoke;
pub mod run;
pub mod scan;
pub mod status;
