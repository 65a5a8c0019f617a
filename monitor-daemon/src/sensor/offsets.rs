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

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    fmt, fs, io,
    path::{Path, PathBuf},
};

use btf_rs::{Backend, Btf, BtfType, Struct, Type};
use monitor_common::KernelConfig;

/// Kernel BTF of the running kernel (needs `CONFIG_DEBUG_INFO_BTF=y`).
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where tracefs keeps the event directories: its own mount point (4.1+), or
/// the older path under debugfs (which automounts tracefs there).
const TRACEFS_EVENTS_DIRS: [&str; 2] = [
    "/sys/kernel/tracing/events",
    "/sys/kernel/debug/tracing/events",
];

/// Stand-in path in [`OffsetsError::Format`] when [`parse_format`] was given
/// text rather than a file.
const FORMAT_TEXT: &str = "<format text>";

/// Tracepoints whose records the programs read.
const TP_EXEC: &str = "sched/sched_process_exec";
const TP_FORK: &str = "sched/sched_process_fork";
const TP_EXIT: &str = "sched/sched_process_exit";

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

/// One `field:` line of a tracefs `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C type as tracefs prints it, array suffix included (`char[16]`,
    /// `__data_loc char[]`).
    pub c_type: String,
    /// Byte offset in the record, counted from the start of the common header
    /// (which is where a BPF tracepoint program's context points).
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// A `__data_loc` field: the 4-byte word at `offset` holds the payload's
    /// offset from the record start in its low 16 bits and its length in the
    /// high 16 bits.
    pub is_data_loc: bool,
}

/// A parsed tracefs `format` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TracepointFormat {
    /// The `name:` line (e.g. `sched_process_exec`), if present.
    pub name: Option<String>,
    /// The `ID:` line, if present.
    pub id: Option<u32>,
    /// Common fields first, in file order.
    pub fields: Vec<TracepointField>,
}

impl TracepointFormat {
    pub fn field(&self, name: &str) -> Option<&TracepointField> {
        self.fields.iter().find(|f| f.name == name)
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

fn load_btf(path: &Path) -> Result<Btf, OffsetsError> {
    let missing_or = |source| match source {
        btf_rs::Error::IO(ref e) if e.kind() == io::ErrorKind::NotFound => {
            OffsetsError::BtfMissing {
                path: path.to_owned(),
            }
        }
        source => OffsetsError::Btf {
            path: path.to_owned(),
            source,
        },
    };
    // Measured on 6.18 (release build): the default cache backend parses all
    // 5.5 MB up front, ~0.3-0.4 s and a 41 MB peak RSS of which ~14 MB stays
    // with the allocator after the Btf is dropped; the mmap backend resolves
    // our ~16 structs in ~50 ms with a 3 MB peak. But /sys/kernel/btf/vmlinux
    // can only be mmapped since Lorenz Bauer's 2025 patch "btf: allow mmap of
    // vmlinux btf" (btf_sysfs_vmlinux_mmap); older kernels (6.1) fail the
    // mmap, so fall back to reading the file on any error but "not found".
    match Btf::from_file_with_backend(path, Backend::Mmap) {
        Ok(btf) => Ok(btf),
        Err(btf_rs::Error::IO(e)) if e.kind() == io::ErrorKind::NotFound => {
            Err(missing_or(btf_rs::Error::IO(e)))
        }
        Err(e) => {
            tracing::debug!(error = %e, path = %path.display(), "cannot mmap kernel BTF, reading it");
            Btf::from_file(path).map_err(missing_or)
        }
    }
}

/// Kernel BTF with struct lookups by name memoized: with the mmap backend
/// each lookup scans every type name (~2 ms), and `task_struct` alone is asked
/// for seven times.
struct Types<'a> {
    btf: &'a Btf,
    by_name: RefCell<HashMap<&'static str, Vec<Struct>>>,
}

impl<'a> Types<'a> {
    fn new(btf: &'a Btf) -> Self {
        Self {
            btf,
            by_name: RefCell::default(),
        }
    }

    /// All structs (not unions, not forward declarations) named `strukt`.
    fn structs_named(&self, strukt: &'static str) -> Result<Vec<Struct>, OffsetsError> {
        if let Some(structs) = self.by_name.borrow().get(strukt) {
            return Ok(structs.clone());
        }
        let structs: Vec<Struct> = self
            .btf
            .resolve_types_by_name(strukt)
            .map_err(|source| OffsetsError::BtfLookup { strukt, source })?
            .into_iter()
            .filter_map(|ty| match ty {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .collect();
        if structs.is_empty() {
            return Err(OffsetsError::MissingStruct { strukt });
        }
        self.by_name.borrow_mut().insert(strukt, structs.clone());
        Ok(structs)
    }
}

// ---------------------------------------------------------------------------
// Struct offsets from BTF

fn fill_struct_offsets(btf: &Btf, cfg: &mut KernelConfig) -> Result<(), OffsetsError> {
    use FieldKind::{ArrayOf, Int, Pointer, Struct};
    let types = Types::new(btf);
    let off = |strukt, field, kind| field_offset(&types, strukt, field, kind);

    // pid_t is an int; exit_code an int holding the wait status.
    cfg.task_mm = off("task_struct", "mm", Pointer)?;
    cfg.task_real_parent = off("task_struct", "real_parent", Pointer)?;
    cfg.task_tgid = off("task_struct", "tgid", Int(4))?;
    cfg.task_pid = off("task_struct", "pid", Int(4))?;
    cfg.task_exit_code = off("task_struct", "exit_code", Int(4))?;
    cfg.task_fs = off("task_struct", "fs", Pointer)?;
    cfg.task_thread_pid = off("task_struct", "thread_pid", Pointer)?;
    // unsigned int ptrace: PT_PTRACED and friends.
    cfg.task_ptrace = off("task_struct", "ptrace", Int(4))?;

    // mm_struct's fields sit in an anonymous `struct { ... }
    // __randomize_layout` (followed by the flexible cpu_bitmap[]), which on
    // 6.18 nests further anonymous structs; field_offset looks through any
    // depth and adds the offsets up.
    cfg.mm_arg_start = off("mm_struct", "arg_start", Int(8))?;
    cfg.mm_arg_end = off("mm_struct", "arg_end", Int(8))?;
    cfg.mm_env_start = off("mm_struct", "env_start", Int(8))?;
    cfg.mm_env_end = off("mm_struct", "env_end", Int(8))?;
    cfg.mm_exe_file = off("mm_struct", "exe_file", Pointer)?;

    cfg.file_f_inode = off("file", "f_inode", Pointer)?;
    cfg.file_f_path = off("file", "f_path", Struct("path"))?;
    cfg.path_mnt = off("path", "mnt", Pointer)?;
    cfg.path_dentry = off("path", "dentry", Pointer)?;
    cfg.inode_i_ino = off("inode", "i_ino", Int(8))?;
    cfg.inode_i_sb = off("inode", "i_sb", Pointer)?;
    // dev_t is a u32 in the kernel's own MKDEV encoding (major << 20 | minor).
    cfg.sb_s_dev = off("super_block", "s_dev", Int(4))?;
    (cfg.inode_ctime_sec, cfg.inode_ctime_nsec) = inode_ctime(&types)?;

    cfg.fs_pwd = off("fs_struct", "pwd", Struct("path"))?;
    cfg.dentry_d_name = off("dentry", "d_name", Struct("qstr"))?;
    cfg.dentry_d_parent = off("dentry", "d_parent", Pointer)?;
    // qstr wraps hash/len in an anonymous union+struct; `name` is direct.
    cfg.qstr_name = off("qstr", "name", Pointer)?;

    // struct mount (fs/mount.h) embeds the public struct vfsmount.
    cfg.mount_mnt = off("mount", "mnt", Struct("vfsmount"))?;
    cfg.mount_mnt_parent = off("mount", "mnt_parent", Pointer)?;
    cfg.mount_mnt_mountpoint = off("mount", "mnt_mountpoint", Pointer)?;
    cfg.vfsmount_mnt_root = off("vfsmount", "mnt_root", Pointer)?;

    cfg.pid_level = off("pid", "level", Int(4))?;
    cfg.pid_numbers = off("pid", "numbers", ArrayOf("upid"))?;
    cfg.upid_size = struct_size(&types, "upid")?;
    cfg.upid_nr = off("upid", "nr", Int(4))?;
    cfg.upid_ns = off("upid", "ns", Pointer)?;
    // `ns` is an embedded struct ns_common; `inum` is searched through any
    // anonymous members of it, as ns_common keeps being reshaped (6.18 added
    // ns_type/ns_id and the namespace tree nodes around it).
    cfg.pidns_inum = off("pid_namespace", "ns.inum", Int(4))?;
    // Only the BPF LSM program needs these; a kernel without them (or without
    // BPF LSM) enforces by signal.
    cfg.bprm_file = off("linux_binprm", "file", Pointer).unwrap_or(KernelConfig::ABSENT);
    cfg.bprm_filename = off("linux_binprm", "filename", Pointer).unwrap_or(KernelConfig::ABSENT);

    // Launch classification: a session leader with a controlling tty and a pty on
    // stdin is a terminal; a login shell whose stdin is no pipe or socket may be
    // the environment probe (see `monitor-ebpf` `classify_launch`).
    cfg.task_signal = off("task_struct", "signal", Pointer)?;
    cfg.signal_leader = off("signal_struct", "leader", Int(4))?;
    cfg.signal_tty = off("signal_struct", "tty", Pointer)?;
    // atomic_t live: `typedef struct { int counter; } atomic_t`.
    cfg.signal_live = off("signal_struct", "live.counter", Int(4))?;
    cfg.task_files = off("task_struct", "files", Pointer)?;
    cfg.files_fdt = off("files_struct", "fdt", Pointer)?;
    cfg.fdtable_fd = off("fdtable", "fd", Pointer)?;
    // umode_t is an unsigned short; dev_t a u32 in MKDEV encoding.
    cfg.inode_i_mode = off("inode", "i_mode", Int(2))?;
    cfg.inode_i_rdev = off("inode", "i_rdev", Int(4))?;
    Ok(())
}

/// Offsets of the inode ctime seconds and nanoseconds, across the three
/// layouts the kernel has had.
fn inode_ctime(types: &Types) -> Result<(u32, u32), OffsetsError> {
    use FieldKind::{Int, IntLow32};
    // 6.11+: discrete `time64_t i_ctime_sec` and `u32 i_ctime_nsec`, commit
    // 3aa63a569c64 ("fs: switch timespec64 fields in inode to discrete
    // integers"). Since 6.13 (multigrain timestamps) bit 31 of i_ctime_nsec is
    // the I_CTIME_QUERIED flag, not part of the time: whoever compares these
    // nanoseconds must mask it off, as inode_get_ctime_nsec() does.
    match field_offset(types, "inode", "i_ctime_sec", Int(8)) {
        Ok(sec) => return Ok((sec, field_offset(types, "inode", "i_ctime_nsec", Int(4))?)),
        Err(OffsetsError::MissingField { .. }) => {}
        Err(e) => return Err(e),
    }
    // 6.6-6.10: `struct timespec64 __i_ctime`, renamed by commit 13bc24457850
    // ("fs: rename i_ctime field to __i_ctime") to force the accessors; before
    // 6.6: `struct timespec64 i_ctime`. tv_nsec there is a `long`; the
    // programs read it as a u32, which on little-endian targets is its low
    // 4 bytes, and a nanosecond count (< 10^9) fits in them.
    for (sec, nsec) in [
        ("__i_ctime.tv_sec", "__i_ctime.tv_nsec"),
        ("i_ctime.tv_sec", "i_ctime.tv_nsec"),
    ] {
        match field_offset(types, "inode", sec, Int(8)) {
            Ok(sec) => return Ok((sec, field_offset(types, "inode", nsec, IntLow32)?)),
            Err(OffsetsError::MissingField { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(OffsetsError::MissingField {
        strukt: "inode",
        // Rendered inside backticks: "`i_ctime_sec` / `__i_ctime` / `i_ctime`".
        field: "i_ctime_sec` / `__i_ctime` / `i_ctime",
    })
}

/// Strips typedefs, qualifiers and type tags (`__rcu`, `__user`) off a type.
fn strip(btf: &Btf, mut ty: Type, strukt: &'static str) -> Result<Type, OffsetsError> {
    // Bounded: a loop in corrupt BTF must not hang the daemon.
    for _ in 0..32 {
        ty = match &ty {
            Type::Typedef(t) => resolve_chained(btf, t, strukt)?,
            Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => {
                resolve_chained(btf, t, strukt)?
            }
            Type::TypeTag(t) => resolve_chained(btf, t, strukt)?,
            _ => return Ok(ty),
        };
    }
    Ok(ty)
}

fn resolve_chained<T: BtfType + ?Sized>(
    btf: &Btf,
    ty: &T,
    strukt: &'static str,
) -> Result<Type, OffsetsError> {
    btf.resolve_chained_type(ty)
        .map_err(|source| OffsetsError::BtfLookup { strukt, source })
}

fn type_name(btf: &Btf, ty: &dyn BtfType, strukt: &'static str) -> Result<String, OffsetsError> {
    btf.resolve_name(ty)
        .map_err(|source| OffsetsError::BtfLookup { strukt, source })
}

/// Size in bytes of `struct strukt`.
fn struct_size(types: &Types, strukt: &'static str) -> Result<u32, OffsetsError> {
    let sizes: HashSet<usize> = types
        .structs_named(strukt)?
        .iter()
        .map(Struct::size)
        .collect();
    if sizes.len() > 1 {
        return Err(OffsetsError::AmbiguousStruct {
            strukt,
            field: "size",
            count: sizes.len(),
        });
    }
    let size = sizes.into_iter().next().unwrap_or_default();
    Ok(u32::try_from(size).expect("BTF stores struct sizes as u32"))
}

/// Byte offset, from the start of `struct strukt`, of `field`: a member name,
/// or a dotted path through embedded structs (`ns.inum`). Members of anonymous
/// structs and unions are found as if they were direct members, as C allows,
/// with the anonymous member's own offset added. The field must have the shape
/// `kind`.
fn field_offset(
    types: &Types,
    strukt: &'static str,
    field: &'static str,
    kind: FieldKind,
) -> Result<u32, OffsetsError> {
    let btf = types.btf;
    let mut found: Vec<(u64, Type, usize)> = Vec::new();
    for s in types.structs_named(strukt)? {
        if let Some((offset, ty)) = walk(btf, &s, strukt, field)? {
            found.push((offset, ty, s.size()));
        }
    }
    let Some((offset, ty, struct_size)) = found.first().cloned() else {
        return Err(OffsetsError::MissingField { strukt, field });
    };
    // vmlinux BTF is deduplicated, so two structs of one name are two
    // different kernel types (static ones in different files). Fine as long
    // as they agree on what we need.
    if found.iter().any(|(o, _, _)| *o != offset) {
        return Err(OffsetsError::AmbiguousStruct {
            strukt,
            field,
            count: found.len(),
        });
    }

    let ty = strip(btf, ty, strukt)?;
    check_kind(btf, &ty, kind, strukt, field)?;
    let end = offset + u64::from(type_size(btf, &ty, strukt)?);
    let struct_size = struct_size as u64;
    if end > struct_size {
        return Err(OffsetsError::OutOfRange {
            strukt,
            field,
            offset,
            end,
            struct_size,
        });
    }
    // end <= struct size, which BTF stores as a u32.
    Ok(u32::try_from(offset).expect("offset below a u32 struct size"))
}

/// Follows the dotted `field` path from `s`. `None` when a component is
/// missing (or is not a struct/union to descend into).
fn walk(
    btf: &Btf,
    s: &Struct,
    strukt: &'static str,
    field: &'static str,
) -> Result<Option<(u64, Type)>, OffsetsError> {
    let mut current = s.clone();
    let mut offset = 0u64;
    let mut components = field.split('.').peekable();
    while let Some(component) = components.next() {
        let Some((member_offset, ty)) = find_member(btf, &current, component, strukt, field)?
        else {
            return Ok(None);
        };
        offset += member_offset;
        if components.peek().is_none() {
            return Ok(Some((offset, ty)));
        }
        current = match strip(btf, ty, strukt)? {
            Type::Struct(inner) | Type::Union(inner) => inner,
            _ => return Ok(None),
        };
    }
    Ok(None)
}

/// Finds member `name` of `s`, descending into anonymous struct/union members.
/// Returns its byte offset from the start of `s` and its (unstripped) type.
fn find_member(
    btf: &Btf,
    s: &Struct,
    name: &str,
    strukt: &'static str,
    field: &'static str,
) -> Result<Option<(u64, Type)>, OffsetsError> {
    for member in &s.members {
        let member_name = type_name(btf, member, strukt)?;
        if member_name == name {
            // Only kind_flag structs carry a bitfield size; pahole emits
            // kind_flag for every struct that has bitfields, and a non-byte
            // aligned offset gives away one it did not.
            if member.bitfield_size().is_some_and(|bits| bits != 0) || member.bit_offset() % 8 != 0
            {
                return Err(OffsetsError::Bitfield { strukt, field });
            }
            let ty = resolve_chained(btf, member, strukt)?;
            return Ok(Some((u64::from(member.bit_offset() / 8), ty)));
        }
        if member_name.is_empty() {
            let (Type::Struct(inner) | Type::Union(inner)) =
                strip(btf, resolve_chained(btf, member, strukt)?, strukt)?
            else {
                continue;
            };
            if let Some((inner_offset, ty)) = find_member(btf, &inner, name, strukt, field)? {
                if member.bit_offset() % 8 != 0 {
                    return Err(OffsetsError::Bitfield { strukt, field });
                }
                return Ok(Some((
                    u64::from(member.bit_offset() / 8) + inner_offset,
                    ty,
                )));
            }
        }
    }
    Ok(None)
}

/// Size in bytes of a stripped type, as far as the range check needs it.
fn type_size(btf: &Btf, ty: &Type, strukt: &'static str) -> Result<u32, OffsetsError> {
    let size = match ty {
        // Every target of the programs is 64-bit.
        Type::Ptr(_) => 8,
        Type::Int(i) => i.size(),
        Type::Enum(e) => e.size(),
        Type::Enum64(e) => e.size(),
        Type::Struct(s) | Type::Union(s) => s.size(),
        Type::Array(a) => {
            let elem = strip(btf, resolve_chained(btf, a, strukt)?, strukt)?;
            let elem_size = type_size(btf, &elem, strukt)?;
            return Ok(elem_size.saturating_mul(u32::try_from(a.len()).unwrap_or(u32::MAX)));
        }
        _ => 0,
    };
    Ok(u32::try_from(size).unwrap_or(u32::MAX))
}

fn check_kind(
    btf: &Btf,
    ty: &Type,
    kind: FieldKind,
    strukt: &'static str,
    field: &'static str,
) -> Result<(), OffsetsError> {
    let ok = match (kind, ty) {
        (FieldKind::Pointer, Type::Ptr(_)) => true,
        (FieldKind::Int(n), Type::Int(_) | Type::Enum(_) | Type::Enum64(_)) => {
            type_size(btf, ty, strukt)? == n
        }
        (FieldKind::IntLow32, Type::Int(_)) => matches!(type_size(btf, ty, strukt)?, 4 | 8),
        (FieldKind::Struct(name), Type::Struct(s)) => type_name(btf, s, strukt)? == name,
        (FieldKind::ArrayOf(name), Type::Array(a)) => {
            match strip(btf, resolve_chained(btf, a, strukt)?, strukt)? {
                Type::Struct(s) => type_name(btf, &s, strukt)? == name,
                _ => false,
            }
        }
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(OffsetsError::FieldType {
        strukt,
        field,
        expected: kind,
        found: describe(btf, ty, strukt)?,
    })
}

/// Human description of a stripped type, for [`OffsetsError::FieldType`].
fn describe(btf: &Btf, ty: &Type, strukt: &'static str) -> Result<String, OffsetsError> {
    Ok(match ty {
        Type::Ptr(_) => "a pointer".to_owned(),
        Type::Int(_) | Type::Enum(_) | Type::Enum64(_) => {
            let n = type_size(btf, ty, strukt)?;
            format!("{} {n}-byte integer", if n == 8 { "an" } else { "a" })
        }
        Type::Struct(s) => format!("an embedded struct {}", type_name(btf, s, strukt)?),
        Type::Union(u) => format!("an embedded union {}", type_name(btf, u, strukt)?),
        Type::Array(_) => "an array".to_owned(),
        other => format!("a BTF {}", other.name()),
    })
}

// ---------------------------------------------------------------------------
// Tracepoint records from tracefs

fn fill_tracepoints(events_dir: &Path, cfg: &mut KernelConfig) -> Result<(), OffsetsError> {
    let exec = read_format(events_dir, TP_EXEC)?;
    // `filename` is bprm->filename; the record stores it out of line.
    cfg.tp_exec_filename = data_loc_field(&exec, TP_EXEC, "filename")?;
    // old_pid is the thread that called execve (pid is the tgid after a
    // multithreaded exec's de_thread()).
    cfg.tp_exec_old_pid = sized_field(&exec, TP_EXEC, "old_pid", 4)?;

    // 6.1 had `char parent_comm[16]`/`child_comm[16]` inline (child_pid at
    // 44); newer kernels store the comms as __data_loc strings (child_pid at
    // 20 on 6.18). Only the pids matter here, wherever they are.
    let fork = read_format(events_dir, TP_FORK)?;
    cfg.tp_fork_parent_pid = sized_field(&fork, TP_FORK, "parent_pid", 4)?;
    cfg.tp_fork_child_pid = sized_field(&fork, TP_FORK, "child_pid", 4)?;

    // `bool group_dead` was added by Andrii Nakryiko's 2025 patch
    // "sched/tracepoints: Move and extend the sched_process_exit() tracepoint"
    // (absent in 6.14 and in 6.1, present in 6.17+). Without it the exit
    // program has to work out the last thread itself.
    let exit = read_format(events_dir, TP_EXIT)?;
    cfg.tp_exit_group_dead = if exit.field("group_dead").is_some() {
        sized_field(&exit, TP_EXIT, "group_dead", 1)?
    } else {
        KernelConfig::ABSENT
    };
    Ok(())
}

fn read_format(
    events_dir: &Path,
    tracepoint: &'static str,
) -> Result<TracepointFormat, OffsetsError> {
    let path = events_dir.join(tracepoint).join("format");
    let text = fs::read_to_string(&path).map_err(|source| OffsetsError::TracefsRead {
        path: path.clone(),
        source,
    })?;
    parse_format_at(&text, &path)
}

fn required<'a>(
    format: &'a TracepointFormat,
    tracepoint: &'static str,
    field: &'static str,
) -> Result<&'a TracepointField, OffsetsError> {
    format
        .field(field)
        .ok_or(OffsetsError::MissingTracepointField { tracepoint, field })
}

/// Offset of a plain field of exactly `size` bytes.
fn sized_field(
    format: &TracepointFormat,
    tracepoint: &'static str,
    field: &'static str,
    size: u32,
) -> Result<u32, OffsetsError> {
    let f = required(format, tracepoint, field)?;
    if f.size != size {
        return Err(OffsetsError::TracepointFieldSize {
            tracepoint,
            field,
            size: f.size,
            expected: size,
        });
    }
    Ok(f.offset)
}

/// Offset of the 4-byte `data_loc` word of a `__data_loc char[]` field.
fn data_loc_field(
    format: &TracepointFormat,
    tracepoint: &'static str,
    field: &'static str,
) -> Result<u32, OffsetsError> {
    let f = required(format, tracepoint, field)?;
    if !f.is_data_loc {
        return Err(OffsetsError::TracepointFieldNotDataLoc {
            tracepoint,
            field,
            c_type: f.c_type.clone(),
        });
    }
    sized_field(format, tracepoint, field, 4)
}

/// Parses the text of a tracefs `format` file.
///
/// Lines other than `name:`, `ID:` and `field:` (the `format:` header, blank
/// lines, anything a future kernel adds) are skipped; parsing stops at
/// `print fmt:`. A malformed `field:` line is an error.
pub fn parse_format(text: &str) -> Result<TracepointFormat, OffsetsError> {
    parse_format_at(text, Path::new(FORMAT_TEXT))
}

fn parse_format_at(text: &str, path: &Path) -> Result<TracepointFormat, OffsetsError> {
    let error = |line: usize, reason: &'static str| OffsetsError::Format {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut format = TracepointFormat::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if let Some(name) = line.strip_prefix("name:") {
            format.name = Some(name.trim().to_owned());
        } else if let Some(id) = line.strip_prefix("ID:") {
            let id = id
                .trim()
                .parse()
                .map_err(|_| error(line_no, "`ID:` is not a number"))?;
            format.id = Some(id);
        } else if let Some(decl) = line
            .strip_prefix("field:")
            // Very old kernels marked some fields `field special:`.
            .or_else(|| line.strip_prefix("field special:"))
        {
            let field = parse_field(decl).map_err(|reason| error(line_no, reason))?;
            if format.field(&field.name).is_some() {
                return Err(error(line_no, "duplicate field name"));
            }
            format.fields.push(field);
        } else if line.starts_with("print fmt:") {
            break;
        }
    }
    if format.fields.is_empty() {
        return Err(OffsetsError::EmptyFormat {
            path: path.to_owned(),
        });
    }
    Ok(format)
}

/// Parses what follows `field:`, e.g.
/// `__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;`.
fn parse_field(decl: &str) -> Result<TracepointField, &'static str> {
    let mut parts = decl.split(';').map(str::trim);
    let declaration = parts.next().unwrap_or_default();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in parts.filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once(':')
            .ok_or("expected `key:value;` after the field declaration")?;
        let number = || value.trim().parse::<u32>();
        match key.trim() {
            "offset" => offset = Some(number().map_err(|_| "`offset:` is not a number")?),
            "size" => size = Some(number().map_err(|_| "`size:` is not a number")?),
            "signed" => {
                signed = Some(match value.trim() {
                    "0" => false,
                    "1" => true,
                    _ => return Err("`signed:` is not 0 or 1"),
                });
            }
            // Unknown keys from future kernels are not our concern.
            _ => {}
        }
    }
    let offset = offset.ok_or("field has no `offset:`")?;
    let size = size.ok_or("field has no `size:`")?;

    // "<type> <name>[<array suffix>]"; pointers may glue the `*` to the name.
    let (c_type, name) = declaration
        .rsplit_once(char::is_whitespace)
        .ok_or("field declaration has no type")?;
    let stars = name.len() - name.trim_start_matches('*').len();
    let name = &name[stars..];
    let (name, array) = name.find('[').map_or((name, ""), |i| name.split_at(i));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("field name is not a C identifier");
    }
    let c_type = format!("{}{}{array}", c_type.trim(), "*".repeat(stars));
    Ok(TracepointField {
        name: name.to_owned(),
        is_data_loc: c_type.starts_with("__data_loc "),
        c_type,
        offset,
        size,
        // Absent on kernels before 2.6.32; no field we read is signed-sensitive.
        signed: signed.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Copied from /sys/kernel/tracing/events/sched/*/format on Linux 6.18.
    const EXEC_6_18: &str = "name: sched_process_exec\n\
ID: 365\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n\
\n\
print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid\n\
";

    const FORK_6_18: &str = "name: sched_process_fork\n\
ID: 366\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n\
\n\
print fmt: \"comm=%s pid=%d child_comm=%s child_pid=%d\", __get_str(parent_comm), REC->parent_pid, __get_str(child_comm), REC->child_pid\n\
";

    const EXIT_6_18: &str = "name: sched_process_exit\n\
ID: 369\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n\
\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n\
\n\
print fmt: \"comm=%s pid=%d prio=%d group_dead=%s\", REC->comm, REC->pid, REC->prio, REC->group_dead ? \"true\" : \"false\"\n\
";

    // 6.1 layouts: the exec record as on 6.18 (another ID), the fork comms
    // inline as char[16], no group_dead.
    const EXEC_6_1: &str = "name: sched_process_exec\n\
ID: 310\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n\
\n\
print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid\n\
";

    const FORK_6_1: &str = "name: sched_process_fork\n\
ID: 311\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n\
\n\
print fmt: \"comm=%s pid=%d child_comm=%s child_pid=%d\", REC->parent_comm, REC->parent_pid, REC->child_comm, REC->child_pid\n\
";

    const EXIT_6_1: &str = "name: sched_process_exit\n\
ID: 314\n\
format:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n\
\n\
print fmt: \"comm=%s pid=%d prio=%d\", REC->comm, REC->pid, REC->prio\n\
";

    /// A fake tracefs `events` directory holding the given format texts.
    fn events_dir(exec: &str, fork: &str, exit: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (tp, text) in [(TP_EXEC, exec), (TP_FORK, fork), (TP_EXIT, exit)] {
            let tp_dir = dir.path().join(tp);
            fs::create_dir_all(&tp_dir).unwrap();
            fs::write(tp_dir.join("format"), text).unwrap();
        }
        dir
    }

    fn tracepoints(dir: &Path) -> Result<KernelConfig, OffsetsError> {
        let mut cfg = KernelConfig::default();
        fill_tracepoints(dir, &mut cfg).map(|()| cfg)
    }

    #[test]
    fn parses_6_18_exec() {
        let f = parse_format(EXEC_6_18).unwrap();
        assert_eq!(f.name.as_deref(), Some("sched_process_exec"));
        assert_eq!(f.id, Some(365));
        assert_eq!(f.fields.len(), 7);
        assert_eq!(
            f.field("filename"),
            Some(&TracepointField {
                name: "filename".into(),
                c_type: "__data_loc char[]".into(),
                offset: 8,
                size: 4,
                signed: false,
                is_data_loc: true,
            })
        );
        let old_pid = f.field("old_pid").unwrap();
        assert_eq!(
            (old_pid.offset, old_pid.size, old_pid.signed),
            (16, 4, true)
        );
        assert!(!old_pid.is_data_loc);
        let common_type = f.field("common_type").unwrap();
        assert_eq!(common_type.c_type, "unsigned short");
        assert_eq!((common_type.offset, common_type.size), (0, 2));
    }

    #[test]
    fn parses_array_fields() {
        let f = parse_format(EXIT_6_18).unwrap();
        let comm = f.field("comm").unwrap();
        assert_eq!(comm.c_type, "char[16]");
        assert_eq!((comm.offset, comm.size, comm.is_data_loc), (8, 16, false));
        let group_dead = f.field("group_dead").unwrap();
        assert_eq!((group_dead.offset, group_dead.size), (32, 1));
    }

    #[test]
    fn parses_pointer_fields() {
        let f = parse_format("field:const char *msg;\toffset:8;\tsize:8;\tsigned:0;\n").unwrap();
        let msg = f.field("msg").unwrap();
        assert_eq!(msg.c_type, "const char*");
        assert_eq!((msg.offset, msg.size), (8, 8));
    }

    #[test]
    fn tracepoints_6_18() {
        let dir = events_dir(EXEC_6_18, FORK_6_18, EXIT_6_18);
        let cfg = tracepoints(dir.path()).unwrap();
        assert_eq!(cfg.tp_exec_filename, 8);
        assert_eq!(cfg.tp_exec_old_pid, 16);
        assert_eq!(cfg.tp_fork_parent_pid, 12);
        assert_eq!(cfg.tp_fork_child_pid, 20);
        assert_eq!(cfg.tp_exit_group_dead, 32);
    }

    #[test]
    fn tracepoints_6_1() {
        let dir = events_dir(EXEC_6_18, FORK_6_1, EXIT_6_1);
        let cfg = tracepoints(dir.path()).unwrap();
        assert_eq!(cfg.tp_exec_filename, 8);
        assert_eq!(cfg.tp_fork_parent_pid, 24);
        assert_eq!(cfg.tp_fork_child_pid, 44);
        assert_eq!(cfg.tp_exit_group_dead, KernelConfig::ABSENT);
    }

    #[test]
    fn missing_required_field() {
        let fork = FORK_6_1.replace("child_pid;", "child_tgid;");
        let dir = events_dir(EXEC_6_18, &fork, EXIT_6_1);
        let err = tracepoints(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::MissingTracepointField {
                    tracepoint: TP_FORK,
                    field: "child_pid"
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "tracepoint sched/sched_process_fork has no field `child_pid` \
             (this kernel is not supported)"
        );
    }

    #[test]
    fn unexpected_sizes() {
        let exec = EXEC_6_18.replace(
            "old_pid;\toffset:16;\tsize:4",
            "old_pid;\toffset:16;\tsize:8",
        );
        let dir = events_dir(&exec, FORK_6_18, EXIT_6_18);
        let err = tracepoints(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::TracepointFieldSize {
                    field: "old_pid",
                    size: 8,
                    expected: 4,
                    ..
                }
            ),
            "{err:?}"
        );

        let exit = EXIT_6_18.replace(
            "bool group_dead;\toffset:32;\tsize:1",
            "int group_dead;\toffset:32;\tsize:4",
        );
        let dir = events_dir(EXEC_6_18, FORK_6_18, &exit);
        let err = tracepoints(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::TracepointFieldSize {
                    field: "group_dead",
                    size: 4,
                    expected: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn filename_must_be_data_loc() {
        let exec = EXEC_6_18.replace("__data_loc char[] filename", "char *filename");
        let dir = events_dir(&exec, FORK_6_18, EXIT_6_18);
        let err = tracepoints(dir.path()).unwrap_err();
        assert!(
            matches!(&err, OffsetsError::TracepointFieldNotDataLoc { field: "filename", c_type, .. } if c_type == "char*"),
            "{err:?}"
        );
    }

    #[test]
    fn malformed_lines() {
        let cases = [
            (
                "offset:8x",
                "\tfield:int x;\toffset:8x;\tsize:4;\tsigned:1;\n",
                "`offset:` is not a number",
            ),
            (
                "no size",
                "\tfield:int x;\toffset:8;\tsigned:1;\n",
                "field has no `size:`",
            ),
            (
                "no type",
                "\tfield:x;\toffset:8;\tsize:4;\tsigned:1;\n",
                "field declaration has no type",
            ),
            (
                "bad signed",
                "\tfield:int x;\toffset:8;\tsize:4;\tsigned:2;\n",
                "`signed:` is not 0 or 1",
            ),
            (
                "no colon",
                "\tfield:int x;\toffset 8;\tsize:4;\n",
                "expected `key:value;` after the field declaration",
            ),
            (
                "bad name",
                "\tfield:int x-y;\toffset:8;\tsize:4;\n",
                "field name is not a C identifier",
            ),
            (
                "duplicate",
                "\tfield:int x;\toffset:8;\tsize:4;\n\tfield:int x;\toffset:12;\tsize:4;\n",
                "duplicate field name",
            ),
        ];
        for (what, body, expected) in cases {
            let text = format!("name: t\nID: 1\nformat:\n{body}\nprint fmt: \"\"\n");
            match parse_format(&text) {
                Err(OffsetsError::Format { line, reason, .. }) => {
                    assert_eq!(reason, expected, "{what}");
                    assert!(line >= 4, "{what}: line {line}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_format("name: x\nID: 1\nformat:\n\nprint fmt: \"\"\n"),
            Err(OffsetsError::EmptyFormat { .. })
        ));
        assert!(matches!(
            parse_format("name: x\nID: twelve\n"),
            Err(OffsetsError::Format { line: 2, .. })
        ));
    }

    #[test]
    fn format_errors_name_the_file() {
        let dir = events_dir(
            EXEC_6_18,
            FORK_6_18,
            "name: sched_process_exit\nformat:\n\tfield:int pid;\toffset:x;\tsize:4;\n",
        );
        let err = tracepoints(dir.path()).unwrap_err();
        let expected = format!(
            "tracepoint format {}, line 3: `offset:` is not a number",
            dir.path().join(TP_EXIT).join("format").display()
        );
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn missing_format_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = tracepoints(dir.path()).unwrap_err();
        assert!(matches!(err, OffsetsError::TracefsRead { .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some());
    }

    /// Builds little-endian BTF blobs for the tests below.
    #[derive(Default)]
    struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl BtfBuilder {
        fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn name(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = u32::try_from(self.strings.len()).unwrap();
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        fn push(&mut self, words: &[u32]) -> u32 {
            for w in words {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.next_id += 1;
            self.next_id - 1
        }

        fn int(&mut self, name: &str, size: u32) -> u32 {
            let n = self.name(name);
            self.push(&[n, 1 << 24, size, size * 8])
        }

        fn ptr(&mut self, target: u32) -> u32 {
            self.push(&[0, 2 << 24, target])
        }

        /// `members`: (name, type id, bit offset, bitfield size).
        fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let n = self.name(name);
            let kind_flag = u32::from(members.iter().any(|m| m.3 != 0));
            let mut words = vec![
                n,
                kind_flag << 31 | kind << 24 | u32::try_from(members.len()).unwrap(),
                size,
            ];
            for &(name, ty, bit_offset, bits) in members {
                let n = self.name(name);
                words.extend_from_slice(&[n, ty, bits << 24 | bit_offset]);
            }
            self.push(&words)
        }

        fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
            self.composite(4, name, size, members)
        }

        fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
            self.composite(5, name, size, members)
        }

        fn typedef(&mut self, name: &str, target: u32) -> u32 {
            let n = self.name(name);
            self.push(&[n, 8 << 24, target])
        }

        fn type_tag(&mut self, tag: &str, target: u32) -> u32 {
            let n = self.name(tag);
            self.push(&[n, 18 << 24, target])
        }

        fn volatile(&mut self, target: u32) -> u32 {
            self.push(&[0, 9 << 24, target])
        }

        fn constant(&mut self, target: u32) -> u32 {
            self.push(&[0, 10 << 24, target])
        }

        /// `elem[len]`, indexed by the integer type `index`.
        fn array(&mut self, elem: u32, index: u32, len: u32) -> u32 {
            self.push(&[0, 3 << 24, 0, elem, index, len])
        }

        /// `struct name;`: lets a struct point to itself, or to a struct
        /// defined after it.
        fn fwd(&mut self, name: &str) -> u32 {
            let n = self.name(name);
            self.push(&[n, 7 << 24, 0])
        }

        fn build(self) -> Vec<u8> {
            let type_len = u32::try_from(self.types.len()).unwrap();
            let str_len = u32::try_from(self.strings.len()).unwrap();
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9f_u16.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for w in [24, 0, type_len, type_len, str_len] {
                out.extend_from_slice(&u32::to_le_bytes(w));
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// BTF of a miniature kernel: an `mm_struct` with its fields in an
    /// anonymous struct inside an anonymous union (offsets add up), a
    /// bitfield, a `pid_namespace` whose `ns.inum` sits in an anonymous union
    /// of `ns_common`, an inode with the 6.6-6.10 `__i_ctime`, and a
    /// `task_struct` whose fields hide behind typedefs, qualifiers and an
    /// `__rcu` type tag.
    fn mini_kernel() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let uint = b.int("unsigned int", 4);
        let ulong = b.int("long unsigned int", 8);
        let long = b.int("long int", 8);
        let file = b.strukt("file", 8, &[("f_count", ulong, 0, 0)]);
        let file_ptr = b.ptr(file);
        let anon = b.strukt(
            "",
            24,
            &[
                ("arg_start", ulong, 0, 0),
                ("arg_end", ulong, 64, 0),
                ("exe_file", file_ptr, 128, 0),
            ],
        );
        let anon_union = b.union("", 24, &[("__pad", ulong, 0, 0), ("", anon, 0, 0)]);
        b.strukt(
            "mm_struct",
            64,
            &[
                ("pgd", ulong, 0, 0),
                ("", anon_union, 8 * 16, 0),
                ("flags", uint, 8 * 40, 3),
            ],
        );
        let inner = b.union("", 4, &[("inum", uint, 0, 0)]);
        let ns_common = b.strukt(
            "ns_common",
            16,
            &[("count", int, 0, 0), ("", inner, 8 * 8, 0)],
        );
        b.strukt(
            "pid_namespace",
            64,
            &[("level", uint, 0, 0), ("ns", ns_common, 8 * 32, 0)],
        );
        let ts = b.strukt(
            "timespec64",
            16,
            &[("tv_sec", long, 0, 0), ("tv_nsec", long, 64, 0)],
        );
        b.strukt(
            "inode",
            128,
            &[("i_ino", ulong, 0, 0), ("__i_ctime", ts, 8 * 96, 0)],
        );
        b.strukt("broken", 8, &[("past_end", ulong, 64, 0)]);
        let pid_t = b.typedef("pid_t", int);
        let volatile_pid_t = b.volatile(pid_t);
        let rcu_file = b.type_tag("rcu", file);
        let rcu_file_ptr = b.ptr(rcu_file);
        b.strukt(
            "task_struct",
            32,
            &[
                ("tgid", volatile_pid_t, 0, 0),
                ("files", rcu_file_ptr, 64, 0),
            ],
        );
        b.build()
    }

    fn mini_btf() -> Btf {
        Btf::from_bytes(&mini_kernel()).unwrap()
    }

    #[test]
    fn nested_anonymous_members_add_up() {
        let btf = mini_btf();
        let types = Types::new(&btf);
        assert_eq!(
            field_offset(&types, "mm_struct", "pgd", FieldKind::Int(8)).unwrap(),
            0
        );
        assert_eq!(
            field_offset(&types, "mm_struct", "arg_start", FieldKind::Int(8)).unwrap(),
            16
        );
        assert_eq!(
            field_offset(&types, "mm_struct", "arg_end", FieldKind::Int(8)).unwrap(),
            24
        );
        assert_eq!(
            field_offset(&types, "mm_struct", "exe_file", FieldKind::Pointer).unwrap(),
            32
        );
        assert_eq!(
            field_offset(&types, "pid_namespace", "ns.inum", FieldKind::Int(4)).unwrap(),
            40
        );
        assert_eq!(inode_ctime(&types).unwrap(), (96, 104));
    }

    #[test]
    fn looks_through_typedefs_qualifiers_and_type_tags() {
        let btf = mini_btf();
        let types = Types::new(&btf);
        assert_eq!(
            field_offset(&types, "task_struct", "tgid", FieldKind::Int(4)).unwrap(),
            0
        );
        assert_eq!(
            field_offset(&types, "task_struct", "files", FieldKind::Pointer).unwrap(),
            8
        );
    }

    #[test]
    fn loads_btf_files() {
        // load_btf's mmap backend (the cache backend is what from_bytes uses).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        fs::write(&path, mini_kernel()).unwrap();
        let btf = load_btf(&path).unwrap();
        let types = Types::new(&btf);
        assert_eq!(
            field_offset(&types, "mm_struct", "exe_file", FieldKind::Pointer).unwrap(),
            32
        );
        fs::write(&path, b"not BTF").unwrap();
        let err = load_btf(&path).err().unwrap();
        assert!(matches!(err, OffsetsError::Btf { .. }), "{err:?}");
    }

    #[test]
    fn missing_struct_and_field() {
        let btf = mini_btf();
        let types = Types::new(&btf);
        let err =
            field_offset(&types, "mm_struct", "no_such_field", FieldKind::Pointer).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::MissingField {
                    strukt: "mm_struct",
                    field: "no_such_field"
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct mm_struct has no field `no_such_field` (this kernel is not supported)"
        );
        let err = field_offset(&types, "fs_struct", "pwd", FieldKind::Struct("path")).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::MissingStruct {
                    strukt: "fs_struct"
                }
            ),
            "{err:?}"
        );
        // A path through a missing component.
        let err = field_offset(&types, "pid_namespace", "ns.nope", FieldKind::Int(4)).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::MissingField {
                    field: "ns.nope",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        let btf = mini_btf();
        let types = Types::new(&btf);
        let err = field_offset(&types, "mm_struct", "arg_start", FieldKind::Pointer).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct mm_struct field `arg_start` is an 8-byte integer, expected a pointer \
             (this kernel is not supported)"
        );
        let err = field_offset(&types, "mm_struct", "flags", FieldKind::Int(4)).unwrap_err();
        assert!(
            matches!(err, OffsetsError::Bitfield { field: "flags", .. }),
            "{err:?}"
        );
        let err = field_offset(&types, "broken", "past_end", FieldKind::Int(8)).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::OutOfRange {
                    offset: 8,
                    end: 16,
                    struct_size: 8,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn missing_btf_file() {
        let dir = events_dir(EXEC_6_18, FORK_6_18, EXIT_6_18);
        let err = resolve_from(&dir.path().join("vmlinux"), dir.path()).unwrap_err();
        assert!(matches!(err, OffsetsError::BtfMissing { .. }), "{err:?}");
    }

    /// What `task_struct.mm` is in [`linux_6_1_btf`].
    #[derive(Clone, Copy)]
    enum TaskMm {
        /// `struct mm_struct *mm`, as in every kernel.
        Pointer,
        /// No `mm` member at all.
        Missing,
        /// An `unsigned long mm`: right name, wrong shape.
        Int,
    }

    /// BTF of a Linux 6.1 x86-64 kernel, cut down to the structs and fields
    /// the resolver reads plus a few neighbours, at 6.1 offsets. Where 6.1
    /// and 6.18 differ, this has the 6.1 shape: `mm_struct`'s fields in one
    /// anonymous struct (6.18 nests deeper), `struct timespec64 i_ctime` (6.18
    /// has `i_ctime_sec`/`i_ctime_nsec`), a plain `d_name` (6.18 wraps it in a
    /// union), `ns.inum` a direct member of `ns_common`, `numbers[1]` rather
    /// than a flexible array, and no `__rcu` type tags (gcc-built BTF). The
    /// structs that point to themselves or to a struct defined later do so
    /// through a forward declaration of the same name, which lookups by name
    /// must skip.
    ///
    /// The offsets of `path`, `upid`, `qstr.name`, `vfsmount.mnt_root`,
    /// `super_block.s_dev`, `fs_struct.pwd`, `dentry`, `mount` and
    /// `inode.i_ino`/`i_sb` are the same on 6.1 and 6.18; every other one
    /// differs.
    #[expect(
        clippy::too_many_lines,
        reason = "one straight list of kernel structs reads better than split up"
    )]
    fn linux_6_1_btf(task_mm: TaskMm) -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let uint = b.int("unsigned int", 4);
        let long = b.int("long int", 8);
        let ulong = b.int("long unsigned int", 8);
        let long_long = b.int("long long int", 8);
        let uchar = b.int("unsigned char", 1);
        let ushort = b.int("short unsigned int", 2);
        let array_index = b.int("__ARRAY_SIZE_TYPE__", 4);
        let void_ptr = b.ptr(0);
        let u32_t = b.typedef("u32", uint);
        let unsigned_long_long = b.int("long long unsigned int", 8);
        let u64_t = b.typedef("u64", unsigned_long_long);
        let kernel_pid_t = b.typedef("__kernel_pid_t", int);
        let pid_t = b.typedef("pid_t", kernel_pid_t);
        let kernel_dev_t = b.typedef("__kernel_dev_t", u32_t);
        let dev_t = b.typedef("dev_t", kernel_dev_t);
        let s64 = b.typedef("__s64", long_long);
        let time64_t = b.typedef("time64_t", s64);

        let sb = b.strukt(
            "super_block",
            1392,
            &[
                ("s_dev", dev_t, 8 * 16, 0),
                ("s_blocksize_bits", uchar, 8 * 20, 0),
                ("s_blocksize", ulong, 8 * 24, 0),
            ],
        );
        let sb_ptr = b.ptr(sb);
        let timespec64 = b.strukt(
            "timespec64",
            16,
            &[("tv_sec", time64_t, 0, 0), ("tv_nsec", long, 64, 0)],
        );
        let inode = b.strukt(
            "inode",
            600,
            &[
                ("i_mode", ushort, 0, 0),
                ("i_flags", uint, 8 * 12, 0),
                ("i_sb", sb_ptr, 8 * 40, 0),
                ("i_ino", ulong, 8 * 64, 0),
                ("i_rdev", dev_t, 8 * 76, 0),
                ("i_size", long_long, 8 * 80, 0),
                ("i_atime", timespec64, 8 * 88, 0),
                ("i_mtime", timespec64, 8 * 104, 0),
                ("i_ctime", timespec64, 8 * 120, 0),
            ],
        );
        let inode_ptr = b.ptr(inode);

        // struct qstr { union { struct { u32 hash; u32 len; }; u64 hash_len; };
        //               const unsigned char *name; };
        let hash_and_len = b.strukt("", 8, &[("hash", u32_t, 0, 0), ("len", u32_t, 32, 0)]);
        let hash_union = b.union(
            "",
            8,
            &[("", hash_and_len, 0, 0), ("hash_len", u64_t, 0, 0)],
        );
        let const_uchar = b.constant(uchar);
        let name_ptr = b.ptr(const_uchar);
        let qstr = b.strukt(
            "qstr",
            16,
            &[("", hash_union, 0, 0), ("name", name_ptr, 64, 0)],
        );
        let dentry_fwd = b.fwd("dentry");
        let dentry_ptr = b.ptr(dentry_fwd);
        let d_iname = b.array(uchar, array_index, 32);
        b.strukt(
            "dentry",
            192,
            &[
                ("d_flags", uint, 0, 0),
                ("d_parent", dentry_ptr, 8 * 24, 0),
                ("d_name", qstr, 8 * 32, 0),
                ("d_inode", inode_ptr, 8 * 48, 0),
                ("d_iname", d_iname, 8 * 56, 0),
            ],
        );

        let vfsmount = b.strukt(
            "vfsmount",
            32,
            &[
                ("mnt_root", dentry_ptr, 0, 0),
                ("mnt_sb", sb_ptr, 64, 0),
                ("mnt_flags", int, 128, 0),
            ],
        );
        let vfsmount_ptr = b.ptr(vfsmount);
        let path = b.strukt(
            "path",
            16,
            &[("mnt", vfsmount_ptr, 0, 0), ("dentry", dentry_ptr, 64, 0)],
        );
        let mount_fwd = b.fwd("mount");
        let mount_ptr = b.ptr(mount_fwd);
        b.strukt(
            "mount",
            320,
            &[
                ("mnt_parent", mount_ptr, 8 * 16, 0),
                ("mnt_mountpoint", dentry_ptr, 8 * 24, 0),
                ("mnt", vfsmount, 8 * 32, 0),
                ("mnt_id", int, 8 * 284, 0),
            ],
        );
        let file = b.strukt(
            "file",
            232,
            &[
                ("f_path", path, 8 * 16, 0),
                ("f_inode", inode_ptr, 8 * 32, 0),
                ("f_op", void_ptr, 8 * 40, 0),
            ],
        );
        let file_ptr = b.ptr(file);
        let file_ptr_ptr = b.ptr(file_ptr);
        let fdtable = b.strukt(
            "fdtable",
            56,
            &[("max_fds", uint, 0, 0), ("fd", file_ptr_ptr, 8 * 8, 0)],
        );
        let fdtable_ptr = b.ptr(fdtable);
        let files = b.strukt(
            "files_struct",
            704,
            &[("count", int, 0, 0), ("fdt", fdtable_ptr, 8 * 32, 0)],
        );
        let files_struct_ptr = b.ptr(files);
        let atomic = b.strukt("", 4, &[("counter", int, 0, 0)]);
        let signal = b.strukt(
            "signal_struct",
            1080,
            &[
                ("live", atomic, 8 * 4, 0),
                ("nr_threads", int, 8 * 8, 0),
                ("leader", int, 8 * 344, 0),
                ("tty", void_ptr, 8 * 376, 0),
            ],
        );
        let signal_ptr = b.ptr(signal);

        // struct mm_struct { struct { struct { atomic_t mm_count; }; ...;
        //     unsigned long arg_start, ...; } __randomize_layout;
        //     unsigned long cpu_bitmap[]; };
        let mm_count = b.strukt("", 4, &[("mm_count", int, 0, 0)]);
        let saved_auxv = b.array(ulong, array_index, 48);
        let mm_fields = b.strukt(
            "",
            936,
            &[
                ("", mm_count, 0, 0),
                ("start_stack", ulong, 8 * 304, 0),
                ("arg_start", ulong, 8 * 312, 0),
                ("arg_end", ulong, 8 * 320, 0),
                ("env_start", ulong, 8 * 328, 0),
                ("env_end", ulong, 8 * 336, 0),
                ("saved_auxv", saved_auxv, 8 * 344, 0),
                ("exe_file", file_ptr, 8 * 856, 0),
            ],
        );
        let cpu_bitmap = b.array(ulong, array_index, 0);
        let mm = b.strukt(
            "mm_struct",
            936,
            &[
                ("", mm_fields, 0, 0),
                ("cpu_bitmap", cpu_bitmap, 8 * 936, 0),
            ],
        );
        let mm_ptr = b.ptr(mm);

        let fs = b.strukt(
            "fs_struct",
            56,
            &[
                ("users", int, 0, 0),
                ("umask", int, 8 * 12, 0),
                ("in_exec", int, 8 * 16, 0),
                ("root", path, 8 * 24, 0),
                ("pwd", path, 8 * 40, 0),
            ],
        );
        let fs_ptr = b.ptr(fs);

        let task_fwd = b.fwd("task_struct");
        let task_ptr = b.ptr(task_fwd);
        let ns_common = b.strukt(
            "ns_common",
            24,
            &[
                ("stashed", long, 0, 0),
                ("ops", void_ptr, 64, 0),
                ("inum", uint, 128, 0),
                ("count", uint, 160, 0),
            ],
        );
        let pidns_fwd = b.fwd("pid_namespace");
        let pidns_parent_ptr = b.ptr(pidns_fwd);
        let pidns = b.strukt(
            "pid_namespace",
            136,
            &[
                ("pid_allocated", uint, 8 * 40, 0),
                ("child_reaper", task_ptr, 8 * 48, 0),
                ("level", uint, 8 * 64, 0),
                ("parent", pidns_parent_ptr, 8 * 72, 0),
                ("reboot", int, 8 * 104, 0),
                ("ns", ns_common, 8 * 112, 0),
            ],
        );
        let pidns_ptr = b.ptr(pidns);
        let upid = b.strukt("upid", 16, &[("nr", int, 0, 0), ("ns", pidns_ptr, 64, 0)]);
        let numbers = b.array(upid, array_index, 1);
        let pid = b.strukt(
            "pid",
            112,
            &[
                ("count", uint, 0, 0),
                ("level", uint, 32, 0),
                ("numbers", numbers, 8 * 96, 0),
            ],
        );
        let pid_ptr = b.ptr(pid);

        let mut task = vec![
            ("__state", uint, 8 * 24, 0),
            ("ptrace", uint, 8 * 40, 0),
            ("active_mm", mm_ptr, 8 * 2280, 0),
            ("exit_code", int, 8 * 2364, 0),
            // Bitfields make this a kind_flag struct, whose member offsets
            // carry the bitfield size in their top byte.
            ("sched_reset_on_fork", uint, 8 * 2392, 1),
            ("sched_contributes_to_load", uint, 8 * 2392 + 1, 1),
            ("pid", pid_t, 8 * 2456, 0),
            ("tgid", pid_t, 8 * 2460, 0),
            ("real_parent", task_ptr, 8 * 2472, 0),
            ("parent", task_ptr, 8 * 2480, 0),
            ("thread_pid", pid_ptr, 8 * 2552, 0),
            ("fs", fs_ptr, 8 * 3000, 0),
            ("files", files_struct_ptr, 8 * 3008, 0),
            ("signal", signal_ptr, 8 * 3024, 0),
        ];
        match task_mm {
            TaskMm::Pointer => task.push(("mm", mm_ptr, 8 * 2272, 0)),
            TaskMm::Missing => {}
            TaskMm::Int => task.push(("mm", ulong, 8 * 2272, 0)),
        }
        b.strukt("task_struct", 9792, &task);
        b.build()
    }

    /// A temp dir holding `vmlinux` (from [`linux_6_1_btf`]) and the 6.1
    /// tracefs formats under `sched/<name>/format`.
    fn linux_6_1(task_mm: TaskMm) -> tempfile::TempDir {
        let dir = events_dir(EXEC_6_1, FORK_6_1, EXIT_6_1);
        fs::write(dir.path().join("vmlinux"), linux_6_1_btf(task_mm)).unwrap();
        dir
    }

    #[test]
    fn resolves_linux_6_1() {
        let dir = linux_6_1(TaskMm::Pointer);
        let cfg = resolve_from(&dir.path().join("vmlinux"), dir.path()).unwrap();
        let expected = KernelConfig {
            ready: 1,
            task_mm: 2272,
            task_real_parent: 2472,
            task_tgid: 2460,
            task_pid: 2456,
            task_exit_code: 2364,
            task_fs: 3000,
            task_thread_pid: 2552,
            mm_arg_start: 312,
            mm_arg_end: 320,
            mm_env_start: 328,
            mm_env_end: 336,
            mm_exe_file: 856,
            file_f_inode: 32,
            file_f_path: 16,
            path_mnt: 0,
            path_dentry: 8,
            inode_i_ino: 64,
            inode_i_sb: 40,
            sb_s_dev: 16,
            // i_ctime.tv_sec and i_ctime.tv_nsec.
            inode_ctime_sec: 120,
            inode_ctime_nsec: 128,
            fs_pwd: 40,
            dentry_d_name: 32,
            dentry_d_parent: 24,
            qstr_name: 8,
            mount_mnt: 32,
            mount_mnt_parent: 16,
            mount_mnt_mountpoint: 24,
            vfsmount_mnt_root: 0,
            pid_level: 4,
            pid_numbers: 96,
            upid_size: 16,
            upid_nr: 0,
            upid_ns: 8,
            pidns_inum: 112 + 16,
            tp_exec_filename: 8,
            tp_exec_old_pid: 16,
            tp_fork_parent_pid: 24,
            tp_fork_child_pid: 44,
            tp_exit_group_dead: KernelConfig::ABSENT,
            bprm_file: KernelConfig::ABSENT,
            bprm_filename: KernelConfig::ABSENT,
            host_paths_enabled: 0,
            task_signal: 3024,
            signal_leader: 344,
            signal_tty: 376,
            task_files: 3008,
            files_fdt: 32,
            fdtable_fd: 8,
            inode_i_mode: 0,
            inode_i_rdev: 76,
            signal_live: 4,
            task_ptrace: 40,
            _pad: 0,
        };
        assert_eq!(cfg, expected);

        // resolve_from reads the file through the mmap backend; the cache
        // backend (from_bytes) must agree.
        let btf = Btf::from_bytes(&linux_6_1_btf(TaskMm::Pointer)).unwrap();
        let mut cached = KernelConfig::default();
        fill_tracepoints(dir.path(), &mut cached).unwrap();
        fill_struct_offsets(&btf, &mut cached).unwrap();
        cached.ready = 1;
        assert_eq!(cached, expected);
    }

    #[test]
    fn linux_6_1_without_task_mm() {
        let dir = linux_6_1(TaskMm::Missing);
        let err = resolve_from(&dir.path().join("vmlinux"), dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                OffsetsError::MissingField {
                    strukt: "task_struct",
                    field: "mm"
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct task_struct has no field `mm` (this kernel is not supported)"
        );
    }

    #[test]
    fn linux_6_1_with_task_mm_not_a_pointer() {
        let dir = linux_6_1(TaskMm::Int);
        let err = resolve_from(&dir.path().join("vmlinux"), dir.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                OffsetsError::FieldType {
                    strukt: "task_struct",
                    field: "mm",
                    expected: FieldKind::Pointer,
                    found,
                } if found == "an 8-byte integer"
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct task_struct field `mm` is an 8-byte integer, expected a pointer \
             (this kernel is not supported)"
        );
    }

    fn real_btf() -> Option<&'static Path> {
        let path = Path::new(VMLINUX_BTF);
        if path.exists() {
            Some(path)
        } else {
            eprintln!(
                "skipped: {VMLINUX_BTF} does not exist (kernel without CONFIG_DEBUG_INFO_BTF)"
            );
            None
        }
    }

    #[test]
    fn resolves_running_kernel_btf() {
        let Some(btf_path) = real_btf() else { return };
        // Tracepoints from the 6.1 texts so this test does not depend on
        // tracefs being mounted; the BTF part is what is checked here.
        let dir = events_dir(EXEC_6_18, FORK_6_1, EXIT_6_1);
        let started = std::time::Instant::now();
        let cfg = resolve_from(btf_path, dir.path()).unwrap();
        println!("resolved in {:?}: {cfg:#?}", started.elapsed());

        assert_eq!(cfg.ready, 1);
        assert_eq!(cfg.host_paths_enabled, 0);
        let offsets = [
            cfg.task_mm,
            cfg.task_real_parent,
            cfg.task_tgid,
            cfg.task_pid,
            cfg.task_exit_code,
            cfg.task_fs,
            cfg.task_thread_pid,
            cfg.mm_arg_start,
            cfg.mm_arg_end,
            cfg.mm_env_start,
            cfg.mm_env_end,
            cfg.mm_exe_file,
            cfg.file_f_inode,
            cfg.file_f_path,
            cfg.path_mnt,
            cfg.path_dentry,
            cfg.inode_i_ino,
            cfg.inode_i_sb,
            cfg.sb_s_dev,
            cfg.inode_ctime_sec,
            cfg.inode_ctime_nsec,
            cfg.fs_pwd,
            cfg.dentry_d_name,
            cfg.dentry_d_parent,
            cfg.qstr_name,
            cfg.mount_mnt,
            cfg.mount_mnt_parent,
            cfg.mount_mnt_mountpoint,
            cfg.vfsmount_mnt_root,
            cfg.pid_level,
            cfg.pid_numbers,
            cfg.upid_nr,
            cfg.upid_ns,
            cfg.pidns_inum,
        ];
        for (i, off) in offsets.iter().enumerate() {
            // No kernel struct we read comes near 16 KiB (task_struct is ~10 KiB
            // with every debug option).
            assert!(*off < 16 * 1024, "offset #{i} = {off}");
        }
        // Fields in one struct in the order the kernel declares them.
        assert!(cfg.mm_arg_start < cfg.mm_arg_end && cfg.mm_arg_end < cfg.mm_env_start);
        assert_eq!(cfg.mm_arg_end, cfg.mm_arg_start + 8);
        assert_eq!(cfg.mm_env_end, cfg.mm_env_start + 8);
        assert_eq!(cfg.task_tgid, cfg.task_pid + 4);
        assert_ne!(cfg.path_mnt, cfg.path_dentry);
        assert!(cfg.inode_ctime_nsec > cfg.inode_ctime_sec);
        assert_eq!(cfg.upid_size, 16);
        assert_eq!(cfg.upid_nr, 0);
        assert_eq!(cfg.upid_ns, 8);
    }

    /// The running kernel's BTF resolves, with the invariants of its layout (not
    /// the numbers of one build: 6.18.44 builds put `mm_struct.arg_start` at 480 on
    /// one machine and 488 on another).
    #[test]
    fn resolves_the_running_kernels_btf_with_its_layout_invariants() {
        let Some(btf_path) = real_btf() else { return };
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let btf = load_btf(btf_path).unwrap();
        let types = Types::new(&btf);
        let mut cfg = KernelConfig::default();
        fill_struct_offsets(&btf, &mut cfg).unwrap();
        let release = release.trim();
        // `unsigned long arg_start, arg_end, env_start, env_end;` in one line.
        assert_eq!(cfg.mm_arg_end, cfg.mm_arg_start + 8, "{release}");
        assert_eq!(cfg.mm_env_start, cfg.mm_arg_start + 16, "{release}");
        assert_eq!(cfg.mm_env_end, cfg.mm_arg_start + 24, "{release}");
        assert!(cfg.task_mm > 0 && cfg.task_mm % 8 == 0, "{release}");
        if !release.starts_with("6.18.") {
            return;
        }
        // 6.11+ layout: discrete i_ctime_sec / i_ctime_nsec.
        assert_eq!(
            field_offset(&types, "inode", "i_ctime_sec", FieldKind::Int(8)).unwrap(),
            cfg.inode_ctime_sec
        );
        let err =
            field_offset(&types, "task_struct", "no_such_field", FieldKind::Pointer).unwrap_err();
        assert!(matches!(
            err,
            OffsetsError::MissingField {
                strukt: "task_struct",
                ..
            }
        ));
    }

    #[test]
    fn resolves_running_kernel() {
        let Some(_) = real_btf() else { return };
        let Some(events) = tracefs_events_dir() else {
            eprintln!("skipped: tracefs is not mounted");
            return;
        };
        if !events.join(TP_EXEC).join("format").exists() {
            eprintln!(
                "skipped: {} has no sched tracepoints (not root?)",
                events.display()
            );
            return;
        }
        let cfg = resolve().unwrap();
        println!("{cfg:#?}");
        assert_eq!(cfg.ready, 1);
        for off in [
            cfg.tp_exec_filename,
            cfg.tp_exec_old_pid,
            cfg.tp_fork_parent_pid,
            cfg.tp_fork_child_pid,
        ] {
            assert!((8..256).contains(&off), "{off}");
        }
    }
}
