//! Host-side initial weights: the same numbers on every backend for a given seed.

use burn::module::Param;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Draws N(0, 1) × scale values in a fixed order from one seeded stream.
pub(crate) struct NormalStream {
    rng: ChaCha8Rng,
}

impl NormalStream {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn draw(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut self.rng);
                z * scale
            })
            .collect()
    }

    pub(crate) fn matrix<B: Backend>(
        &mut self,
        rows: usize,
        cols: usize,
        scale: f32,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(self.draw(rows * cols, scale), [rows, cols]), device)
    }

    pub(crate) fn vector<B: Backend>(&mut self, n: usize, scale: f32, device: &B::Device) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(self.draw(n, scale), [n]), device)
    }

    pub(crate) fn embedding<B: Backend>(&mut self, rows: usize, cols: usize, device: &B::Device) -> Embedding<B> {
        Embedding {
            weight: Param::from_tensor(self.matrix(rows, cols, 1.0, device)),
        }
    }

    /// A linear layer with burn's `[in, out]` weight layout.
    pub(crate) fn linear<B: Backend>(
        &mut self,
        d_in: usize,
        d_out: usize,
        weight_scale: f32,
        bias_scale: Option<f32>,
        device: &B::Device,
    ) -> Linear<B> {
        let weight = Param::from_tensor(self.matrix(d_in, d_out, weight_scale, device));
        let bias = bias_scale.map(|s| Param::from_tensor(self.vector(d_out, s, device)));
        Linear { weight, bias }
    }
}
