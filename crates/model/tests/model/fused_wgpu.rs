//! The CubeCL kernels (`fused::cube`) on wgpu compute the same loss and gradients as the
//! ndarray kernels, for every model variant, and take no fallback. On a machine without a
//! GPU this runs on Mesa's lavapipe; it skips, saying so, only when adapter detection finds
//! no adapter at all, and fails even then when `MAKEMORE_REQUIRE_WGPU` is set (CI sets it).
#![cfg(feature = "wgpu")]
#![allow(clippy::unwrap_used)] // a test fails by panicking

use burn::backend::{Autodiff, NdArray, Wgpu};
use makemore_model::device::{wgpu_adapter, DeviceError};
use makemore_model::Kernels;

use crate::common;
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

/// Dropout masks drawn on the device are the host's: the ChaCha8 stream of the step's seed,
/// the same keep test, from any place in the stream (the high word of the position too).
#[test]
fn wgpu_dropout_masks_are_the_host_masks() {
    use burn::prelude::*;
    use burn::tensor::TensorPrimitive;
    use makemore_model::dropout::{chacha8_key, dropout_mask_at};
    use makemore_model::SamplingOps;
    if !have_adapter() {
        return;
    }
    let device = Default::default();
    for (seed, start, n, keep) in [
        (1u64, 0u64, 1000usize, 0.8),
        (7, 74, 33_333, 0.5),
        (2_147_483_647, (1u64 << 33) + 6, 4097, 0.9),
        (3, (1u64 << 32) - 8, 64, 0.75),
    ] {
        let key = chacha8_key(seed);
        let mask = <Wgpu as SamplingOps>::fused_dropout_mask(
            burn::tensor::Shape::new([n]),
            key,
            start,
            keep,
            &device,
        );
        let gpu: Vec<f32> = Tensor::<Wgpu, 1>::from_primitive(TensorPrimitive::Float(mask))
            .into_data()
            .to_vec()
            .unwrap();
        let host = dropout_mask_at(&key, start, n, keep);
        let differ: Vec<usize> = (0..n).filter(|&i| gpu[i] != host[i]).collect();
        assert!(
            differ.is_empty(),
            "seed {seed}, start {start}, {n} units, keep {keep}: {} differ, first {:?}",
            differ.len(),
            &differ[..differ.len().min(20)]
        );
        let kept = host.iter().filter(|&&m| m > 0.0).count() as f64 / n as f64;
        assert!((kept - keep).abs() < 0.1, "{kept}");
    }
}

/// AdamW's one-pass kernel on wgpu updates weights and moments as ndarray's (burn's
/// operations, bit for bit there) does, over several steps, with and without weight decay:
/// to f32 rounding (a GPU may contract a product and a sum into one fused multiply-add).
#[test]
fn wgpu_adamw_kernel_matches_ndarray() {
    use burn::prelude::*;
    use makemore_model::{AdamWStep, FusedOps};
    if !have_adapter() {
        return;
    }
    fn run<B: FusedOps>(device: &B::Device, weight_decay: f32) -> Vec<Vec<f32>> {
        let n = 1000;
        let values = |k: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 37 + k * 11) % 101) as f32 / 50.0 - 1.0)
                .collect()
        };
        let tensor =
            |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [n / 10, 10]), device);
        let mut w = tensor(values(0));
        let mut moments = None;
        let mut out = Vec::new();
        for time in 1..=4u64 {
            let g = tensor(values(time as usize));
            let step = AdamWStep {
                lr: 0.01,
                time,
                beta_1: 0.9,
                beta_2: 0.99,
                epsilon: 1e-8,
                weight_decay,
            };
            let [w2, m, v] = B::fused_adamw(w, g, moments, step);
            for t in [&w2, &m, &v] {
                out.push(t.clone().into_data().to_vec::<f32>().unwrap());
            }
            w = w2;
            moments = Some((m, v));
        }
        out
    }
    for weight_decay in [0.0, 0.1] {
        let cpu = run::<NdArray<f32>>(&Default::default(), weight_decay);
        let gpu = run::<Wgpu>(&Default::default(), weight_decay);
        for (k, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6 * x.abs().max(1e-3),
                    "weight decay {weight_decay}, tensor {k}, element {i}: ndarray {x}, wgpu {y}"
                );
            }
        }
    }
    assert_eq!(makemore_model::fused::fallbacks(), 0);
}
