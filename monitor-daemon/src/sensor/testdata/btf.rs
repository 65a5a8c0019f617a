//! Hand-built BTF for the resolver tests in `../offsets/tests.rs`: a tiny BTF
//! encoder and two kernels described with it (a miniature one with the awkward
//! shapes, and the structs the resolver reads from Linux 6.1 at 6.1 offsets).

/// Builds little-endian BTF blobs for the tests below.
#[derive(Default)]
pub(super) struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl BtfBuilder {
    pub(super) fn new() -> Self {
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
pub(super) fn mini_kernel() -> Vec<u8> {
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

/// What `task_struct.mm` is in [`linux_6_1_btf`].
#[derive(Clone, Copy)]
pub(super) enum TaskMm {
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
pub(super) fn linux_6_1_btf(task_mm: TaskMm) -> Vec<u8> {
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
