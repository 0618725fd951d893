use makemore_vocab::Vocab;

use crate::DataError;

/// Context windows and next-character targets, as the notebook's `build_dataset` makes them.
///
/// For each word `w`, every character of `w + "."` is a target, and its context is the
/// `block_size` characters before it, padded on the left with the boundary index 0.
/// Inputs are stored flat (`len() * block_size` indices, row-major) so they can be
/// copied into a tensor in one go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Examples {
    block_size: usize,
    inputs: Vec<u32>,
    targets: Vec<u32>,
}

impl Examples {
    /// Builds the examples of `words` with contexts of `block_size` characters.
    pub fn from_words<S: AsRef<str>>(
        words: &[S],
        vocab: &Vocab,
        block_size: usize,
    ) -> Result<Self, DataError> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize);
        }
        let mut inputs = Vec::new();
        let mut targets = Vec::new();
        let mut context = vec![0u32; block_size];
        for word in words {
            context.fill(0);
            let ids = vocab.encode(word.as_ref())?;
            for ix in ids.into_iter().map(|i| i as u32).chain(std::iter::once(0)) {
                inputs.extend_from_slice(&context);
                targets.push(ix);
                context.rotate_left(1);
                context[block_size - 1] = ix;
            }
        }
        Ok(Self {
            block_size,
            inputs,
            targets,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Characters of context per example.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// The context of example `i`.
    pub fn context(&self, i: usize) -> &[u32] {
        &self.inputs[i * self.block_size..(i + 1) * self.block_size]
    }

    /// The target of example `i`.
    pub fn target(&self, i: usize) -> u32 {
        self.targets[i]
    }

    /// All contexts, flat and row-major (`len() * block_size()`).
    pub fn inputs(&self) -> &[u32] {
        &self.inputs
    }

    /// All targets.
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }

    /// Copies the examples at `indices` into flat `inputs` and `targets` buffers,
    /// reusing their allocations.
    pub fn gather_into(&self, indices: &[usize], inputs: &mut Vec<u32>, targets: &mut Vec<u32>) {
        inputs.clear();
        targets.clear();
        for &i in indices {
            inputs.extend_from_slice(self.context(i));
            targets.push(self.targets[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn notebook_view_of_emma() {
        let vocab = Vocab::from_words(["emma"]).unwrap(); // . e m a -> . a e m
        let ex = Examples::from_words(&["emma"], &vocab, 3).unwrap();
        let show = |i: usize| -> (String, char) {
            let ctx: Vec<usize> = ex.context(i).iter().map(|&x| x as usize).collect();
            (
                vocab.decode(&ctx).unwrap(),
                vocab.char_at(ex.target(i) as usize).unwrap(),
            )
        };
        let expected = [
            ("...", 'e'),
            ("..e", 'm'),
            (".em", 'm'),
            ("emm", 'a'),
            ("mma", '.'),
        ];
        for (i, (c, t)) in expected.iter().enumerate() {
            assert_eq!(show(i), (c.to_string(), *t));
        }
    }

    #[test]
    fn zero_block_size_is_refused() {
        let vocab = Vocab::from_words(["a"]).unwrap();
        assert!(matches!(
            Examples::from_words(&["a"], &vocab, 0),
            Err(DataError::ZeroBlockSize)
        ));
    }

    proptest! {
        #[test]
        fn contexts_reconstruct_each_word(word in "[a-f]{1,15}", block in 1usize..8) {
            let vocab = Vocab::from_words([&word]).unwrap();
            let ex = Examples::from_words(&[&word], &vocab, block).unwrap();
            prop_assert_eq!(ex.len(), word.chars().count() + 1);
            // The targets spell the word and end with the boundary.
            let targets: Vec<usize> = ex.targets().iter().map(|&t| t as usize).collect();
            prop_assert_eq!(vocab.decode(&targets).unwrap(), format!("{word}."));
            // Each context is the previous `block` targets, left-padded with the boundary.
            for i in 0..ex.len() {
                let mut expected = vec![0u32; block];
                for k in 0..block.min(i) {
                    expected[block - 1 - k] = ex.target(i - 1 - k);
                }
                prop_assert_eq!(ex.context(i), expected.as_slice());
            }
        }
    }
}
