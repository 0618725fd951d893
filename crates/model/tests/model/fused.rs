//! The fused path and the plain path compute the same loss and the same gradients with the
//! ndarray backend's own `f32` kernels, for every model variant (`fused_generic.rs` checks
//! the generic implementation).

#![allow(clippy::unwrap_used)] // a test fails by panicking

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::prelude::*;
use makemore_model::{DropoutStep, Kernels, ModelConfig, NormKind};

use crate::common;
use common::{compare, variants};

#[test]
fn ndarray_f32_kernels_match_the_plain_path() {
    for (config, dropout) in variants() {
        // f32: tanh within a few ulps, so agreement to a few parts in a million.
        compare::<Autodiff<NdArray<f32>>>(config, dropout, 2e-5);
    }
    // Every fused operation took its kernel: the comparison above compared kernels, not the
    // generic bodies with themselves.
    assert_eq!(makemore_model::fused::fallbacks(), 0);
}

#[test]
fn fused_model_evaluates_like_the_plain_one_without_gradients() {
    let device = Default::default();
    let config = ModelConfig::new(27, 3);
    let plain = config
        .clone()
        .with_kernels(Kernels::Plain)
        .init_mlp::<NdArray<f32>>(&device);
    let fused = config
        .with_kernels(Kernels::Fused)
        .init_mlp::<NdArray<f32>>(&device);
    assert_eq!(plain.num_params(), fused.num_params());
    let contexts = Tensor::<NdArray<f32>, 2, Int>::from_data(
        TensorData::new(
            (0..300i64).map(|i| (i * 13) % 27).collect::<Vec<_>>(),
            [100, 3],
        ),
        &device,
    );
    let targets = Tensor::<NdArray<f32>, 1, Int>::from_data(
        TensorData::new((0..100i64).map(|i| (i * 5) % 27).collect::<Vec<_>>(), [100]),
        &device,
    );
    let a: f32 = plain
        .loss(plain.forward(contexts.clone()), targets.clone())
        .into_scalar();
    let b: f32 = fused.loss(fused.forward(contexts), targets).into_scalar();
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn ndarray_f32_runs_the_fused_kernel_not_burns_tanh() {
    let device = Default::default();
    let xs: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) * 0.0037).collect();
    let x = Tensor::<NdArray<f32>, 1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device);
    let fused = makemore_model::fused::tanh(x.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let plain = x.tanh().into_data().to_vec::<f32>().unwrap();
    let kernel: Vec<f32> = xs
        .iter()
        .map(|&v| makemore_model::fused::kernels::tanh(v))
        .collect();
    assert_eq!(fused, kernel);
    // The two differ in the last bits somewhere, so the comparisons above are not vacuous.
    assert_ne!(fused, plain);
}

#[test]
fn threaded_training_steps_are_deterministic_whatever_the_threads() {
    use makemore_model::fused::kernels::PARALLEL_MIN;
    // A batch large enough that every split happens: the matrix products (cut by rows or
    // columns into one product per thread), the element-wise kernels, the cross-entropy's
    // rows, the bias gradients' column sums and the dropout masks (drawn in pieces). Every
    // value must come out the same as on one thread, run after run, for an even and an odd
    // number of threads. Two hidden layers with LayerNorm and dropout, as the wide model.
    let (rows, hidden) = (2048, 128);
    assert!(rows * hidden > PARALLEL_MIN);
    let config = ModelConfig::new(27, 3)
        .with_n_hidden(hidden)
        .with_n_layers(2)
        .with_norm(NormKind::Layer)
        .with_dropout(0.2);
    let model = config.init_mlp::<Autodiff<NdArray<f32>>>(&Default::default());
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            assert_eq!(rayon::current_num_threads(), threads);
            let dropout = Some(DropoutStep { p: 0.2, seed: 7 });
            common::batch_loss_and_grads(&model, 3, rows, dropout)
        })
    };
    let one = on(1);
    let (two, two_again) = (on(2), on(2));
    assert_eq!(two, two_again, "two runs on two threads");
    assert_eq!(one, two, "one thread against two");
    assert_eq!(one, on(3), "one thread against three");
    assert_eq!(makemore_model::fused::fallbacks(), 0);
}
