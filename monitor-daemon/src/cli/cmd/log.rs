//! `mcpwatch log` and `mcpwatch tree`: the recorded events, filtered, as JSON
//! lines, a tree, an export file, or followed.
use std::{
    io::{self, BufRead as _, IsTerminal as _, Seek as _, Write as _},
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Context as _};

use crate::{
    cli::{
        args::LogArgs,
        filter::{self, Filter},
        render,
        term::emit,
    },
    config::Config,
    event::Event,
};

fn log_path(a: &LogArgs) -> anyhow::Result<PathBuf> {
    if let Some(f) = &a.file {
        return Ok(f.clone());
    }
    let cfg = match &a.config {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display()))?,
        None => Config::embedded_default(),
    };
    Ok(cfg.log_path())
}

pub(crate) fn log(a: &LogArgs) -> anyhow::Result<ExitCode> {
    let filter = match a.filters.to_filter(::time::OffsetDateTime::now_utc()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mcpwatch: error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let path = log_path(a)?;
    if !path.exists() {
        bail!(
            "no event log at {} (has the daemon ever run with this config?)",
            path.display()
        );
    }
    if a.follow {
        return follow(&path, a.json, &filter);
    }
    // The rotated files, oldest first, then the current one: one log. All are
    // opened first, so that retention removing one meanwhile changes nothing.
    let mut files = crate::audit::rotated_files(&path);
    files.push(path.clone());
    let mut size = 0;
    let mut input = Vec::with_capacity(files.len());
    for f in &files {
        let file = std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?;
        size += file.metadata().map_or(0, |m| m.len());
        input.push(io::BufReader::with_capacity(1 << 16, file));
    }
    let on_bad = |source: usize, line: u64, err: &serde_json::Error| {
        eprintln!(
            "mcpwatch: warning: {}:{line}: not an event record ({err})",
            files[source].display()
        );
    };
    // JSON lines streaming to a terminal show their own progress.
    let streams_to_terminal = a.output.is_none() && a.json && io::stdout().is_terminal();
    let mut progress = Progress::new(size, io::stderr().is_terminal() && !streams_to_terminal);
    let reading = || format!("reading {}", path.display());
    let counts = if let Some(out) = &a.output {
        let counts = export(input, &filter, &path, out, a.force, on_bad, &mut progress);
        progress.clear();
        let counts = counts?;
        eprintln!(
            "mcpwatch: exported {} event(s) to {} ({} lines read)",
            counts.matched,
            out.display(),
            counts.lines
        );
        counts
    } else if a.json {
        let stdout = io::stdout();
        let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let r = filter::copy_matching(input, &filter, &mut out, on_bad, |c| progress.tick(c))
            .and_then(|c| out.flush().map(|()| c));
        progress.clear();
        match r {
            Ok(c) => c,
            // A reader that went away (`mcpwatch log --json | head`) is not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(anyhow::Error::new(e).context(reading())),
        }
    } else {
        let sel = filter::select_for_tree(input, &filter, on_bad, |c| progress.tick(c));
        progress.clear();
        let sel = sel.with_context(reading)?;
        if sel.counts.matched == 0 && !filter.is_empty() {
            emit("(no events match the filters)\n")?;
        } else {
            emit(&render::render_tree(&sel.events))?;
        }
        if sel.undrawn > 0 {
            eprintln!(
                "mcpwatch: note: {} matching event(s) of kinds the tree does not draw \
                 (fork, consent, daemon, log): see them with `mcpwatch log --json`",
                sel.undrawn
            );
        }
        sel.counts
    };
    if counts.bad > 0 {
        eprintln!(
            "mcpwatch: {} unreadable line(s) in {} (reported above)",
            counts.bad,
            path.display()
        );
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress line on stderr while a long log is read: after
/// [`Progress::AFTER_LINES`] lines, about once a second, when stderr is a terminal.
struct Progress {
    enabled: bool,
    /// Size of the log, for the percentage.
    size: u64,
    last: std::time::Instant,
    shown: bool,
}

impl Progress {
    const AFTER_LINES: u64 = 200_000;

    fn new(size: u64, enabled: bool) -> Self {
        Self {
            enabled,
            size,
            last: std::time::Instant::now(),
            shown: false,
        }
    }

    fn tick(&mut self, c: &filter::Counts) {
        if !self.enabled
            || c.lines < Self::AFTER_LINES
            || self.last.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        self.last = std::time::Instant::now();
        let pct = (c.bytes * 100).checked_div(self.size).unwrap_or(0).min(100);
        eprint!(
            "\r\x1b[Kmcpwatch: {} lines read ({pct}%), {} matching",
            c.lines, c.matched
        );
        self.shown = true;
    }

    /// Take the progress line away before the output.
    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

/// `--output`: the matching lines, byte for byte, into a new 0600 file. On failure
/// the incomplete file is removed: a partial export must not pass for a whole one.
fn export<R: io::BufRead>(
    input: impl IntoIterator<Item = R>,
    filter: &Filter,
    log: &Path,
    out_path: &Path,
    force: bool,
    on_bad: impl FnMut(usize, u64, &serde_json::Error),
    progress: &mut Progress,
) -> anyhow::Result<filter::Counts> {
    let file = create_export(log, out_path, force)?;
    let mut out = io::BufWriter::with_capacity(1 << 16, file);
    let r = filter::copy_matching(input, filter, &mut out, on_bad, |c| progress.tick(c)).and_then(
        |c| {
            out.flush()?;
            out.get_ref().sync_all()?;
            Ok(c)
        },
    );
    r.map_err(|e| {
        drop(out);
        let _ = std::fs::remove_file(out_path);
        anyhow::Error::new(e).context(format!(
            "exporting {} to {} (the incomplete file was removed)",
            log.display(),
            out_path.display()
        ))
    })
}

/// Create the export file: new, mode 0600; an existing one only with `force`, and
/// never the log being read.
fn create_export(log: &Path, out: &Path, force: bool) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !force {
                bail!(
                    "{} already exists: not overwriting it (--force replaces it)",
                    out.display()
                );
            }
            let same = match (std::fs::metadata(log), std::fs::metadata(out)) {
                (Ok(l), Ok(o)) => l.dev() == o.dev() && l.ino() == o.ino(),
                _ => false,
            };
            if same {
                bail!("{} is the log being read: not replacing it", out.display());
            }
            // Unlink, not truncate: never write through a symlink or into a file
            // someone else holds open.
            std::fs::remove_file(out).with_context(|| format!("removing {}", out.display()))?;
            open().with_context(|| format!("creating {}", out.display()))
        }
        r => r.with_context(|| format!("creating {}", out.display())),
    }
}

/// Follow the log file itself: works whether or not the D-Bus API is reachable, and
/// never misses what the daemon wrote (the log is the record of truth). Only events
/// that match `filter` are printed.
fn follow(path: &Path, json: bool, filter: &Filter) -> anyhow::Result<ExitCode> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(io::SeekFrom::End(0))?;
    let mut reader = io::BufReader::new(f);
    let mut line = Vec::new();
    let stdout = io::stdout();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // Partial line: wait for the rest.
            if n > 0 {
                let back = i64::try_from(n).unwrap_or(0);
                reader.seek_relative(-back)?;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let text = &line[..line.len() - 1];
        // Raw JSON with no filter needs no parsing.
        let parsed = (!json || !filter.is_empty()).then(|| serde_json::from_slice::<Event>(text));
        let mut out = stdout.lock();
        match parsed {
            None => {
                out.write_all(text)?;
                out.write_all(b"\n")?;
            }
            Some(Ok(e)) if !filter.matches(&e) => continue,
            Some(Ok(e)) => {
                if json {
                    out.write_all(text)?;
                    out.write_all(b"\n")?;
                } else {
                    writeln!(out, "{}", render::render_line(&e))?;
                }
            }
            Some(Err(e)) if filter.is_empty() => writeln!(out, "?? unreadable record: {e}")?,
            Some(Err(e)) => {
                eprintln!("mcpwatch: warning: unreadable record skipped (cannot be filtered): {e}");
                continue;
            }
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_creates_0600_refuses_to_overwrite_and_never_replaces_the_log() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        let lines =
            "{\"schema\":1,\"id\":1,\"ts\":\"t\",\"kind\":\"launch\",\"pid\":5, \"prev\":\"00\"}\n\
                     {\"schema\":1,\"id\":2,\"ts\":\"t\",\"kind\":\"exec\",\"pid\":6}\n";
        std::fs::write(&log, lines).unwrap();
        let out = dir.path().join("export.jsonl");
        let launches = Filter {
            kinds: vec![crate::event::Kind::Launch],
            ..Filter::default()
        };
        let run = |force: bool, to: &Path| {
            let input = [io::BufReader::new(std::fs::File::open(&log).unwrap())];
            let mut progress = Progress::new(0, false);
            export(
                input,
                &launches,
                &log,
                to,
                force,
                |_, _, _| {},
                &mut progress,
            )
        };
        let counts = run(false, &out).unwrap();
        assert_eq!((counts.lines, counts.matched), (2, 1));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            lines.lines().next().unwrap().to_owned() + "\n",
            "the exact bytes of the line"
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let err = run(false, &out).unwrap_err().to_string();
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{err}"
        );
        std::fs::write(&out, "old").unwrap();
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        run(true, &out).unwrap();
        assert!(std::fs::read_to_string(&out).unwrap().contains("\"id\":1"));
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "replaced, not rewritten in place");

        let err = format!("{:#}", run(true, &log).unwrap_err());
        assert!(err.contains("is the log being read"), "{err}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), lines);
    }
}
