//! What userspace adds to a kernel event: wall-clock time, the executable's SHA-256
//! (cached by identity), the security-relevant environment, and argv completion when
//! the kernel capture was truncated. Each step says where its data came from.
use std::{collections::HashMap, io::Read as _, os::unix::fs::MetadataExt as _, path::Path};

use sha2::{Digest as _, Sha256};

use crate::event::{
    raw::{kernel_dev_to_user, ExeId},
    Bytes, SECURITY_ENV,
};

/// Convert `CLOCK_BOOTTIME` nanoseconds (what the kernel stamps) to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// realtime - boottime, in nanoseconds, measured at construction.
    offset_ns: i128,
}

impl Clock {
    pub fn now() -> Self {
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let real = clock_ns(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - boot,
        }
    }

    pub fn fixed(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    pub fn boot_ns_now() -> u64 {
        u64::try_from(clock_ns(libc::CLOCK_BOOTTIME)).unwrap_or(0)
    }

    /// RFC 3339, UTC, nanoseconds.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        rfc3339_from_unix_ns(i128::from(boot_ns) + self.offset_ns)
    }
}

pub fn rfc3339_from_unix_ns(ns: i128) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&f)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000000000Z".into())
}

pub fn now_rfc3339() -> String {
    rfc3339_from_unix_ns(clock_ns(libc::CLOCK_REALTIME))
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Outcome of hashing one executable.
pub type HashResult = Result<String, String>;

/// SHA-256 of executables, cached by (dev, inode, ctime): any write to the file
/// changes its ctime, so a cached hash is never served for modified content.
#[derive(Default)]
pub struct HashCache {
    map: HashMap<ExeId, HashResult>,
    pub hits: u64,
    pub misses: u64,
}

/// Upper bound on cache entries; past it the cache is cleared (bounded memory).
const HASH_CACHE_MAX: usize = 16_384;

impl HashCache {
    /// Hash the executable `pid` is running, verified to be the file the kernel saw.
    /// `/proc/PID/exe` opens the mapped file itself even if its path was replaced;
    /// when the process is gone, the path from the kernel is used and its identity
    /// (dev, ino, ctime) checked, so a different file is never hashed in its place.
    pub fn hash(&mut self, pid: u32, exe: ExeId, path: Option<&[u8]>) -> HashResult {
        if let Some(r) = self.map.get(&exe) {
            self.hits += 1;
            return r.clone();
        }
        self.misses += 1;
        let proc_exe = format!("/proc/{pid}/exe");
        let mut result = hash_verified(Path::new(&proc_exe), exe, Follow::MagicLink);
        if result.is_err() {
            if let Some(p) = path {
                use std::os::unix::ffi::OsStrExt as _;
                result = hash_verified(Path::new(std::ffi::OsStr::from_bytes(p)), exe, Follow::No);
            }
        }
        // Only cache successes and "changed" verdicts tied to this identity; a
        // vanished process may be hashable through its path next time.
        if result.is_ok() {
            if self.map.len() >= HASH_CACHE_MAX {
                self.map.clear();
            }
            self.map.insert(exe, result.clone());
        }
        result
    }
}

/// Whether the last path component may be a link: `/proc/PID/exe` is a magic link
/// that must be followed; a path rebuilt by the kernel has no links, so one found
/// there was put in after the exec and is not followed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    MagicLink,
    No,
}

fn hash_verified(path: &Path, exe: ExeId, follow: Follow) -> HashResult {
    use std::os::unix::fs::OpenOptionsExt as _;
    // O_NONBLOCK: a FIFO swapped in at the path must not block the daemon in
    // open(2); the regular-file check below then refuses it (and devices such as
    // /dev/zero, which would never end).
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let m = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if m.dev() != kernel_dev_to_user(exe.dev) || m.ino() != exe.ino {
        return Err(format!(
            "{} is no longer the executed file (inode differs)",
            path.display()
        ));
    }
    let ctime_matches = m.ctime() == exe.ctime_sec
        && u32::try_from(m.ctime_nsec()).is_ok_and(|n| n == exe.ctime_nsec);
    if !ctime_matches {
        return Err("file changed since exec (ctime differs)".into());
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    // Re-check after reading: a write during the read changes ctime.
    let m2 = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if m2.ctime() != m.ctime() || m2.ctime_nsec() != m.ctime_nsec() {
        return Err("file changed while it was being hashed".into());
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The values of the security-relevant variables present in `env` (NAME=value
/// entries). The first occurrence wins, as getenv(3) does.
pub fn security_env(env: &[Vec<u8>]) -> std::collections::BTreeMap<String, Bytes> {
    let mut out = std::collections::BTreeMap::new();
    for entry in env {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if let Some(&known) = SECURITY_ENV.iter().find(|n| n.as_bytes() == name) {
            out.entry(known.to_string())
                .or_insert_with(|| Bytes(value.to_vec()));
        } else if let Ok(name) = std::str::from_utf8(name) {
            // A member of a family (`LD_…`, `GIT_…`, `npm_config_…`). A name that
            // is not UTF-8 cannot be approved; the kernel finds no record for it.
            if crate::event::env_family(name).is_some() {
                out.entry(name.to_owned())
                    .or_insert_with(|| Bytes(value.to_vec()));
            }
        }
    }
    out
}

/// Complete a truncated argv from `/proc/PID/cmdline`, only if what the kernel
/// captured is a prefix of it (otherwise the process already rewrote its cmdline,
/// as npx does, and the kernel's partial capture is the better record).
pub fn complete_argv(captured: &[Vec<u8>], cmdline: &[u8]) -> Option<Vec<Vec<u8>>> {
    let full = crate::event::raw::split_nul(cmdline);
    if full.len() < captured.len() {
        return None;
    }
    let last = captured.len().checked_sub(1)?;
    let prefix_ok = captured[..last] == full[..last] && full[last].starts_with(&captured[last]);
    prefix_ok.then_some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_env_keeps_only_listed_variables_first_wins() {
        let env = vec![
            b"PATH=/bin".to_vec(),
            b"LD_PRELOAD=/evil.so".to_vec(),
            b"NODE_OPTIONS=--require /x.js".to_vec(),
            b"LD_PRELOAD=/second.so".to_vec(),
            b"NOEQUALS".to_vec(),
            b"ENV=".to_vec(),
            b"GIT_CONFIG_COUNT=1".to_vec(),
            b"NPM_CONFIG_REGISTRY=http://evil".to_vec(),
            b"npm_package_name=x".to_vec(),
        ];
        let got = security_env(&env);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got["GIT_CONFIG_COUNT"].0, b"1");
        assert_eq!(got["NPM_CONFIG_REGISTRY"].0, b"http://evil");
        assert_eq!(got["LD_PRELOAD"].0, b"/evil.so");
        assert_eq!(got["NODE_OPTIONS"].0, b"--require /x.js");
        assert_eq!(got["ENV"].0, b"");
    }

    #[test]
    fn argv_completion_requires_the_capture_to_be_a_prefix() {
        let captured = vec![b"node".to_vec(), b"aaa".to_vec()];
        let full = b"node\0aaaa\0b\0";
        assert_eq!(
            complete_argv(&captured, full),
            Some(vec![b"node".to_vec(), b"aaaa".to_vec(), b"b".to_vec()])
        );
        // npx rewrites its cmdline: not a prefix, no completion.
        assert_eq!(complete_argv(&captured, b"npm exec\0\0\0"), None);
    }

    #[test]
    fn wall_clock_formats_rfc3339_nanos() {
        let c = Clock::fixed(1_700_000_000_000_000_000);
        assert_eq!(c.rfc3339(123), "2023-11-14T22:13:20.000000123Z");
    }

    #[test]
    fn a_fifo_or_link_swapped_in_at_the_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("exe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let id = ExeId {
            dev: 0,
            ino: 0,
            ctime_sec: 0,
            ctime_nsec: 0,
        };
        // No writer: a blocking open would hang here forever.
        let err = hash_verified(&fifo, id, Follow::No).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/bin/true", &link).unwrap();
        assert!(hash_verified(&link, id, Follow::No).is_err());
    }

    #[test]
    fn hash_is_verified_against_identity_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"hello").unwrap();
        let m = std::fs::metadata(&p).unwrap();
        let dev = crate::hosts::user_dev_to_kernel(m.dev());
        let id = ExeId {
            dev,
            ino: m.ino(),
            ctime_sec: m.ctime(),
            ctime_nsec: u32::try_from(m.ctime_nsec()).unwrap(),
        };
        let mut cache = HashCache::default();
        let path = p.as_os_str().as_encoded_bytes().to_vec();
        let h = cache.hash(u32::MAX, id, Some(&path)).unwrap();
        assert_eq!(
            h,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(cache.hash(u32::MAX, id, Some(&path)).unwrap(), h);
        assert_eq!((cache.hits, cache.misses), (1, 1));
        // A different identity (the file was rewritten: new ctime) is not served
        // from the cache and is refused because the file on disk no longer matches.
        let stale = ExeId {
            ctime_sec: id.ctime_sec - 10,
            ..id
        };
        assert!(cache.hash(u32::MAX, stale, Some(&path)).is_err());
    }
}
