//! Small system helpers, one of each: atomic file replacement, the SHA-256 file
//! hasher and its cache, the clocks, `/proc/PID/stat`, hex. They depend on nothing
//! else in the crate but `model`, so every layer above may use them.

pub mod clock;
pub mod fs;
pub mod hash;
pub mod hex;
pub mod procfs;
