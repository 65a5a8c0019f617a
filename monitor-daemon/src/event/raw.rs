//! Pure decode of ring-buffer records (`&[u8]`) into typed kernel events.
//!
//! The kernel writes `monitor_common::EventHeader` followed, for execs, by the
//! `ExecBody` up to the end of the captured environment. Nothing here trusts the
//! lengths in the header: every slice is bounds-checked against the record and the
//! field capacities, so a short or corrupt record is an error, never a panic.
use monitor_common::{
    event_flags, kind, role, EventHeader, ARGV_CAP, ARGV_OFF, CWD_OFF, ENV_CAP, ENV_OFF,
    EXE_PATH_OFF, FILENAME_CAP, FILENAME_OFF, HEADER_SIZE, PATH_CAP,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown event kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("unknown role {role}")]
    UnknownRole { role: u32 },
    #[error("{field} length {len} exceeds its capacity {cap}")]
    Length {
        field: &'static str,
        len: u32,
        cap: usize,
    },
}

/// Place of a process in a tracked tree, as the kernel saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    None,
    Host,
    Session,
    /// A terminal inside a host and what runs in it (recorded, not checked).
    Terminal,
    /// The host's login-shell environment probe and what it runs.
    Helper,
}

impl TryFrom<u32> for Role {
    type Error = DecodeError;
    fn try_from(v: u32) -> Result<Self, DecodeError> {
        match v {
            role::NONE => Ok(Self::None),
            role::HOST => Ok(Self::Host),
            role::SESSION => Ok(Self::Session),
            role::TERMINAL => Ok(Self::Terminal),
            role::HELPER => Ok(Self::Helper),
            role => Err(DecodeError::UnknownRole { role }),
        }
    }
}

/// Fields every kernel event carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Common {
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub ns_pid: u32,
    pub ns_level: u32,
    pub pidns_inum: u32,
    pub role: Role,
    pub host_pid: u32,
    pub host_profile: u32,
    pub session_pid: u32,
    pub comm: Vec<u8>,
    pub flags: u32,
    /// Who forked this process, as the kernel recorded it at fork (0: unknown,
    /// a host, or an adopted root).
    pub lineage_parent: u32,
}

impl Common {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// The executable actually mapped by the new image (`mm->exe_file`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExeId {
    /// Kernel `s_dev` encoding (`major << 20 | minor`), see [`kernel_dev_to_user`].
    pub dev: u32,
    pub ino: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
}

impl From<ExeId> for crate::sys::hash::FileKey {
    /// The kernel's identity of an executable in userspace's encoding.
    fn from(exe: ExeId) -> Self {
        Self {
            dev: kernel_dev_to_user(exe.dev),
            ino: exe.ino,
            ctime_sec: exe.ctime_sec,
            ctime_nsec: i64::from(exe.ctime_nsec),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawExec {
    pub common: Common,
    pub prev_role: Role,
    pub exe: ExeId,
    /// As passed to execve (`bprm->filename`).
    pub filename: Vec<u8>,
    /// Rebuilt from dentries in the kernel; `None` if the walk failed entirely.
    pub exe_path: Option<Vec<u8>>,
    pub cwd: Option<Vec<u8>>,
    pub argv: Vec<Vec<u8>>,
    /// Real size of the argv block in bytes (more than captured when truncated).
    pub argv_total: u32,
    pub env: Vec<Vec<u8>>,
    pub env_total: u32,
    /// The host's mode the kernel decided in (`monitor_common::mode`).
    pub mode: u32,
    /// The consent record that allowed it (`ALLOWED` set), else 0.
    pub record_id: u64,
}

/// SIGCONT sent to a process ask mode holds, by someone other than the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHoldBypass {
    /// `common` describes the process in whose context the kernel saw it (the
    /// sender of SIGCONT, or the continued process itself); the state fields are
    /// the held process's.
    pub common: Common,
    pub target: u32,
    /// SIGCONT (seen at the sender) or SIGCHLD (the continued process reporting to
    /// its parent: killed there by the kernel when `KILLED` is in the flags), or
    /// `RESUMED_CONTINUED` / `RESUMED_PTRACE` (caught in the held process itself as
    /// it resumed: killed there when `KILLED` is in the flags).
    pub signal: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFork {
    /// `common.pid` is the parent; the state fields describe the child.
    pub common: Common,
    pub child_pid: u32,
    pub parent_role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawExit {
    pub common: Common,
    /// Wait-status encoding: `code << 8` for exit(code), the signal number otherwise.
    pub exit_code: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEvent {
    Exec(RawExec),
    Fork(RawFork),
    Exit(RawExit),
    HoldBypass(RawHoldBypass),
    LsmDeny(RawLsmDeny),
}

/// BPF LSM refused an exec with EPERM (managed deny); nothing of it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLsmDeny {
    pub common: Common,
    /// The denied file (kernel `s_dev` encoding).
    pub dev: u32,
    pub ino: u64,
    pub mode: u32,
}

impl RawEvent {
    pub fn common(&self) -> &Common {
        match self {
            Self::Exec(e) => &e.common,
            Self::Fork(e) => &e.common,
            Self::Exit(e) => &e.common,
            Self::HoldBypass(e) => &e.common,
            Self::LsmDeny(e) => &e.common,
        }
    }
}

fn header(buf: &[u8]) -> Result<EventHeader, DecodeError> {
    if buf.len() < HEADER_SIZE {
        return Err(DecodeError::Short {
            what: "event header",
            len: buf.len(),
            need: HEADER_SIZE,
        });
    }
    // SAFETY: EventHeader is repr(C) plain data (monitor-common pins its layout) and
    // the buffer holds at least HEADER_SIZE bytes; read_unaligned has no alignment need.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<EventHeader>()) })
}

/// Decode one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<RawEvent, DecodeError> {
    let h = header(buf)?;
    let comm_end = h.comm.iter().position(|&b| b == 0).unwrap_or(h.comm.len());
    let common = Common {
        ts_ns: h.ts_ns,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        ns_pid: h.ns_pid,
        ns_level: h.ns_level,
        pidns_inum: h.pidns_inum,
        role: Role::try_from(h.role)?,
        host_pid: h.host_pid,
        host_profile: h.host_profile,
        session_pid: h.session_pid,
        comm: h.comm[..comm_end].to_vec(),
        flags: h.flags,
        lineage_parent: h.lineage_parent,
    };
    match h.kind {
        kind::FORK => Ok(RawEvent::Fork(RawFork {
            common,
            child_pid: h.child_pid,
            parent_role: Role::try_from(h.prev_role)?,
        })),
        kind::EXIT => Ok(RawEvent::Exit(RawExit {
            common,
            exit_code: h.exit_code,
        })),
        kind::EXEC => decode_exec(buf, &h, common).map(RawEvent::Exec),
        kind::SIGNAL => Ok(RawEvent::HoldBypass(RawHoldBypass {
            common,
            target: h.child_pid,
            signal: h.mode,
        })),
        kind::LSM_DENY => Ok(RawEvent::LsmDeny(RawLsmDeny {
            common,
            dev: h.exe_dev,
            ino: h.exe_ino,
            mode: h.mode,
        })),
        kind => Err(DecodeError::UnknownKind { kind }),
    }
}

fn field<'a>(
    buf: &'a [u8],
    name: &'static str,
    off: usize,
    len: u32,
    cap: usize,
) -> Result<&'a [u8], DecodeError> {
    let n = len as usize;
    if n > cap {
        return Err(DecodeError::Length {
            field: name,
            len,
            cap,
        });
    }
    buf.get(off..off + n).ok_or(DecodeError::Short {
        what: name,
        len: buf.len(),
        need: off + n,
    })
}

fn decode_exec(buf: &[u8], h: &EventHeader, common: Common) -> Result<RawExec, DecodeError> {
    let filename = field(buf, "filename", FILENAME_OFF, h.filename_len, FILENAME_CAP)?;
    let exe_path = field(buf, "exe_path", EXE_PATH_OFF, h.exe_path_len, PATH_CAP)?;
    let cwd = field(buf, "cwd", CWD_OFF, h.cwd_len, PATH_CAP)?;
    let argv = field(buf, "argv", ARGV_OFF, h.argv_len, ARGV_CAP)?;
    let env = field(buf, "env", ENV_OFF, h.env_len, ENV_CAP)?;
    let path_failed = h.flags & event_flags::PATH_READ_FAILED != 0;
    Ok(RawExec {
        prev_role: Role::try_from(h.prev_role)?,
        exe: ExeId {
            dev: h.exe_dev,
            ino: h.exe_ino,
            ctime_sec: h.exe_ctime_sec,
            // Since 6.13 the top bit of i_ctime_nsec is I_CTIME_QUERIED (multigrain
            // timestamps), not part of the time; nanoseconds never reach bit 30.
            ctime_nsec: h.exe_ctime_nsec & CTIME_NSEC_MASK,
        },
        filename: strip_nul(filename).to_vec(),
        exe_path: (h.exe_path_len > 0 || h.flags & event_flags::EXE_PATH_TRUNCATED == 0)
            .then(|| rebuild_path(exe_path)),
        cwd: (!path_failed).then(|| rebuild_path(cwd)),
        argv: split_nul(argv),
        argv_total: h.argv_total,
        env: split_nul(env),
        mode: h.mode,
        record_id: h.record_id,
        env_total: h.env_total,
        common,
    })
}

/// Nanoseconds fit in 30 bits; higher bits are kernel flags (`I_CTIME_QUERIED`).
pub const CTIME_NSEC_MASK: u32 = 0x3fff_ffff;

fn strip_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// Split a NUL-separated block (argv or environment as laid out on the stack).
/// Empty strings survive (`a\0\0b\0` is `["a", "", "b"]`); an unterminated last
/// string (a truncated capture) is kept as it is.
pub fn split_nul(block: &[u8]) -> Vec<Vec<u8>> {
    if block.is_empty() {
        return Vec::new();
    }
    let body = block.strip_suffix(&[0]).unwrap_or(block);
    body.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Rebuild a path from the kernel's leaf-first, NUL-terminated components:
/// `true\0bin\0usr\0` is `/usr/bin/true`; no components is `/`.
pub fn rebuild_path(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + 1);
    let parts: Vec<&[u8]> = block.split(|&b| b == 0).filter(|p| !p.is_empty()).collect();
    for part in parts.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The kernel's `s_dev` is `MKDEV(major, minor) = major << 20 | minor`; stat(2)'s
/// `st_dev` uses glibc's `makedev` encoding. Convert so the two can be compared.
pub fn kernel_dev_to_user(dev: u32) -> u64 {
    let major = dev >> 20;
    let minor = dev & 0xf_ffff;
    libc::makedev(major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_common::{ExecEvent, EXEC_EVENT_MAX};

    fn len32(b: &[u8]) -> u32 {
        u32::try_from(b.len()).expect("test blocks are small")
    }

    fn exec_record(argv: &[u8], env: &[u8], exe: &[u8], cwd: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; EXEC_EVENT_MAX];
        let h = EventHeader {
            kind: kind::EXEC,
            pid: 42,
            tid: 43,
            role: role::SESSION,
            prev_role: role::HOST,
            filename_len: 9,
            exe_path_len: len32(exe),
            cwd_len: len32(cwd),
            argv_len: len32(argv),
            argv_total: len32(argv),
            env_len: len32(env),
            env_total: len32(env),
            comm: *b"true\0\0\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        // SAFETY: buf holds a full ExecEvent.
        unsafe { std::ptr::write_unaligned(buf.as_mut_ptr().cast::<EventHeader>(), h) };
        buf[FILENAME_OFF..FILENAME_OFF + 10].copy_from_slice(b"/bin/true\0");
        buf[EXE_PATH_OFF..EXE_PATH_OFF + exe.len()].copy_from_slice(exe);
        buf[CWD_OFF..CWD_OFF + cwd.len()].copy_from_slice(cwd);
        buf[ARGV_OFF..ARGV_OFF + argv.len()].copy_from_slice(argv);
        buf[ENV_OFF..ENV_OFF + env.len()].copy_from_slice(env);
        buf.truncate(ENV_OFF + env.len());
        buf
    }

    #[test]
    fn exec_record_decodes_exact_argv_with_empty_and_non_utf8_args() {
        let argv = b"sh\0-c\0echo 'a b'\n\0\0\xff\xfe\0";
        let rec = exec_record(
            argv,
            b"A=1\0LD_PRELOAD=/x.so\0",
            b"true\0bin\0usr\0",
            b"tmp\0",
        );
        let RawEvent::Exec(e) = decode(&rec).unwrap() else {
            panic!("not an exec")
        };
        assert_eq!(
            e.argv,
            vec![
                b"sh".to_vec(),
                b"-c".to_vec(),
                b"echo 'a b'\n".to_vec(),
                Vec::new(),
                vec![0xff, 0xfe]
            ]
        );
        assert_eq!(e.env, vec![b"A=1".to_vec(), b"LD_PRELOAD=/x.so".to_vec()]);
        assert_eq!(e.filename, b"/bin/true");
        assert_eq!(e.exe_path.as_deref(), Some(&b"/usr/bin/true"[..]));
        assert_eq!(e.cwd.as_deref(), Some(&b"/tmp"[..]));
        assert_eq!(e.common.comm, b"true");
        assert_eq!((e.common.role, e.prev_role), (Role::Session, Role::Host));
    }

    #[test]
    fn short_or_lying_records_are_errors_not_panics() {
        assert!(matches!(decode(&[0u8; 10]), Err(DecodeError::Short { .. })));
        let mut rec = exec_record(b"a\0", b"", b"", b"");
        rec.truncate(ARGV_OFF); // header says 2 argv bytes that are not there
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::Short { what: "argv", .. })
        ));
        let mut rec = exec_record(b"a\0", b"", b"", b"");
        rec[0] = 99; // kind
        assert_eq!(decode(&rec), Err(DecodeError::UnknownKind { kind: 99 }));
        // A header claiming more than the field's capacity.
        let mut rec = exec_record(b"a\0", b"", b"", b"");
        let mut h = header(&rec).unwrap();
        h.argv_len = u32::try_from(ARGV_CAP + 1).unwrap();
        unsafe { std::ptr::write_unaligned(rec.as_mut_ptr().cast::<EventHeader>(), h) };
        assert!(matches!(
            decode(&rec),
            Err(DecodeError::Length { field: "argv", .. })
        ));
        // Every prefix of a valid record decodes or errors; none panics.
        let rec = exec_record(b"x\0y\0", b"E=1\0", b"a\0", b"b\0");
        for n in 0..rec.len() {
            let _ = decode(&rec[..n]);
        }
        assert_eq!(std::mem::size_of::<ExecEvent>(), EXEC_EVENT_MAX);
    }

    #[test]
    fn split_and_rebuild_edge_cases() {
        assert_eq!(split_nul(b""), Vec::<Vec<u8>>::new());
        assert_eq!(split_nul(b"\0"), vec![Vec::<u8>::new()]);
        assert_eq!(split_nul(b"trunc"), vec![b"trunc".to_vec()]);
        assert_eq!(rebuild_path(b""), b"/");
        assert_eq!(rebuild_path(b"a b\0dir\0"), b"/dir/a b");
    }

    #[test]
    fn kernel_dev_converts_to_stat_dev() {
        // /dev/vda 254:0 is 0xfe00000 in the kernel and 0xfe00 from stat (PLATFORM.md).
        assert_eq!(kernel_dev_to_user(0x0fe0_0000), 0xfe00);
        assert_eq!(kernel_dev_to_user((8 << 20) | 1), libc::makedev(8, 1));
    }
}
