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
        let last_id = last_id(path).map_err(io("reading the last record"))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(io("opening for append"))?;
        let mut out = BufWriter::new(file);
        // A crash mid-write leaves a torn last line: end it, so the next record starts
        // on a line of its own and the torn one stays visible as what it is.
        if ends_without_newline(path).map_err(io("reading the last byte"))? {
            out.write_all(b"\n")
                .map_err(io("terminating a torn last line"))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            out,
            next_id: last_id + 1,
            dirty: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&mut self, event: &Event) -> Result<(), LogError> {
        self.append_line(&event.to_json_line())
    }

    /// Append an already serialised event (one JSON object, no newline).
    pub fn append_line(&mut self, line: &str) -> Result<(), LogError> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                action: "appending",
                source,
            })?;
        self.dirty = true;
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), LogError> {
        if self.dirty {
            self.out.flush().map_err(|source| LogError::Io {
                path: self.path.clone(),
                action: "flushing",
                source,
            })?;
            self.dirty = false;
        }
        Ok(())
    }
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

/// Id of the last complete record, 0 for a new log. A torn last line (crash in the
/// middle of a write) is skipped, not trusted.
fn last_id(path: &Path) -> io::Result<u64> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let mut max = 0;
    for line in tail.split(|&b| b == b'\n') {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
            if let Some(id) = v.get("id").and_then(serde_json::Value::as_u64) {
                max = max.max(id);
            }
        }
    }
    Ok(max)
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
    fn ids_continue_after_reopen_and_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/events.jsonl");
        let mut w = LogWriter::open(&path).unwrap();
        assert_eq!(w.next_id, 1);
        for id in 1..=3 {
            w.append(&Event::new(Kind::Exec, id, "t".into())).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        // A crash mid-write leaves a torn line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"schema\":1,\"id\":4,\"ts\"").unwrap();
        drop(f);
        let w = LogWriter::open(&path).unwrap();
        assert_eq!(w.next_id, 4);
        let mut bad = Vec::new();
        let events = read_all(&path, |e| bad.push(e.to_string())).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains(":4: not an event record"), "{bad:?}");
    }
}
