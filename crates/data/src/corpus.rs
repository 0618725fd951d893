use std::path::Path;

use makemore_vocab::BOUNDARY;

use crate::DataError;

/// Reads a word list: one word per line, UTF-8, `\n` or `\r\n` line endings,
/// surrounding whitespace trimmed, blank lines skipped.
///
/// Errors name the file and line: a missing file, a directory, invalid UTF-8, a control
/// character inside a word (a tab, a NUL: not text), a word containing the boundary
/// character `.`, or a file with no words.
pub fn read_words(path: impl AsRef<Path>) -> Result<Vec<String>, DataError> {
    let path = path.as_ref();
    if path.is_dir() {
        return Err(DataError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_words(&bytes, &path.display().to_string())
}

/// Parses the bytes of a word list; `source_name` is used in error messages.
pub fn parse_words(bytes: &[u8], source_name: &str) -> Result<Vec<String>, DataError> {
    let mut words = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|e| DataError::InvalidUtf8 {
            source_name: source_name.to_string(),
            line,
            byte_offset: e.valid_up_to(),
        })?;
        let word = text.trim();
        if word.is_empty() {
            continue;
        }
        if let Some((column, c)) = word.chars().enumerate().find(|(_, c)| c.is_control()) {
            return Err(DataError::ControlCharacter {
                source_name: source_name.to_string(),
                line,
                column: column + 1,
                code: u32::from(c),
            });
        }
        if let Some(column) = word.chars().position(|c| c == BOUNDARY) {
            return Err(DataError::BoundaryInWord {
                source_name: source_name.to_string(),
                line,
                column: column + 1,
                word: word.to_string(),
            });
        }
        words.push(word.to_string());
    }
    if words.is_empty() {
        return Err(DataError::Empty {
            source_name: source_name.to_string(),
        });
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crlf_whitespace_and_blank_lines() {
        let w = parse_words(b"  anna\r\n\r\n\tbob \n\n", "t").unwrap();
        assert_eq!(w, ["anna", "bob"]);
    }

    #[test]
    fn invalid_utf8_names_line() {
        let err = parse_words(b"ok\nbad\xff\n", "f.txt").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.txt:2: invalid UTF-8 at byte 3 of the line"
        );
    }

    #[test]
    fn boundary_char_names_line_and_column() {
        let err = parse_words(b"ann\nj.r\n", "f.txt").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("f.txt:2: word \"j.r\" contains '.' at character 2"));
    }

    #[test]
    fn control_characters_name_line_and_column() {
        let err = parse_words(b"ann\nbo\tb\n", "f.txt")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "f.txt:2: the word contains the control character U+0009 at character 3"
            ),
            "{err}"
        );
        let err = parse_words(b"ok\n\x00\x01zz\n", "f.txt")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "f.txt:2: the word contains the control character U+0000 at character 1"
            ),
            "{err}"
        );
        // Surrounding whitespace (CR of CRLF, tabs) is trimmed, not refused; spaces are text.
        assert_eq!(
            parse_words(b"\tann\r\nmary ann\n", "f").unwrap(),
            ["ann", "mary ann"]
        );
    }

    #[test]
    fn empty_and_blank_only_are_errors() {
        assert!(matches!(
            parse_words(b"", "f"),
            Err(DataError::Empty { .. })
        ));
        assert!(matches!(
            parse_words(b"\n \r\n\t\n", "f"),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn missing_file_and_directory() {
        let err = read_words("/definitely/not/here.txt").unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here.txt"));
        let dir = std::env::temp_dir();
        assert!(matches!(
            read_words(&dir),
            Err(DataError::IsDirectory { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(words) = parse_words(&bytes, "fuzz") {
                prop_assert!(!words.is_empty());
                for w in words {
                    prop_assert!(!w.is_empty());
                    prop_assert_eq!(w.trim(), w.as_str());
                    prop_assert!(!w.contains('.') && !w.chars().any(char::is_control));
                }
            }
        }
    }
}
