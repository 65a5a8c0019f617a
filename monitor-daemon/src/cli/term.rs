//! Terminal helpers of the CLI: the width to wrap at, asking yes/no, writing to a
//! stdout that may go away.
use std::io::{self, BufRead as _, IsTerminal as _, Write as _};

use serde_json::Value;

/// Columns to wrap commands at: the terminal's width when stdout is one; `None`
/// (one line per command, for scripts and `grep`) otherwise.
pub(crate) fn out_width() -> Option<usize> {
    let stdout = io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    if let Some(c) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c >= 20)
    {
        return Some(c);
    }
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &raw mut ws) };
    Some(if r == 0 && ws.ws_col >= 20 {
        usize::from(ws.ws_col)
    } else {
        100
    })
}

/// What the person at the terminal said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Confirm {
    Yes,
    No,
    /// stdin is not a terminal: nobody to ask.
    NoTerminal,
}

/// `y` or `yes` (any case) is yes; anything else, or end of input, is no.
fn is_yes(line: &str) -> bool {
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Ask `question [y/N]` of the person at the terminal. Only a terminal on stdin
/// answers: a pipe (`yes | mcpwatch approve …`) is not a person; use --yes.
/// `details` (already on stdout) are repeated on stderr when stdout is not the
/// terminal, so the person sees what they answer about.
pub(crate) fn confirm(question: &str, details: &str) -> io::Result<Confirm> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Ok(Confirm::NoTerminal);
    }
    let mut err = io::stderr().lock();
    if !io::stdout().is_terminal() {
        err.write_all(details.as_bytes())?;
    }
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(if is_yes(&line) {
        Confirm::Yes
    } else {
        Confirm::No
    })
}

/// Write to stdout; a reader that went away (`mcpwatch records | head`) is not an
/// error.
pub(crate) fn emit(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// A JSON scalar as text (`?` when absent).
pub(crate) fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for y in ["y\n", "Y", "yes\n", " YES "] {
            assert!(is_yes(y), "{y:?}");
        }
        for n in ["", "\n", "n", "no", "yess", "ye", "y y"] {
            assert!(!is_yes(n), "{n:?}");
        }
    }
}
