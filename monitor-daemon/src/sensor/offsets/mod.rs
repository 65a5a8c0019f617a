//! Kernel layout facts for the eBPF programs, resolved at startup.
//!
//! aya-ebpf has no CO-RE field relocations: a Rust eBPF program that reads
//! `task->mm` must be told where `mm` sits in `struct task_struct` on *this*
//! kernel (byte 1136 on 6.18, 2272 on 6.1), and where `child_pid` sits in the
//! `sched_process_fork` record (20 on 6.18, 44 on 6.1). A hard-coded offset
//! does not fail loudly on another kernel, it silently reads the wrong bytes.
//! So this module reads struct offsets from the kernel's own BTF
//! (`/sys/kernel/btf/vmlinux`) and tracepoint record offsets from tracefs
//! `format` files, checks that every field has the shape the programs expect,
//! and returns a [`KernelConfig`] that the sensor hands to the programs as the
//! read-only global `CONFIG`.
//!
//! `tracefs` reads the tracepoint `format` files, `structs` the struct offsets
//! from BTF; this file holds what both use (the errors, the field shapes) and
//! [`resolve_from`], which runs them in turn.

use std::{
    fmt, io,
    path::{Path, PathBuf},
};

use monitor_common::KernelConfig;

mod structs;
mod tracefs;

use structs::{fill_struct_offsets, load_btf};
use tracefs::fill_tracepoints;
pub use tracefs::{parse_format, TracepointField, TracepointFormat};

/// Kernel BTF of the running kernel (needs `CONFIG_DEBUG_INFO_BTF=y`).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where tracefs keeps the event directories: its own mount point (4.1+), or
/// the older path under debugfs (which automounts tracefs there).
const TRACEFS_EVENTS_DIRS: [&str; 2] = [
    "/sys/kernel/tracing/events",
    "/sys/kernel/debug/tracing/events",
];

/// Why the kernel layout could not be resolved. Every message is one line that
/// says what is wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error(
        "kernel BTF {} not found: mcpwatch needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        path.display()
    )]
    BtfMissing { path: PathBuf },

    #[error("kernel BTF: cannot load {}", path.display())]
    Btf {
        path: PathBuf,
        #[source]
        source: btf_rs::Error,
    },

    #[error("kernel BTF: cannot resolve the types of struct {strukt} (corrupt BTF?)")]
    BtfLookup {
        strukt: &'static str,
        #[source]
        source: btf_rs::Error,
    },

    #[error("kernel BTF: no struct {strukt} (this kernel is not supported)")]
    MissingStruct { strukt: &'static str },

    #[error("kernel BTF: struct {strukt} has no field `{field}` (this kernel is not supported)")]
    MissingField {
        strukt: &'static str,
        field: &'static str,
    },

    #[error(
        "kernel BTF: struct {strukt} field `{field}` is a bitfield, which the eBPF programs \
         cannot read (this kernel is not supported)"
    )]
    Bitfield {
        strukt: &'static str,
        field: &'static str,
    },

    #[error(
        "kernel BTF: struct {strukt} field `{field}` is {found}, expected {expected} \
         (this kernel is not supported)"
    )]
    FieldType {
        strukt: &'static str,
        field: &'static str,
        expected: FieldKind,
        found: String,
    },

    #[error(
        "kernel BTF: struct {strukt} field `{field}` (bytes {offset}..{end}) lies outside the \
         struct's {struct_size} bytes (corrupt BTF?)"
    )]
    OutOfRange {
        strukt: &'static str,
        field: &'static str,
        offset: u64,
        end: u64,
        struct_size: u64,
    },

    #[error(
        "kernel BTF: {count} different structs named {strukt} disagree on `{field}` \
         (this kernel is not supported)"
    )]
    AmbiguousStruct {
        strukt: &'static str,
        field: &'static str,
        count: usize,
    },

    #[error(
        "tracefs is not mounted (no {} or {}): mount it with \
         `mount -t tracefs tracefs /sys/kernel/tracing`",
        TRACEFS_EVENTS_DIRS[0],
        TRACEFS_EVENTS_DIRS[1]
    )]
    NoTracefs,

    #[error(
        "cannot read tracepoint format {}: needs root, a mounted tracefs and a kernel with \
         the sched tracepoints",
        path.display()
    )]
    TracefsRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("tracepoint format {}, line {line}: {reason}", path.display())]
    Format {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },

    #[error("tracepoint format {} lists no fields (is it a tracefs `format` file?)", path.display())]
    EmptyFormat { path: PathBuf },

    #[error("tracepoint {tracepoint} has no field `{field}` (this kernel is not supported)")]
    MissingTracepointField {
        tracepoint: &'static str,
        field: &'static str,
    },

    #[error(
        "tracepoint {tracepoint} field `{field}` is {size} bytes, expected {expected} \
         (this kernel is not supported)"
    )]
    TracepointFieldSize {
        tracepoint: &'static str,
        field: &'static str,
        size: u32,
        expected: u32,
    },

    #[error(
        "tracepoint {tracepoint} field `{field}` is `{c_type}`, expected a `__data_loc char[]` \
         string (this kernel is not supported)"
    )]
    TracepointFieldNotDataLoc {
        tracepoint: &'static str,
        field: &'static str,
        c_type: String,
    },
}

/// The shape a struct field must have for the eBPF programs to read it the way
/// they do (a pointer they follow, an integer of a given width, a struct they
/// add further offsets to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A pointer (read as 8 bytes and followed).
    Pointer,
    /// An integer or enum of exactly this many bytes.
    Int(u32),
    /// An integer of 4 or 8 bytes of which the programs read the low 4 (only
    /// sound because every target of these programs is little endian).
    IntLow32,
    /// A struct of this name embedded by value (not a pointer to it).
    Struct(&'static str),
    /// An array (possibly a flexible one) of structs of this name.
    ArrayOf(&'static str),
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pointer => f.write_str("a pointer"),
            Self::Int(n) => write!(f, "{} {n}-byte integer", if *n == 8 { "an" } else { "a" }),
            Self::IntLow32 => f.write_str("a 4- or 8-byte integer"),
            Self::Struct(name) => write!(f, "an embedded struct {name}"),
            Self::ArrayOf(name) => write!(f, "an array of struct {name}"),
        }
    }
}

/// Resolves every [`KernelConfig`] field on the running kernel.
pub fn resolve() -> Result<KernelConfig, OffsetsError> {
    let events = tracefs_events_dir().ok_or(OffsetsError::NoTracefs)?;
    resolve_from(Path::new(VMLINUX_BTF), &events)
}

/// Same as [`resolve`], from a given BTF file and tracefs `events` directory
/// (the one holding `sched/sched_process_exec/format`).
///
/// The result has `ready = 1` and `host_paths_enabled = 0`: the sensor turns
/// the latter on when it has host paths to match.
pub fn resolve_from(
    btf_path: &Path,
    tracefs_events_dir: &Path,
) -> Result<KernelConfig, OffsetsError> {
    let mut cfg = KernelConfig::default();
    // Tracefs first: it is cheap, and a missing tracefs is the likelier
    // problem, better reported before the BTF work.
    fill_tracepoints(tracefs_events_dir, &mut cfg)?;
    let btf = load_btf(btf_path)?;
    fill_struct_offsets(&btf, &mut cfg)?;
    cfg.ready = 1;
    cfg.host_paths_enabled = 0;
    tracing::debug!(?cfg, "resolved kernel layout");
    Ok(cfg)
}

/// The tracefs `events` directory, if tracefs is mounted at either of its usual
/// places.
pub fn tracefs_events_dir() -> Option<PathBuf> {
    TRACEFS_EVENTS_DIRS
        .iter()
        .map(PathBuf::from)
        // An unmounted /sys/kernel/tracing is an empty directory: look for
        // `events` inside it rather than for the mount point.
        .find(|dir| dir.is_dir())
}

#[cfg(test)]
mod tests;
