use burn::prelude::*;
use burn::tensor::activation::softmax;
use makemore_data::{Split, SplitName};
use makemore_model::{FusedOps, Mlp};
use makemore_vocab::Vocab;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::TrainError;

/// How to draw words from a model.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleOptions {
    /// Number of words.
    pub n: usize,
    /// Seed of the draw.
    pub seed: u64,
    /// Logits are divided by this; < 1 sharpens, > 1 flattens. Must be > 0.
    pub temperature: f64,
    /// Keep only the `k` most likely characters at each step (`None`: all).
    pub top_k: Option<usize>,
    /// Every word starts with this.
    pub prefix: String,
    /// Stop a word after this many characters (prefix included).
    pub max_len: usize,
    /// Keep drawing until `n` words that are in no split of the corpus.
    pub only_new: bool,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            n: 20,
            seed: 2_147_483_647,
            temperature: 1.0,
            top_k: None,
            prefix: String::new(),
            max_len: 50,
            only_new: false,
        }
    }
}

/// Where a sampled word occurs in the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// In the training words.
    Train,
    /// In the dev words.
    Dev,
    /// In the test words.
    Test,
    /// In no split: a new word.
    New,
}

impl Origin {
    /// Looks a word up in a split.
    pub fn of(word: &str, split: &Split) -> Self {
        match split.find(word) {
            Some(SplitName::Train) => Origin::Train,
            Some(SplitName::Dev) => Origin::Dev,
            Some(SplitName::Test) => Origin::Test,
            None => Origin::New,
        }
    }

    /// "in train", "in dev", "in test" or "new".
    pub fn label(self) -> &'static str {
        match self {
            Origin::Train => "in train",
            Origin::Dev => "in dev",
            Origin::Test => "in test",
            Origin::New => "new",
        }
    }
}

/// One sampled word.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The word (without the boundary token).
    pub word: String,
    /// Where it occurs in the corpus, if a split was given.
    pub origin: Origin,
    /// True when `max_len` cut it before the model ended it.
    pub truncated: bool,
}

impl SampleOptions {
    /// Checks the options against a vocabulary.
    pub fn validate(&self, vocab: &Vocab) -> Result<(), TrainError> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(TrainError::Option(format!(
                "temperature must be a finite number > 0, got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(TrainError::Option("top-k must be at least 1".into()));
        }
        if self.max_len == 0 {
            return Err(TrainError::Option("max-len must be at least 1".into()));
        }
        if let Some(pos) = self
            .prefix
            .chars()
            .position(|c| c == makemore_vocab::BOUNDARY)
        {
            return Err(TrainError::Option(format!(
                "prefix: {:?} has the boundary character '{}' at position {}; a prefix is the start of one word",
                self.prefix,
                makemore_vocab::BOUNDARY,
                pos + 1
            )));
        }
        vocab
            .encode(&self.prefix)
            .map_err(|e| TrainError::Option(format!("prefix: {e}")))?;
        Ok(())
    }
}

/// Draws words, many at once: each step runs one forward pass over all unfinished words.
///
/// With `split`, every sample is labelled with where it occurs; with `only_new` (which
/// needs `split`), words found in the corpus are discarded until `n` new ones are drawn
/// or 100 × n attempts were made.
pub fn sample<B: FusedOps>(
    model: &Mlp<B>,
    vocab: &Vocab,
    block_size: usize,
    split: Option<&Split>,
    options: &SampleOptions,
    device: &B::Device,
) -> Result<Vec<Sample>, TrainError> {
    options.validate(vocab)?;
    let prefix = vocab.encode(&options.prefix)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut out = Vec::with_capacity(options.n);
    let mut attempts = 0usize;
    while out.len() < options.n && attempts < options.n.max(1) * 100 {
        let want = options.n - out.len();
        let batch = draw_batch(
            model, vocab, block_size, &prefix, want, options, &mut rng, device,
        )?;
        attempts += want;
        for (word, truncated) in batch {
            let origin = split.map_or(Origin::New, |s| Origin::of(&word, s));
            if options.only_new && origin != Origin::New {
                continue;
            }
            out.push(Sample {
                word,
                origin,
                truncated,
            });
        }
        if !options.only_new {
            break;
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn draw_batch<B: FusedOps>(
    model: &Mlp<B>,
    vocab: &Vocab,
    block_size: usize,
    prefix: &[usize],
    n: usize,
    options: &SampleOptions,
    rng: &mut ChaCha8Rng,
    device: &B::Device,
) -> Result<Vec<(String, bool)>, TrainError> {
    let mut words: Vec<Vec<usize>> = vec![prefix.to_vec(); n];
    let mut done = vec![false; n];
    let mut truncated = vec![false; n];
    // A GPU backend compiles (and may tune) kernels for every new shape: there, every step
    // runs all `n` rows and finished words are ignored; elsewhere only the unfinished ones.
    let fixed_rows = B::is_accelerator();
    let all: Vec<usize> = (0..n).collect();
    loop {
        let active: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
        if active.is_empty() {
            break;
        }
        let rows = if fixed_rows { &all } else { &active };
        let mut contexts = Vec::with_capacity(rows.len() * block_size);
        for &i in rows {
            let w = &words[i];
            for k in 0..block_size {
                // Left-pad with the boundary, as in training.
                let pos = w.len() as isize - block_size as isize + k as isize;
                contexts.push(if pos < 0 { 0 } else { w[pos as usize] as i64 });
            }
        }
        let x = Tensor::<B, 2, Int>::from_data(
            TensorData::new(contexts, [rows.len(), block_size]),
            device,
        );
        let logits = model.forward(x) / options.temperature;
        let probs: Vec<f32> = softmax(logits, 1)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        let v = vocab.len();
        for (k, &i) in active.iter().enumerate() {
            let row = if fixed_rows { i } else { k };
            let ix = draw(&probs[row * v..(row + 1) * v], options.top_k, rng);
            if ix == 0 {
                done[i] = true;
            } else {
                words[i].push(ix);
                if words[i].len() >= options.max_len {
                    done[i] = true;
                    truncated[i] = true;
                }
            }
        }
    }
    words
        .into_iter()
        .zip(truncated)
        .map(|(w, t)| Ok((vocab.decode(&w)?, t)))
        .collect()
}

/// Draws an index from probabilities, optionally restricted to the `top_k` largest.
fn draw(probs: &[f32], top_k: Option<usize>, rng: &mut ChaCha8Rng) -> usize {
    let mut candidates: Vec<(usize, f32)> = probs.iter().copied().enumerate().collect();
    if let Some(k) = top_k.filter(|&k| k < candidates.len()) {
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(k);
    }
    let total: f32 = candidates.iter().map(|c| c.1).sum();
    let mut u = rng.random::<f32>() * total;
    for &(i, p) in &candidates {
        if u < p {
            return i;
        }
        u -= p;
    }
    candidates.last().map_or(0, |c| c.0)
}
