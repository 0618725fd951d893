use std::path::PathBuf;

use makemore_vocab::VocabError;
use thiserror::Error;

/// What can go wrong when reading a corpus or preparing examples.
#[derive(Debug, Error)]
pub enum DataError {
    /// The corpus file could not be opened or read.
    #[error("cannot read corpus {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The path names a directory, not a file.
    #[error("corpus {path} is a directory, not a file of words")]
    IsDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A line that is not valid UTF-8.
    #[error("{source_name}:{line}: invalid UTF-8 at byte {byte_offset} of the line")]
    InvalidUtf8 {
        /// The file (or other source) name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// Byte offset of the first invalid byte within the line.
        byte_offset: usize,
    },
    /// The corpus has no words (empty, or only blank lines).
    #[error("{source_name}: no words found (the file is empty or has only blank lines)")]
    Empty {
        /// The file (or other source) name.
        source_name: String,
    },
    /// A word contains the boundary character `.`.
    #[error("{source_name}:{line}: word {word:?} contains '.' at character {column}; '.' is reserved as the word boundary")]
    BoundaryInWord {
        /// The file (or other source) name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// 1-based character column.
        column: usize,
        /// The word.
        word: String,
    },
    /// A line with a control character (a word list is text: one word per line).
    #[error("{source_name}:{line}: the word contains the control character U+{code:04X} at character {column}; a word list is text, one word per line (is this a binary file?)")]
    ControlCharacter {
        /// The file (or other source) name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// 1-based character column.
        column: usize,
        /// The character's code point.
        code: u32,
    },
    /// A word longer than the sequences a sequence model reads.
    #[error("the word {word:?} has {chars} characters, but sequences of {len} positions hold words of at most {} (block_size must be at least the longest word + 1)", len.saturating_sub(1))]
    WordTooLong {
        /// The word.
        word: String,
        /// Its characters.
        chars: usize,
        /// Positions per sequence.
        len: usize,
    },
    /// Split ratios that are not three non-negative numbers adding up to 1.
    #[error("invalid split ratios {train}/{dev}/{test}: {reason}")]
    BadRatios {
        /// Train fraction.
        train: f64,
        /// Dev fraction.
        dev: f64,
        /// Test fraction.
        test: f64,
        /// Why they were refused.
        reason: String,
    },
    /// A block size of zero.
    #[error("block size must be at least 1")]
    ZeroBlockSize,
    /// A vocabulary problem (unknown character and so on).
    #[error(transparent)]
    Vocab(#[from] VocabError),
}
