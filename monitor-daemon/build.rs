//! Builds the eBPF object (monitor-ebpf, bin `monitor`) with aya-build and the nightly
//! toolchain, so `cargo build` of the daemon embeds the matching kernel programs.
//! With `AYA_BUILD_SKIP=1` (clippy, docs, unit tests on machines without bpf-linker)
//! an empty placeholder is written instead; the daemon then refuses to load it with a
//! clear message rather than failing to compile.
use std::{env, fs, path::PathBuf};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let object = out_dir.join("monitor");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if skip {
        fs::write(&object, [])
            .with_context(|| format!("writing placeholder {}", object.display()))?;
        return Ok(());
    }
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let root = PathBuf::from(&manifest_dir).join("..").join("monitor-ebpf");
    let root = root.to_str().context("non-UTF-8 path to monitor-ebpf")?;
    // The programs share their wire types with the daemon: a change there must
    // rebuild the object too, or the daemon embeds programs of another layout.
    println!("cargo:rerun-if-changed={manifest_dir}/../monitor-common/src");
    aya_build::build_ebpf(
        [Package {
            name: "monitor-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context(
        "building the eBPF programs (run `cargo xtask setup` if bpf-linker or rust-src is missing)",
    )
}
