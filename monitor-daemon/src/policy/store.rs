//! The consent store: `records.json` in the daemon's root-owned state directory.
//!
//! Nothing in it is ever lost, whatever happens between two writes:
//! - every save writes a temporary file, fsyncs it, renames it over the main file
//!   and fsyncs the directory, so a crash leaves either the old or the new file,
//!   never a torn one (a leftover `*.tmp` is ignored and replaced by the next save);
//! - after the main file, the same content goes to `records.last-good.json`, the
//!   copy `open` falls back to when the main file is broken (a bad hand edit, a
//!   disk error): the daemon keeps enforcing the approvals it had;
//! - a broken main file is never modified by `open`, and `save` first keeps it as
//!   `records.json.rejected-<unix seconds>[-N]` (a valid file someone else wrote
//!   since this store last read it as `records.json.replaced-…`), so a user's edit
//!   can always be recovered.
//!
//! Format (pretty JSON, meant to be readable and reviewable):
//! `{"version": 1, "next_id": N, "modes": {"cursor": "enforce"}, "records": [...]}`.

use std::{
    collections::BTreeMap,
    fmt,
    fs::{self, OpenOptions, Permissions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::record::{Record, RecordId};
use crate::model::{
    text::{line_column, location},
    Mode,
};
use crate::sys::fs::write_atomic;

pub const STORE_FILE: &str = "records.json";
pub const LAST_GOOD_FILE: &str = "records.last-good.json";
/// The `version` this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Why a store file cannot be used, at a position a user can go to.
/// `line` and `column` are 1-based; 0 when there is no position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreProblem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for StoreProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            location(&self.file, self.line, self.column),
            self.message
        )
    }
}

impl std::error::Error for StoreProblem {}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Loaded {
    pub store: Store,
    /// The main file was broken: the store holds the last good copy (or nothing,
    /// as the message says). The broken file is untouched.
    pub problem: Option<StoreProblem>,
}

#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    records: Vec<Record>,
    next_id: RecordId,
    modes: BTreeMap<String, Mode>,
    /// The main file's bytes as this store last read or wrote them (`None`: there
    /// was no file). Different bytes on disk at save time are someone else's edit,
    /// which is kept aside rather than overwritten.
    disk: Option<Vec<u8>>,
}

/// The file as written; field order is the order in the file.
#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    next_id: RecordId,
    modes: &'a BTreeMap<String, Mode>,
    records: &'a [Record],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    version: u32,
    #[serde(default)]
    next_id: RecordId,
    #[serde(default)]
    modes: BTreeMap<String, Mode>,
    #[serde(default)]
    records: Vec<Record>,
}

/// A parsed and checked store file.
#[derive(Debug)]
struct Content {
    records: Vec<Record>,
    next_id: RecordId,
    modes: BTreeMap<String, Mode>,
}

/// An empty store. Ids start at 1: 0 is the id of managed records, which are not
/// in the store.
impl Default for Content {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            next_id: 1,
            modes: BTreeMap::new(),
        }
    }
}

/// How a save failed: whether the main file was already replaced (then the
/// in-memory change is on disk and must stay).
enum SaveError {
    MainUnchanged(io::Error),
    MainWritten(io::Error),
}

impl Store {
    /// Open the store in `dir` (created, mode 0700, when missing). A missing main
    /// file is an empty store; a broken one is reported in [`Loaded::problem`] and
    /// the store runs on the last good copy. Only I/O errors (other than a missing
    /// file) fail.
    pub fn open(dir: &Path) -> io::Result<Loaded> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let main = dir.join(STORE_FILE);
        let disk = read_optional(&main)?;
        let mut problem = None;
        let content = match &disk {
            None => Content::default(),
            Some(bytes) => match parse(bytes, &main) {
                Ok(content) => content,
                Err(mut p) => {
                    let (content, fallback) = Self::last_good(dir);
                    p.message.push_str("; ");
                    p.message.push_str(&fallback);
                    problem = Some(p);
                    content
                }
            },
        };
        Ok(Loaded {
            store: Store {
                dir: dir.to_path_buf(),
                records: content.records,
                next_id: content.next_id,
                modes: content.modes,
                disk,
            },
            problem,
        })
    }

    /// The last good copy, and what the store runs on, said for the problem.
    fn last_good(dir: &Path) -> (Content, String) {
        let path = dir.join(LAST_GOOD_FILE);
        match read_optional(&path) {
            Ok(Some(bytes)) => match parse(&bytes, &path) {
                Ok(content) => {
                    let what = format!(
                        "running on the last good copy {} ({} records)",
                        path.display(),
                        content.records.len()
                    );
                    (content, what)
                }
                Err(p) => (
                    Content::default(),
                    format!("the last good copy is unusable too ({p}): no records apply"),
                ),
            },
            Ok(None) => (
                Content::default(),
                format!(
                    "there is no last good copy {}: no records apply",
                    path.display()
                ),
            ),
            Err(e) => (
                Content::default(),
                format!(
                    "cannot read the last good copy {} ({e}): no records apply",
                    path.display()
                ),
            ),
        }
    }

    /// Re-read the main file after a hand edit. On a problem the records in use
    /// stay exactly as they were. Returns whether records or modes changed.
    /// `next_id` never goes backwards, whatever the file says.
    pub fn reload(&mut self) -> Result<bool, StoreProblem> {
        let main = self.dir.join(STORE_FILE);
        let disk = read_optional(&main).map_err(|e| StoreProblem {
            file: main.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        let content = match &disk {
            None => Content::default(),
            Some(bytes) => parse(bytes, &main)?,
        };
        let changed = content.records != self.records || content.modes != self.modes;
        self.records = content.records;
        self.modes = content.modes;
        self.next_id = self.next_id.max(content.next_id);
        if changed {
            if let Some(bytes) = &disk {
                // The edit is good: make it what a later broken edit falls back to.
                if let Err(e) = write_atomic(&self.dir.join(LAST_GOOD_FILE), bytes) {
                    tracing::warn!(
                        file = %self.dir.join(LAST_GOOD_FILE).display(),
                        error = %e.error,
                        "cannot update the last good copy of the consent store"
                    );
                }
            }
        }
        self.disk = disk;
        Ok(changed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn get(&self, id: RecordId) -> Option<&Record> {
        self.records.iter().find(|r| r.id == id)
    }

    /// The id the next added record gets.
    pub fn next_id(&self) -> RecordId {
        self.next_id
    }

    /// Per-host modes the user chose (`mcpwatch mode HOST MODE`).
    pub fn modes(&self) -> &BTreeMap<String, Mode> {
        &self.modes
    }

    /// Add a record under a new id (`r.id` is ignored) and save. A record that
    /// fails [`Record::validate`] is an `InvalidInput` error naming the reason.
    pub fn add(&mut self, mut r: Record) -> io::Result<RecordId> {
        let id = self.next_id;
        r.id = id;
        r.validate()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let next = id
            .checked_add(1)
            .ok_or_else(|| io::Error::other("record ids are exhausted"))?;
        self.records.push(r);
        // Even when the save fails the id is spent: ids are never reused.
        self.next_id = next;
        match self.persist() {
            Ok(()) => Ok(id),
            Err(SaveError::MainUnchanged(e)) => {
                self.records.pop();
                Err(e)
            }
            Err(SaveError::MainWritten(e)) => Err(e),
        }
    }

    /// Remove a record and save; `Ok(None)` when there is no such id.
    pub fn remove(&mut self, id: RecordId) -> io::Result<Option<Record>> {
        let Some(i) = self.records.iter().position(|r| r.id == id) else {
            return Ok(None);
        };
        let record = self.records.remove(i);
        match self.persist() {
            Ok(()) => Ok(Some(record)),
            Err(SaveError::MainUnchanged(e)) => {
                self.records.insert(i, record);
                Err(e)
            }
            Err(SaveError::MainWritten(e)) => Err(e),
        }
    }

    /// Record the user's mode for `host` and save.
    pub fn set_mode(&mut self, host: &str, mode: Mode) -> io::Result<()> {
        if host.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the host name is empty",
            ));
        }
        let old = self.modes.insert(host.to_owned(), mode);
        if old == Some(mode) {
            return Ok(());
        }
        self.persist().map_err(|e| match e {
            SaveError::MainUnchanged(e) => {
                match old {
                    Some(old) => self.modes.insert(host.to_owned(), old),
                    None => self.modes.remove(host),
                };
                e
            }
            SaveError::MainWritten(e) => e,
        })
    }

    /// Forget the user's mode for `host` (back to the default) and save. Returns
    /// the mode it had.
    pub fn clear_mode(&mut self, host: &str) -> io::Result<Option<Mode>> {
        let Some(old) = self.modes.remove(host) else {
            return Ok(None);
        };
        match self.persist() {
            Ok(()) => Ok(Some(old)),
            Err(SaveError::MainUnchanged(e)) => {
                self.modes.insert(host.to_owned(), old);
                Err(e)
            }
            Err(SaveError::MainWritten(e)) => Err(e),
        }
    }

    /// Write the store: main file, then the last good copy (see the module docs).
    pub fn save(&mut self) -> io::Result<()> {
        self.persist().map_err(|e| match e {
            SaveError::MainUnchanged(e) | SaveError::MainWritten(e) => e,
        })
    }

    fn persist(&mut self) -> Result<(), SaveError> {
        let main = self.dir.join(STORE_FILE);
        let on_disk = read_optional(&main).map_err(SaveError::MainUnchanged)?;
        if let Some(bytes) = &on_disk {
            let kind = if parse(bytes, &main).is_err() {
                Some("rejected")
            } else if self.disk.as_ref() != Some(bytes) {
                Some("replaced")
            } else {
                None
            };
            if let Some(kind) = kind {
                let kept = keep_copy(&self.dir, kind, bytes).map_err(SaveError::MainUnchanged)?;
                tracing::warn!(
                    file = %kept.display(),
                    "kept the consent store found on disk before overwriting it"
                );
            }
        }
        let mut text = serde_json::to_vec_pretty(&FileOut {
            version: FORMAT_VERSION,
            next_id: self.next_id,
            modes: &self.modes,
            records: &self.records,
        })
        .map_err(|e| SaveError::MainUnchanged(io::Error::other(e)))?;
        text.push(b'\n');
        write_atomic(&self.dir.join(STORE_FILE), &text).map_err(|e| {
            if e.renamed {
                SaveError::MainWritten(e.error)
            } else {
                SaveError::MainUnchanged(e.error)
            }
        })?;
        self.disk = Some(text);
        let text = self.disk.as_deref().unwrap_or_default();
        write_atomic(&self.dir.join(LAST_GOOD_FILE), text).map_err(|e| {
            SaveError::MainWritten(io::Error::new(
                e.error.kind(),
                format!(
                    "records saved, but not the last good copy {}: {}",
                    self.dir.join(LAST_GOOD_FILE).display(),
                    e.error
                ),
            ))
        })
    }
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parse and check a store file: syntax, schema, version, every record's
/// [`Record::validate`], unique ids, non-empty host names in `modes`.
fn parse(bytes: &[u8], file: &Path) -> Result<Content, StoreProblem> {
    let problem = |(line, column): (usize, usize), message: String| StoreProblem {
        file: file.to_path_buf(),
        line,
        column,
        message,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
        problem(line_column(valid, valid.len()), "not UTF-8 text".to_owned())
    })?;
    let raw: FileIn = serde_json::from_str(text).map_err(|e| {
        // serde_json puts the position at the end of its message: keep it out.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        problem((e.line(), e.column()), message)
    })?;
    let at = |offset: Option<usize>| offset.map_or((0, 0), |o| line_column(text, o));
    if raw.version != FORMAT_VERSION {
        return Err(problem(
            at(json_pos::member(text, "version")),
            format!(
                "version {} is not supported (this mcpwatch reads version {FORMAT_VERSION})",
                raw.version
            ),
        ));
    }
    if raw.modes.keys().any(String::is_empty) {
        return Err(problem(
            at(json_pos::member(text, "modes")),
            "modes: a host name is empty".to_owned(),
        ));
    }
    let offsets = json_pos::member(text, "records")
        .map(|o| json_pos::elements(text, o))
        .unwrap_or_default();
    let mut seen: BTreeMap<RecordId, usize> = BTreeMap::new();
    for (i, r) in raw.records.iter().enumerate() {
        let pos = at(offsets.get(i).copied());
        r.validate()
            .map_err(|m| problem(pos, format!("records[{i}] (id {}): {m}", r.id)))?;
        if let Some(first) = seen.insert(r.id, i) {
            let (line, _) = at(offsets.get(first).copied());
            return Err(problem(
                pos,
                format!(
                    "records[{i}]: id {} is already used by records[{first}] (line {line}); \
                     ids must be unique",
                    r.id
                ),
            ));
        }
    }
    // A hand edit may add ids at or past `next_id`: ids must still never repeat.
    let past_max = raw
        .records
        .iter()
        .map(|r| r.id.saturating_add(1))
        .max()
        .unwrap_or(1);
    Ok(Content {
        next_id: raw.next_id.max(past_max).max(1),
        records: raw.records,
        modes: raw.modes,
    })
}

/// Keep `bytes` (the main file as found) as `records.json.KIND-<unix seconds>`,
/// with `-1`, `-2`, ... when that exists: never overwrite an earlier copy.
fn keep_copy(dir: &Path, kind: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for n in 0u32.. {
        let name = if n == 0 {
            format!("{STORE_FILE}.{kind}-{secs}")
        } else {
            format!("{STORE_FILE}.{kind}-{secs}-{n}")
        };
        let path = dir.join(name);
        let mut f = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        f.set_permissions(Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        return Ok(path);
    }
    Err(io::Error::other("no free name for a copy of the store"))
}

/// Positions of values in JSON text that `serde_json` has already accepted, for
/// messages about values it parsed but the store rejects (`serde_json` keeps no
/// spans). Not a validator: on text that is not valid JSON it gives up.
mod json_pos {
    fn ws(b: &[u8], mut i: usize) -> usize {
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    }

    /// `b[i]` is the opening quote; returns the index past the closing one.
    fn skip_string(b: &[u8], mut i: usize) -> usize {
        i += 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        i
    }

    fn skip_value(b: &[u8], i: usize) -> usize {
        match b.get(i) {
            Some(b'"') => skip_string(b, i),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                let mut j = i;
                while j < b.len() {
                    match b[j] {
                        b'"' => {
                            j = skip_string(b, j);
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return j + 1;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                j
            }
            _ => {
                let mut j = i;
                while j < b.len()
                    && !matches!(b[j], b',' | b'}' | b']')
                    && !b[j].is_ascii_whitespace()
                {
                    j += 1;
                }
                j
            }
        }
    }

    /// Byte offset of the value of `key` in the top-level object.
    pub(super) fn member(text: &str, key: &str) -> Option<usize> {
        let b = text.as_bytes();
        let mut i = ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i += 1;
        loop {
            i = ws(b, i);
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let end = skip_string(b, i);
            let name: String = serde_json::from_str(text.get(i..end)?).ok()?;
            i = ws(b, end);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = ws(b, i + 1);
            if name == key {
                return Some(i);
            }
            i = ws(b, skip_value(b, i));
            if b.get(i) != Some(&b',') {
                return None;
            }
            i += 1;
        }
    }

    /// Byte offsets of the elements of the array starting at `at`.
    pub(super) fn elements(text: &str, at: usize) -> Vec<usize> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        if b.get(at) != Some(&b'[') {
            return out;
        }
        let mut i = ws(b, at + 1);
        while i < b.len() && b[i] != b']' {
            out.push(i);
            i = ws(b, skip_value(b, i));
            if b.get(i) != Some(&b',') {
                break;
            }
            i = ws(b, i + 1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;
    use crate::{
        event::Bytes,
        policy::record::{tests::sample, Scope},
    };

    fn open(dir: &Path) -> Store {
        let loaded = Store::open(dir).unwrap();
        assert_eq!(loaded.problem, None);
        loaded.store
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// Names in `dir` that start with `prefix`, sorted.
    fn names(dir: &Path, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// A store with two records (ids 1 and 2) saved in a fresh directory.
    fn saved_store() -> (tempfile::TempDir, PathBuf, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let mut store = open(&dir);
        store.add(sample()).unwrap();
        let mut r = sample();
        r.host = "cursor".to_owned();
        store.add(r).unwrap();
        (tmp, dir, store)
    }

    #[test]
    fn open_creates_a_private_directory_and_an_empty_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let store = open(&dir);
        assert!(store.records().is_empty());
        assert!(store.modes().is_empty());
        assert_eq!(store.next_id(), 1);
        assert_eq!(mode_of(&dir), 0o700);
        // Opening writes nothing.
        assert!(names(&dir, "").is_empty());
    }

    #[test]
    fn add_assigns_fresh_ids_saves_private_files_and_reopens_identically() {
        let (_tmp, dir, mut store) = saved_store();
        assert_eq!(
            store.records().iter().map(|r| r.id).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(store.get(2).unwrap().host, "cursor");
        assert_eq!(store.get(3), None);
        for name in [STORE_FILE, LAST_GOOD_FILE] {
            assert_eq!(mode_of(&dir.join(name)), 0o600, "{name}");
        }
        assert_eq!(read(&dir.join(STORE_FILE)), read(&dir.join(LAST_GOOD_FILE)));
        assert_eq!(names(&dir, ""), [STORE_FILE, LAST_GOOD_FILE]);

        // Removing the newest record does not free its id.
        assert_eq!(store.remove(2).unwrap().unwrap().host, "cursor");
        assert_eq!(store.remove(2).unwrap(), None);
        let id = store.add(sample()).unwrap();
        assert_eq!(id, 3);

        let again = open(&dir);
        assert_eq!(again.records(), store.records());
        assert_eq!(again.next_id(), 4);
    }

    #[test]
    fn file_format_is_versioned_pretty_json() {
        let (_tmp, dir, mut store) = saved_store();
        store.set_mode("cursor", Mode::Enforce).unwrap();
        let text = read(&dir.join(STORE_FILE));
        assert!(text.starts_with("{\n  \"version\": 1,\n  \"next_id\": 3,\n  \"modes\": {\n    \"cursor\": \"enforce\"\n  },\n  \"records\": [\n"), "{text}");
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["records"][1]["host"], "cursor");
        assert_eq!(v["records"][0]["argv"][0], "npx");
    }

    #[test]
    fn add_ignores_the_given_id_and_rejects_invalid_records() {
        let (_tmp, dir, mut store) = saved_store();
        let before = read(&dir.join(STORE_FILE));
        let mut r = sample();
        r.id = 99;
        r.argv.clear();
        let err = store.add(r).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(err.to_string(), "argv is empty");
        assert_eq!(store.records().len(), 2);
        assert_eq!(read(&dir.join(STORE_FILE)), before);

        let mut r = sample();
        r.id = 99;
        assert_eq!(store.add(r).unwrap(), 3);
    }

    #[test]
    fn modes_persist_and_can_be_cleared() {
        let (_tmp, dir, mut store) = saved_store();
        store.set_mode("cursor", Mode::Ask).unwrap();
        store.set_mode("zed", Mode::Enforce).unwrap();
        assert_eq!(open(&dir).modes(), store.modes());
        assert_eq!(store.clear_mode("zed").unwrap(), Some(Mode::Enforce));
        assert_eq!(store.clear_mode("zed").unwrap(), None);
        let again = open(&dir);
        assert_eq!(again.modes().len(), 1);
        assert_eq!(again.modes()["cursor"], Mode::Ask);
        let err = store.set_mode("", Mode::Ask).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn syntax_error_is_reported_at_its_line_and_the_last_good_copy_is_used() {
        let (_tmp, dir, store) = saved_store();
        let main = dir.join(STORE_FILE);
        let good = read(&main);
        // Drop the comma after `"next_id": 3` (line 3).
        let broken = good.replacen("\"next_id\": 3,", "\"next_id\": 3", 1);
        fs::write(&main, &broken).unwrap();

        let loaded = Store::open(&dir).unwrap();
        let problem = loaded.problem.unwrap();
        assert_eq!(problem.file, main);
        assert_eq!((problem.line, problem.column), (4, 3), "{problem}");
        assert!(
            problem.to_string().starts_with(&format!(
                "{}:4:3: expected `,` or `}}`; running on the last good copy",
                main.display()
            )),
            "{problem}"
        );
        assert!(problem.message.ends_with("(2 records)"), "{problem}");
        assert_eq!(loaded.store.records(), store.records());
        assert_eq!(loaded.store.next_id(), 3);
        // open() never touches the broken file.
        assert_eq!(read(&main), broken);
    }

    #[test]
    fn schema_errors_carry_positions() {
        let tmp = tempfile::tempdir().unwrap();
        let main = tmp.path().join(STORE_FILE);
        fs::write(
            &main,
            "{\n  \"version\": 1,\n  \"records\": [],\n  \"extra\": 1\n}\n",
        )
        .unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert_eq!(p.line, 4, "{p}");
        assert!(p.message.starts_with("unknown field `extra`"), "{p}");

        fs::write(&main, "{\"records\": []}").unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert!(p.message.starts_with("missing field `version`"), "{p}");

        fs::write(&main, "{\n\"version\": 2\n}").unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert_eq!((p.line, p.column), (2, 12), "{p}");
        assert!(
            p.message
                .starts_with("version 2 is not supported (this mcpwatch reads version 1)"),
            "{p}"
        );

        fs::write(
            &main,
            "{\"version\": 1,\n\"modes\": {\"cursor\": \"block\"}}",
        )
        .unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert_eq!(p.line, 2, "{p}");
        assert!(p.message.starts_with("unknown variant `block`"), "{p}");

        fs::write(&main, "{\"version\": 1,\n\"modes\": {\"\": \"ask\"}}").unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert_eq!((p.line, p.column), (2, 10), "{p}");

        fs::write(&main, b"{\"version\": 1, \"records\": [\xff]}").unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert_eq!((p.line, p.column), (1, 28), "{p}");
        assert!(p.message.starts_with("not UTF-8 text"), "{p}");
    }

    #[test]
    fn an_invalid_record_is_reported_at_its_own_line() {
        let (_tmp, dir, _store) = saved_store();
        let main = dir.join(STORE_FILE);
        let text = read(&main);
        // Make the second record's exe path relative.
        let at = text.match_indices("\"/usr/bin/node\"").nth(1).unwrap().0;
        let broken = format!("{}\"node\"{}", &text[..at], &text[at + 15..]);
        fs::write(&main, &broken).unwrap();
        let record_line = broken
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "    {")
            .nth(1)
            .unwrap()
            .0
            + 1;
        let p = Store::open(&dir).unwrap().problem.unwrap();
        assert_eq!((p.line, p.column), (record_line, 5), "{p}");
        assert!(
            p.message
                .starts_with("records[1] (id 2): exe path \"node\" is not absolute"),
            "{p}"
        );
    }

    #[test]
    fn duplicate_ids_are_rejected_at_the_second_record() {
        let (_tmp, dir, _store) = saved_store();
        let main = dir.join(STORE_FILE);
        let broken = read(&main).replacen("\"id\": 2,", "\"id\": 1,", 1);
        fs::write(&main, &broken).unwrap();
        let lines: Vec<usize> = broken
            .lines()
            .enumerate()
            .filter(|(_, l)| *l == "    {")
            .map(|(i, _)| i + 1)
            .collect();
        let p = Store::open(&dir).unwrap().problem.unwrap();
        assert_eq!(p.line, lines[1], "{p}");
        assert!(
            p.message.starts_with(&format!(
                "records[1]: id 1 is already used by records[0] (line {}); ids must be unique",
                lines[0]
            )),
            "{p}"
        );
    }

    #[test]
    fn broken_main_without_a_usable_last_good_copy_is_an_empty_store() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(STORE_FILE), "{").unwrap();
        let loaded = Store::open(tmp.path()).unwrap();
        assert!(loaded.store.records().is_empty());
        let p = loaded.problem.unwrap();
        assert!(p.message.contains("there is no last good copy"), "{p}");
        assert!(p.message.ends_with("no records apply"), "{p}");

        fs::write(tmp.path().join(LAST_GOOD_FILE), "[]").unwrap();
        let p = Store::open(tmp.path()).unwrap().problem.unwrap();
        assert!(
            p.message.contains("the last good copy is unusable too ("),
            "{p}"
        );
        assert!(p.message.contains(LAST_GOOD_FILE), "{p}");
    }

    #[test]
    fn next_id_in_a_hand_edited_file_never_lets_ids_repeat() {
        let (_tmp, dir, _store) = saved_store();
        let main = dir.join(STORE_FILE);
        fs::write(
            &main,
            read(&main).replacen("\"next_id\": 3", "\"next_id\": 1", 1),
        )
        .unwrap();
        let mut store = open(&dir);
        assert_eq!(store.next_id(), 3);
        assert_eq!(store.add(sample()).unwrap(), 3);
        // A minimal hand-written file.
        fs::write(&main, "{\"version\": 1}").unwrap();
        assert_eq!(open(&dir).next_id(), 1);
    }

    #[test]
    fn crash_leftovers_of_a_save_are_ignored_and_cleaned_up() {
        let (_tmp, dir, store) = saved_store();
        let main_text = read(&dir.join(STORE_FILE));
        // A crash after writing part of the temporary file, before the rename.
        fs::write(dir.join(format!("{STORE_FILE}.tmp")), "{\"versi").unwrap();
        fs::write(dir.join(format!("{LAST_GOOD_FILE}.tmp")), "garbage").unwrap();
        let mut again = open(&dir);
        assert_eq!(again.records(), store.records());
        assert_eq!(read(&dir.join(STORE_FILE)), main_text);
        again.add(sample()).unwrap();
        assert_eq!(names(&dir, ""), [STORE_FILE, LAST_GOOD_FILE]);
        assert_eq!(open(&dir).records().len(), 3);
    }

    #[test]
    fn crash_between_main_and_last_good_loses_nothing() {
        let (_tmp, dir, mut store) = saved_store();
        let old_last_good = read(&dir.join(LAST_GOOD_FILE));
        store.add(sample()).unwrap();
        // As if the crash came after the main rename, before the last-good write.
        fs::write(dir.join(LAST_GOOD_FILE), &old_last_good).unwrap();
        let again = open(&dir);
        assert_eq!(again.records().len(), 3);
        // And the next save brings the last good copy up to date.
        let mut again = again;
        again.save().unwrap();
        assert_eq!(read(&dir.join(LAST_GOOD_FILE)), read(&dir.join(STORE_FILE)));
    }

    #[test]
    fn save_keeps_a_broken_main_file_as_a_rejected_copy_without_overwriting() {
        let (_tmp, dir, _store) = saved_store();
        let main = dir.join(STORE_FILE);
        let broken = "{ \"version\": 1, oops }";
        fs::write(&main, broken).unwrap();
        let loaded = Store::open(&dir).unwrap();
        assert!(loaded.problem.is_some());
        let mut store = loaded.store;

        // Copies from earlier (and, for a save that crosses a second, later)
        // seconds exist already: none may be overwritten.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut existing = Vec::new();
        for name in [
            format!("{STORE_FILE}.rejected-{now}"),
            format!("{STORE_FILE}.rejected-{now}-1"),
            format!("{STORE_FILE}.rejected-{}", now + 1),
        ] {
            fs::write(dir.join(&name), &name).unwrap();
            existing.push(name);
        }
        store.add(sample()).unwrap();

        for name in &existing {
            assert_eq!(&read(&dir.join(name)), name);
        }
        let copies: Vec<String> = names(&dir, &format!("{STORE_FILE}.rejected-"))
            .into_iter()
            .filter(|n| !existing.contains(n))
            .collect();
        assert_eq!(copies.len(), 1, "{copies:?}");
        assert_eq!(read(&dir.join(&copies[0])), broken);
        assert_eq!(mode_of(&dir.join(&copies[0])), 0o600);
        // The new main file holds the last good records plus the new one.
        let again = open(&dir);
        assert_eq!(again.records().len(), 3);
        assert_eq!(read(&main), read(&dir.join(LAST_GOOD_FILE)));
    }

    #[test]
    fn save_keeps_a_valid_edit_it_has_not_read_as_a_replaced_copy() {
        let (_tmp, dir, mut store) = saved_store();
        let main = dir.join(STORE_FILE);
        let edited = read(&main).replace("claude-code", "zed");
        fs::write(&main, &edited).unwrap();
        store.remove(1).unwrap();
        let copies = names(&dir, &format!("{STORE_FILE}.replaced-"));
        assert_eq!(copies.len(), 1);
        assert_eq!(read(&dir.join(&copies[0])), edited);
        assert!(names(&dir, &format!("{STORE_FILE}.rejected-")).is_empty());
        // Saving what this store itself wrote makes no copies.
        store.save().unwrap();
        store.save().unwrap();
        assert_eq!(names(&dir, &format!("{STORE_FILE}.replaced-")).len(), 1);
    }

    #[test]
    fn reload_keeps_the_records_in_use_when_the_file_is_broken() {
        let (_tmp, dir, mut store) = saved_store();
        let main = dir.join(STORE_FILE);
        let before = store.records().to_vec();
        fs::write(&main, "{\n  \"version\": 1,\n  \"records\": [ }\n").unwrap();
        let p = store.reload().unwrap_err();
        assert_eq!((p.file.as_path(), p.line), (main.as_path(), 3), "{p}");
        assert_eq!(store.records(), before);
        // Nor does reload() touch the broken file or the last good copy.
        assert_eq!(read(&main), "{\n  \"version\": 1,\n  \"records\": [ }\n");
        assert_eq!(open_last_good_count(&dir), 2);
    }

    fn open_last_good_count(dir: &Path) -> usize {
        let text = read(&dir.join(LAST_GOOD_FILE));
        parse(text.as_bytes(), Path::new(LAST_GOOD_FILE))
            .unwrap()
            .records
            .len()
    }

    #[test]
    fn reload_applies_a_valid_edit_and_says_whether_anything_changed() {
        let (_tmp, dir, mut store) = saved_store();
        let main = dir.join(STORE_FILE);
        assert_eq!(store.reload(), Ok(false));

        let mut v: serde_json::Value = serde_json::from_str(&read(&main)).unwrap();
        v["records"].as_array_mut().unwrap().remove(0);
        v["next_id"] = 1.into();
        v["modes"]["zed"] = "ask".into();
        let edited = serde_json::to_string_pretty(&v).unwrap();
        fs::write(&main, &edited).unwrap();
        assert_eq!(store.reload(), Ok(true));
        assert_eq!(store.records().len(), 1);
        assert_eq!(store.records()[0].id, 2);
        assert_eq!(store.modes()["zed"], Mode::Ask);
        // next_id does not go backwards.
        assert_eq!(store.next_id(), 3);
        // A good edit becomes the last good copy.
        assert_eq!(read(&dir.join(LAST_GOOD_FILE)), edited);
        assert_eq!(store.reload(), Ok(false));
        // Saving what was reloaded is not "someone else's edit".
        store.add(sample()).unwrap();
        assert!(names(&dir, &format!("{STORE_FILE}.replaced-")).is_empty());

        fs::remove_file(&main).unwrap();
        assert_eq!(store.reload(), Ok(true));
        assert!(store.records().is_empty());
    }

    #[test]
    fn records_keep_exact_bytes_through_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = open(tmp.path());
        let mut r = sample();
        r.argv.push(Bytes(vec![0xff, b'\n', b'\'']));
        r.scope = Scope::Until("2030-01-01T00:00:00Z".to_owned());
        let id = store.add(r.clone()).unwrap();
        r.id = id;
        assert_eq!(open(tmp.path()).get(id), Some(&r));
    }

    #[test]
    fn json_positions_follow_nesting_and_strings() {
        let text = "{ \"a\": {\"records\": [1]}, \"s\": \"x\\\"]}\", \"records\" :\n [ {\"k\": [1, {}]}, \"]\" , 3 ] }";
        let at = json_pos::member(text, "records").unwrap();
        assert_eq!(&text[at..=at], "[");
        let elems = json_pos::elements(text, at);
        assert_eq!(elems.len(), 3);
        assert!(text[elems[0]..].starts_with("{\"k\""));
        assert!(text[elems[1]..].starts_with("\"]\""));
        assert!(text[elems[2]..].starts_with("3 ]"));
        assert_eq!(json_pos::member(text, "missing"), None);
        assert_eq!(json_pos::member("[1]", "records"), None);
        assert!(json_pos::elements("{}", 0).is_empty());
        assert!(json_pos::elements("[ ]", 0).is_empty());
    }
}
