//! Positions in text, as error messages give them.

use std::path::Path;

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `FILE:LINE:COL`, or just `FILE` when there is no position (line 0).
pub fn location(file: &Path, line: usize, column: usize) -> String {
    if line == 0 {
        file.display().to_string()
    } else {
        format!("{}:{line}:{column}", file.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // After the two-byte 'é': third character of line 2.
        assert_eq!(line_column(text, 9), (2, 3));
        // Inside 'é' (not a boundary): clamped back to its start.
        assert_eq!(line_column(text, 8), (2, 2));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn location_names_the_file_alone_without_a_line() {
        assert_eq!(location(Path::new("/f"), 0, 0), "/f");
        assert_eq!(location(Path::new("/f"), 2, 3), "/f:2:3");
    }
}
