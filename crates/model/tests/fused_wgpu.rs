//! The CubeCL kernels (`fused::cube`) on wgpu compute the same loss and gradients as the
//! ndarray kernels, for every model variant, and take no fallback. On a machine without a
//! GPU this runs on Mesa's lavapipe; it skips, saying so, only when adapter detection finds
//! no adapter at all, and fails even then when `MAKEMORE_REQUIRE_WGPU` is set (CI sets it).
#![cfg(feature = "wgpu")]
#![allow(clippy::unwrap_used)] // a test fails by panicking

use burn::backend::{Autodiff, NdArray, Wgpu};
use makemore_model::device::{wgpu_adapter, DeviceError};
use makemore_model::Kernels;

mod common;
use common::{loss_and_grads, variants};

/// True when there is an adapter; false (after saying so) when detection finds none.
fn have_adapter() -> bool {
    match wgpu_adapter() {
        Ok(name) => {
            eprintln!("wgpu adapter: {name}");
            true
        }
        Err(e @ DeviceError::NoWgpuAdapter { .. }) => {
            assert!(
                std::env::var_os("MAKEMORE_REQUIRE_WGPU").is_none(),
                "MAKEMORE_REQUIRE_WGPU is set but {e}"
            );
            common::skipped(&e.to_string());
            false
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn wgpu_kernels_match_ndarray_kernels() {
    if !have_adapter() {
        return;
    }
    let device = Default::default();
    for (config, dropout) in variants() {
        let config = config.with_kernels(Kernels::Fused);
        let cpu = config.init_mlp::<Autodiff<NdArray<f32>>>(&device_cpu());
        let gpu = config.init_mlp::<Autodiff<Wgpu>>(&device);
        let (lc, gc) = loss_and_grads(&cpu, config.block_size, dropout);
        let (lg, gg) = loss_and_grads(&gpu, config.block_size, dropout);
        // f32 on both sides, sums in different orders: a few parts in 10^5.
        let tol = 1e-4;
        assert!(
            (lc - lg).abs() <= tol * lc.abs(),
            "{config:?}: loss ndarray {lc}, wgpu {lg}"
        );
        assert_eq!(gc.len(), gg.len());
        for (i, (c, g)) in gc.iter().zip(&gg).enumerate() {
            let scale = c.iter().fold(0f64, |m, v| m.max(v.abs()));
            let diff = c.iter().zip(g).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= tol * scale,
                "{config:?}: parameter {i}: ndarray and wgpu gradients differ by {diff} (scale {scale})"
            );
        }
    }
    assert_eq!(
        makemore_model::fused::fallbacks(),
        0,
        "a fused kernel fell back to the generic path"
    );
}

#[test]
fn wgpu_kernels_match_wgpu_plain_path() {
    if !have_adapter() {
        return;
    }
    for (config, dropout) in variants() {
        common::compare::<Autodiff<Wgpu>>(config, dropout, 1e-4);
    }
    assert_eq!(
        makemore_model::fused::fallbacks(),
        0,
        "a fused kernel fell back to the generic path"
    );
}

fn device_cpu() -> burn::backend::ndarray::NdArrayDevice {
    burn::backend::ndarray::NdArrayDevice::Cpu
}

#[test]
fn wgpu_categorical_draws_are_the_host_draws_on_the_same_probabilities() {
    use burn::prelude::*;
    use burn::tensor::activation::softmax;
    if !have_adapter() {
        return;
    }
    // Softmax rows of 27 classes (peaked and flat) and uniforms over [0, 1), among them
    // values near 0 and near 1: the kernel against the generic body on ndarray.
    let (rows, classes) = (500, 27);
    let logits: Vec<f32> = (0..rows * classes)
        .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * (1 + i / classes % 7) as f32)
        .collect();
    let u: Vec<f32> = (0..rows)
        .map(|i| match i {
            0 => 0.0,
            1 => 0.999_999_94,
            _ => (i * 104_729 % 10_000) as f32 / 10_000.0,
        })
        .collect();
    // The same probabilities on both backends: softmax once (on ndarray), its f32 values
    // uploaded to the GPU as they are.
    let cpu_device = device_cpu();
    let l = Tensor::<NdArray, 2>::from_data(
        TensorData::new(logits.clone(), [rows, classes]),
        &cpu_device,
    );
    let probs: Vec<f32> = softmax(l, 1).into_data().to_vec().unwrap();
    let gpu_device = Default::default();
    let p =
        Tensor::<Wgpu, 2>::from_data(TensorData::new(probs.clone(), [rows, classes]), &gpu_device);
    let ug = Tensor::<Wgpu, 1>::from_data(TensorData::new(u.clone(), [rows]), &gpu_device);
    let gpu: Vec<i64> = makemore_model::fused::categorical(p, ug)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    let p = Tensor::<NdArray, 2>::from_data(TensorData::new(probs, [rows, classes]), &cpu_device);
    let uc = Tensor::<NdArray, 1>::from_data(TensorData::new(u.clone(), [rows]), &cpu_device);
    let cpu: Vec<i64> = makemore_model::fused::categorical(p, uc)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .unwrap();
    // The same f32 arithmetic (a running total, `u < p`, `u -= p`) on the same numbers: the
    // same character for every draw, boundaries included.
    assert_eq!(gpu, cpu);
    let distinct: std::collections::HashSet<_> = gpu.iter().collect();
    assert!(distinct.len() > 10, "{distinct:?}");
    assert_eq!(makemore_model::fused::fallbacks(), 0);
}
