use thiserror::Error;

/// What can go wrong when building a vocabulary or encoding with it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VocabError {
    /// A character that the vocabulary does not contain.
    #[error("character {ch:?} (U+{code:04X}) at position {position} of {text:?} is not in the vocabulary")]
    UnknownChar {
        /// The offending character.
        ch: char,
        /// Its code point, for characters that do not print well.
        code: u32,
        /// Character position (0-based) inside `text`.
        position: usize,
        /// The text being encoded.
        text: String,
    },
    /// A corpus word contains the boundary character, which is reserved.
    #[error("word {word_index} ({word:?}) contains the boundary character '.' at position {position}; '.' is reserved to mark word boundaries")]
    BoundaryInWord {
        /// 0-based index of the word in the corpus.
        word_index: usize,
        /// The word itself.
        word: String,
        /// Character position of the boundary character.
        position: usize,
    },
    /// An index outside `0..len`.
    #[error("index {index} is out of range for a vocabulary of {len} tokens")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// Vocabulary size.
        len: usize,
    },
    /// The corpus had no characters at all.
    #[error("cannot build a vocabulary from a corpus with no characters")]
    Empty,
    /// A stored vocabulary that is not valid.
    #[error("invalid vocabulary: {0}")]
    Invalid(String),
    /// A stored vocabulary that is not valid JSON.
    #[error("vocabulary JSON does not parse: {0}")]
    Json(String),
}
