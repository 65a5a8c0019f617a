//! Rebuild the eBPF object when bpf-linker changes (it is the linker for this crate).
//! Must not fail when bpf-linker is absent: plain host builds (clippy, fmt) still run
//! this script, and only the aya-build step in monitor-daemon needs the linker.
use which::which;

fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found ({err}); run `cargo xtask setup`"),
    }
}
