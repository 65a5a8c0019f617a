//! The SHA-256 file hasher and its cache, used at exec time (the executable a
//! launch ran, `enrich`) and at approval time (the files a record binds,
//! `consent`). One set of rules for both:
//!
//! - a file is opened `O_NONBLOCK` (a FIFO swapped in must not block the daemon)
//!   and `O_NOFOLLOW`, and must be a regular file (not a device that never ends);
//! - its identity comes from `fstat` of the open file, not from a second lookup
//!   of the path, and its ctime is checked again after reading: a write during
//!   the read is refused, not cached;
//! - the cache is keyed by identity (device, inode, ctime): any write changes the
//!   ctime, so a cached hash is never served for modified content; it is bounded
//!   (cleared past [`CACHE_MAX`] entries).
//!
//! Links: at exec time the kernel's path of the executable has none, so one found
//! there was put in after the exec and is refused; `/proc/PID/exe` is a magic link
//! and is followed. At approval time a record's path may legitimately be a link
//! (`/usr/bin/python3`): [`HashCache::get`] resolves it first, so the file bound
//! is the one a launch by that path runs, then opens the result `O_NOFOLLOW`.

use std::{
    collections::HashMap,
    fs,
    io::{self, Read as _},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

/// Identity of a file as stat(2) reports it; a change means "hash it again".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ident {
    pub dev: u64,
    pub ino: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
    pub size: u64,
}

impl Ident {
    pub fn of(m: &fs::Metadata) -> Self {
        Ident {
            dev: m.dev(),
            ino: m.ino(),
            ctime_sec: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
            size: m.size(),
        }
    }

    pub fn key(&self) -> FileKey {
        FileKey {
            dev: self.dev,
            ino: self.ino,
            ctime_sec: self.ctime_sec,
            ctime_nsec: self.ctime_nsec,
        }
    }
}

/// The identity of the file `path` names (links followed).
pub fn ident(path: &Path) -> io::Result<Ident> {
    Ok(Ident::of(&fs::metadata(path)?))
}

/// What the cache is keyed by: device (userspace `st_dev`), inode and ctime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

impl FileKey {
    fn matches(&self, m: &fs::Metadata) -> bool {
        m.dev() == self.dev
            && m.ino() == self.ino
            && m.ctime() == self.ctime_sec
            && m.ctime_nsec() == self.ctime_nsec
    }
}

/// Outcome of hashing one executable at exec time.
pub type HashResult = Result<String, HashError>;

/// Why an executable could not be hashed at exec time; the text is the event's
/// `hash_error`.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{} is not a regular file", .path.display())]
    NotRegular { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is no longer the executed file (inode differs)", .path.display())]
    Replaced { path: PathBuf },
    #[error("file changed since exec (ctime differs)")]
    ChangedSinceExec,
    #[error("file changed while it was being hashed")]
    ChangedWhileHashing,
    /// The hashing stage gave the engine no result for an exec.
    #[error("not hashed")]
    NotHashed,
}

/// Upper bound on cache entries; past it the cache is cleared (bounded memory).
pub const CACHE_MAX: usize = 16_384;

/// SHA-256 of files, cached by identity.
#[derive(Default)]
pub struct HashCache {
    map: HashMap<FileKey, String>,
    pub hits: u64,
    pub misses: u64,
}

impl HashCache {
    /// Exec time: hash the executable `pid` is running, verified to be the file
    /// the kernel saw (`exe`). `/proc/PID/exe` opens the mapped file itself even if
    /// its path was replaced; when the process is gone, the kernel's `path` is used
    /// (not following a link) and its identity checked, so a different file is
    /// never hashed in its place.
    pub fn hash(&mut self, pid: u32, exe: impl Into<FileKey>, path: Option<&[u8]>) -> HashResult {
        let exe = exe.into();
        if let Some(r) = self.map.get(&exe) {
            self.hits += 1;
            return Ok(r.clone());
        }
        self.misses += 1;
        let proc_exe = format!("/proc/{pid}/exe");
        let mut result = hash_exe(Path::new(&proc_exe), exe, Follow::MagicLink);
        if result.is_err() {
            if let Some(p) = path {
                use std::os::unix::ffi::OsStrExt as _;
                result = hash_exe(Path::new(std::ffi::OsStr::from_bytes(p)), exe, Follow::No);
            }
        }
        // Only successes are cached: a vanished process may be hashable through
        // its path next time.
        if let Ok(sha) = &result {
            self.insert(exe, sha.clone());
        }
        result
    }

    /// Approval time: the identity and SHA-256 of the file `path` names now, links
    /// resolved (see the module comment).
    pub fn get(&mut self, path: &Path) -> io::Result<(Ident, String)> {
        let real = fs::canonicalize(path)?;
        let (mut f, m) = open_regular(&real, Follow::No)?;
        let id = Ident::of(&m);
        if let Some(sha) = self.map.get(&id.key()) {
            self.hits += 1;
            return Ok((id, sha.clone()));
        }
        self.misses += 1;
        let sha = sha256_open(&mut f)?;
        if !id.key().matches(&f.metadata()?) {
            return Err(io::Error::other("the file changed while it was hashed"));
        }
        self.insert(id.key(), sha.clone());
        Ok((id, sha))
    }

    /// Take in hashes computed elsewhere (off the engine): keyed by identity, each
    /// applies only while its file keeps the identity it was hashed at.
    pub fn absorb(&mut self, other: HashCache) {
        for (key, sha) in other.map {
            self.insert(key, sha);
        }
    }

    fn insert(&mut self, key: FileKey, sha: String) {
        if self.map.len() >= CACHE_MAX {
            self.map.clear();
        }
        self.map.insert(key, sha);
    }
}

/// SHA-256 (hex) of what is left to read of an open file; no checks, no cache
/// (for files the caller opened and checked, such as a file opened as a task).
pub fn sha256_open(f: &mut fs::File) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(super::hex::encode(&h.finalize()))
}

/// Whether the last path component may be a link: only `/proc/PID/exe`, a magic
/// link that must be followed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    MagicLink,
    No,
}

/// Open `path` for hashing: non-blocking, close-on-exec, a regular file.
fn open_regular(path: &Path, follow: Follow) -> io::Result<(fs::File, fs::Metadata)> {
    // O_NONBLOCK: a FIFO swapped in at the path must not block the daemon in
    // open(2); the regular-file check below then refuses it (and devices such as
    // /dev/zero, which would never end).
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((f, m))
}

fn hash_exe(path: &Path, exe: FileKey, follow: Follow) -> HashResult {
    let io_err = |source| HashError::Io {
        path: path.to_path_buf(),
        source,
    };
    let (mut f, m) = open_regular(path, follow).map_err(|e| {
        if e.kind() == io::ErrorKind::Other && e.to_string() == "not a regular file" {
            HashError::NotRegular {
                path: path.to_path_buf(),
            }
        } else {
            io_err(e)
        }
    })?;
    if m.dev() != exe.dev || m.ino() != exe.ino {
        return Err(HashError::Replaced {
            path: path.to_path_buf(),
        });
    }
    if m.ctime() != exe.ctime_sec || m.ctime_nsec() != exe.ctime_nsec {
        return Err(HashError::ChangedSinceExec);
    }
    let sha = sha256_open(&mut f).map_err(io_err)?;
    // Re-check after reading: a write during the read changes ctime.
    let m2 = f.metadata().map_err(io_err)?;
    if m2.ctime() != m.ctime() || m2.ctime_nsec() != m.ctime_nsec() {
        return Err(HashError::ChangedWhileHashing);
    }
    Ok(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_errors_read_as_the_event_reasons_always_did() {
        let path = Path::new("/usr/bin/node");
        let e = HashError::Replaced {
            path: path.to_path_buf(),
        };
        assert_eq!(
            e.to_string(),
            format!(
                "{} is no longer the executed file (inode differs)",
                path.display()
            )
        );
        let e = HashError::Io {
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let io = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), format!("{}: {io}", path.display()));
        assert_eq!(HashError::NotHashed.to_string(), "not hashed");
    }

    const HELLO: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn key(p: &Path) -> FileKey {
        ident(p).unwrap().key()
    }

    #[test]
    fn a_fifo_or_link_swapped_in_at_the_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("exe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let id = FileKey {
            dev: 0,
            ino: 0,
            ctime_sec: 0,
            ctime_nsec: 0,
        };
        // No writer: a blocking open would hang here forever.
        let err = hash_exe(&fifo, id, Follow::No).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/bin/true", &link).unwrap();
        assert!(hash_exe(&link, id, Follow::No).is_err());
        // At approval time neither blocks either: a FIFO is refused.
        let err = HashCache::default().get(&fifo).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file");
    }

    #[test]
    fn exec_time_hash_is_verified_against_identity_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        fs::write(&p, b"hello").unwrap();
        let id = key(&p);
        let mut cache = HashCache::default();
        let path = p.as_os_str().as_encoded_bytes().to_vec();
        let h = cache.hash(u32::MAX, id, Some(&path)).unwrap();
        assert_eq!(h, HELLO);
        assert_eq!(cache.hash(u32::MAX, id, Some(&path)).unwrap(), h);
        assert_eq!((cache.hits, cache.misses), (1, 1));
        // A different identity (the file was rewritten: new ctime) is not served
        // from the cache and is refused because the file on disk no longer matches.
        let stale = FileKey {
            ctime_sec: id.ctime_sec - 10,
            ..id
        };
        let err = cache.hash(u32::MAX, stale, Some(&path)).unwrap_err();
        assert_eq!(err.to_string(), "file changed since exec (ctime differs)");
    }

    #[test]
    fn approval_time_hash_binds_what_a_link_names_and_is_cached_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        fs::write(&p, b"hello").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let mut cache = HashCache::default();
        let (id, sha) = cache.get(&link).unwrap();
        assert_eq!((id, sha.as_str()), (ident(&p).unwrap(), HELLO));
        // The same file by its own path: served from the cache (same identity).
        assert_eq!(cache.get(&p).unwrap().1, HELLO);
        assert_eq!((cache.hits, cache.misses), (1, 1));
        // Rewritten: a new ctime, hashed again.
        // Past the coarsest timestamp granularity (one jiffy at HZ=100).
        std::thread::sleep(std::time::Duration::from_millis(50));
        fs::write(&p, b"other").unwrap();
        assert_ne!(cache.get(&link).unwrap().1, HELLO);
        assert_eq!(cache.misses, 2);
        assert!(cache.get(&dir.path().join("missing")).is_err());
    }
}
