use makemore_data::{Examples, Sequences, Split, SplitName, Tokens};
use makemore_vocab::Vocab;
use sha2::{Digest, Sha256};

use crate::{TrainError, TrainingConfig};

/// A corpus made ready for a run: vocabulary, split, and what each part becomes for the
/// config's model: context windows (the MLP) or whole words as sequences.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Vocabulary of the whole corpus.
    pub vocab: Vocab,
    /// The split words.
    pub split: Split,
    /// Training rows: windows or words.
    pub train: Tokens,
    /// Dev rows.
    pub dev: Tokens,
    /// Test rows.
    pub test: Tokens,
    /// sha256 of the corpus words (joined by `\n`), to detect a resume on other data.
    pub corpus_sha256: String,
}

impl PreparedData {
    /// The rows of one part.
    pub fn examples(&self, name: SplitName) -> &Tokens {
        match name {
            SplitName::Train => &self.train,
            SplitName::Dev => &self.dev,
            SplitName::Test => &self.test,
        }
    }
}

/// Builds the vocabulary from all words, splits them as `config` says, and makes contexts
/// of `config.model.block_size` (MLP) or sequences of that many positions (sequence
/// models; 0: the longest word + 1).
pub fn prepare(words: Vec<String>, config: &TrainingConfig) -> Result<PreparedData, TrainError> {
    prepare_with_vocab(words, config, None)
}

/// Positions per word for a sequence model of `block_size` (0: the longest word + 1).
pub fn sequence_len(words: &[String], block_size: usize) -> usize {
    match block_size {
        0 => words.iter().map(|w| w.chars().count()).max().unwrap_or(0) + 1,
        b => b,
    }
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
    let sequence = config.model.kind.is_sequence();
    let block = if sequence {
        sequence_len(&words, config.model.block_size)
    } else {
        config.model.block_size
    };
    let examples: u64 = words.iter().map(|w| w.chars().count() as u64 + 1).sum();
    let need = if sequence {
        // Inputs and targets of every position of every word.
        crate::MemoryNeed::windows(words.len() as u64 * block as u64 * 2, 0)
    } else {
        crate::MemoryNeed::windows(examples, block)
    };
    crate::check_memory(
        need,
        crate::available_memory(),
        &format!("the context windows of block size {block}"),
    )?;
    let split = Split::new(words, config.split_seed, config.split)?;
    let tokens = |words: &[String]| tokens_for(words, sequence, block, &vocab);
    Ok(PreparedData {
        train: tokens(&split.train)?,
        dev: tokens(&split.dev)?,
        test: tokens(&split.test)?,
        vocab,
        split,
        corpus_sha256,
    })
}

/// `words` as a model reads them: sequences of `block` positions, or windows of `block`
/// characters of context.
fn tokens_for(
    words: &[String],
    sequence: bool,
    block: usize,
    vocab: &Vocab,
) -> Result<Tokens, TrainError> {
    Ok(if sequence {
        Tokens::Sequences(Sequences::from_words(words, vocab, block)?)
    } else {
        Tokens::Windows(Examples::from_words(words, vocab, block)?)
    })
}

/// `words` as the trained model of `model` (its sized config: a sequence model's
/// positions filled in) reads them.
pub(crate) fn tokens_of(
    words: &[String],
    model: &makemore_model::ModelConfig,
    vocab: &Vocab,
) -> Result<Tokens, TrainError> {
    tokens_for(words, model.kind.is_sequence(), model.block_size, vocab)
}

/// The SHA-256 of a corpus's words, each followed by a newline, in hex: what a checkpoint's
/// `state.json` records as `corpus_sha256`, so that a resume or an evaluation on other words
/// is caught, and what a sweep's run ids cover.
pub fn corpus_digest(words: &[String]) -> String {
    let mut h = Sha256::new();
    for w in words {
        h.update(w.as_bytes());
        h.update(b"\n");
    }
    format!("{:x}", h.finalize())
}
