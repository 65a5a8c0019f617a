//! Tests of the tracepoint-format parser and the BTF resolver. The format texts are
//! in `../testdata/*.format`, the hand-built BTF kernels in `../testdata/btf.rs`.
use std::fs;

use btf_rs::Btf;

use super::*;
use super::{structs::*, tracefs::*};

#[path = "../testdata/btf.rs"]
mod btf;

use btf::{linux_6_1_btf, mini_kernel, TaskMm};

// Copied from /sys/kernel/tracing/events/sched/*/format on Linux 6.18.
const EXEC_6_18: &str = include_str!("../testdata/sched_process_exec-6.18.format");
const FORK_6_18: &str = include_str!("../testdata/sched_process_fork-6.18.format");
const EXIT_6_18: &str = include_str!("../testdata/sched_process_exit-6.18.format");

// 6.1 layouts: the exec record as on 6.18 (another ID), the fork comms
// inline as char[16], no group_dead.
const EXEC_6_1: &str = include_str!("../testdata/sched_process_exec-6.1.format");
const FORK_6_1: &str = include_str!("../testdata/sched_process_fork-6.1.format");
const EXIT_6_1: &str = include_str!("../testdata/sched_process_exit-6.1.format");

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
    let err = field_offset(&types, "mm_struct", "no_such_field", FieldKind::Pointer).unwrap_err();
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
        host_names_enabled: 0,
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
        eprintln!("skipped: {VMLINUX_BTF} does not exist (kernel without CONFIG_DEBUG_INFO_BTF)");
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
    let err = field_offset(&types, "task_struct", "no_such_field", FieldKind::Pointer).unwrap_err();
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
