pub mod ebpf;
pub mod keeper;
pub mod offsets;
