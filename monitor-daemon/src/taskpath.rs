//! Open a path the way a given process would see it.
//!
//! The daemon runs in the initial mount namespace. A monitored process may be
//! in another mount namespace (an unprivileged user + mount namespace with a
//! bind mount over a file), chrooted, or racing us by re-pointing a symlink.
//! Opening `/proc/PID/root/<path>` is not enough: an absolute symlink met on
//! the way would be resolved against the *daemon's* root. So this module walks
//! the path itself, one component at a time (a userspace `namei`), with
//! `openat(dir, name, O_PATH|O_NOFOLLOW)` relative to the task's root and cwd,
//! and records the identity of every directory, symlink and file it crosses.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use nix::fcntl::{self, AtFlags, OFlag};
use nix::sys::stat::{self, FileStat, Mode};

/// The longest path (and symlink target) accepted, as the kernel's `PATH_MAX`.
pub const PATH_MAX: usize = 4096;
/// Symlinks followed in one resolution before `ELOOP`, as the kernel.
pub const MAX_SYMLINKS: usize = 40;
/// Directory levels walked up when naming the cwd before giving up.
const MAX_DEPTH: usize = 256;

const S_IFMT: u32 = libc::S_IFMT;
const S_IFDIR: u32 = libc::S_IFDIR;
const S_IFREG: u32 = libc::S_IFREG;
const S_IFLNK: u32 = libc::S_IFLNK;

/// One directory walked, symlink followed, or the final file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The path resolved so far, as seen from the task's root (`b"/usr/bin"`).
    /// For a relative path whose cwd cannot be named from the root (the cwd
    /// is outside the root), paths start with `.`.
    pub path: Vec<u8>,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    /// `st_mode`, including the file type bits.
    pub mode: u32,
    /// The symlink target, if this component was a symlink.
    pub link: Option<Vec<u8>>,
}

impl Component {
    fn new(path: Vec<u8>, st: &FileStat, link: Option<Vec<u8>>) -> Self {
        Self {
            path,
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode,
            link,
        }
    }

    fn kind(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// A path opened as a task sees it.
#[derive(Debug)]
pub struct Resolved {
    /// The final regular file, opened `O_RDONLY|O_CLOEXEC|O_NOFOLLOW` (with
    /// `O_NOCTTY|O_NONBLOCK`, which change nothing for a regular file but keep
    /// a FIFO swapped in at the last moment from blocking the open).
    pub file: File,
    /// The start directory, every directory walked, every symlink followed
    /// (with its target) and the final file, in order.
    pub components: Vec<Component>,
}

fn errno(e: libc::c_int) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn open_at(dir: BorrowedFd<'_>, name: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
    let fd = fcntl::openat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        flags | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: `fd` was just returned by a successful openat and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    Ok(stat::fstat(fd.as_raw_fd())?)
}

fn id(st: &FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = base.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The path of `base` after `..` (lexically: the walk itself is done by the kernel).
fn parent(base: &[u8]) -> Vec<u8> {
    if base == b"." || base.ends_with(b"/..") || base == b".." {
        return join(base, b"..");
    }
    match base.iter().rposition(|&c| c == b'/') {
        Some(0) => b"/".to_vec(),
        Some(i) => base[..i].to_vec(),
        None => b".".to_vec(),
    }
}

/// Splits a path into its components, reversed (the next one last), so that
/// a symlink target can be pushed in front of the rest. A path ending in `/`
/// or `/.` leaves an empty marker behind its last name, so that the name must
/// be a directory (it is not the last component).
fn push_components(stack: &mut Vec<Vec<u8>>, path: &[u8]) {
    if path.ends_with(b"/") || path.ends_with(b"/.") || path == b"." {
        stack.push(Vec::new());
    }
    stack.extend(
        path.split(|&c| c == b'/')
            .rev()
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec),
    );
}

/// Names the directory `dir` as seen from the root `root_id`, by walking `..`
/// up and finding each directory's entry in its parent (a userspace getcwd).
/// `None` if the root is never met (the directory is outside it).
fn dir_path(root_id: (u64, u64), dir: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cur = dir.try_clone_to_owned().ok()?;
    for _ in 0..MAX_DEPTH {
        let st = fstat(cur.as_fd()).ok()?;
        if id(&st) == root_id {
            let mut p = Vec::new();
            for n in names.iter().rev() {
                p.push(b'/');
                p.extend_from_slice(n);
            }
            if p.is_empty() {
                p.push(b'/');
            }
            return Some(p);
        }
        let up = open_at(cur.as_fd(), b"..", OFlag::O_RDONLY | OFlag::O_DIRECTORY).ok()?;
        let ust = fstat(up.as_fd()).ok()?;
        if id(&ust) == id(&st) {
            return None; // a real root that is not the task's
        }
        // /proc/self/fd/N is a magic link to the directory itself, in
        // whatever mount namespace it lives.
        let entries = std::fs::read_dir(format!("/proc/self/fd/{}", up.as_raw_fd())).ok()?;
        let name = entries.filter_map(Result::ok).find_map(|e| {
            let name = e.file_name();
            let est = stat::fstatat(
                Some(up.as_raw_fd()),
                name.as_os_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .ok()?;
            (id(&est) == id(&st)).then(|| name.as_bytes().to_vec())
        })?;
        names.push(name);
        cur = up;
    }
    None
}

/// Opens `path` as a process whose root directory is `root` and whose current
/// directory is `cwd` would, following symlinks (the last one too) inside that
/// root, and returns the regular file at the end with every component crossed.
///
/// `root` and `cwd` may be `O_PATH` descriptors, for example of
/// `/proc/PID/root` and `/proc/PID/cwd`: the walk then happens in the task's
/// mount namespace.
pub fn open_as(root: &File, cwd: &File, path: &[u8]) -> io::Result<Resolved> {
    if path.len() > PATH_MAX || path.contains(&0) {
        return Err(errno(libc::EINVAL));
    }
    if path.is_empty() {
        return Err(errno(libc::ENOENT));
    }
    let root_st = fstat(root.as_fd())?;
    let root_id = id(&root_st);
    let mut components = Vec::new();

    let (mut cur, mut cur_st, mut cur_path) = if path.starts_with(b"/") {
        (root.as_fd().try_clone_to_owned()?, root_st, b"/".to_vec())
    } else {
        let st = fstat(cwd.as_fd())?;
        let name = dir_path(root_id, cwd.as_fd()).unwrap_or_else(|| b".".to_vec());
        (cwd.as_fd().try_clone_to_owned()?, st, name)
    };
    if cur_st.st_mode & S_IFMT != S_IFDIR {
        return Err(errno(libc::ENOTDIR));
    }
    components.push(Component::new(cur_path.clone(), &cur_st, None));

    let mut rest = Vec::new();
    push_components(&mut rest, path);
    let mut links = 0;

    while let Some(name) = rest.pop() {
        if name.is_empty() {
            continue; // the trailing-slash marker
        }
        if name == b".." {
            if id(&cur_st) == root_id {
                continue; // `..` at the task's root stays there
            }
            cur = open_at(cur.as_fd(), b"..", OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            cur_st = fstat(cur.as_fd())?;
            cur_path = parent(&cur_path);
            components.push(Component::new(cur_path.clone(), &cur_st, None));
            continue;
        }
        let fd = open_at(cur.as_fd(), &name, OFlag::O_PATH | OFlag::O_NOFOLLOW)?;
        let st = fstat(fd.as_fd())?;
        let here = join(&cur_path, &name);
        match st.st_mode & S_IFMT {
            S_IFLNK => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(errno(libc::ELOOP));
                }
                // readlinkat(fd, "") reads the link an O_PATH fd refers to (Linux 2.6.39).
                let target = fcntl::readlinkat(Some(fd.as_raw_fd()), OsStr::new(""))?;
                let target = target.as_bytes().to_vec();
                if target.is_empty() {
                    return Err(errno(libc::ENOENT));
                }
                if target.len() > PATH_MAX {
                    return Err(errno(libc::ENAMETOOLONG));
                }
                components.push(Component::new(here, &st, Some(target.clone())));
                push_components(&mut rest, &target);
                if target.starts_with(b"/") {
                    cur = root.as_fd().try_clone_to_owned()?;
                    cur_st = root_st;
                    cur_path = b"/".to_vec();
                    components.push(Component::new(cur_path.clone(), &cur_st, None));
                }
            }
            S_IFDIR => {
                cur = fd;
                cur_st = st;
                cur_path.clone_from(&here);
                components.push(Component::new(here, &st, None));
            }
            S_IFREG if rest.is_empty() => {
                let flags =
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
                let file = open_at(cur.as_fd(), &name, flags)?;
                let fst = fstat(file.as_fd())?;
                if id(&fst) != id(&st) {
                    return Err(io::Error::other(format!(
                        "{} changed while it was being opened",
                        String::from_utf8_lossy(&here)
                    )));
                }
                components.push(Component::new(here, &st, None));
                return Ok(Resolved {
                    file: File::from(file),
                    components,
                });
            }
            kind if rest.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is a {}, not a regular file",
                        String::from_utf8_lossy(&here),
                        kind_name(kind)
                    ),
                ));
            }
            _ => return Err(errno(libc::ENOTDIR)),
        }
    }
    // The walk ended on a directory (`/`, `dir/`, `dir/.`).
    Err(errno(libc::EISDIR))
}

fn kind_name(kind: u32) -> &'static str {
    match kind {
        libc::S_IFIFO => "fifo",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        S_IFDIR => "directory",
        _ => "special file",
    }
}

fn open_proc_dir(pid: u32, what: &str) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(format!("/proc/{pid}/{what}"))
}

/// [`open_as`] with the root and cwd of process `pid`
/// (`/proc/PID/root`, `/proc/PID/cwd`), hence in its mount namespace.
pub fn open_as_task(pid: u32, path: &[u8]) -> io::Result<Resolved> {
    let root = open_proc_dir(pid, "root")?;
    let cwd = open_proc_dir(pid, "cwd")?;
    open_as(&root, &cwd, path)
}

/// Whether processes `a` and `b` are in the same mount namespace.
pub fn same_mount_ns(a: u32, b: u32) -> io::Result<bool> {
    let ma = std::fs::metadata(format!("/proc/{a}/ns/mnt"))?;
    let mb = std::fs::metadata(format!("/proc/{b}/ns/mnt"))?;
    Ok((ma.dev(), ma.ino()) == (mb.dev(), mb.ino()))
}

/// The first component a process running as `uid` (not root, without
/// capabilities) could change, with the reason: `owned by uid N`,
/// `group-writable (gid N)`, `world-writable` or `world-writable (sticky)`.
///
/// A directory counts when an entry in it could be renamed or replaced, the
/// final file when its content could change. A sticky directory (`/tmp`)
/// counts only when the entry walked next in it is owned by `uid` (the
/// directory's own owner is reported as owner). Symlinks themselves cannot be
/// rewritten, only replaced through their directory, so they never count.
/// Group membership is not known here: any group-writable component counts.
/// For `uid == 0` nothing is reported (root can change anything).
pub fn writable_by(components: &[Component], uid: u32) -> Option<(Vec<u8>, String)> {
    if uid == 0 {
        return None;
    }
    for (i, c) in components.iter().enumerate() {
        let kind = c.kind();
        if kind != S_IFDIR && kind != S_IFREG {
            continue;
        }
        if c.uid == uid {
            return Some((c.path.clone(), format!("owned by uid {uid}")));
        }
        let group = c.mode & libc::S_IWGRP != 0;
        let world = c.mode & libc::S_IWOTH != 0;
        if !group && !world {
            continue;
        }
        if kind == S_IFDIR && c.mode & libc::S_ISVTX != 0 {
            let next_is_users = components.get(i + 1).is_some_and(|n| {
                n.uid == uid && n.path.len() > c.path.len() && n.path.starts_with(&c.path)
            });
            if next_is_users {
                let why = if world {
                    "world-writable (sticky)"
                } else {
                    "group-writable (sticky)"
                };
                return Some((c.path.clone(), why.to_string()));
            }
            continue;
        }
        let why = if world {
            "world-writable".to_string()
        } else {
            format!("group-writable (gid {})", c.gid)
        };
        return Some((c.path.clone(), why));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
    use std::path::Path;

    fn dir(p: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(p)
            .unwrap()
    }

    fn content(mut r: Resolved) -> String {
        let mut s = String::new();
        r.file.read_to_string(&mut s).unwrap();
        s
    }

    /// A fake root: root/etc/passwd, root/usr/bin/tool, root/home/u/s.py.
    fn fake_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("home/u")).unwrap();
        std::fs::write(r.join("etc/passwd"), "fake passwd").unwrap();
        std::fs::write(r.join("usr/bin/tool"), "tool").unwrap();
        std::fs::write(r.join("home/u/s.py"), "print(1)").unwrap();
        t
    }

    fn os_err(e: &io::Error) -> Option<i32> {
        e.raw_os_error()
    }

    #[test]
    fn relative_path_from_cwd() {
        let t = fake_root();
        let root = dir(Path::new("/"));
        let cwd = dir(&t.path().join("home/u"));
        let r = open_as(&root, &cwd, b"s.py").unwrap();
        let real = std::fs::canonicalize(t.path().join("home/u")).unwrap();
        let names: Vec<_> = r.components.iter().map(|c| c.path.clone()).collect();
        assert_eq!(names[0], real.as_os_str().as_bytes());
        assert_eq!(names[1], real.join("s.py").as_os_str().as_bytes());
        assert_eq!(content(r), "print(1)");
    }

    #[test]
    fn relative_path_with_dot_components() {
        let t = fake_root();
        let cwd = dir(t.path());
        let r = open_as(&dir(t.path()), &cwd, b"./home//./u/s.py").unwrap();
        let last = r.components.last().unwrap().path.clone();
        assert_eq!(last, b"/home/u/s.py");
        assert_eq!(content(r), "print(1)");
    }

    #[test]
    fn absolute_path_in_real_root() {
        let t = fake_root();
        let p = t.path().join("usr/bin/tool");
        let r = open_as(
            &dir(Path::new("/")),
            &dir(Path::new("/")),
            p.as_os_str().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.components[0].path, b"/");
        assert_eq!(r.components.last().unwrap().path, p.as_os_str().as_bytes());
        let md = std::fs::metadata(&p).unwrap();
        let last = r.components.last().unwrap();
        assert_eq!((last.dev, last.ino), (md.dev(), md.ino()));
        assert_eq!(last.mode & S_IFMT, S_IFREG);
        assert_eq!(content(r), "tool");
    }

    #[test]
    fn dotdot_goes_up() {
        let t = fake_root();
        let root = dir(t.path());
        let r = open_as(&root, &root, b"/usr/bin/../../etc/passwd").unwrap();
        let paths: Vec<_> = r
            .components
            .iter()
            .map(|c| String::from_utf8_lossy(&c.path).into_owned())
            .collect();
        assert_eq!(
            paths,
            ["/", "/usr", "/usr/bin", "/usr", "/", "/etc", "/etc/passwd"]
        );
        assert_eq!(content(r), "fake passwd");
    }

    #[test]
    fn dotdot_at_root_stays_at_root() {
        let t = fake_root();
        let root = dir(t.path());
        for p in [
            &b"/../../etc/passwd"[..],
            b"/../../../../../../../../etc/passwd",
            b"../../../etc/passwd",
        ] {
            let r = open_as(&root, &root, p).unwrap();
            assert_eq!(r.components.last().unwrap().path, b"/etc/passwd");
            assert_eq!(content(r), "fake passwd", "{}", String::from_utf8_lossy(p));
        }
        // Relative from a cwd below the root, climbing past it.
        let cwd = dir(&t.path().join("home/u"));
        let r = open_as(&root, &cwd, b"../../../../etc/passwd").unwrap();
        assert_eq!(r.components[0].path, b"/home/u");
        assert_eq!(r.components.last().unwrap().path, b"/etc/passwd");
        assert_eq!(content(r), "fake passwd");
    }

    #[test]
    fn absolute_symlink_stays_inside_fake_root() {
        let t = fake_root();
        symlink("/etc/passwd", t.path().join("home/u/link")).unwrap();
        let root = dir(t.path());
        let r = open_as(&root, &root, b"/home/u/link").unwrap();
        let link = r.components.iter().find(|c| c.link.is_some()).unwrap();
        assert_eq!(link.path, b"/home/u/link");
        assert_eq!(link.link.as_deref(), Some(&b"/etc/passwd"[..]));
        assert_eq!(link.mode & S_IFMT, S_IFLNK);
        assert_eq!(r.components.last().unwrap().path, b"/etc/passwd");
        assert_eq!(content(r), "fake passwd");
    }

    #[test]
    fn absolute_symlink_to_a_directory_mid_path() {
        let t = fake_root();
        symlink("/usr/bin", t.path().join("bin")).unwrap();
        let root = dir(t.path());
        let r = open_as(&root, &root, b"/bin/tool").unwrap();
        assert_eq!(r.components.last().unwrap().path, b"/usr/bin/tool");
        assert_eq!(content(r), "tool");
    }

    #[test]
    fn relative_symlink() {
        let t = fake_root();
        symlink("../../usr/bin/tool", t.path().join("home/u/rel")).unwrap();
        let root = dir(t.path());
        let r = open_as(&root, &root, b"/home/u/rel").unwrap();
        let link = r.components.iter().find(|c| c.link.is_some()).unwrap();
        assert_eq!(link.link.as_deref(), Some(&b"../../usr/bin/tool"[..]));
        assert_eq!(r.components.last().unwrap().path, b"/usr/bin/tool");
        assert_eq!(content(r), "tool");
    }

    #[test]
    fn relative_symlink_climbing_out_of_root_is_clamped() {
        let t = fake_root();
        symlink("../../../../../../etc/passwd", t.path().join("home/u/up")).unwrap();
        let root = dir(t.path());
        let r = open_as(&root, &root, b"/home/u/up").unwrap();
        assert_eq!(content(r), "fake passwd");
    }

    #[test]
    fn symlink_loop_is_eloop() {
        let t = fake_root();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        symlink("self", t.path().join("self")).unwrap();
        let root = dir(t.path());
        for p in [&b"/a"[..], b"/self", b"/a/x"] {
            let e = open_as(&root, &root, p).unwrap_err();
            assert_eq!(os_err(&e), Some(libc::ELOOP), "{e}");
        }
    }

    #[test]
    fn forty_symlinks_are_fine_forty_one_are_not() {
        let t = fake_root();
        let r = t.path();
        // l0 -> l1 -> ... -> l39 -> /etc/passwd: 40 links.
        for i in 0..40 {
            let target = if i == 39 {
                "/etc/passwd".to_string()
            } else {
                format!("l{}", i + 1)
            };
            symlink(target, r.join(format!("l{i}"))).unwrap();
        }
        symlink("l0", r.join("m")).unwrap();
        let root = dir(r);
        assert_eq!(
            content(open_as(&root, &root, b"/l0").unwrap()),
            "fake passwd"
        );
        let e = open_as(&root, &root, b"/m").unwrap_err();
        assert_eq!(os_err(&e), Some(libc::ELOOP));
    }

    #[test]
    fn directory_as_final_is_an_error() {
        let t = fake_root();
        let root = dir(t.path());
        for p in [
            &b"/usr/bin"[..],
            b"/usr/bin/",
            b"/",
            b"/usr/.",
            b"/usr/bin/..",
        ] {
            let e = open_as(&root, &root, p).unwrap_err();
            assert_eq!(
                os_err(&e),
                Some(libc::EISDIR),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
    }

    #[test]
    fn fifo_as_final_is_an_error_and_does_not_block() {
        let t = fake_root();
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
        let root = dir(t.path());
        let e = open_as(&root, &root, b"/fifo").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("fifo, not a regular file"), "{e}");
        // Through a symlink too.
        symlink("fifo", t.path().join("tofifo")).unwrap();
        assert!(open_as(&root, &root, b"/tofifo").is_err());
    }

    #[test]
    fn device_as_final_is_an_error() {
        let e = open_as(&dir(Path::new("/")), &dir(Path::new("/")), b"/dev/null").unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn file_in_the_middle_is_enotdir() {
        let t = fake_root();
        let root = dir(t.path());
        for p in [&b"/etc/passwd/x"[..], b"/etc/passwd/"] {
            let e = open_as(&root, &root, p).unwrap_err();
            assert_eq!(
                os_err(&e),
                Some(libc::ENOTDIR),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
    }

    #[test]
    fn missing_is_enoent() {
        let t = fake_root();
        let root = dir(t.path());
        assert_eq!(
            os_err(&open_as(&root, &root, b"/nope").unwrap_err()),
            Some(libc::ENOENT)
        );
        assert_eq!(
            os_err(&open_as(&root, &root, b"").unwrap_err()),
            Some(libc::ENOENT)
        );
        symlink("/nope", t.path().join("dangling")).unwrap();
        assert_eq!(
            os_err(&open_as(&root, &root, b"/dangling").unwrap_err()),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn bad_paths_are_einval() {
        let root = dir(Path::new("/"));
        let long = vec![b'a'; PATH_MAX + 1];
        assert_eq!(
            os_err(&open_as(&root, &root, &long).unwrap_err()),
            Some(libc::EINVAL)
        );
        assert_eq!(
            os_err(&open_as(&root, &root, b"/etc\0/passwd").unwrap_err()),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn cwd_outside_root_is_named_relative() {
        let t = fake_root();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("f"), "x").unwrap();
        let r = open_as(&dir(t.path()), &dir(other.path()), b"f").unwrap();
        assert_eq!(r.components[0].path, b".");
        assert_eq!(r.components[1].path, b"./f");
    }

    #[test]
    fn parent_is_lexical() {
        assert_eq!(parent(b"/usr/bin"), b"/usr");
        assert_eq!(parent(b"/usr"), b"/");
        assert_eq!(parent(b"./a"), b".");
        assert_eq!(parent(b"."), b"./..");
        assert_eq!(parent(b"./.."), b"./../..");
    }

    fn chain(t: &tempfile::TempDir, rel: &[u8]) -> Vec<Component> {
        let root = dir(t.path());
        open_as(&root, &root, rel).unwrap().components
    }

    #[test]
    fn writable_by_owner_of_the_file() {
        let t = fake_root();
        let f = t.path().join("home/u/s.py");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        chown(&f, Some(1000), Some(1000)).unwrap();
        let c = chain(&t, b"/home/u/s.py");
        let (path, why) = writable_by(&c, 1000).unwrap();
        assert_eq!(path, b"/home/u/s.py");
        assert_eq!(why, "owned by uid 1000");
        assert_eq!(writable_by(&c, 1001), None);
        assert_eq!(writable_by(&c, 0), None);
    }

    #[test]
    fn writable_by_owner_of_a_directory_comes_first() {
        let t = fake_root();
        let d = t.path().join("home/u");
        chown(&d, Some(1000), Some(1000)).unwrap();
        chown(d.join("s.py"), Some(1000), Some(1000)).unwrap();
        let (path, why) = writable_by(&chain(&t, b"/home/u/s.py"), 1000).unwrap();
        assert_eq!(path, b"/home/u");
        assert_eq!(why, "owned by uid 1000");
    }

    #[test]
    fn writable_by_world_writable_dir_and_file() {
        let t = fake_root();
        std::fs::set_permissions(
            t.path().join("usr/bin"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let (path, why) = writable_by(&chain(&t, b"/usr/bin/tool"), 1001).unwrap();
        assert_eq!(
            (path.as_slice(), why.as_str()),
            (&b"/usr/bin"[..], "world-writable")
        );

        let t = fake_root();
        std::fs::set_permissions(
            t.path().join("etc/passwd"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let (path, why) = writable_by(&chain(&t, b"/etc/passwd"), 1001).unwrap();
        assert_eq!(
            (path.as_slice(), why.as_str()),
            (&b"/etc/passwd"[..], "world-writable")
        );
    }

    #[test]
    fn writable_by_group_writable() {
        let t = fake_root();
        std::fs::set_permissions(t.path().join("usr"), std::fs::Permissions::from_mode(0o775))
            .unwrap();
        chown(t.path().join("usr"), Some(0), Some(50)).unwrap();
        let (path, why) = writable_by(&chain(&t, b"/usr/bin/tool"), 1001).unwrap();
        assert_eq!(
            (path.as_slice(), why.as_str()),
            (&b"/usr"[..], "group-writable (gid 50)")
        );
    }

    #[test]
    fn writable_by_sticky_dir_only_for_the_entry_owner() {
        let t = fake_root();
        let tmp = t.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(tmp.join("s.py"), "x").unwrap();
        std::fs::set_permissions(tmp.join("s.py"), std::fs::Permissions::from_mode(0o644)).unwrap();
        // Root-owned entry in /tmp: nobody else can replace it.
        assert_eq!(writable_by(&chain(&t, b"/tmp/s.py"), 1000), None);
        // Entry owned by 1000: the sticky dir is reported for 1000 only.
        chown(tmp.join("s.py"), Some(1000), None).unwrap();
        let c = chain(&t, b"/tmp/s.py");
        let (path, why) = writable_by(&c, 1000).unwrap();
        assert_eq!(
            (path.as_slice(), why.as_str()),
            (&b"/tmp"[..], "world-writable (sticky)")
        );
        assert_eq!(writable_by(&c, 1001), None);
    }

    #[test]
    fn writable_by_root_owned_0755_chain_is_none() {
        let t = fake_root();
        for d in ["", "usr", "usr/bin"] {
            std::fs::set_permissions(t.path().join(d), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        std::fs::set_permissions(
            t.path().join("usr/bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(writable_by(&chain(&t, b"/usr/bin/tool"), 1000), None);
    }

    #[test]
    fn writable_by_ignores_symlink_ownership() {
        let t = fake_root();
        let l = t.path().join("link");
        symlink("/usr/bin/tool", &l).unwrap();
        lchown(&l, Some(1000), None).unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = chain(&t, b"/link");
        assert!(c.iter().any(|c| c.link.is_some() && c.uid == 1000));
        assert_eq!(writable_by(&c, 1000), None);
    }

    #[test]
    fn open_as_task_self_absolute() {
        let t = fake_root();
        let p = t.path().join("etc/passwd");
        let r = open_as_task(std::process::id(), p.as_os_str().as_bytes()).unwrap();
        assert_eq!(content(r), "fake passwd");
    }

    #[test]
    fn open_as_task_self_relative_uses_its_cwd() {
        // The test process's cwd is the crate directory.
        let r = open_as_task(std::process::id(), b"Cargo.toml").unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(r.components[0].path, cwd.as_os_str().as_bytes());
        assert!(content(r).contains("monitor-daemon"));
    }

    #[test]
    fn same_mount_ns_self() {
        let me = std::process::id();
        assert!(same_mount_ns(me, me).unwrap());
        assert!(same_mount_ns(me, u32::MAX).is_err());
    }

    /// A child in its own mount namespace with a bind mount over a file: the
    /// daemon's view and the task's view differ, and `open_as_task` gives the
    /// task's. Skipped where `unshare -m` is not available.
    #[test]
    fn open_as_task_sees_the_tasks_mount_namespace() {
        let t = fake_root();
        let real = t.path().join("etc/passwd");
        let other = t.path().join("home/u/s.py");
        let script = format!(
            "mount --bind {} {} && exec sleep 30",
            other.display(),
            real.display()
        );
        let Ok(mut child) = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .spawn()
        else {
            return;
        };
        let pid = child.id();
        let mut ready = false;
        for _ in 0..200 {
            if std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
            {
                ready = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if ready {
            assert!(!same_mount_ns(std::process::id(), pid).unwrap());
            let r = open_as_task(pid, real.as_os_str().as_bytes()).unwrap();
            assert_eq!(content(r), "print(1)");
            assert_eq!(std::fs::read_to_string(&real).unwrap(), "fake passwd");
        } else {
            eprintln!("skipped: the child did not reach its own mount namespace");
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
