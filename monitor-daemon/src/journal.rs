//! Events to the systemd journal, with structured fields, when the daemon runs
//! under systemd: `journalctl -o json MCPWATCH_KIND=launch` then finds them. The
//! native protocol: one datagram per entry to the journal socket, `KEY=value`
//! lines, and the binary form (`KEY\n`, little-endian u64 length, bytes, `\n`) for
//! values that contain a newline.
use std::{fmt::Write as _, io, os::unix::net::UnixDatagram, path::Path};

use crate::event::Event;

/// Whether to send events to the journal.
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("JOURNAL_STREAM").is_some()
}

fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// The journal entry for one recorded event (`line`: the JSON line as logged).
pub fn entry(e: &Event, line: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let verdict = e.verdict.as_ref().map(|v| v.decision.as_str());
    let bad = matches!(verdict, Some("killed" | "denied" | "unapproved" | "held"))
        || matches!(
            e.kind.as_str(),
            "refused" | "policy_error" | "hold_bypass" | "record_stale" | "lost"
        );
    let mut message = e.kind.as_str().to_owned();
    if let Some(h) = &e.host {
        let _ = write!(message, " host={}", h.name);
    }
    if let Some(v) = verdict {
        let _ = write!(message, " verdict={v}");
    }
    if e.argv.is_some() {
        let _ = write!(message, ": {}", e.command_line());
    } else if let Some(m) = &e.message {
        let _ = write!(message, ": {m}");
    }
    field(&mut out, "MESSAGE", message.as_bytes());
    field(&mut out, "PRIORITY", if bad { b"4" } else { b"6" });
    field(&mut out, "SYSLOG_IDENTIFIER", b"mcpwatchd");
    field(&mut out, "MCPWATCH_EVENT", line.as_bytes());
    field(&mut out, "MCPWATCH_ID", e.id.to_string().as_bytes());
    field(&mut out, "MCPWATCH_KIND", e.kind.as_str().as_bytes());
    if e.pid != 0 {
        field(&mut out, "MCPWATCH_PID", e.pid.to_string().as_bytes());
    }
    if let Some(h) = &e.host {
        field(&mut out, "MCPWATCH_HOST", h.name.as_bytes());
    }
    if let Some(v) = verdict {
        field(&mut out, "MCPWATCH_VERDICT", v.as_bytes());
    }
    if let Some(r) = e
        .record
        .or_else(|| e.verdict.as_ref().and_then(|v| v.record))
    {
        field(&mut out, "MCPWATCH_RECORD", r.to_string().as_bytes());
    }
    out
}

/// A connection to the journal socket (datagrams, best effort: a journal that is
/// gone or full never blocks the daemon; failures are counted by the caller).
pub struct Journal {
    sock: UnixDatagram,
}

impl Journal {
    pub fn connect(path: &Path) -> io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        sock.set_nonblocking(true)?;
        Ok(Self { sock })
    }

    pub fn send(&self, e: &Event, line: &str) -> io::Result<()> {
        self.sock.send(&entry(e, line)).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Bytes, HostRef, Kind, Verdict};

    #[test]
    fn an_entry_carries_the_structured_fields_and_binary_safe_values() {
        let mut e = Event::new(Kind::Launch, 7, "t".into());
        e.pid = 42;
        e.host = Some(HostRef {
            name: "claude-code".into(),
            pid: 1,
        });
        e.argv = Some(vec![
            Bytes::from("sh"),
            Bytes::from("-c"),
            Bytes::from("a\nb"),
        ]);
        e.verdict = Some(Verdict {
            decision: crate::event::Decision::Killed,
            mode: crate::model::Mode::Enforce,
            record: None,
            reason: None,
            pending: None,
            killed: true,
        });
        let line = "{\"id\":7}";
        let b = entry(&e, line);
        let text = String::from_utf8_lossy(&b);
        for want in [
            "PRIORITY=4\n",
            "MCPWATCH_KIND=launch\n",
            "MCPWATCH_HOST=claude-code\n",
            "MCPWATCH_VERDICT=killed\n",
            "MCPWATCH_PID=42\n",
            "MCPWATCH_ID=7\n",
            "MCPWATCH_EVENT={\"id\":7}\n",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert!(
            text.contains("MESSAGE=launch host=claude-code verdict=killed: sh -c "),
            "{text}"
        );
        // A value with a newline uses the binary form.
        let mut p = Event::new(Kind::PolicyError, 8, "t".into());
        p.message = Some("line one\nline two".into());
        let b = entry(&p, "{}");
        let at = b
            .windows(8)
            .position(|w| w == b"MESSAGE\n")
            .expect("binary MESSAGE");
        let len = u64::from_le_bytes(b[at + 8..at + 16].try_into().unwrap());
        let value = &b[at + 16..at + 16 + usize::try_from(len).unwrap()];
        assert_eq!(value, b"policy_error: line one\nline two");
        assert!(String::from_utf8_lossy(&b).contains("PRIORITY=4\n"));
    }

    #[test]
    fn entries_reach_a_journal_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let j = Journal::connect(&path).unwrap();
        let e = Event::new(Kind::Approve, 3, "t".into());
        j.send(&e, "{}").unwrap();
        let mut buf = [0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).contains("MCPWATCH_KIND=approve\n"));
    }
}
