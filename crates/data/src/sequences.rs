//! Whole words as input and target sequences, as `makemore.py` builds them for its
//! sequence models (RNN, GRU, bag of words, Transformer).

use makemore_vocab::Vocab;

use crate::{DataError, Examples};

/// A target position that does not count: past a word's end.
pub const MASKED: u32 = u32::MAX;

/// Each word as a sequence of `len` positions: the input is the boundary `0` followed by
/// the word's characters (then `0` padding), the target at each position is the next
/// character, the boundary after the last one, then [`MASKED`] (`makemore.py`'s `-1`).
/// So every character of every word, and its end, is predicted once: exactly what
/// [`Examples`] predicts, and a per-character loss compares directly between the two.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sequences {
    len: usize,
    inputs: Vec<u32>,
    targets: Vec<u32>,
    characters: usize,
}

impl Sequences {
    /// Builds the sequences of `words`, `len` positions each; `len` must be at least the
    /// longest word's length + 1.
    pub fn from_words<S: AsRef<str>>(
        words: &[S],
        vocab: &Vocab,
        len: usize,
    ) -> Result<Self, DataError> {
        let mut inputs = vec![0u32; words.len() * len];
        let mut targets = vec![MASKED; words.len() * len];
        let mut characters = 0;
        for (w, word) in words.iter().enumerate() {
            let ids = vocab.encode(word.as_ref())?;
            if ids.len() + 1 > len {
                return Err(DataError::WordTooLong {
                    word: word.as_ref().to_string(),
                    chars: ids.len(),
                    len,
                });
            }
            let (x, y) = (&mut inputs[w * len..], &mut targets[w * len..]);
            for (t, &c) in ids.iter().enumerate() {
                x[t + 1] = c as u32;
                y[t] = c as u32;
            }
            y[ids.len()] = 0;
            characters += ids.len() + 1;
        }
        Ok(Self {
            len,
            inputs,
            targets,
            characters,
        })
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.targets.len() / self.len.max(1)
    }

    /// True when there are no words.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Positions per sequence.
    pub fn seq_len(&self) -> usize {
        self.len
    }

    /// Predicted characters (unmasked targets) in all.
    pub fn characters(&self) -> usize {
        self.characters
    }

    /// All inputs, flat and row-major (`len() * seq_len()`).
    pub fn inputs(&self) -> &[u32] {
        &self.inputs
    }

    /// All targets, with [`MASKED`] past each word's end.
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }

    /// Copies the sequences at `indices` into flat `inputs` and `targets` buffers, reusing
    /// their allocations.
    pub fn gather_into(&self, indices: &[usize], inputs: &mut Vec<u32>, targets: &mut Vec<u32>) {
        inputs.clear();
        targets.clear();
        for &i in indices {
            inputs.extend_from_slice(&self.inputs[i * self.len..(i + 1) * self.len]);
            targets.extend_from_slice(&self.targets[i * self.len..(i + 1) * self.len]);
        }
    }
}

/// What one part of a split becomes for a model: context windows of every character (the
/// MLP) or whole words as sequences (the sequence models).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tokens {
    /// One example per character: [`Examples`].
    Windows(Examples),
    /// One sequence per word: [`Sequences`].
    Sequences(Sequences),
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::Windows(Examples::default())
    }
}

impl Tokens {
    /// Rows a minibatch draws from: examples, or words.
    pub fn len(&self) -> usize {
        match self {
            Tokens::Windows(e) => e.len(),
            Tokens::Sequences(s) => s.len(),
        }
    }

    /// True when there is nothing to draw.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Characters predicted (each character of each word, and its end), the denominator of
    /// a per-character loss: the same for both kinds.
    pub fn characters(&self) -> usize {
        match self {
            Tokens::Windows(e) => e.len(),
            Tokens::Sequences(s) => s.characters(),
        }
    }

    /// Indices per row: the window's block size, or the sequence length.
    pub fn row_len(&self) -> usize {
        match self {
            Tokens::Windows(e) => e.block_size(),
            Tokens::Sequences(s) => s.seq_len(),
        }
    }

    /// Flat inputs, `len() * row_len()`.
    pub fn inputs(&self) -> &[u32] {
        match self {
            Tokens::Windows(e) => e.inputs(),
            Tokens::Sequences(s) => s.inputs(),
        }
    }

    /// Targets: one per example, or `row_len()` per sequence ([`MASKED`] included).
    pub fn targets(&self) -> &[u32] {
        match self {
            Tokens::Windows(e) => e.targets(),
            Tokens::Sequences(s) => s.targets(),
        }
    }

    /// Targets per row: 1 for windows, the sequence length for sequences.
    pub fn targets_per_row(&self) -> usize {
        match self {
            Tokens::Windows(_) => 1,
            Tokens::Sequences(s) => s.seq_len(),
        }
    }

    /// Copies the rows at `indices` into flat buffers.
    pub fn gather_into(&self, indices: &[usize], inputs: &mut Vec<u32>, targets: &mut Vec<u32>) {
        match self {
            Tokens::Windows(e) => e.gather_into(indices, inputs, targets),
            Tokens::Sequences(s) => s.gather_into(indices, inputs, targets),
        }
    }

    /// The context windows, when these are windows.
    pub fn windows(&self) -> Option<&Examples> {
        match self {
            Tokens::Windows(e) => Some(e),
            Tokens::Sequences(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn makemore_py_layout_of_emma() {
        let vocab = Vocab::from_words(["emma", "ava"]).unwrap(); // . a e m v
        let s = Sequences::from_words(&["emma", "ava"], &vocab, 6).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(&s.inputs()[..6], &[0, 2, 3, 3, 1, 0]);
        assert_eq!(&s.targets()[..6], &[2, 3, 3, 1, 0, MASKED]);
        assert_eq!(&s.inputs()[6..], &[0, 1, 4, 1, 0, 0]);
        assert_eq!(&s.targets()[6..], &[1, 4, 1, 0, MASKED, MASKED]);
        assert_eq!(s.characters(), 5 + 4);
        let e = Sequences::from_words(&["emma"], &vocab, 4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"emma\"") && e.contains("4 characters") && e.contains("at most 3"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn sequences_predict_what_windows_predict(words in prop::collection::vec("[a-e]{1,9}", 1..6)) {
            let vocab = Vocab::from_words(&words).unwrap();
            let longest = words.iter().map(|w| w.len()).max().unwrap();
            let s = Sequences::from_words(&words, &vocab, longest + 1).unwrap();
            let e = Examples::from_words(&words, &vocab, 3).unwrap();
            prop_assert_eq!(s.characters(), e.len());
            // The unmasked targets, in order, are the windows' targets.
            let unmasked: Vec<u32> = s.targets().iter().copied().filter(|&t| t != MASKED).collect();
            prop_assert_eq!(unmasked.as_slice(), e.targets());
            // Each input is the previous target (the boundary first).
            for w in 0..s.len() {
                let row = w * s.seq_len();
                prop_assert_eq!(s.inputs()[row], 0);
                for t in 1..s.seq_len() {
                    let prev = s.targets()[row + t - 1];
                    let expected = if prev == MASKED { 0 } else { prev };
                    prop_assert_eq!(s.inputs()[row + t], expected);
                }
            }
        }
    }
}
