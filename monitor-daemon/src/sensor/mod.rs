pub mod ebpf;
pub mod features;
pub mod keeper;
pub mod offsets;
