//! Query filters of `mcpwatch log` / `mcpwatch tree` (pure: no files, no terminal;
//! readers and writers are passed in).
//!
//! A [`Filter`] is a conjunction: an event matches when every filter that is set
//! matches it. The log is read as a sequence of sources (rotated files oldest first,
//! then the current one), streaming, line by line: for `--json` and `--output` each
//! matching line is copied as the exact bytes of the log ([`copy_matching`]), so an
//! exported record keeps its `prev` chain field and still verifies; the line is
//! parsed only to decide. The tree needs its events in memory ([`select_for_tree`]):
//! the matching ones plus the context that keeps the tree readable.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::{self, BufRead, Write},
    rc::Rc,
};

use clap::Args;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::event::{Event, Kind};

/// Every event kind, in schema order (what `--kind` accepts).
pub const KINDS: [Kind; 23] = [
    Kind::DaemonStart,
    Kind::DaemonStop,
    Kind::HostStart,
    Kind::Adopt,
    Kind::HostExec,
    Kind::Launch,
    Kind::Helper,
    Kind::Terminal,
    Kind::Exec,
    Kind::Fork,
    Kind::Exit,
    Kind::Lost,
    Kind::Approve,
    Kind::Revoke,
    Kind::Mode,
    Kind::Decision,
    Kind::Refused,
    Kind::PolicyError,
    Kind::RecordStale,
    Kind::HoldBypass,
    Kind::LogRotate,
    Kind::LogRetention,
    Kind::ConfigChange,
];

/// The values of `verdict.decision` (what `--verdict` accepts).
pub const VERDICTS: [&str; 6] = [
    "allowed",
    "unapproved",
    "held",
    "killed",
    "denied",
    "continued",
];

/// Lines read between two calls of the progress callback.
pub const PROGRESS_EVERY: u64 = 4096;

/// What an event must be to be shown. `None` / empty: not filtered on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `host.name`, exactly.
    pub host: Option<String>,
    /// `ts` at or after this time.
    pub since: Option<OffsetDateTime>,
    /// `ts` at or before this time.
    pub until: Option<OffsetDateTime>,
    /// Any of these kinds.
    pub kinds: Vec<Kind>,
    /// `verdict.decision`, exactly.
    pub verdict: Option<String>,
    /// The event's pid, or any pid of its lineage.
    pub pid: Option<u32>,
    /// `record` or `verdict.record`.
    pub record: Option<u64>,
    /// A substring of the shell-quoted command line (case-sensitive).
    pub grep: Option<String>,
}

impl Filter {
    /// No filter set: every event matches.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn matches(&self, e: &Event) -> bool {
        if let Some(h) = &self.host {
            if e.host.as_ref().is_none_or(|r| r.name != *h) {
                return false;
            }
        }
        if !self.kinds.is_empty() && !self.kinds.contains(&e.kind) {
            return false;
        }
        if let Some(d) = &self.verdict {
            if e.verdict.as_ref().is_none_or(|v| v.decision.as_str() != d) {
                return false;
            }
        }
        if let Some(p) = self.pid {
            if e.pid != p && !e.lineage.contains(&p) {
                return false;
            }
        }
        if let Some(r) = self.record {
            let of_verdict = e.verdict.as_ref().and_then(|v| v.record);
            if e.record != Some(r) && of_verdict != Some(r) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            // A time that cannot be read cannot be placed in the window.
            let Ok(ts) = OffsetDateTime::parse(&e.ts, &Rfc3339) else {
                return false;
            };
            if self.since.is_some_and(|s| ts < s) || self.until.is_some_and(|u| ts > u) {
                return false;
            }
        }
        if let Some(g) = &self.grep {
            // Last: it is the one that allocates.
            if e.argv.is_none() && !g.is_empty() {
                return false;
            }
            if !e.command_line().contains(g.as_str()) {
                return false;
            }
        }
        true
    }
}

/// A filter argument that cannot be used; the text says what is valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "`{text}` is not a time: give RFC 3339 (2026-11-27T10:00:00Z) or an age \
         such as 30s, 15m, 1h, 2d"
    )]
    NotATime { text: String },
    /// An age whose seconds do not fit.
    #[error("`{text}` is too long ago")]
    AgeTooLong { text: String },
    /// An age that reaches before the first representable time.
    #[error("{secs} seconds ago is too long ago")]
    TooLongAgo { secs: i64 },
    #[error("unknown kind `{text}`; valid kinds: {}", kind_names())]
    UnknownKind { text: String },
    #[error("unknown verdict `{text}`; valid verdicts: {}", VERDICTS.join(", "))]
    UnknownVerdict { text: String },
    #[error(
        "--since ({}) is after --until ({}): nothing can match",
        fmt_time(*.since),
        fmt_time(*.until)
    )]
    SinceAfterUntil {
        since: OffsetDateTime,
        until: OffsetDateTime,
    },
}

fn kind_names() -> String {
    KINDS
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A time as given on the command line: absolute, or an age relative to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    At(OffsetDateTime),
    Ago(time::Duration),
}

impl TimeSpec {
    /// RFC 3339 (`2026-11-27T10:00:00Z`, `2026-11-27T12:00:00+02:00`) or an age:
    /// a count and a unit, `s`, `m` (minutes), `h` or `d` (`30s`, `15m`, `1h`, `2d`).
    pub fn parse(s: &str) -> Result<Self, FilterError> {
        let bad = || FilterError::NotATime { text: s.to_owned() };
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Self::At(t));
        }
        let Some(unit) = s.chars().last() else {
            return Err(bad());
        };
        let count = &s[..s.len() - unit.len_utf8()];
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs_per: i64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        count
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(secs_per))
            .map(|secs| Self::Ago(time::Duration::seconds(secs)))
            .ok_or_else(|| FilterError::AgeTooLong { text: s.to_owned() })
    }

    pub fn resolve(self, now: OffsetDateTime) -> Result<OffsetDateTime, FilterError> {
        match self {
            Self::At(t) => Ok(t),
            Self::Ago(d) => now.checked_sub(d).ok_or(FilterError::TooLongAgo {
                secs: d.whole_seconds(),
            }),
        }
    }
}

/// `--since` / `--until`: RFC 3339, or an age (`30s`, `15m`, `1h`, `2d`) meaning
/// `now` minus that.
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, FilterError> {
    TimeSpec::parse(s)?.resolve(now)
}

/// `--kind`: one kind name, as in the JSON.
pub fn parse_kind(s: &str) -> Result<Kind, FilterError> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| FilterError::UnknownKind { text: s.to_owned() })
}

/// `--verdict`: one `verdict.decision` value.
pub fn parse_verdict(s: &str) -> Result<String, FilterError> {
    if VERDICTS.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(FilterError::UnknownVerdict { text: s.to_owned() })
    }
}

/// The filter options shared by `mcpwatch log` and `mcpwatch tree`.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Filters (all given must match)")]
pub struct FilterArgs {
    /// Only events of this host (its profile name, or the `--host` of `mcpwatch run`).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Only events at or after T: RFC 3339 (2026-11-27T10:00:00Z) or an age (30s,
    /// 15m, 1h, 2d: now minus that).
    #[arg(long, value_name = "T", value_parser = TimeSpec::parse)]
    pub since: Option<TimeSpec>,
    /// Only events at or before T (same forms as --since).
    #[arg(long, value_name = "T", value_parser = TimeSpec::parse)]
    pub until: Option<TimeSpec>,
    /// Only events of these kinds (repeat it, or a comma list: launch,exec).
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = parse_kind)]
    pub kind: Vec<Kind>,
    /// Only events whose verdict is D: allowed, unapproved, held, killed, denied,
    /// continued.
    #[arg(long, value_name = "D", value_parser = parse_verdict)]
    pub verdict: Option<String>,
    /// Only events of process P or of its descendants (P in the event's lineage).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,
    /// Only events about consent record N (`record`, or the record a verdict names).
    #[arg(long, value_name = "N")]
    pub record: Option<u64>,
    /// Only events whose command line (shell-quoted, as shown) contains TEXT
    /// (case-sensitive).
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
}

impl FilterArgs {
    /// The filter, with relative times taken back from `now`.
    pub fn to_filter(&self, now: OffsetDateTime) -> Result<Filter, FilterError> {
        let since = self.since.map(|t| t.resolve(now)).transpose()?;
        let until = self.until.map(|t| t.resolve(now)).transpose()?;
        if let (Some(s), Some(u)) = (since, until) {
            if s > u {
                return Err(FilterError::SinceAfterUntil { since: s, until: u });
            }
        }
        let mut kinds = self.kind.clone();
        kinds.dedup();
        Ok(Filter {
            host: self.host.clone(),
            since,
            until,
            kinds,
            verdict: self.verdict.clone(),
            pid: self.pid,
            record: self.record,
            grep: self.grep.clone(),
        })
    }
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// What a pass over the log saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Lines read (empty ones included: they count for line numbers).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Events that matched the filter.
    pub matched: u64,
    /// Lines that are not event records (reported through `on_bad`, skipped).
    pub bad: u64,
}

/// Called with the index of the source, the 1-based line number in it and why the
/// line is not an event record.
pub type OnBad<'a> = dyn FnMut(usize, u64, &serde_json::Error) + 'a;

/// Read each source line by line, in order; each parsed event goes to `each` with
/// the exact bytes of its line (no newline; the last line of a source may lack one).
/// A line that is not an event goes to `on_bad`. `progress` is called every
/// [`PROGRESS_EVERY`] lines.
fn scan<R: BufRead>(
    inputs: impl IntoIterator<Item = R>,
    counts: &mut Counts,
    on_bad: &mut OnBad<'_>,
    progress: &mut dyn FnMut(&Counts),
    mut each: impl FnMut(&[u8], Event, &mut Counts) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    for (source, mut input) in inputs.into_iter().enumerate() {
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = input.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            counts.lines += 1;
            counts.bytes += n as u64;
            if counts.lines.is_multiple_of(PROGRESS_EVERY) {
                progress(counts);
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(e) => each(line, e, counts)?,
                Err(err) => {
                    counts.bad += 1;
                    on_bad(source, line_no, &err);
                }
            }
        }
    }
    Ok(())
}

/// Copy the lines of the events that match to `out`, byte for byte (each ends with
/// a newline). Errors writing `out` are returned as they are (a reader that went
/// away is `BrokenPipe`).
pub fn copy_matching<R: BufRead, W: Write>(
    inputs: impl IntoIterator<Item = R>,
    filter: &Filter,
    out: &mut W,
    mut on_bad: impl FnMut(usize, u64, &serde_json::Error),
    mut progress: impl FnMut(&Counts),
) -> io::Result<Counts> {
    let mut counts = Counts::default();
    scan(
        inputs,
        &mut counts,
        &mut on_bad,
        &mut progress,
        |line, e, counts| {
            if filter.matches(&e) {
                counts.matched += 1;
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            Ok(())
        },
    )?;
    Ok(counts)
}

/// The events for the tree, in id order.
#[derive(Debug, Default)]
pub struct TreeSelection {
    pub events: Vec<Event>,
    pub counts: Counts,
    /// Matching events of kinds the tree does not draw (forks, consent, daemon and
    /// log events): only `--json` shows them.
    pub undrawn: u64,
}

/// Whether the tree shows an event of this kind (as a line, or as the exit status
/// and duration of one).
pub fn drawn_in_tree(k: Kind) -> bool {
    k.is_process_line() || matches!(k, Kind::Exit | Kind::Lost)
}

/// Select the events of the tree. With no filter, every event. With filters, the
/// matching events plus, so that each stays readable where it belongs: the start
/// (or adoption) of its host and the launch of its session, when the log has them
/// before it; for a matching exit, the exec line it ends; and the exit of every
/// process whose line is shown (its status and duration). Context events need not
/// match the filters (a host started before `--since` is still shown).
pub fn select_for_tree<R: BufRead>(
    inputs: impl IntoIterator<Item = R>,
    filter: &Filter,
    mut on_bad: impl FnMut(usize, u64, &serde_json::Error),
    mut progress: impl FnMut(&Counts),
) -> io::Result<TreeSelection> {
    let mut counts = Counts::default();
    if filter.is_empty() {
        let mut events = Vec::new();
        scan(
            inputs,
            &mut counts,
            &mut on_bad,
            &mut progress,
            |_, e, c| {
                c.matched += 1;
                events.push(e);
                Ok(())
            },
        )?;
        events.sort_by_key(|e| e.id);
        return Ok(TreeSelection {
            events,
            counts,
            undrawn: 0,
        });
    }
    let mut sel = Selector::new(filter);
    scan(
        inputs,
        &mut counts,
        &mut on_bad,
        &mut progress,
        |_, e, c| {
            if sel.push(e) {
                c.matched += 1;
            }
            Ok(())
        },
    )?;
    let undrawn = sel.undrawn;
    Ok(TreeSelection {
        events: sel.finish(),
        counts,
        undrawn,
    })
}

/// `(host name, host pid)`: a tree's host group.
type HostKey = (String, u32);

/// Streaming selection of the tree's events (see [`select_for_tree`]).
struct Selector<'f> {
    filter: &'f Filter,
    /// Selected, by id.
    events: BTreeMap<u64, Rc<Event>>,
    /// Latest start or adoption of each host.
    hosts: HashMap<HostKey, Rc<Event>>,
    /// Latest launch of each session of each host.
    launches: HashMap<(HostKey, u32), Rc<Event>>,
    /// Live processes: pid → id of the first event of this incarnation (a pid is
    /// reused after its exit).
    alive: HashMap<u32, u64>,
    /// Latest exec line of each live process, for a matching exit (kept only when
    /// exits can match).
    lines: Option<HashMap<u32, Rc<Event>>>,
    /// Shown processes whose exit is still to come.
    await_exit: HashSet<u32>,
    undrawn: u64,
}

fn host_key(e: &Event) -> Option<HostKey> {
    e.host.as_ref().map(|h| (h.name.clone(), h.pid))
}

/// The host group an event starts (host start or adoption of the host process).
fn starts_host(e: &Event) -> bool {
    matches!(e.kind, Kind::HostStart | Kind::Adopt)
        && e.host.as_ref().is_some_and(|h| h.pid == e.pid)
}

/// The session an event belongs to (a launch is its own).
fn session_of(e: &Event) -> Option<u32> {
    match e.kind {
        Kind::Launch => Some(e.session.unwrap_or(e.pid)),
        _ => e.session,
    }
}

/// The event starts a session (a launch, or the adoption of a launched process).
fn starts_session(e: &Event) -> bool {
    match e.kind {
        Kind::Launch => true,
        Kind::Adopt => !starts_host(e) && e.session == Some(e.pid),
        _ => false,
    }
}

impl<'f> Selector<'f> {
    fn new(filter: &'f Filter) -> Self {
        let exits_match = filter.kinds.is_empty() || filter.kinds.contains(&Kind::Exit);
        Self {
            filter,
            events: BTreeMap::new(),
            hosts: HashMap::new(),
            launches: HashMap::new(),
            alive: HashMap::new(),
            lines: exits_match.then(HashMap::new),
            await_exit: HashSet::new(),
            undrawn: 0,
        }
    }

    /// Take one event (in log order); true when it matches the filter.
    fn push(&mut self, e: Event) -> bool {
        let matched = self.filter.matches(&e);
        if matched && !drawn_in_tree(e.kind) {
            self.undrawn += 1;
        }
        let e = Rc::new(e);
        if e.kind == Kind::Exit {
            self.alive.remove(&e.pid);
            let line = self.lines.as_mut().and_then(|l| l.remove(&e.pid));
            let awaited = self.await_exit.remove(&e.pid);
            if matched {
                self.add_context(&e);
                if let Some(line) = line {
                    self.add(line);
                }
            }
            if matched || awaited {
                self.events.insert(e.id, e);
            }
            return matched;
        }
        if e.kind.is_process_line() {
            self.alive.entry(e.pid).or_insert(e.id);
            if let Some(lines) = &mut self.lines {
                lines.insert(e.pid, Rc::clone(&e));
            }
        }
        if matched {
            self.add_context(&e);
            if e.kind.is_process_line() {
                self.await_exit.insert(e.pid);
            }
            self.events.insert(e.id, Rc::clone(&e));
        }
        if starts_host(&e) {
            if let Some(k) = host_key(&e) {
                self.hosts.insert(k, e);
            }
        } else if starts_session(&e) {
            if let (Some(k), Some(s)) = (host_key(&e), session_of(&e)) {
                self.launches.insert((k, s), e);
            }
        }
        matched
    }

    /// Select `e`'s host start and session launch (not its own earlier namesakes).
    fn add_context(&mut self, e: &Event) {
        if starts_host(e) {
            return;
        }
        let Some(k) = host_key(e) else {
            return;
        };
        let launch = if starts_session(e) {
            None
        } else {
            session_of(e).and_then(|s| self.launches.get(&(k.clone(), s)).cloned())
        };
        let host = self.hosts.get(&k).cloned();
        for ctx in host.into_iter().chain(launch) {
            self.add(ctx);
        }
    }

    /// Select a context line; its exit is kept when it is still to come.
    fn add(&mut self, ev: Rc<Event>) {
        if self.alive.get(&ev.pid).is_some_and(|&first| first <= ev.id) {
            self.await_exit.insert(ev.pid);
        }
        self.events.entry(ev.id).or_insert(ev);
    }

    fn finish(self) -> Vec<Event> {
        let Self {
            events,
            hosts,
            launches,
            lines,
            ..
        } = self;
        // Drop the other references first so most events move out without a copy.
        drop((hosts, launches, lines));
        events
            .into_values()
            .map(|e| Rc::try_unwrap(e).unwrap_or_else(|e| (*e).clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor, Seek as _};

    use time::macros::datetime;

    use super::*;
    use crate::event::{Bytes, HostRef, Verdict};

    const NOW: OffsetDateTime = datetime!(2026-11-27 12:00:00 UTC);

    fn ev(id: u64, kind: Kind, pid: u32) -> Event {
        let mut e = Event::new(kind, id, "2026-11-27T10:00:00.000000000Z".into());
        e.pid = pid;
        e.host = Some(HostRef {
            name: "claude-code".into(),
            pid: 100,
        });
        e
    }

    fn launch() -> Event {
        let mut e = ev(7, Kind::Launch, 200);
        e.session = Some(200);
        e.lineage = vec![200, 150, 100];
        e.argv = Some(vec![
            Bytes::from("npx"),
            Bytes::from("-y"),
            Bytes::from("@scope/server a"),
        ]);
        e.verdict = Some(Verdict {
            decision: crate::event::Decision::Allowed,
            mode: crate::model::Mode::Enforce,
            record: Some(12),
            reason: None,
            pending: None,
            killed: false,
        });
        e
    }

    fn only(f: impl FnOnce(&mut Filter)) -> Filter {
        let mut filter = Filter::default();
        f(&mut filter);
        filter
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(Filter::default().is_empty());
        assert!(Filter::default().matches(&launch()));
        assert!(Filter::default().matches(&Event::new(Kind::Lost, 1, "bad".into())));
    }

    #[test]
    fn host_filter() {
        let e = launch();
        assert!(only(|f| f.host = Some("claude-code".into())).matches(&e));
        assert!(!only(|f| f.host = Some("cursor".into())).matches(&e));
        assert!(
            !only(|f| f.host = Some("claude".into())).matches(&e),
            "exact"
        );
        let mut none = e;
        none.host = None;
        assert!(!only(|f| f.host = Some("claude-code".into())).matches(&none));
    }

    #[test]
    fn kind_filter_takes_any_of_several() {
        let e = launch();
        assert!(only(|f| f.kinds = vec![Kind::Launch]).matches(&e));
        assert!(only(|f| f.kinds = vec![Kind::Exec, Kind::Launch]).matches(&e));
        assert!(!only(|f| f.kinds = vec![Kind::Exec, Kind::Exit]).matches(&e));
    }

    #[test]
    fn verdict_filter() {
        let e = launch();
        assert!(only(|f| f.verdict = Some("allowed".into())).matches(&e));
        assert!(!only(|f| f.verdict = Some("killed".into())).matches(&e));
        assert!(!only(|f| f.verdict = Some("allowed".into())).matches(&ev(1, Kind::Exec, 5)));
    }

    #[test]
    fn pid_filter_takes_the_pid_or_any_ancestor() {
        let e = launch();
        for p in [200, 150, 100] {
            assert!(only(|f| f.pid = Some(p)).matches(&e), "{p}");
        }
        assert!(!only(|f| f.pid = Some(201)).matches(&e));
        // A fork's child is not its pid.
        let mut fork = ev(2, Kind::Fork, 100);
        fork.child_pid = Some(300);
        assert!(!only(|f| f.pid = Some(300)).matches(&fork));
    }

    #[test]
    fn record_filter_takes_the_event_record_or_the_verdict_record() {
        let e = launch();
        assert!(only(|f| f.record = Some(12)).matches(&e));
        assert!(!only(|f| f.record = Some(13)).matches(&e));
        let mut approve = Event::new(Kind::Approve, 3, "t".into());
        approve.record = Some(13);
        assert!(only(|f| f.record = Some(13)).matches(&approve));
        assert!(!only(|f| f.record = Some(12)).matches(&approve));
    }

    #[test]
    fn grep_searches_the_shell_quoted_command_line_case_sensitively() {
        let e = launch();
        assert_eq!(e.command_line(), "npx -y '@scope/server a'");
        assert!(only(|f| f.grep = Some("npx".into())).matches(&e));
        assert!(only(|f| f.grep = Some("-y '@scope".into())).matches(&e));
        assert!(!only(|f| f.grep = Some("NPX".into())).matches(&e));
        assert!(!only(|f| f.grep = Some("uvx".into())).matches(&e));
        assert!(!only(|f| f.grep = Some("npx".into())).matches(&ev(1, Kind::Exit, 200)));
    }

    #[test]
    fn time_window_is_inclusive_and_unreadable_times_never_match() {
        let e = launch(); // 10:00:00Z
        let at = datetime!(2026-11-27 10:00:00 UTC);
        let later = datetime!(2026-11-27 10:00:01 UTC);
        let earlier = datetime!(2026-11-27 09:59:59 UTC);
        assert!(only(|f| f.since = Some(at)).matches(&e));
        assert!(only(|f| f.until = Some(at)).matches(&e));
        assert!(only(|f| f.since = Some(earlier)).matches(&e));
        assert!(!only(|f| f.since = Some(later)).matches(&e));
        assert!(!only(|f| f.until = Some(earlier)).matches(&e));
        assert!(only(|f| {
            f.since = Some(earlier);
            f.until = Some(later);
        })
        .matches(&e));
        let mut bad = e;
        bad.ts = "yesterday".into();
        assert!(!only(|f| f.since = Some(earlier)).matches(&bad));
        assert!(only(|f| f.host = Some("claude-code".into())).matches(&bad));
    }

    #[test]
    fn filters_combine_with_and() {
        let e = launch();
        let both = only(|f| {
            f.host = Some("claude-code".into());
            f.kinds = vec![Kind::Launch];
            f.grep = Some("npx".into());
        });
        assert!(both.matches(&e));
        let mut one_off = both.clone();
        one_off.grep = Some("uvx".into());
        assert!(!one_off.matches(&e));
        let mut other_off = both;
        other_off.kinds = vec![Kind::Exec];
        assert!(!other_off.matches(&e));
    }

    #[test]
    fn parse_time_takes_rfc3339_and_relative_ages() {
        assert_eq!(
            parse_time("2026-11-27T10:00:00Z", NOW),
            Ok(datetime!(2026-11-27 10:00:00 UTC))
        );
        assert_eq!(
            parse_time("2026-11-27T12:00:00.5+02:00", NOW),
            Ok(datetime!(2026-11-27 10:00:00.5 UTC))
        );
        assert_eq!(
            parse_time("30s", NOW),
            Ok(datetime!(2026-11-27 11:59:30 UTC))
        );
        assert_eq!(
            parse_time("15m", NOW),
            Ok(datetime!(2026-11-27 11:45:00 UTC))
        );
        assert_eq!(parse_time("1h", NOW), Ok(datetime!(2026-11-27 11:00 UTC)));
        assert_eq!(parse_time("2d", NOW), Ok(datetime!(2026-11-25 12:00 UTC)));
        assert_eq!(parse_time("0s", NOW), Ok(NOW));
    }

    #[test]
    fn parse_time_rejects_what_is_not_a_time() {
        for bad in [
            "",
            "s",
            "15",
            "15x",
            "-5m",
            "+5m",
            "1.5h",
            "1 h",
            "h1",
            "2026-11-27",
            "10:00",
            "2026-11-27T10:00:00",
            "yesterday",
            "5µ",
        ] {
            let err = parse_time(bad, NOW).unwrap_err().to_string();
            assert!(
                err.contains("RFC 3339") && err.contains("30s"),
                "{bad:?}: {err}"
            );
        }
        let err = parse_time("99999999999999999d", NOW)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too long ago"), "{err}");
        let err = parse_time("9999999999999d", NOW).unwrap_err().to_string();
        assert!(err.contains("too long ago"), "{err}");
    }

    #[test]
    fn kinds_and_verdicts_parse_by_name_and_errors_list_the_valid_ones() {
        for k in KINDS {
            // A new kind must be added to KINDS: this match stops compiling.
            match k {
                Kind::DaemonStart
                | Kind::DaemonStop
                | Kind::HostStart
                | Kind::Adopt
                | Kind::HostExec
                | Kind::Launch
                | Kind::Helper
                | Kind::Terminal
                | Kind::Exec
                | Kind::Fork
                | Kind::Exit
                | Kind::Lost
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
            }
            assert_eq!(parse_kind(k.as_str()), Ok(k));
        }
        let err = parse_kind("launches").unwrap_err().to_string();
        assert!(err.contains("unknown kind `launches`"), "{err}");
        assert!(
            err.contains("host_start, adopt") && err.contains("hold_bypass"),
            "{err}"
        );
        assert!(parse_kind("Launch").is_err());
        for v in VERDICTS {
            assert_eq!(parse_verdict(v).as_deref(), Ok(v));
        }
        let err = parse_verdict("approved").unwrap_err().to_string();
        assert!(
            err.contains("allowed, unapproved, held, killed, denied, continued"),
            "{err}"
        );
    }

    #[test]
    fn filter_args_resolve_relative_times_against_one_now() {
        let args = FilterArgs {
            since: Some(TimeSpec::Ago(time::Duration::hours(2))),
            until: Some(TimeSpec::parse("30m").unwrap()),
            kind: vec![Kind::Launch, Kind::Launch],
            ..FilterArgs::default()
        };
        let f = args.to_filter(NOW).unwrap();
        assert_eq!(f.since, Some(datetime!(2026-11-27 10:00 UTC)));
        assert_eq!(f.until, Some(datetime!(2026-11-27 11:30 UTC)));
        assert_eq!(f.kinds, [Kind::Launch]);
        let backwards = FilterArgs {
            since: Some(TimeSpec::parse("1h").unwrap()),
            until: Some(TimeSpec::parse("2h").unwrap()),
            ..FilterArgs::default()
        };
        let err = backwards.to_filter(NOW).unwrap_err().to_string();
        assert!(
            err.contains("--since") && err.contains("nothing can match"),
            "{err}"
        );
        assert!(FilterArgs::default().to_filter(NOW).unwrap().is_empty());
    }

    /// Log lines as the writer makes them, with a `prev` chain field last.
    fn log_of(events: &[Event]) -> String {
        use std::fmt::Write as _;
        events.iter().fold(String::new(), |mut out, e| {
            let line = e.to_json_line();
            let body = line.strip_suffix('}').unwrap();
            let _ = writeln!(out, "{body},\"prev\":\"{:064x}\"}}", e.id);
            out
        })
    }

    fn no_bad(source: usize, line: u64, e: &serde_json::Error) {
        panic!("source {source} line {line}: {e}");
    }

    #[test]
    fn copy_matching_writes_the_exact_lines_and_reports_bad_ones() {
        let mut a = launch();
        a.id = 1;
        let mut b = ev(2, Kind::Exec, 201);
        b.argv = Some(vec![Bytes::from("ls")]);
        let mut c = launch();
        c.id = 3;
        // Spacing and field order as written, kept byte for byte: not re-serialised.
        let odd = "{ \"id\":4, \"schema\":1,\"ts\":\"t\",\"kind\":\"launch\",\"pid\":9, \"x\":1}";
        let log = format!("{}\nnot json\n{odd}\n", log_of(&[a, b, c]));
        let lines: Vec<&str> = log.lines().collect();
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let counts = copy_matching(
            [Cursor::new(log.as_bytes())],
            &only(|f| f.kinds = vec![Kind::Launch]),
            &mut out,
            |src, n, _| bad.push((src, n)),
            |_| {},
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{}\n{}\n{odd}\n", lines[0], lines[2])
        );
        assert_eq!(bad, [(0, 5)], "line 4 is empty, line 5 is not an event");
        assert_eq!(
            counts,
            Counts {
                lines: 6,
                bytes: log.len() as u64,
                matched: 3,
                bad: 1
            }
        );
        assert!(lines[0].contains(&format!("\"prev\":\"{:064x}\"", 1)));
    }

    #[test]
    fn a_last_line_without_newline_is_still_read() {
        let log = log_of(&[launch()]);
        let cut = log.trim_end();
        let mut out = Vec::new();
        let counts = copy_matching(
            [Cursor::new(cut)],
            &Filter::default(),
            &mut out,
            no_bad,
            |_| {},
        )
        .unwrap();
        assert_eq!((counts.matched, out), (1, log.into_bytes()));
    }

    #[test]
    fn sources_are_read_in_order_as_one_log_with_lines_numbered_per_source() {
        let events = session_log();
        // Rotated file cut after the launch, its last line without a newline; a bad
        // line in the second source.
        let first = log_of(&events[..2]);
        let first = first.trim_end();
        let second = format!("{}garbage\n", log_of(&events[2..]));
        let mut bad = Vec::new();
        let sel = select_for_tree(
            [
                Cursor::new(first.as_bytes()),
                Cursor::new(second.as_bytes()),
            ],
            &only(|f| f.grep = Some("curl".into())),
            |src, n, _| bad.push((src, n)),
            |_| {},
        )
        .unwrap();
        let ids: Vec<u64> = sel.events.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2, 4, 5, 8], "context from the older file");
        assert_eq!(bad, [(1, 7)]);
        assert_eq!((sel.counts.lines, sel.counts.bad), (9, 1));
    }

    /// host 100 starts; launch 200 (session) forks 201 which runs curl and exits;
    /// launch 300 runs uvx; an unrelated approve.
    fn session_log() -> Vec<Event> {
        let mut host = ev(1, Kind::HostStart, 100);
        host.argv = Some(vec![Bytes::from("claude")]);
        let mut l200 = launch();
        l200.id = 2;
        let mut fork = ev(3, Kind::Fork, 200);
        fork.child_pid = Some(201);
        fork.session = Some(200);
        let mut curl = ev(4, Kind::Exec, 201);
        curl.session = Some(200);
        curl.lineage = vec![201, 200, 100];
        curl.argv = Some(vec![Bytes::from("curl"), Bytes::from("http://x")]);
        let mut curl_exit = ev(5, Kind::Exit, 201);
        curl_exit.session = Some(200);
        curl_exit.exit = Some(crate::event::ExitStatus::from_wait_status(0));
        let mut l300 = ev(6, Kind::Launch, 300);
        l300.session = Some(300);
        l300.argv = Some(vec![Bytes::from("uvx"), Bytes::from("mcp-server-git")]);
        let mut approve = Event::new(Kind::Approve, 7, "2026-11-27T10:00:00Z".into());
        approve.record = Some(12);
        let mut l200_exit = ev(8, Kind::Exit, 200);
        l200_exit.session = Some(200);
        vec![host, l200, fork, curl, curl_exit, l300, approve, l200_exit]
    }

    fn tree_ids(filter: &Filter) -> (Vec<u64>, TreeSelection) {
        let log = log_of(&session_log());
        let sel = select_for_tree([Cursor::new(log)], filter, no_bad, |_| {}).unwrap();
        (sel.events.iter().map(|e| e.id).collect(), sel)
    }

    #[test]
    fn tree_without_filters_keeps_every_event() {
        let (ids, sel) = tree_ids(&Filter::default());
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!((sel.counts.matched, sel.undrawn), (8, 0));
    }

    #[test]
    fn tree_keeps_the_host_and_launch_of_a_matching_session_exec_and_its_exit() {
        let (ids, sel) = tree_ids(&only(|f| f.grep = Some("curl".into())));
        // host start, launch 200, curl, curl's exit, launch 200's exit.
        assert_eq!(ids, [1, 2, 4, 5, 8]);
        assert_eq!(sel.counts.matched, 1);
        let tree = crate::cli::render::render_tree(&sel.events);
        assert!(tree.starts_with("host claude-code pid 100 "), "{tree}");
        assert!(tree.contains("\n  launch pid 200 "), "{tree}");
        assert!(
            tree.contains("exec pid 201 10:00:00.000 [exit 0] $ curl http://x"),
            "{tree}"
        );
        assert!(!tree.contains("uvx"), "{tree}");
    }

    #[test]
    fn tree_keeps_the_line_a_matching_exit_ends_and_counts_undrawn_kinds() {
        let (ids, sel) = tree_ids(&only(|f| f.kinds = vec![Kind::Exit]));
        assert_eq!(ids, [1, 2, 4, 5, 8]);
        assert_eq!((sel.counts.matched, sel.undrawn), (2, 0));
        let (ids, sel) = tree_ids(&only(|f| f.kinds = vec![Kind::Approve, Kind::Fork]));
        assert_eq!(ids, [1, 2, 3, 7, 8], "and the exit of launch 200, shown");
        assert_eq!((sel.counts.matched, sel.undrawn), (2, 2));
    }

    #[test]
    fn a_matching_launch_brings_only_its_host_not_an_earlier_namesake() {
        let (ids, _) = tree_ids(&only(|f| f.pid = Some(300)));
        assert_eq!(ids, [1, 6]);
        // The host start itself brings nothing else, but its exit would be kept.
        let (ids, _) = tree_ids(&only(|f| f.kinds = vec![Kind::HostStart]));
        assert_eq!(ids, [1]);
    }

    #[test]
    fn an_exit_already_passed_is_not_taken_from_a_later_process_with_the_same_pid() {
        let mut events = session_log();
        // After launch 200 exited (event 8), a late exec of its session selects it
        // as context; then pid 200 is reused by a process of session 300.
        let mut late = ev(9, Kind::Exec, 202);
        late.session = Some(200);
        late.argv = Some(vec![Bytes::from("late")]);
        let mut reuse = ev(10, Kind::Exec, 200);
        reuse.session = Some(300);
        reuse.argv = Some(vec![Bytes::from("git"), Bytes::from("status")]);
        let reuse_exit = ev(11, Kind::Exit, 200);
        let mut host_exit = ev(12, Kind::Exit, 100);
        host_exit.exit = Some(crate::event::ExitStatus::from_wait_status(0));
        events.extend([late, reuse, reuse_exit, host_exit]);
        let log = log_of(&events);
        let sel = select_for_tree(
            [Cursor::new(log)],
            &only(|f| f.grep = Some("late".into())),
            no_bad,
            |_| {},
        )
        .unwrap();
        let ids: Vec<u64> = sel.events.iter().map(|e| e.id).collect();
        // host, launch 200 (not the reused pid's exit 11), late, the host's exit.
        assert_eq!(ids, [1, 2, 9, 12]);
    }

    /// A 1,000,000-line log (about 190 MB) is read streaming: about 2.5 s with
    /// `cargo test --release`, 17 s in a debug build, file generation included.
    #[test]
    fn a_million_event_log_is_filtered_streaming() {
        let n: u64 = 1_000_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut w = io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for id in 1..=n {
            let kind = ["exec", "launch", "exit", "fork"][usize::try_from(id % 4).unwrap()];
            let (sec, host) = (id % 3600, id % 3);
            writeln!(
                w,
                "{{\"schema\":1,\"id\":{id},\"ts\":\"2026-11-27T10:{:02}:{:02}.000000000Z\",\
                 \"kind\":\"{kind}\",\"pid\":{},\"host\":{{\"name\":\"h{host}\",\"pid\":1}},\
                 \"argv\":[\"tool\",\"n{id}\"],\"prev\":\"{:064x}\"}}",
                sec / 60,
                sec % 60,
                1000 + id % 5000,
                id - 1
            )
            .unwrap();
        }
        drop(w);
        let mut f = std::fs::File::open(&path).unwrap();
        f.rewind().unwrap();
        let filter = Filter {
            host: Some("h1".into()),
            kinds: vec![Kind::Exec, Kind::Launch],
            since: Some(datetime!(2026-11-27 10:30 UTC)),
            grep: Some("tool n".into()),
            ..Filter::default()
        };
        let mut progress_calls = 0;
        let mut out = CountingSink(0);
        let counts = copy_matching(
            [BufReader::with_capacity(1 << 16, f)],
            &filter,
            &mut out,
            no_bad,
            |_| progress_calls += 1,
        )
        .unwrap();
        let expected = (1..=n)
            .filter(|id| id % 3 == 1 && matches!(id % 4, 0 | 1) && id % 3600 >= 1800)
            .count() as u64;
        assert_eq!(counts.lines, n);
        assert_eq!(counts.matched, expected);
        assert_eq!(out.0, expected, "one line written per match");
        assert_eq!(progress_calls, n / PROGRESS_EVERY);
    }

    /// Counts lines written.
    struct CountingSink(u64);

    impl Write for CountingSink {
        #[expect(clippy::naive_bytecount, reason = "a test helper")]
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
