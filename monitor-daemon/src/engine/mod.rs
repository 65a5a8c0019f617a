//! The engine: the task that owns all mutable state (`task`), and its seams for
//! tests: an in-memory kernel (`fake`) and a `Core` built in a temporary directory,
//! so every consent rule is unit-tested without root.
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
