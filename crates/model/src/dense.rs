//! A burn [`Linear`] run through the fused linear layer, as makemore.py's models use it.

use burn::nn::Linear;
use burn::prelude::*;

use crate::{fused, FusedOps};

/// `layer(x)` for `x` `[rows, in]` through [`fused::linear`], then tanh when `tanh`; a
/// layer without bias (the Transformer's head) is one matrix product.
pub(crate) fn dense<B: FusedOps>(layer: &Linear<B>, x: Tensor<B, 2>, tanh: bool) -> Tensor<B, 2> {
    match &layer.bias {
        Some(bias) => fused::linear(x, layer.weight.val(), bias.val(), tanh),
        None if tanh => fused::tanh(x.matmul(layer.weight.val())),
        None => x.matmul(layer.weight.val()),
    }
}
