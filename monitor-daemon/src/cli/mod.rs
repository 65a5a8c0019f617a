pub mod commands;
pub mod filter;
pub mod render;
pub mod review;
pub mod scan;
