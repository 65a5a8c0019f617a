pub mod commands;
pub mod render;
