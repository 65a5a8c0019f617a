//! JSON with comments (JSONC, as VS Code, Zed and Gemini CLI read their settings):
//! blank out what strict JSON does not allow, so `serde_json` parses the rest.
//!
//! Every removed byte becomes a space and line breaks are kept, so the output has the
//! same length and lines as the input: `serde_json`'s line and column of an error
//! point into the original file.

/// `text` with `//` and `/* */` comments blanked out and, if `trailing_commas`, a
/// comma that follows a value and precedes `}` or `]` too (VS Code's jsonc-parser
/// with `allowTrailingComma`). A comma anywhere else (`[,1]`, `{"a":1,,}`) is kept, so
/// the JSON parser reports it. An unterminated `/*` is kept as well, for the same
/// reason. Strings, including escaped quotes and `//` inside them, are untouched.
pub(crate) fn strip(text: &str, trailing_commas: bool) -> String {
    let mut out = text.as_bytes().to_vec();
    blank_comments(&mut out);
    if trailing_commas {
        blank_trailing_commas(&mut out);
    }
    // Only ASCII bytes (whole comments, commas) were replaced by ASCII spaces, and a
    // comment is blanked byte by byte up to an ASCII terminator: still UTF-8.
    String::from_utf8(out).expect("blanking ASCII-delimited ranges keeps UTF-8")
}

/// Replaces the bytes of `range` by spaces, keeping `\n` and `\r`.
fn blank(bytes: &mut [u8], range: std::ops::Range<usize>) {
    for b in &mut bytes[range] {
        if *b != b'\n' && *b != b'\r' {
            *b = b' ';
        }
    }
}

/// The index just past the string that starts with the `"` at `start`, or the end
/// of the input for an unterminated string.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn blank_comments(bytes: &mut [u8]) {
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'"', _) => i = string_end(bytes, i),
            (b'/', Some(b'/')) => {
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n' || b == b'\r')
                    .map_or(bytes.len(), |n| i + n);
                blank(bytes, i..end);
                i = end;
            }
            (b'/', Some(b'*')) => {
                let Some(n) = bytes[i + 2..].windows(2).position(|w| w == b"*/") else {
                    // Unterminated: leave it for the parser to report.
                    return;
                };
                let end = i + 2 + n + 2;
                blank(bytes, i..end);
                i = end;
            }
            _ => i += 1,
        }
    }
}

/// Runs after [`blank_comments`]: only strings and whitespace remain to skip.
fn blank_trailing_commas(bytes: &mut [u8]) {
    // The last byte that is neither whitespace nor inside a string: a value's end,
    // or one of `[{,:`.
    let mut last: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(bytes, i);
                last = Some(b'"');
                continue;
            }
            b',' => {
                let next = bytes[i + 1..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .copied();
                let after_value = last.is_some_and(|b| !matches!(b, b'[' | b'{' | b',' | b':'));
                if after_value && matches!(next, Some(b'}' | b']')) {
                    bytes[i] = b' ';
                } else {
                    last = Some(b',');
                }
            }
            b if b.is_ascii_whitespace() => {}
            b => last = Some(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::strip;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(&strip(text, true)).unwrap()
    }

    #[test]
    fn comments_are_blanked_with_same_length_and_lines() {
        let text = "{ // one\n  \"a\": 1, /* two\n three */ \"b\": 2 }";
        let out = strip(text, true);
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().count(), text.lines().count());
        assert_eq!(out, "{       \n  \"a\": 1,       \n          \"b\": 2 }");
    }

    #[test]
    fn comment_markers_inside_strings_are_kept() {
        let v = parse(r#"{"url": "https://x//y", "glob": "a/*b*/c", "q": "say \"//\" /* no */"}"#);
        assert_eq!(v["url"], "https://x//y");
        assert_eq!(v["glob"], "a/*b*/c");
        assert_eq!(v["q"], r#"say "//" /* no */"#);
    }

    #[test]
    fn escaped_backslash_before_quote_ends_the_string() {
        // "a\\" is a complete string; the // after it is a comment.
        let v = parse("{\"p\": \"a\\\\\" // comment\n}");
        assert_eq!(v["p"], "a\\");
    }

    #[test]
    fn comments_at_end_of_file() {
        assert_eq!(parse("{\"a\": 1} // last"), serde_json::json!({"a": 1}));
        assert_eq!(parse("{\"a\": 1} /* last */"), serde_json::json!({"a": 1}));
        assert_eq!(parse("{\"a\": 1}\n//"), serde_json::json!({"a": 1}));
    }

    #[test]
    fn trailing_commas_in_nested_objects_and_arrays() {
        let v = parse("{\"a\": [1, 2, [3,],], \"b\": {\"c\": {\"d\": 1,}, }, /* x */ }");
        assert_eq!(
            v,
            serde_json::json!({"a": [1, 2, [3]], "b": {"c": {"d": 1}}})
        );
        // A comment between the comma and the bracket.
        assert_eq!(parse("[1, // c\n]"), serde_json::json!([1]));
        assert_eq!(parse("[\"x\",/* c */]"), serde_json::json!(["x"]));
    }

    #[test]
    fn misplaced_commas_are_kept_for_the_parser_to_report() {
        for bad in ["[,]", "[,1]", "{,}", "{\"a\":1,,}", "{\"a\":,}", "[1,,]"] {
            let out = strip(bad, true);
            assert!(out.contains(','), "{bad} -> {out}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&out).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn trailing_commas_are_kept_without_the_option() {
        assert_eq!(strip("[1,]", false), "[1,]");
        assert_eq!(strip("[1,] // c", false), "[1,]     ");
    }

    #[test]
    fn crlf_line_breaks_are_kept() {
        let text = "{\r\n  // c\r\n  \"a\": 1, /* x\r\n */\r\n}";
        let out = strip(text, true);
        assert_eq!(out, "{\r\n      \r\n  \"a\": 1      \r\n   \r\n}");
        assert_eq!(parse(text), serde_json::json!({"a": 1}));
    }

    #[test]
    fn non_ascii_comments_keep_byte_offsets() {
        let text = "{/* é ü */\"a\": \"ü\"}";
        let out = strip(text, true);
        assert_eq!(out.len(), text.len());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["a"],
            "ü"
        );
    }

    #[test]
    fn unterminated_block_comment_is_left_for_the_parser() {
        let out = strip("{\"a\": 1 /* open", true);
        assert!(out.contains("/*"));
    }

    #[test]
    fn errors_keep_their_original_line_and_column() {
        let text = "{\n  // comment\n  \"a\": 1,\n  \"b\" 2\n}";
        let err = serde_json::from_str::<serde_json::Value>(&strip(text, true)).unwrap_err();
        assert_eq!((err.line(), err.column()), (4, 7));
    }
}
