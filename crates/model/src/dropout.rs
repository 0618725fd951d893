//! Dropout masks: drawn on the host from a seeded stream, so every backend applies the
//! same ones and a resumed run draws exactly the masks an uninterrupted one would.

use burn::prelude::*;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Dropout during one training step: the probability, and a seed that fixes the masks
/// (so a resumed run draws the same masks as an uninterrupted one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutStep {
    /// Probability of zeroing each hidden unit.
    pub p: f64,
    /// Seed of this step's masks.
    pub seed: u64,
}

/// The masks of one forward pass, drawn one after another from the step's seed.
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
    pub(crate) fn draw<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Tensor<B, D> {
        let n = shape.iter().product();
        let mask = dropout_mask(&mut self.rng, n, self.keep);
        Tensor::from_data(TensorData::new(mask, shape), device)
    }

    /// `x` with the next mask of its shape applied.
    pub(crate) fn apply<B: Backend, const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let shape = x.shape();
        let mask = dropout_mask(&mut self.rng, shape.num_elements(), self.keep);
        let device = x.device();
        x * Tensor::from_data(TensorData::new(mask, shape), &device)
    }
}

/// The inverted-dropout mask of `n` units: unit `i` is kept (scaled by `1/keep`) when the
/// `i`-th `rng.random::<f64>()` is below `keep`, and zeroed otherwise.
///
/// The draws are taken from the stream in bulk (`fill_bytes`: the same little-endian `u64`s
/// that one `next_u64` after another gives, and `random::<f64>()` is `(u64 >> 11) · 2⁻⁵³`),
/// so the mask is exactly the one drawn a value at a time (tested), at a fraction of the cost.
pub(crate) fn dropout_mask(rng: &mut ChaCha8Rng, n: usize, keep: f64) -> Vec<f32> {
    // Masks this large are drawn in pieces on rayon's threads, each piece from its own
    // copy of the generator set to the piece's place in the stream.
    const PIECE: usize = 1 << 14;
    let scale = (1.0 / keep) as f32;
    // `(x >> 11)·2⁻⁵³ < keep` exactly when `x >> 11 < ⌈keep·2⁵³⌉`: both sides scaled by a
    // power of two (exact), and an integer is below a real number exactly when it is below
    // that number's ceiling. An integer comparison, which the compiler vectorises.
    let bound = (keep * (1u64 << 53) as f64).ceil() as u64;
    let start = rng.get_word_pos();
    let fill = |generator: &mut ChaCha8Rng, piece: &mut [f32]| {
        let mut draws = vec![0u64; piece.len()];
        generator.fill_bytes(bytemuck::cast_slice_mut(&mut draws));
        for (m, &x) in piece.iter_mut().zip(&draws) {
            // The stream's bytes are little-endian words.
            *m = if u64::from_le(x) >> 11 < bound {
                scale
            } else {
                0.0
            };
        }
    };
    let mut mask = vec![0f32; n];
    if n <= PIECE || rayon::current_num_threads() < 2 {
        fill(rng, &mut mask);
    } else {
        mask.par_chunks_mut(PIECE)
            .enumerate()
            .for_each(|(i, piece)| {
                let mut generator = rng.clone();
                // Two 32-bit words per draw.
                generator.set_word_pos(start + 2 * (i * PIECE) as u128);
                fill(&mut generator, piece);
            });
        rng.set_word_pos(start + 2 * n as u128);
    }
    mask
}
