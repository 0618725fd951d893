use burn::prelude::*;
use makemore_data::{ContextBatcher, Examples, SplitName};
use makemore_model::{FusedOps, Mlp};

use crate::PreparedData;

/// Most examples per forward pass during evaluation: enough to amortise per-op overhead.
const EVAL_CHUNK: usize = 32_768;
/// Bytes of activations one evaluation chunk may hold: a wide model gets smaller chunks.
pub(crate) const EVAL_BYTES: u64 = 256 << 20;

/// Examples per evaluation chunk for a model holding `floats` per example.
pub(crate) fn eval_chunk(floats: u64) -> usize {
    let fit = EVAL_BYTES / (4 * floats.max(1));
    usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .clamp(1, EVAL_CHUNK)
}

/// Mean negative log-likelihood (nats per character) of `examples` under `model`, computed
/// in chunks with no gradients. `None` when there are no examples.
pub fn evaluate<B: FusedOps>(
    model: &Mlp<B>,
    examples: &Examples,
    device: &B::Device,
) -> Option<f64> {
    if examples.is_empty() {
        return None;
    }
    let block = examples.block_size();
    let chunk = eval_chunk(model.activation_floats(block));
    let mut total = 0.0f64;
    for (inputs, targets) in examples
        .inputs()
        .chunks(chunk * block)
        .zip(examples.targets().chunks(chunk))
    {
        let batch = ContextBatcher::from_flat::<B>(inputs, targets, device);
        let loss: f32 = model
            .loss(model.forward(batch.inputs), batch.targets)
            .into_scalar()
            .elem();
        total += f64::from(loss) * targets.len() as f64;
    }
    Some(total / examples.len() as f64)
}

/// [`evaluate`] on one part of a prepared corpus.
pub fn evaluate_split<B: FusedOps>(
    model: &Mlp<B>,
    data: &PreparedData,
    split: SplitName,
    device: &B::Device,
) -> Option<f64> {
    evaluate(model, data.examples(split), device)
}
