use burn::prelude::*;
use burn::tensor::activation::softmax;
use makemore_data::{Split, SplitName};
use makemore_model::{FusedOps, Model};
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
    model: &Model<B>,
    vocab: &Vocab,
    block_size: usize,
    split: Option<&Split>,
    options: &SampleOptions,
    device: &B::Device,
) -> Result<Vec<Sample>, TrainError> {
    sample_ensemble(&[(model, 1.0, block_size)], vocab, split, options, device)
}

/// [`sample`] from an ensemble: `(model, weight, block_size)` of each member; each character
/// is drawn from the members' next-character probabilities averaged with the weights (each
/// member's at `options.temperature`). One member of any weight draws what [`sample`] draws.
pub fn sample_ensemble<B: FusedOps>(
    members: &[(&Model<B>, f64, usize)],
    vocab: &Vocab,
    split: Option<&Split>,
    options: &SampleOptions,
    device: &B::Device,
) -> Result<Vec<Sample>, TrainError> {
    options.validate(vocab)?;
    let total: f64 = members.iter().map(|m| m.1).sum();
    if members.is_empty() || members.iter().any(|m| !(m.1.is_finite() && m.1 > 0.0)) {
        return Err(TrainError::Ensemble(
            "needs at least one member, each with a finite weight > 0".into(),
        ));
    }
    let prefix = vocab.encode(&options.prefix)?;
    let members: Vec<Member<'_, B>> = members
        .iter()
        .map(|&(model, weight, block_size)| Member {
            model,
            weight: (weight / total) as f32,
            block_size,
            sequence: model.as_mlp().is_none(),
        })
        .collect();
    let mut options = options.clone();
    // A sequence model reads the word so far after its boundary, at most `block_size`
    // positions: it writes words of up to `block_size - 1` characters.
    if let Some(longest) = members
        .iter()
        .filter(|m| m.sequence)
        .map(|m| m.block_size.saturating_sub(1))
        .min()
    {
        options.max_len = options.max_len.min(longest).max(1);
        if prefix.len() >= options.max_len {
            return Err(TrainError::Option(format!(
                "prefix: {} characters leave no room in this model's words of at most {longest}",
                prefix.len(),
            )));
        }
    }
    let options = &options;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut out = Vec::with_capacity(options.n);
    let mut attempts = 0usize;
    let batch = Batch {
        members: &members,
        vocab,
        prefix: &prefix,
        options,
        device,
    };
    while out.len() < options.n && attempts < options.n.max(1) * 100 {
        let want = options.n - out.len();
        // On a GPU the draws happen there too (no read-back per character); the words are
        // the ones the host would draw from the same probabilities.
        let words = if B::is_accelerator() && options.top_k.is_none() && members.len() == 1 {
            batch.draw_on_device(want, &mut rng)?
        } else {
            batch.draw(want, &mut rng)?
        };
        attempts += want;
        for (word, truncated) in words {
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

/// One model of what words are drawn from.
struct Member<'a, B: FusedOps> {
    model: &'a Model<B>,
    /// Its share of the probabilities (the weights sum to 1).
    weight: f32,
    block_size: usize,
    /// The model reads whole words (its context grows), not windows.
    sequence: bool,
}

impl<B: FusedOps> Member<'_, B> {
    /// Positions of the context of a word of `len` characters.
    fn context_len(&self, len: usize) -> usize {
        if self.sequence {
            len + 1
        } else {
            self.block_size
        }
    }

    /// The context of a word so far, as in training: its last `block_size` characters,
    /// left-padded with the boundary (MLP), or the boundary and then the word (sequence
    /// models).
    fn context_of(&self, word: &[usize], out: &mut Vec<i64>) {
        if self.sequence {
            out.push(0);
            out.extend(word.iter().map(|&c| c as i64));
            return;
        }
        for k in 0..self.block_size {
            let pos = word.len() as isize - self.block_size as isize + k as isize;
            out.push(if pos < 0 {
                0
            } else {
                word[pos as usize] as i64
            });
        }
    }
}

/// What one batch of words is drawn with.
struct Batch<'a, B: FusedOps> {
    /// The models (one, or an ensemble's).
    members: &'a [Member<'a, B>],
    vocab: &'a Vocab,
    /// Every word starts with these characters.
    prefix: &'a [usize],
    options: &'a SampleOptions,
    device: &'a B::Device,
}

impl<B: FusedOps> Batch<'_, B> {
    /// `n` words, each draw made on the host from the probabilities read back.
    fn draw(&self, n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<(String, bool)>, TrainError> {
        let Batch {
            members,
            vocab,
            prefix,
            options,
            device,
        } = *self;
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
            let mut probs: Vec<f32> = Vec::new();
            for member in members {
                // Unfinished words are all as long (one character a step): one context length.
                let t = member.context_len(words[active[0]].len());
                let mut contexts = Vec::with_capacity(rows.len() * t);
                for &i in rows {
                    if member.sequence && words[i].len() + 1 != t {
                        // A finished row (kept for a fixed shape): any context of the length.
                        contexts.extend(std::iter::repeat_n(0, t));
                    } else {
                        member.context_of(&words[i], &mut contexts);
                    }
                }
                let x = Tensor::<B, 2, Int>::from_data(
                    TensorData::new(contexts, [rows.len(), t]),
                    device,
                );
                let logits = member.model.next_logits(x) / options.temperature;
                let p: Vec<f32> = read_back(softmax(logits, 1), "the probabilities")?;
                if members.len() == 1 {
                    probs = p;
                } else {
                    probs.resize(p.len(), 0.0);
                    for (sum, p) in probs.iter_mut().zip(p) {
                        *sum += member.weight * p;
                    }
                }
            }
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

    /// [`Batch::draw`] with every draw made on the device: all `n` rows step together, and
    /// the device reads its uniforms from one upload, the k-th unfinished word taking the
    /// k-th value of the step, as [`draw`] takes them from the generator. The draw itself is
    /// [`draw`]'s arithmetic ([`makemore_model::fused::categorical`]), so on the same
    /// probabilities it picks the same characters; `top_k` is not supported here. Finished
    /// words are checked every few steps, and the characters read back once at the end.
    fn draw_on_device(
        &self,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<(String, bool)>, TrainError> {
        let Batch {
            members,
            vocab,
            prefix,
            options,
            device,
        } = *self;
        // One model: an ensemble draws on the host.
        let member = &members[0];
        let (model, block_size) = (member.model, member.block_size);
        /// Steps between two checks of whether every word has ended.
        const CHECK_EVERY: usize = 8;
        // A word draws until it ends or reaches max_len characters; at least once.
        let steps = options.max_len.saturating_sub(prefix.len()).max(1);
        // Every uniform the batch could need, from a copy of the generator; the generator itself
        // is moved on by as many as were used, at the end.
        let uniforms: Vec<f32> = {
            let mut copy = rng.clone();
            (0..n * steps).map(|_| copy.random::<f32>()).collect()
        };
        let uniforms = Tensor::<B, 1>::from_data(TensorData::new(uniforms, [n * steps]), device);
        let t0 = member.context_len(prefix.len());
        let mut context: Vec<i64> = Vec::with_capacity(n * t0);
        for _ in 0..n {
            member.context_of(prefix, &mut context);
        }
        let mut context = Tensor::<B, 2, Int>::from_data(TensorData::new(context, [n, t0]), device);
        let mut active = Tensor::<B, 1, Int>::ones([n], device);
        let mut length = prefix.len();
        let mut used = Tensor::<B, 1, Int>::zeros([1], device);
        let mut drawn: Vec<Tensor<B, 1, Int>> = Vec::with_capacity(steps);
        for step in 0..steps {
            let probs = softmax(model.next_logits(context.clone()) / options.temperature, 1);
            // The uniform of each unfinished row: the next ones in order of the rows.
            let rank = active.clone().cumsum(0) - 1;
            let at = (rank + used.clone()).clamp_min(0);
            let u = uniforms.clone().select(0, at);
            let ix = makemore_model::fused::categorical(probs, u);
            used = used + active.clone().sum();
            length += 1;
            // A row goes on while it drew a character and is shorter than max_len.
            let goes_on = ix.clone().not_equal_elem(0).int() * active.clone();
            active = if length >= options.max_len {
                goes_on.zeros_like()
            } else {
                goes_on
            };
            // A window slides; a word grows.
            let [_, t] = context.dims();
            let kept = if member.sequence { 0..t } else { 1..block_size };
            context = Tensor::cat(
                vec![context.slice([0..n, kept]), ix.clone().reshape([n, 1])],
                1,
            );
            drawn.push(ix);
            // (After the last step every row has ended: no need to ask.)
            if (step + 1) % CHECK_EVERY == 0 && step + 1 < steps {
                let left = active.clone().sum().into_scalar().elem::<i64>();
                if left == 0 {
                    break;
                }
            }
        }
        let used = used.into_scalar().elem::<i64>().max(0) as usize;
        for _ in 0..used {
            rng.random::<f32>();
        }
        let rows = drawn.len();
        let drawn: Vec<i64> = read_back_int(Tensor::stack::<2>(drawn, 0), "the characters")?;
        // The words, as the host loop builds them: stop at the boundary or at max_len.
        (0..n)
            .map(|row| {
                let mut word = prefix.to_vec();
                let mut truncated = false;
                for step in 0..rows {
                    let ix = drawn.get(step * n + row).copied().unwrap_or(0).max(0) as usize;
                    if ix == 0 {
                        break;
                    }
                    word.push(ix);
                    if word.len() >= options.max_len {
                        truncated = true;
                        break;
                    }
                }
                Ok((vocab.decode(&word)?, truncated))
            })
            .collect()
    }
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

/// A tensor's values on the host; a failed transfer is an error naming `what`.
fn read_back<B: Backend, const D: usize>(
    t: Tensor<B, D>,
    what: &str,
) -> Result<Vec<f32>, TrainError> {
    let fail = |e: String| TrainError::Device {
        what: format!("cannot read back {what}: {e}"),
    };
    t.try_into_data()
        .map_err(|e| fail(format!("{e:?}")))?
        .convert::<f32>()
        .to_vec()
        .map_err(|e| fail(format!("{e:?}")))
}

/// [`read_back`] for integer tensors.
fn read_back_int<B: Backend, const D: usize>(
    t: Tensor<B, D, Int>,
    what: &str,
) -> Result<Vec<i64>, TrainError> {
    let fail = |e: String| TrainError::Device {
        what: format!("cannot read back {what}: {e}"),
    };
    t.try_into_data()
        .map_err(|e| fail(format!("{e:?}")))?
        .convert::<i64>()
        .to_vec()
        .map_err(|e| fail(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use makemore_model::ModelConfig;

    #[test]
    fn device_draws_give_the_host_draws() {
        // Every way a word ends: the boundary, max_len, a prefix; a flattened temperature;
        // and the generator left where the host loop leaves it.
        let vocab = Vocab::from_words(["emma", "olivia", "ava", "isabella", "sophia"]).unwrap();
        let device = Default::default();
        // The MLP (windows) and a sequence model (a growing context of at most 9 positions).
        let mlp = ModelConfig::new(vocab.len(), 3).init::<NdArray<f32>>(&device);
        let gru = ModelConfig::new(vocab.len(), 9)
            .with_kind(makemore_model::ModelKind::Gru)
            .with_n_embd(8)
            .with_n_hidden(16)
            .init::<NdArray<f32>>(&device);
        for (model, block_size, sequence, prefix, max_len, temperature) in [
            (&mlp, 3, false, "", 50, 1.0),
            (&mlp, 3, false, "", 4, 1.0),
            (&mlp, 3, false, "so", 6, 1.7),
            (&mlp, 3, false, "", 1, 0.5),
            (&gru, 9, true, "", 8, 1.0),
            (&gru, 9, true, "so", 6, 1.7),
            (&gru, 9, true, "", 4, 0.5),
        ] {
            let options = SampleOptions {
                prefix: prefix.into(),
                max_len,
                temperature,
                ..SampleOptions::default()
            };
            let prefix = vocab.encode(prefix).unwrap();
            let mut host_rng = ChaCha8Rng::seed_from_u64(5);
            let mut device_rng = host_rng.clone();
            let members = [Member {
                model,
                weight: 1.0,
                block_size,
                sequence,
            }];
            let batch = Batch {
                members: &members,
                vocab: &vocab,
                prefix: &prefix,
                options: &options,
                device: &device,
            };
            let host = batch.draw(40, &mut host_rng).unwrap();
            let on_device = batch.draw_on_device(40, &mut device_rng).unwrap();
            assert_eq!(host, on_device, "prefix {prefix:?}, max_len {max_len}");
            // Not a vacuous comparison: many different words, some cut by max_len.
            let distinct: std::collections::HashSet<_> = host.iter().map(|w| &w.0).collect();
            assert!(distinct.len() > 5, "{host:?}");
            if max_len <= 6 {
                assert!(host.iter().any(|w| w.1), "none truncated: {host:?}");
            }
            assert_eq!(host_rng.random::<u64>(), device_rng.random::<u64>());
        }
    }
}
