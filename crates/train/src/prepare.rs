use makemore_data::{Examples, Split, SplitName};
use makemore_vocab::Vocab;
use sha2::{Digest, Sha256};

use crate::{TrainError, TrainingConfig};

/// A corpus made ready for a run: vocabulary, split, and the examples of each part.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Vocabulary of the whole corpus.
    pub vocab: Vocab,
    /// The split words.
    pub split: Split,
    /// Training examples.
    pub train: Examples,
    /// Dev examples.
    pub dev: Examples,
    /// Test examples.
    pub test: Examples,
    /// sha256 of the corpus words (joined by `\n`), to detect a resume on other data.
    pub corpus_sha256: String,
}

impl PreparedData {
    /// The examples of one part.
    pub fn examples(&self, name: SplitName) -> &Examples {
        match name {
            SplitName::Train => &self.train,
            SplitName::Dev => &self.dev,
            SplitName::Test => &self.test,
        }
    }
}

/// Builds the vocabulary from all words, splits them as `config` says, and makes contexts
/// of `config.model.block_size`.
pub fn prepare(words: Vec<String>, config: &TrainingConfig) -> Result<PreparedData, TrainError> {
    prepare_with_vocab(words, config, None)
}

/// Like [`prepare`], but with a given vocabulary (a checkpoint's) instead of the corpus's own.
pub fn prepare_with_vocab(
    words: Vec<String>,
    config: &TrainingConfig,
    vocab: Option<Vocab>,
) -> Result<PreparedData, TrainError> {
    let corpus_sha256 = corpus_digest(&words);
    let vocab = match vocab {
        Some(v) => v,
        None => Vocab::from_words(&words)?,
    };
    let block = config.model.block_size;
    // Every character of every word, and its end, is one example of `block` characters.
    let examples: u64 = words.iter().map(|w| w.chars().count() as u64 + 1).sum();
    crate::check_memory(
        crate::MemoryNeed::windows(examples, block),
        crate::available_memory(),
        &format!("the context windows of block size {block}"),
    )?;
    let split = Split::new(words, config.split_seed, config.split)?;
    Ok(PreparedData {
        train: Examples::from_words(&split.train, &vocab, block)?,
        dev: Examples::from_words(&split.dev, &vocab, block)?,
        test: Examples::from_words(&split.test, &vocab, block)?,
        vocab,
        split,
        corpus_sha256,
    })
}

fn corpus_digest(words: &[String]) -> String {
    let mut h = Sha256::new();
    for w in words {
        h.update(w.as_bytes());
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}
