pub mod commands;
pub mod render;
pub mod review;
