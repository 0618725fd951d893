//! Host-side initial weights: the same numbers on every backend for a given seed.

use burn::module::{Param, ParamId, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig, Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Draws N(0, 1) × scale values in a fixed order from one seeded stream.
///
/// Parameters get sequential ids (1, 2, …) instead of random ones, so a model rebuilt from
/// the same config has the same ids, and optimiser state saved with one run (keyed by
/// parameter id) applies to the model of a resumed run.
pub(crate) struct NormalStream {
    rng: ChaCha8Rng,
    next_id: u64,
}

impl NormalStream {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_id: 0,
        }
    }

    fn param<B: Backend, const D: usize>(&mut self, value: Tensor<B, D>) -> Param<Tensor<B, D>> {
        self.next_id += 1;
        Param::initialized(ParamId::from(self.next_id), value.require_grad())
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
        Tensor::from_data(
            TensorData::new(self.draw(rows * cols, scale), [rows, cols]),
            device,
        )
    }

    pub(crate) fn vector<B: Backend>(
        &mut self,
        n: usize,
        scale: f32,
        device: &B::Device,
    ) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(self.draw(n, scale), [n]), device)
    }

    pub(crate) fn embedding<B: Backend>(
        &mut self,
        rows: usize,
        cols: usize,
        device: &B::Device,
    ) -> Embedding<B> {
        Embedding {
            weight: {
                let m = self.matrix(rows, cols, 1.0, device);
                self.param(m)
            },
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
        let weight = self.matrix(d_in, d_out, weight_scale, device);
        let weight = self.param(weight);
        let bias = bias_scale.map(|s| {
            let b = self.vector(d_out, s, device);
            self.param(b)
        });
        Linear { weight, bias }
    }

    fn draw_uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        use rand::Rng;
        (0..n)
            .map(|_| (self.rng.random::<f32>() * 2.0 - 1.0) * bound)
            .collect()
    }

    /// A linear layer as PyTorch's `nn.Linear` initialises one (what `makemore.py`'s models
    /// start from): weight and bias uniform in ±1/√fan_in; burn's `[in, out]` layout.
    pub(crate) fn torch_linear<B: Backend>(
        &mut self,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &B::Device,
    ) -> Linear<B> {
        let bound = 1.0 / (d_in as f32).sqrt();
        let w = self.draw_uniform(d_in * d_out, bound);
        let weight = self.param(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device));
        let bias = bias.then(|| {
            let b = self.draw_uniform(d_out, bound);
            self.param(Tensor::from_data(TensorData::new(b, [d_out]), device))
        });
        Linear { weight, bias }
    }

    /// A parameter of zeros (the RNN's learned start state); draws nothing.
    pub(crate) fn zeros<B: Backend, const D: usize>(
        &mut self,
        shape: [usize; D],
        device: &B::Device,
    ) -> Param<Tensor<B, D>> {
        self.param(Tensor::zeros(shape, device))
    }

    /// A layer norm (scale 1, shift 0) with sequential parameter ids; draws nothing.
    pub(crate) fn layer_norm<B: Backend>(&mut self, d: usize, device: &B::Device) -> LayerNorm<B> {
        let mut norm = LayerNormConfig::new(d).init(device);
        norm.gamma = self.param(Tensor::ones([d], device));
        norm.beta = Some(self.param(Tensor::zeros([d], device)));
        norm
    }

    /// A batch norm (scale 1, shift 0, running mean 0 and variance 1) with sequential ids
    /// for its parameters and running statistics; draws nothing.
    pub(crate) fn batch_norm<B: Backend>(&mut self, d: usize, device: &B::Device) -> BatchNorm<B> {
        let mut norm = BatchNormConfig::new(d).init(device);
        norm.gamma = self.param(Tensor::ones([d], device));
        norm.beta = self.param(Tensor::zeros([d], device));
        self.next_id += 1;
        norm.running_mean =
            RunningState::with_id(ParamId::from(self.next_id), Tensor::zeros([d], device));
        self.next_id += 1;
        norm.running_var =
            RunningState::with_id(ParamId::from(self.next_id), Tensor::ones([d], device));
        norm
    }
}
