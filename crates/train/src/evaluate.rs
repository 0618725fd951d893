use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use makemore_data::{ContextBatcher, SplitName, Tokens};
use makemore_model::{FusedOps, Model};

use crate::step::unmasked;
use crate::PreparedData;

/// Most rows per forward pass during evaluation: enough to amortise per-op overhead.
const EVAL_CHUNK: usize = 32_768;
/// Bytes of activations one evaluation chunk may hold: a wide model gets smaller chunks.
pub(crate) const EVAL_BYTES: u64 = 256 << 20;

/// Rows per evaluation chunk for a model holding `floats` per row.
pub(crate) fn eval_chunk(floats: u64) -> usize {
    let fit = EVAL_BYTES / (4 * floats.max(1));
    usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .clamp(1, EVAL_CHUNK)
}

/// Mean negative log-likelihood (nats per character) of `tokens` under `model`, computed
/// in chunks with no gradients. Windows and sequences count the same characters (each
/// character of each word and its end), so the numbers of every model compare directly.
/// `None` when there is nothing to evaluate.
pub fn evaluate<B: FusedOps>(model: &Model<B>, tokens: &Tokens, device: &B::Device) -> Option<f64> {
    if tokens.characters() == 0 {
        return None;
    }
    let mut total = 0.0f64;
    for_each_chunk(model, tokens, device, |logits, targets, n| {
        let loss: f32 = model.loss(logits, targets).into_scalar().elem();
        total += f64::from(loss) * n as f64;
    });
    Some(total / tokens.characters() as f64)
}

/// The log-probability that `model` gives each character of `tokens` (each character of each
/// word and its end, word by word: the same characters, in the same order, for windows and
/// sequences), with the characters. What an ensemble's members are scored by.
pub fn target_log_probs<B: FusedOps>(
    model: &Model<B>,
    tokens: &Tokens,
    device: &B::Device,
) -> (Vec<u32>, Vec<f32>) {
    let n = tokens.characters();
    let (mut chars, mut log_probs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for_each_chunk(model, tokens, device, |logits, targets, rows| {
        let picked = log_softmax(logits, 1).gather(1, targets.clone().reshape([rows, 1]));
        let values = picked.into_data().convert::<f32>();
        log_probs.extend(values.iter::<f32>());
        let targets = targets.into_data().convert::<i64>();
        chars.extend(targets.iter::<i64>().map(|c| c as u32));
    });
    (chars, log_probs)
}

/// Runs `f(targets, probabilities)` on the chunks of `tokens`: the characters to predict, in
/// [`target_log_probs`]'s order, and `model`'s next-character distribution for each (row-major,
/// a row of the vocabulary's size per character). What a distillation teacher is read by.
pub(crate) fn for_each_distribution<B: FusedOps>(
    model: &Model<B>,
    tokens: &Tokens,
    device: &B::Device,
    mut f: impl FnMut(&[u32], &[f32]),
) {
    for_each_chunk(model, tokens, device, |logits, targets, _| {
        let probs = burn::tensor::activation::softmax(logits, 1)
            .into_data()
            .convert::<f32>();
        let targets: Vec<u32> = targets
            .into_data()
            .convert::<i64>()
            .iter::<i64>()
            .map(|c| c as u32)
            .collect();
        let probs: Vec<f32> = probs.iter::<f32>().collect();
        f(&targets, &probs);
    });
}

/// Runs `f(logits, targets, rows)` on the chunks of `tokens`: each character to predict once,
/// in order, as `evaluate` counts them.
fn for_each_chunk<B: FusedOps>(
    model: &Model<B>,
    tokens: &Tokens,
    device: &B::Device,
    mut f: impl FnMut(Tensor<B, 2>, Tensor<B, 1, Int>, usize),
) {
    let row_len = tokens.row_len();
    let per_row = tokens.targets_per_row();
    let chunk = eval_chunk(model.activation_floats(row_len));
    let (mut kept, mut positions) = (Vec::new(), Vec::new());
    for (inputs, targets) in tokens
        .inputs()
        .chunks(chunk * row_len)
        .zip(tokens.targets().chunks(chunk * per_row))
    {
        match tokens {
            Tokens::Windows(_) => {
                let batch = ContextBatcher::from_flat::<B>(inputs, targets, device);
                f(model.forward(batch.inputs), batch.targets, targets.len());
            }
            Tokens::Sequences(_) => {
                unmasked(targets, &mut kept, &mut positions);
                if kept.is_empty() {
                    continue;
                }
                let rows = inputs.len() / row_len;
                let x: Vec<i64> = inputs.iter().map(|&v| i64::from(v)).collect();
                let y: Vec<i64> = kept.iter().map(|&v| i64::from(v)).collect();
                let n = y.len();
                let x = Tensor::<B, 2, Int>::from_data(TensorData::new(x, [rows, row_len]), device);
                let y = Tensor::<B, 1, Int>::from_data(TensorData::new(y, [n]), device);
                let p =
                    Tensor::<B, 1, Int>::from_data(TensorData::new(positions.clone(), [n]), device);
                f(
                    makemore_model::fused::gather_rows(model.forward(x), p),
                    y,
                    n,
                );
            }
        }
    }
}

/// [`evaluate`] on one part of a prepared corpus.
pub fn evaluate_split<B: FusedOps>(
    model: &Model<B>,
    data: &PreparedData,
    split: SplitName,
    device: &B::Device,
) -> Option<f64> {
    evaluate(model, data.examples(split), device)
}
