//! The event log: JSON lines appended under the state directory, readable with the
//! daemon stopped (`mcpwatch log --json`).
use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead as _, BufReader, BufWriter, Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use crate::event::Event;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {action}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not an event record ({reason})")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

pub struct LogWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Id the next event gets.
    pub next_id: u64,
    /// Bytes not yet flushed.
    dirty: bool,
    /// Hash of the last record line: the next record's `prev` (see `audit`).
    head: String,
    /// Id of the last record written.
    last_written: u64,
    /// Records written since the last fsync.
    unsynced: bool,
    last_sync: std::time::Instant,
    /// Longest time a written record waits for its fsync.
    pub sync_window: std::time::Duration,
    /// A torn last line found at open (a write cut by a crash): where it was set
    /// aside and how long it was. Never chained.
    pub torn_set_aside: Option<(PathBuf, usize)>,
    /// When to start a new file, and how many old ones to keep.
    pub rotation: Rotation,
    /// Bytes in the current file, and when it was started.
    bytes: u64,
    started: std::time::SystemTime,
    /// Id of the first record in the current file.
    first_in_file: u64,
    /// The group granted read access to the log (`log_group`), if any.
    group: Option<u32>,
}

/// Rotation by size and age, with a retention limit.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    pub max_bytes: u64,
    pub max_age: std::time::Duration,
    /// Rotated files kept; older ones are removed (and the removal recorded).
    pub keep: usize,
}

impl Default for Rotation {
    #[expect(
        clippy::duration_suboptimal_units,
        reason = "Duration::from_days needs a newer Rust than the workspace's rust-version 1.87"
    )]
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_age: std::time::Duration::from_secs(7 * 86_400),
            keep: 20,
        }
    }
}

/// What a rotation did, for the records that report it.
#[derive(Debug)]
pub struct Rotated {
    /// Where the previous file went, with its first and last ids.
    pub to: PathBuf,
    pub first: u64,
    pub last: u64,
    /// Rotated files removed by retention: path, first and last id, chain hash of
    /// the last record.
    pub removed: Vec<(PathBuf, u64, u64, String)>,
}

impl LogWriter {
    /// Open (create) the log for appending; the state directory is created root-only.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let io = |action| {
            move |source| LogError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("creating the state directory"))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(io("restricting the state directory"))?;
        }
        // A crash mid-write leaves a torn last line: move it out of the log (kept
        // beside it, byte for byte), so the chain continues from the last whole
        // record and the torn bytes are never "repaired" into it.
        let torn_set_aside =
            set_aside_torn_tail(path).map_err(io("setting aside a torn last line"))?;
        let (last_id, head) = last_record(path).map_err(io("reading the last record"))?;
        let meta = fs::metadata(path).ok();
        let bytes = meta.as_ref().map_or(0, std::fs::Metadata::len);
        let started = meta
            .and_then(|m| m.created().or_else(|_| m.modified()).ok())
            .unwrap_or_else(std::time::SystemTime::now);
        let first_in_file = first_id(path).unwrap_or(last_id + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io("opening for append"))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            next_id: last_id + 1,
            dirty: false,
            head,
            last_written: last_id,
            unsynced: false,
            last_sync: std::time::Instant::now(),
            sync_window: std::time::Duration::from_millis(500),
            torn_set_aside,
            rotation: Rotation::default(),
            bytes,
            started,
            first_in_file,
            group: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, event: &Event) -> Result<String, LogError> {
        self.append_line(event.id, &event.to_json_line())
    }

    /// Append an already serialised event (one JSON object, no newline), chained:
    /// `"prev"` (the hash of the record before) is added as its last field. Returns
    /// the line as written.
    pub fn append_line(&mut self, id: u64, line: &str) -> Result<String, LogError> {
        let body = line.strip_suffix('}').unwrap_or(line);
        let chained = format!("{body},\"prev\":\"{}\"}}", self.head);
        self.out
            .write_all(chained.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                action: "appending",
                source,
            })?;
        self.head = crate::audit::line_hash(chained.as_bytes());
        self.last_written = id;
        self.bytes += chained.len() as u64 + 1;
        if self.first_in_file > id {
            self.first_in_file = id;
        }
        self.dirty = true;
        self.unsynced = true;
        Ok(chained)
    }

    /// Hand written records to the kernel; fsync them (and write the checkpoint)
    /// once the oldest unsynced record has waited `sync_window`.
    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.out.flush().map_err(|source| LogError::Io {
                path: self.path.clone(),
                action: "flushing",
                source,
            })?;
            self.dirty = false;
        }
        if self.unsynced && self.last_sync.elapsed() >= self.sync_window {
            self.sync()?;
        }
        Ok(())
    }

    /// fsync now and record the durable chain head in the checkpoint.
    pub fn sync(&mut self) -> Result<(), LogError> {
        let io = |action| {
            let path = self.path.clone();
            move |source| LogError::Io {
                path,
                action,
                source,
            }
        };
        self.out.flush().map_err(io("flushing"))?;
        self.dirty = false;
        self.out.get_ref().sync_data().map_err(io("fsync"))?;
        self.last_sync = std::time::Instant::now();
        self.unsynced = false;
        if self.last_written > 0 {
            let cp = crate::audit::Checkpoint {
                id: self.last_written,
                hash: self.head.clone(),
                ts: crate::sys::clock::now_rfc3339(),
            };
            let text = serde_json::to_string(&cp).unwrap_or_default();
            let cp_path = crate::audit::checkpoint_path(&self.path);
            crate::sys::fs::write_atomic(&cp_path, text.as_bytes())
                .map_err(std::io::Error::from)
                .map_err(io("writing the checkpoint"))?;
            self.share(&cp_path)?;
        }
        Ok(())
    }
}

impl LogWriter {
    /// Grant `gid` read access to the log: the state directory becomes 0710 (the
    /// group may reach the log, not list or read the rest), the log files 0640.
    pub fn grant_group(&mut self, gid: u32) -> Result<(), LogError> {
        self.group = Some(gid);
        let io = |path: &Path, action| {
            let path = path.to_path_buf();
            move |source| LogError::Io {
                path,
                action,
                source,
            }
        };
        if let Some(dir) = self.path.parent() {
            std::os::unix::fs::chown(dir, None, Some(gid)).map_err(io(dir, "chgrp"))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o710))
                .map_err(io(dir, "chmod"))?;
        }
        self.share(&self.path.clone())
    }

    /// Make one log file readable by the granted group.
    fn share(&self, file: &Path) -> Result<(), LogError> {
        let Some(gid) = self.group else {
            return Ok(());
        };
        let io = |action| {
            let path = file.to_path_buf();
            move |source| LogError::Io {
                path,
                action,
                source,
            }
        };
        std::os::unix::fs::chown(file, None, Some(gid)).map_err(io("chgrp"))?;
        fs::set_permissions(file, fs::Permissions::from_mode(0o640)).map_err(io("chmod"))
    }

    /// Whether the current file is due for rotation (size or age).
    pub fn should_rotate(&self) -> bool {
        self.bytes > 0
            && (self.bytes >= self.rotation.max_bytes
                || self
                    .started
                    .elapsed()
                    .is_ok_and(|a| a >= self.rotation.max_age))
    }

    /// Close the current file (fsync, checkpoint), rename it to `<log>.NNNNNN`,
    /// start a new one (the chain continues across files), and remove the oldest
    /// rotated files beyond `keep`.
    pub fn rotate(&mut self) -> Result<Rotated, LogError> {
        let log_path = self.path.clone();
        let io = |action| {
            let path = log_path.clone();
            move |source| LogError::Io {
                path,
                action,
                source,
            }
        };
        self.sync()?;
        let existing = crate::audit::rotated_files(&self.path);
        let next = existing
            .last()
            .and_then(|p| p.extension()?.to_str()?.parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        let mut to = self.path.as_os_str().to_owned();
        to.push(format!(".{next:06}"));
        let to = PathBuf::from(to);
        fs::rename(&self.path, &to).map_err(io("rotating"))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io("opening the new file"))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync of the directory"))?;
        }
        self.out = BufWriter::new(file);
        self.share(&self.path.clone())?;
        let rotated = Rotated {
            to,
            first: self.first_in_file,
            last: self.last_written,
            removed: Vec::new(),
        };
        self.bytes = 0;
        self.started = std::time::SystemTime::now();
        self.first_in_file = self.last_written + 1;
        let mut rotated = rotated;
        let mut all = crate::audit::rotated_files(&self.path);
        while all.len() > self.rotation.keep {
            let old = all.remove(0);
            let (last, head) = last_record(&old).map_err(io("reading a file to remove"))?;
            let first = first_id(&old).unwrap_or(0);
            fs::remove_file(&old).map_err(io("removing an old file"))?;
            rotated.removed.push((old, first, last, head));
        }
        Ok(rotated)
    }
}

/// Id of the first record of a log file.
fn first_id(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut line = Vec::new();
    BufReader::new(f).read_until(b'\n', &mut line).ok()?;
    serde_json::from_slice::<serde_json::Value>(line.strip_suffix(b"\n").unwrap_or(&line))
        .ok()?
        .get("id")?
        .as_u64()
}

/// Move a torn last line (no newline: a crash mid-write) to `<log>.torn-<secs>`
/// and cut it from the log. Returns where it went and its length.
fn set_aside_torn_tail(path: &Path) -> io::Result<Option<(PathBuf, usize)>> {
    if !path.exists() || !ends_without_newline(path)? {
        return Ok(None);
    }
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let cut = tail
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(start, |i| start + i as u64 + 1);
    let torn = &tail[usize::try_from(cut - start).unwrap_or(0)..];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".torn-{secs}"));
    let aside = PathBuf::from(aside);
    crate::sys::fs::write_atomic(&aside, torn)?;
    f.set_len(cut)?;
    f.sync_all()?;
    Ok(Some((aside, torn.len())))
}

/// Id and chain hash of the last complete record (0 and the genesis hash for a
/// new or empty log).
fn last_record(path: &Path) -> io::Result<(u64, String)> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok((0, crate::audit::GENESIS.to_owned()));
        }
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let mut max = 0;
    let mut head = crate::audit::GENESIS.to_owned();
    let lines: Vec<&[u8]> = tail.split(|&b| b == b'\n').collect();
    // The last element is what follows the final newline (empty: set aside above).
    let complete = &lines[..lines.len().saturating_sub(1)];
    for line in complete {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            if let Some(id) = v.get("id").and_then(serde_json::Value::as_u64) {
                max = max.max(id);
            }
        }
    }
    if let Some(last) = complete.iter().rev().find(|l| !l.is_empty()) {
        head = crate::audit::line_hash(last);
    }
    Ok((max, head))
}

fn ends_without_newline(path: &Path) -> io::Result<bool> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(b[0] != b'\n')
}

/// Read every event of a log file. Unparseable lines are reported with their line
/// number through `on_bad` and skipped, never silently.
pub fn read_all(path: &Path, mut on_bad: impl FnMut(LogError)) -> Result<Vec<Event>, LogError> {
    let f = File::open(path).map_err(|source| LogError::Io {
        path: path.to_path_buf(),
        action: "opening",
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            action: "reading",
            source,
        })?;
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(e) => out.push(e),
            Err(e) => on_bad(LogError::Corrupt {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    #[test]
    fn ids_continue_after_reopen_and_a_torn_tail_is_set_aside_not_chained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/events.jsonl");
        let mut w = LogWriter::open(&path).unwrap();
        assert_eq!(w.next_id, 1);
        for id in 1..=3 {
            w.append(&Event::new(Kind::Exec, id, "t".into())).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        // A crash mid-write leaves a torn line.
        let torn = b"{\"schema\":1,\"id\":4,\"ts\"";
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn).unwrap();
        drop(f);
        let mut w = LogWriter::open(&path).unwrap();
        assert_eq!(w.next_id, 4);
        let (aside, len) = w.torn_set_aside.clone().expect("set aside");
        assert_eq!(len, torn.len());
        assert_eq!(fs::read(&aside).unwrap(), torn, "kept byte for byte");
        w.append(&Event::new(Kind::Exec, 4, "t".into())).unwrap();
        w.sync().unwrap();
        let mut bad = Vec::new();
        let events = read_all(&path, |e| bad.push(e.to_string())).unwrap();
        assert_eq!(events.len(), 4);
        assert!(bad.is_empty(), "{bad:?}");
        let bytes = fs::read(&path).unwrap();
        let cp = crate::audit::read_checkpoint(&path).unwrap();
        assert_eq!(cp.id, 4);
        let r = crate::audit::verify(&bytes, Some(&cp));
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.records, 4);
    }
}
