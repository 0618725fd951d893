//! A burn [`Linear`] run through the fused linear layer, as makemore.py's models use it.

use burn::nn::Linear;
use burn::prelude::*;

use crate::{fused, FusedOps};

/// `layer(x)` for `x` `[rows, in]` through [`fused::linear`], then tanh when `tanh`. A layer
/// without bias (the Transformer's head) goes the same way with a bias of zeros that is not
/// a parameter (adding zero changes no value), so that its products are the kernels' (on the
/// CPU: split over the threads, operands read in place) rather than burn's.
pub(crate) fn dense<B: FusedOps>(layer: &Linear<B>, x: Tensor<B, 2>, tanh: bool) -> Tensor<B, 2> {
    let weight = layer.weight.val();
    let bias = match &layer.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[1]], &weight.device()),
    };
    fused::linear(x, weight, bias, tanh)
}
