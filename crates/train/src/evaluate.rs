use burn::prelude::*;
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
    let row_len = tokens.row_len();
    let per_row = tokens.targets_per_row();
    let chunk = eval_chunk(model.activation_floats(row_len));
    let mut total = 0.0f64;
    let (mut kept, mut positions) = (Vec::new(), Vec::new());
    for (inputs, targets) in tokens
        .inputs()
        .chunks(chunk * row_len)
        .zip(tokens.targets().chunks(chunk * per_row))
    {
        let (loss, n): (f32, usize) = match tokens {
            Tokens::Windows(_) => {
                let batch = ContextBatcher::from_flat::<B>(inputs, targets, device);
                let loss = model.loss(model.forward(batch.inputs), batch.targets);
                (loss.into_scalar().elem(), targets.len())
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
                let loss = model.loss(model.forward(x).select(0, p), y);
                (loss.into_scalar().elem(), n)
            }
        };
        total += f64::from(loss) * n as f64;
    }
    Some(total / tokens.characters() as f64)
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
