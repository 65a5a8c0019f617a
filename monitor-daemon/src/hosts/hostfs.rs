//! The filesystem operations host resolution and config import need: a seam for
//! unit tests ([`RealFs`] is the real one).

use std::{
    collections::BTreeSet,
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use glob::{MatchOptions, PatternError};

/// Identity of a file as `stat(2)` reports it (following symlinks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// `st_dev`, userspace encoding.
    pub dev: u64,
    pub ino: u64,
    /// A regular file (not a directory, device, socket…).
    pub is_file: bool,
}

/// What a glob found, and the directories it could not read on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobOutcome {
    /// Sorted matching paths, as matched (symlinks not resolved).
    pub matches: Vec<PathBuf>,
    pub errors: Vec<String>,
}

/// The filesystem operations host resolution needs; a seam for unit tests.
pub trait HostFs {
    /// Paths matching an absolute glob (no `~`). `*`, `?` and `[...]` never match
    /// `/`; a leading `.` needs no literal dot.
    fn glob(&self, pattern: &str) -> Result<GlobOutcome, PatternError>;
    /// `stat(2)`: follows symlinks.
    fn stat(&self, path: &Path) -> io::Result<FileId>;
    /// The absolute path with every symlink resolved.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// Every home directory a host may be installed under, sorted, no duplicates.
    fn home_dirs(&self) -> Vec<PathBuf>;
    /// The content of a file (following symlinks): config import.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// [`HostFs`] over the real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl HostFs for RealFs {
    fn glob(&self, pattern: &str) -> Result<GlobOutcome, PatternError> {
        let options = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let mut outcome = GlobOutcome::default();
        for item in glob::glob_with(pattern, options)? {
            match item {
                Ok(path) => outcome.matches.push(path),
                Err(e) => outcome.errors.push(e.to_string()),
            }
        }
        outcome.matches.sort();
        Ok(outcome)
    }

    fn stat(&self, path: &Path) -> io::Result<FileId> {
        let meta = fs::metadata(path)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            is_file: meta.is_file(),
        })
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        fs::canonicalize(path)
    }

    /// `/root`, every directory in `/home`, and the home of every `/etc/passwd`
    /// account with uid >= 1000 (except `nobody`), that exist as directories.
    fn home_dirs(&self) -> Vec<PathBuf> {
        let mut homes = BTreeSet::new();
        homes.insert(PathBuf::from("/root"));
        if let Ok(entries) = fs::read_dir("/home") {
            homes.extend(entries.flatten().map(|e| e.path()));
        }
        if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
            homes.extend(passwd_homes(&passwd));
        }
        homes.into_iter().filter(|home| home.is_dir()).collect()
    }

    /// Reads a config file safely for a root daemon walking users' homes: never
    /// blocks on a FIFO a user put in the file's place (opened non-blocking, and only
    /// a regular file is read), and never reads more than [`CONFIG_MAX_BYTES`].
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _};
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > CONFIG_MAX_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} bytes, larger than a config file can be ({CONFIG_MAX_BYTES})",
                    meta.len()
                ),
            ));
        }
        let mut bytes = Vec::new();
        file.take(CONFIG_MAX_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > CONFIG_MAX_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("grew past {CONFIG_MAX_BYTES} bytes while read"),
            ));
        }
        Ok(bytes)
    }
}

/// The largest MCP config file read (8 MiB): far above any real one.
pub const CONFIG_MAX_BYTES: u64 = 8 << 20;

/// Home directories of regular users (uid >= 1000, not `nobody`) in `/etc/passwd`
/// format text. `/` and relative homes are ignored.
pub fn passwd_homes(passwd: &str) -> Vec<PathBuf> {
    const NOBODY: u32 = 65534;
    passwd
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let uid: u32 = fields.get(2)?.parse().ok()?;
            let home = *fields.get(5)?;
            (uid >= 1000 && uid != NOBODY && home.starts_with('/') && home != "/")
                .then(|| PathBuf::from(home))
        })
        .collect()
}
