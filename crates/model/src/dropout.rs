//! Dropout masks: drawn on the host from a seeded stream, so every backend applies the
//! same ones and a resumed run draws exactly the masks an uninterrupted one would.

use burn::prelude::*;
use burn::tensor::TensorPrimitive;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::FusedOps;
pub use makemore_kernels::mask::{chacha8_block, chacha8_key, dropout_mask_at, keep_bound};
use makemore_kernels::mask::{dropout_mask, key_words};

/// Dropout during one training step: the probability, and a seed that fixes the masks
/// (so a resumed run draws the same masks as an uninterrupted one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutStep {
    /// Probability of zeroing each hidden unit.
    pub p: f64,
    /// Seed of this step's masks.
    pub seed: u64,
}

/// The masks of one forward pass, drawn one after another from the step's seed. On the CPU
/// from the generator; on an accelerator by the device itself, from the same stream
/// ([`SamplingOps::fused_dropout_mask`](crate::SamplingOps::fused_dropout_mask), at the generator's word position, which then moves on
/// as if it had drawn them): the same masks either way, and nothing uploaded.
pub(crate) struct Masks {
    rng: ChaCha8Rng,
    keep: f64,
}

impl Masks {
    /// The masks of `step`, or `None` without dropout.
    pub(crate) fn new(step: Option<DropoutStep>) -> Option<Self> {
        step.filter(|d| d.p > 0.0).map(|d| Self {
            rng: ChaCha8Rng::seed_from_u64(d.seed),
            keep: 1.0 - d.p,
        })
    }

    /// The next mask, as a tensor of `shape` (for a kernel that applies it itself).
    pub(crate) fn draw<B: FusedOps, const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        let n: usize = shape.iter().product();
        if B::is_accelerator() {
            let start = self.rng.get_word_pos();
            let at = u64::try_from(start).unwrap_or(u64::MAX);
            let key = key_words(self.rng.get_seed());
            let mask = B::fused_dropout_mask(Shape::new(shape), key, at, self.keep, device);
            // Two 32-bit words per unit, as the generator would have drawn them.
            self.rng.set_word_pos(start + 2 * n as u128);
            return Tensor::from_primitive(TensorPrimitive::Float(mask));
        }
        let mask = dropout_mask(&mut self.rng, n, self.keep);
        Tensor::from_data(TensorData::new(mask, shape), device)
    }

    /// `x` with the next mask of its shape applied.
    pub(crate) fn apply<B: FusedOps, const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let shape: [usize; D] = x.dims();
        let device = x.device();
        let mask = self.draw::<B, D>(shape, &device);
        x * mask
    }
}
