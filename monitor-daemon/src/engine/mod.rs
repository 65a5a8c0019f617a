//! The engine's seams for tests: an in-memory kernel (`fake`) and a `Core` built
//! in a temporary directory, so every consent rule is unit-tested without root.
#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests;
