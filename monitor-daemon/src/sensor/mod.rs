pub mod ebpf;
pub mod features;
pub mod keeper;
pub mod kernel;
pub mod offsets;
