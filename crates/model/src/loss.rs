use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Mean negative log-likelihood of `targets` under `logits` (PyTorch's `F.cross_entropy`).
///
/// # Shapes
/// - `logits`: `[batch, vocab]`
/// - `targets`: `[batch]`
/// - returns: `[1]`
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [batch, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, targets.reshape([batch, 1]))
        .mean()
        .neg()
}
