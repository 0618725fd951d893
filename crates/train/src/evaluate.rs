use burn::prelude::*;
use makemore_data::{ContextBatcher, Examples, SplitName};
use makemore_model::{FusedOps, Mlp};

use crate::PreparedData;

/// Examples per forward pass during evaluation: large enough to amortise per-op overhead,
/// small enough to keep the logits of one chunk under a few tens of MB.
const EVAL_CHUNK: usize = 32_768;

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
    let mut total = 0.0f64;
    for (inputs, targets) in examples
        .inputs()
        .chunks(EVAL_CHUNK * block)
        .zip(examples.targets().chunks(EVAL_CHUNK))
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
