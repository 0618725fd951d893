//! The sequence models (RNN, GRU, bag of words, Transformer, with dropout) in `f64` through
//! the trait's default bodies and the hand-written backward passes: the gradient that
//! autodiff gives equals the loss's finite difference along random directions.
//!
//! In the `f64` test binary: burn keeps the default float dtype per device for the whole process,
//! so `f64` tensors on the ndarray CPU device are `f64` only where no `f32` test ran first.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use makemore_model::{DropoutStep, Model, ModelConfig, ModelKind};

type A = Autodiff<NdArray<f64>>;

/// A deterministic direction per parameter, scaled by `eps`, added to the model.
struct Shift {
    eps: f64,
    index: usize,
}

fn direction(i: usize, n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| (((i * 31 + k) * 2_654_435_761) % 1000) as f64 / 500.0 - 1.0)
        .collect()
}

impl<B: Backend> ModuleMapper<B> for Shift {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let d = direction(self.index, shape.num_elements());
        self.index += 1;
        let device = tensor.device();
        let d = Tensor::<B, 1>::from_data(TensorData::new(d, [shape.num_elements()]), &device)
            .reshape(shape.dims::<D>());
        Param::from_mapped_value(id, tensor + d * self.eps, mapper)
    }
}

/// `Σ grad · direction` over every parameter.
struct Dot<'a> {
    grads: &'a GradientsParams,
    index: usize,
    sum: f64,
}

impl ModuleVisitor<A> for Dot<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let n = param.shape().num_elements();
        let d = direction(self.index, n);
        self.index += 1;
        if let Some(g) = self.grads.get::<NdArray<f64>, D>(param.id) {
            let g: Vec<f64> = g.into_data().convert::<f64>().to_vec().unwrap();
            self.sum += g.iter().zip(&d).map(|(a, b)| a * b).sum::<f64>();
        }
    }
}

fn loss<B: makemore_model::FusedOps>(
    model: &Model<B>,
    dropout: Option<DropoutStep>,
) -> Tensor<B, 1> {
    let device = Default::default();
    // Three words of up to 4 characters in sequences of 5, makemore.py's layout.
    let x: Vec<i64> = vec![0, 1, 2, 3, 0, 0, 4, 4, 0, 0, 0, 2, 5, 6, 1];
    let y: Vec<i64> = vec![1, 2, 3, 0, 4, 4, 0, 2, 5, 6, 1, 0];
    let positions: Vec<i64> = vec![0, 1, 2, 3, 5, 6, 7, 10, 11, 12, 13, 14];
    let x = Tensor::<B, 2, Int>::from_data(TensorData::new(x, [3, 5]), &device);
    let y = Tensor::<B, 1, Int>::from_data(TensorData::new(y, [12]), &device);
    let p = Tensor::<B, 1, Int>::from_data(TensorData::new(positions, [12]), &device);
    model.loss(model.forward_train(x, dropout).select(0, p), y)
}

#[test]
fn sequence_model_gradients_match_finite_differences() {
    for kind in [
        ModelKind::Rnn,
        ModelKind::Gru,
        ModelKind::Bow,
        ModelKind::Transformer,
    ] {
        for dropout in [None, Some(DropoutStep { p: 0.25, seed: 5 })] {
            let mut config = ModelConfig::new(7, 5)
                .with_kind(kind)
                .with_n_embd(8)
                .with_n_hidden(6)
                .with_n_layers(if kind == ModelKind::Transformer { 2 } else { 1 })
                .with_n_head(2);
            // The sizes above that the kind does not use go back to their defaults.
            config.clear_unused();
            config.validate().unwrap();
            let model = config.init::<A>(&Default::default());
            let l = loss(&model, dropout);
            let grads = GradientsParams::from_grads(l.backward(), &model);
            let mut dot = Dot {
                grads: &grads,
                index: 0,
                sum: 0.0,
            };
            model.visit(&mut dot);
            let eps = 1e-6;
            let at = |e: f64| {
                let shifted = model.clone().valid().map(&mut Shift { eps: e, index: 0 });
                let l: f64 = loss(&shifted, dropout).into_scalar().elem();
                l
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            assert!(
                (dot.sum - numeric).abs() < 1e-6 * numeric.abs().max(1.0),
                "{kind:?} dropout {dropout:?}: autodiff {} vs finite difference {numeric}",
                dot.sum
            );
            assert!(dot.sum.abs() > 1e-3, "{kind:?}: a vacuous gradient");
        }
    }
}
