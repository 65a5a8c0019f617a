//! Struct offsets from the kernel's BTF: every field the programs read, found by
//! name and checked for the shape they read it as.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    io,
    path::Path,
};

use btf_rs::{Backend, Btf, BtfType, Struct, Type};
use monitor_common::KernelConfig;

use super::{FieldKind, OffsetsError};

pub(super) fn load_btf(path: &Path) -> Result<Btf, OffsetsError> {
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
pub(super) struct Types<'a> {
    btf: &'a Btf,
    by_name: RefCell<HashMap<&'static str, Vec<Struct>>>,
}

impl<'a> Types<'a> {
    pub(super) fn new(btf: &'a Btf) -> Self {
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

pub(super) fn fill_struct_offsets(btf: &Btf, cfg: &mut KernelConfig) -> Result<(), OffsetsError> {
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
pub(super) fn inode_ctime(types: &Types) -> Result<(u32, u32), OffsetsError> {
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
pub(super) fn field_offset(
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
