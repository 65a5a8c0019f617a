pub mod ebpf;
pub mod offsets;
