//! The tamper-evident chain of the audit log, and its verification.
//!
//! Every record the daemon writes carries `prev`: the SHA-256 (hex) of the exact
//! bytes of the record line before it (64 zeros for the first line of a log).
//! Records also carry consecutive ids. After each fsync the daemon writes a
//! checkpoint beside the log (`<log>.checkpoint`: the id and hash of the last
//! record on disk), so cutting records off the end is detected too. Verification
//! is pure: bytes in, a report out; it names the first record that was edited,
//! deleted, inserted, reordered or cut off.
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of a record line (without its newline), hex.
pub fn line_hash(line: &[u8]) -> String {
    crate::sys::hex::encode(&Sha256::digest(line))
}

/// The chain head the daemon last made durable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Id of the last record fsynced.
    pub id: u64,
    /// `line_hash` of that record.
    pub hash: String,
    /// RFC 3339 time of the checkpoint.
    pub ts: String,
}

/// What is wrong, at the first place it is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line in the file.
    pub line: usize,
    /// The record id concerned, when known.
    pub id: Option<u64>,
    /// `edited`, `deleted`, `inserted`, `reordered`, `truncated`, `unparseable`,
    /// `unchained`.
    pub kind: &'static str,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Complete record lines read.
    pub records: usize,
    /// Records before the first one with `prev` (written before the chain existed).
    pub unchained_prefix: usize,
    pub first_id: Option<u64>,
    pub last_id: Option<u64>,
    /// Hash of the last complete record.
    pub head: Option<String>,
    /// A last line without its newline (a write cut by a crash): its length. Not
    /// part of the chain; the daemon sets it aside on its next start.
    pub torn_tail: Option<usize>,
    pub checkpoint: Option<Checkpoint>,
    pub problem: Option<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

#[derive(Deserialize)]
struct Fields {
    id: Option<u64>,
    prev: Option<String>,
}

/// Verify a whole log. `checkpoint`: the last durable head, if known.
pub fn verify(log: &[u8], checkpoint: Option<&Checkpoint>) -> Report {
    verify_from(log, checkpoint, None)
}

/// Where a log whose oldest files were removed by retention starts: the last id
/// and chain hash of the removed records (from the `log_retention` record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anchor {
    pub last_id: u64,
    pub head: String,
}

/// The newest `log_retention` anchor in a log: its message ends in
/// `last=ID head=HEX`.
pub fn find_anchor(log: &[u8]) -> Option<Anchor> {
    let mut best: Option<Anchor> = None;
    for line in log.split(|&b| b == b'\n') {
        let pat: &[u8] = b"\"kind\":\"log_retention\"";
        if !line.windows(pat.len()).any(|w| w == pat) {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let msg = v["message"].as_str().unwrap_or_default();
        let last = msg
            .split_whitespace()
            .find_map(|w| w.strip_prefix("last=")?.parse::<u64>().ok());
        let head = msg
            .split_whitespace()
            .find_map(|w| w.strip_prefix("head="))
            .map(str::to_owned);
        if let (Some(last_id), Some(head)) = (last, head) {
            if best.as_ref().is_none_or(|b| b.last_id < last_id) {
                best = Some(Anchor { last_id, head });
            }
        }
    }
    best
}

/// Verify a log that continues the chain after `start` (records removed by
/// retention): its first record must follow `start.last_id` and chain to
/// `start.head`.
pub fn verify_from(log: &[u8], checkpoint: Option<&Checkpoint>, start: Option<&Anchor>) -> Report {
    let mut r = Report {
        checkpoint: checkpoint.cloned(),
        ..Report::default()
    };
    let mut lines: Vec<&[u8]> = log.split(|&b| b == b'\n').collect();
    // The piece after the last newline: empty for a clean file, else torn.
    if let Some(last) = lines.pop() {
        if !last.is_empty() {
            r.torn_tail = Some(last.len());
        }
    }
    let mut prev_hash: Option<String> = start.map(|a| a.head.clone());
    let mut prev_id: Option<u64> = start.map(|a| a.last_id);
    let mut chained = start.is_some();
    let mut seen_checkpoint = false;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let fail = |kind, id, detail: String| Problem {
            line: n,
            id,
            kind,
            detail,
        };
        let Ok(f) = serde_json::from_slice::<Fields>(line) else {
            r.problem = Some(fail(
                "unparseable",
                None,
                "not a JSON record: edited, or bytes inserted".into(),
            ));
            return r;
        };
        let hash = line_hash(line);
        match &f.prev {
            None if chained => {
                r.problem = Some(fail(
                    "unchained",
                    f.id,
                    "a record without `prev` after the chain began: inserted".into(),
                ));
                return r;
            }
            None => r.unchained_prefix += 1,
            Some(prev) => {
                chained = true;
                let want = prev_hash.as_deref().unwrap_or(GENESIS);
                if prev != want {
                    r.problem = Some(explain_break(n, f.id, prev_id));
                    return r;
                }
            }
        }
        if let (Some(id), Some(p)) = (f.id, prev_id) {
            if id != p + 1 && f.prev.is_some() {
                // The hashes agree but the ids do not follow: only a forger who
                // recomputed the chain gets here; name it all the same.
                r.problem = Some(fail(
                    if id <= p { "reordered" } else { "deleted" },
                    Some(id),
                    format!("id {id} follows id {p}"),
                ));
                return r;
            }
        }
        if let Some(cp) = checkpoint {
            if f.id == Some(cp.id) {
                seen_checkpoint = true;
                if hash != cp.hash {
                    r.problem = Some(fail(
                        "edited",
                        f.id,
                        format!(
                            "record {} does not match the checkpoint (hash {hash}, checkpoint {})",
                            cp.id, cp.hash
                        ),
                    ));
                    return r;
                }
            }
        }
        r.records += 1;
        if r.first_id.is_none() {
            r.first_id = f.id;
        }
        r.last_id = f.id.or(r.last_id);
        prev_id = f.id.or(prev_id);
        prev_hash = Some(hash);
    }
    r.head.clone_from(&prev_hash);
    if let Some(cp) = checkpoint {
        if !seen_checkpoint && r.last_id.is_none_or(|l| l < cp.id) {
            r.problem = Some(truncated(lines.len() + 1, r.last_id, cp));
        }
    }
    r
}

/// The log ends before the record the checkpoint names.
fn truncated(line: usize, last_id: Option<u64>, cp: &Checkpoint) -> Problem {
    Problem {
        line,
        id: last_id.map(|l| l + 1),
        kind: "truncated",
        detail: format!(
            "the log ends at record {} but the checkpoint of {} names record {}: records were cut off",
            last_id.map_or_else(|| "none".into(), |l| l.to_string()),
            cp.ts,
            cp.id
        ),
    }
}

/// Record `n` (with `id`) does not chain to the line before it: say what that
/// most likely was, from the ids.
fn explain_break(n: usize, id: Option<u64>, prev_id: Option<u64>) -> Problem {
    let (kind, at, detail) = match (id, prev_id) {
        (Some(id), Some(p)) if id == p + 1 => {
            // The record before is the one that changed: name it, at its line.
            return Problem {
                line: n - 1,
                id: Some(p),
                kind: "edited",
                detail: format!("record {p} was changed: record {id} no longer chains to it"),
            };
        }
        (Some(id), Some(p)) if id > p + 1 => (
            "deleted",
            Some(p + 1),
            format!(
                "records {}..{} are missing before record {id}",
                p + 1,
                id - 1
            ),
        ),
        (Some(id), Some(p)) => (
            "reordered",
            Some(id),
            format!("record {id} appears after record {p}: inserted or moved"),
        ),
        (Some(id), None) => (
            "deleted",
            Some(id),
            format!("the log starts at record {id}, which chains to a record that is not there"),
        ),
        _ => ("edited", None, "the chain breaks here".to_owned()),
    };
    Problem {
        line: n,
        id: at,
        kind,
        detail,
    }
}

/// The rotated files of `log` (`<log>.NNNNNN`), oldest first.
pub fn rotated_files(log: &std::path::Path) -> Vec<std::path::PathBuf> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let mut v: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().into_string().ok()?;
            let num = n.strip_prefix(&prefix)?;
            (num.len() == 6).then_some(())?;
            Some((num.parse().ok()?, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Verify `log` together with its rotated files, oldest first, as one chain.
pub fn verify_all(log: &std::path::Path) -> std::io::Result<(Report, Vec<std::path::PathBuf>)> {
    let mut files = rotated_files(log);
    files.push(log.to_path_buf());
    let mut all = Vec::new();
    for f in &files {
        let mut b = std::fs::read(f)?;
        // A torn tail can only be at the end of the newest file.
        if f != log && b.last().is_some_and(|&c| c != b'\n') {
            b.push(b'\n');
        }
        all.extend_from_slice(&b);
    }
    let anchor = find_anchor(&all);
    let cp = read_checkpoint(log);
    Ok((verify_from(&all, cp.as_ref(), anchor.as_ref()), files))
}

/// Where the checkpoint of a log lives.
pub fn checkpoint_path(log: &std::path::Path) -> std::path::PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".checkpoint");
    p.into()
}

pub fn read_checkpoint(log: &std::path::Path) -> Option<Checkpoint> {
    serde_json::from_str(&std::fs::read_to_string(checkpoint_path(log)).ok()?).ok()
}

#[cfg(test)]
#[allow(
    clippy::many_single_char_names,
    reason = "crafted logs (l), checkpoints (c), problems (p), reports (r), bytes (b): short names keep each case on a few lines"
)]
mod tests {
    use super::*;

    /// A chained log of `n` records, as the daemon writes them.
    fn chain(n: u64) -> Vec<String> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|id| {
                let line =
                    format!("{{\"schema\":1,\"id\":{id},\"kind\":\"exec\",\"prev\":\"{prev}\"}}");
                prev = line_hash(line.as_bytes());
                line
            })
            .collect()
    }

    fn bytes(lines: &[String]) -> Vec<u8> {
        let mut v = lines.join("\n").into_bytes();
        v.push(b'\n');
        v
    }

    fn cp(lines: &[String], id: u64) -> Checkpoint {
        Checkpoint {
            id,
            hash: line_hash(lines[usize::try_from(id).unwrap() - 1].as_bytes()),
            ts: "t".into(),
        }
    }

    #[test]
    fn an_intact_chain_verifies_with_its_checkpoint() {
        let l = chain(5);
        let r = verify(&bytes(&l), Some(&cp(&l, 5)));
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.records, r.first_id, r.last_id), (5, Some(1), Some(5)));
        assert_eq!(r.head.as_deref(), Some(line_hash(l[4].as_bytes()).as_str()));
    }

    #[test]
    fn an_edited_record_is_named() {
        let mut l = chain(5);
        l[2] = l[2].replace("exec", "exit");
        let p = verify(&bytes(&l), None).problem.unwrap();
        assert_eq!((p.kind, p.id, p.line), ("edited", Some(3), 3));
    }

    #[test]
    fn a_deleted_record_is_named() {
        let mut l = chain(5);
        l.remove(2);
        let p = verify(&bytes(&l), None).problem.unwrap();
        assert_eq!((p.kind, p.id), ("deleted", Some(3)), "{p:?}");
    }

    #[test]
    fn inserted_and_reordered_records_are_named() {
        let mut l = chain(5);
        let extra = l[1].clone();
        l.insert(3, extra);
        let p = verify(&bytes(&l), None).problem.unwrap();
        assert_eq!(p.kind, "reordered", "{p:?}");
        assert_eq!(p.line, 4);
        let mut l = chain(5);
        l.swap(1, 2);
        let p = verify(&bytes(&l), None).problem.unwrap();
        assert_eq!((p.kind, p.line), ("deleted", 2), "{p:?}");
        let mut l = chain(3);
        l.insert(1, "{\"schema\":1,\"id\":9,\"kind\":\"exec\"}".into());
        assert_eq!(verify(&bytes(&l), None).problem.unwrap().kind, "unchained");
    }

    #[test]
    fn truncation_is_caught_by_the_checkpoint_and_a_torn_tail_is_not_tampering() {
        let l = chain(6);
        let c = cp(&l, 6);
        let p = verify(&bytes(&l[..4]), Some(&c)).problem.unwrap();
        assert_eq!((p.kind, p.id), ("truncated", Some(5)), "{p:?}");
        // A crash mid-write: the durable prefix is intact, the torn line is noted.
        let mut b = bytes(&l[..6]);
        b.extend_from_slice(b"{\"schema\":1,\"id\":7,\"ki");
        let r = verify(&b, Some(&c));
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.torn_tail, Some(22));
        // Rewriting the checkpointed record is caught even with a recomputed chain.
        let mut l2 = chain(6);
        l2[5] = l2[5].replace("exec", "exit");
        let p = verify(&bytes(&l2), Some(&c)).problem.unwrap();
        assert_eq!((p.kind, p.id), ("edited", Some(6)));
        let p = verify(b"{\"id\":1,\"prev\":\"x\"}\nnot json\n", None)
            .problem
            .unwrap();
        assert_eq!(p.kind, "deleted");
        let p = verify(b"garbage\n", None).problem.unwrap();
        assert_eq!(p.kind, "unparseable");
    }

    #[test]
    fn a_log_cut_by_retention_verifies_from_its_anchor_and_not_without() {
        let l = chain(6);
        let anchor = Anchor {
            last_id: 3,
            head: line_hash(l[2].as_bytes()),
        };
        let rest = bytes(&l[3..]);
        assert!(verify_from(&rest, None, Some(&anchor)).ok());
        let p = verify(&rest, None).problem.unwrap();
        assert_eq!((p.kind, p.id), ("deleted", Some(4)), "{p:?}");
        let wrong = Anchor {
            last_id: 3,
            head: GENESIS.into(),
        };
        assert!(!verify_from(&rest, None, Some(&wrong)).ok());
        let msg = format!(
            "{{\"id\":9,\"kind\":\"log_retention\",\"message\":\"removed f (records 1..3) last=3 head={}\"}}\n",
            anchor.head
        );
        assert_eq!(find_anchor(msg.as_bytes()), Some(anchor));
    }

    #[test]
    fn records_from_before_the_chain_are_a_counted_prefix() {
        let mut l = vec!["{\"schema\":1,\"id\":1,\"kind\":\"exec\"}".to_owned()];
        let h = line_hash(l[0].as_bytes());
        l.push(format!(
            "{{\"schema\":1,\"id\":2,\"kind\":\"exec\",\"prev\":\"{h}\"}}"
        ));
        let r = verify(&bytes(&l), None);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.unchained_prefix, 1);
    }
}
