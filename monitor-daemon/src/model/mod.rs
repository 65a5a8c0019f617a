//! The bottom layer: data types shared across the daemon, the API and the CLI.
//! Nothing here does I/O or depends on another module of the crate.

mod config_change;
mod mode;
pub mod text;

pub use config_change::ConfigChange;
pub use mode::Mode;
