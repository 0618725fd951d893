use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::VocabError;

/// The boundary token: index 0, marks the start and end of every word.
pub const BOUNDARY: char = '.';

/// Sorted characters of a corpus with `.` prepended at index 0.
///
/// Serialises as `{"chars": [".", "a", ...]}`; deserialising checks the invariants
/// (boundary first, the rest strictly increasing and unique).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredVocab", into = "StoredVocab")]
pub struct Vocab {
    chars: Vec<char>,
    index: HashMap<char, usize>,
}

#[derive(Serialize, Deserialize)]
struct StoredVocab {
    chars: Vec<char>,
}

impl TryFrom<StoredVocab> for Vocab {
    type Error = VocabError;
    fn try_from(stored: StoredVocab) -> Result<Self, Self::Error> {
        Vocab::from_chars(stored.chars)
    }
}

impl From<Vocab> for StoredVocab {
    fn from(v: Vocab) -> Self {
        StoredVocab { chars: v.chars }
    }
}

impl Vocab {
    /// Builds the vocabulary of a list of words: `.` then every distinct character, sorted.
    ///
    /// Errors if a word contains `.` or if there are no characters at all.
    pub fn from_words<I, S>(words: I) -> Result<Self, VocabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for (word_index, word) in words.into_iter().enumerate() {
            let word = word.as_ref();
            for (position, ch) in word.chars().enumerate() {
                if ch == BOUNDARY {
                    return Err(VocabError::BoundaryInWord {
                        word_index,
                        word: word.to_string(),
                        position,
                    });
                }
                set.insert(ch);
            }
        }
        if set.is_empty() {
            return Err(VocabError::Empty);
        }
        let chars = std::iter::once(BOUNDARY).chain(set).collect();
        Self::from_chars(chars)
    }

    /// Rebuilds a vocabulary from its full character list (boundary first, then sorted).
    pub fn from_chars(chars: Vec<char>) -> Result<Self, VocabError> {
        if chars.first() != Some(&BOUNDARY) {
            return Err(VocabError::Invalid(
                "the first character must be the boundary '.'".into(),
            ));
        }
        if chars.len() < 2 {
            return Err(VocabError::Invalid(
                "a vocabulary needs at least one character besides '.'".into(),
            ));
        }
        if let Some(w) = chars[1..].windows(2).find(|w| w[0] >= w[1]) {
            return Err(VocabError::Invalid(format!(
                "characters must be unique and sorted, found {:?} before {:?}",
                w[0], w[1]
            )));
        }
        if chars[1..].contains(&BOUNDARY) {
            return Err(VocabError::Invalid("'.' may appear only at index 0".into()));
        }
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        Ok(Self { chars, index })
    }

    /// Number of tokens, the boundary included.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Always false: a vocabulary holds at least the boundary and one character.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// All tokens in index order (`.` first).
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Index of a character, if present.
    pub fn index_of(&self, ch: char) -> Option<usize> {
        self.index.get(&ch).copied()
    }

    /// Character at an index.
    pub fn char_at(&self, index: usize) -> Result<char, VocabError> {
        self.chars
            .get(index)
            .copied()
            .ok_or(VocabError::IndexOutOfRange {
                index,
                len: self.len(),
            })
    }

    /// Encodes every character of `text`; an unknown character is an error naming it and
    /// its position.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, VocabError> {
        text.chars()
            .enumerate()
            .map(|(position, ch)| {
                self.index_of(ch).ok_or_else(|| VocabError::UnknownChar {
                    ch,
                    code: ch as u32,
                    position,
                    text: text.to_string(),
                })
            })
            .collect()
    }

    /// Decodes indices back to a string (the boundary decodes to `.`).
    pub fn decode(&self, ids: &[usize]) -> Result<String, VocabError> {
        ids.iter().map(|&i| self.char_at(i)).collect()
    }

    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising a Vec<char> cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses JSON written by [`Vocab::to_json`], checking the invariants.
    pub fn from_json(json: &str) -> Result<Self, VocabError> {
        serde_json::from_str(json).map_err(|e| VocabError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundary_is_zero_and_rest_sorted() {
        let v = Vocab::from_words(["zed", "abe"]).unwrap();
        assert_eq!(v.chars(), &['.', 'a', 'b', 'd', 'e', 'z']);
    }

    #[test]
    fn boundary_in_word_is_an_error_naming_the_word() {
        let err = Vocab::from_words(["ann", "j.r"]).unwrap_err();
        assert_eq!(
            err,
            VocabError::BoundaryInWord {
                word_index: 1,
                word: "j.r".into(),
                position: 1
            }
        );
        assert!(err.to_string().contains("j.r"));
    }

    #[test]
    fn unknown_char_names_char_and_position() {
        let v = Vocab::from_words(["abc"]).unwrap();
        let err = v.encode("abz").unwrap_err();
        assert!(matches!(
            err,
            VocabError::UnknownChar {
                ch: 'z',
                position: 2,
                ..
            }
        ));
        assert!(err.to_string().contains("'z'"));
    }

    #[test]
    fn empty_corpus_is_an_error() {
        assert_eq!(
            Vocab::from_words(Vec::<String>::new()),
            Err(VocabError::Empty)
        );
        assert_eq!(Vocab::from_words([""]), Err(VocabError::Empty));
    }

    #[test]
    fn json_rejects_bad_vocabularies() {
        assert!(Vocab::from_json(r#"{"chars":["a","b"]}"#).is_err());
        assert!(Vocab::from_json(r#"{"chars":[".","b","a"]}"#).is_err());
        assert!(Vocab::from_json(r#"{"chars":[".","a","a"]}"#).is_err());
        assert!(Vocab::from_json("not json").is_err());
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(words in prop::collection::vec("[a-zé漢 -]{0,12}", 1..20)) {
            prop_assume!(words.iter().any(|w| !w.is_empty()));
            let v = Vocab::from_words(&words).unwrap();
            for w in &words {
                let ids = v.encode(w).unwrap();
                prop_assert!(ids.iter().all(|&i| i > 0 && i < v.len()));
                prop_assert_eq!(&v.decode(&ids).unwrap(), w);
            }
        }

        #[test]
        fn json_round_trip(words in prop::collection::vec("\\PC{1,8}", 1..10)) {
            let words: Vec<String> = words.into_iter().map(|w| w.replace('.', "")).collect();
            prop_assume!(words.iter().any(|w| !w.is_empty()));
            let v = Vocab::from_words(&words).unwrap();
            prop_assert_eq!(Vocab::from_json(&v.to_json()).unwrap(), v);
        }

        #[test]
        fn from_json_never_panics(s in "\\PC{0,64}") {
            let _ = Vocab::from_json(&s);
        }
    }
}
