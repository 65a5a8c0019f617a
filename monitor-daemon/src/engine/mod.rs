//! The engine: the task that owns all mutable state (`task`), the state itself
//! (`core`: events in, the log, host ids), and what it does with it: the kernel's
//! verdicts and held launches (`decide`), approvals (`approvals`), records and
//! modes (`records`), API callers (`callers`), consent compiled for the kernel
//! (`kernel_sync`), config drift (`configs`), the status (`status`) and what the
//! API handlers share (`shared`). It depends on neither the daemon's start-up
//! nor the D-Bus server. Its seams for tests: an in-memory kernel (`fake`) and a
//! `Core` built in a temporary directory, so every consent rule is unit-tested
//! without root.
pub mod approvals;
pub mod callers;
pub mod configs;
pub mod core;
pub mod decide;
#[cfg(test)]
pub mod fake;
pub mod kernel_sync;
pub mod records;
pub mod shared;
pub mod status;
pub mod task;
#[cfg(test)]
mod tests;
