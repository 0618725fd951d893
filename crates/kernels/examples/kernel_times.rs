//! Times CPU kernels on one thread at the record-sized Transformer's shapes
//! (`examples/configs/transformer-best.json`: batch 64, 16 positions, 128 channels, 4 heads):
//! one training step's dropout masks (1.44 M units), one layer's attention, forward and
//! backward, and one layer's four linear layers, forward and backward (through burn's
//! `Autodiff`, so their matrix products). For docs/performance.md:
//!
//! ```console
//! $ cargo run --release -p makemore-kernels --features ndarray --example kernel_times
//! $ MAKEMORE_SIMD=avx2 cargo run --release -p makemore-kernels --features ndarray --example kernel_times
//! ```
//!
//! (the second is what a CPU without AVX-512 runs: the masks' words come from the
//! generator, and the matrix products are matrixmultiply's, which packs its operands).

use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use makemore_kernels::kernels::{attention, attention_backward, AttentionShape};
use makemore_kernels::mask::dropout_mask;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Milliseconds per call of `f`, the best of five rounds of `reps` calls.
fn time(reps: u32, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                f();
            }
            start.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let pool = match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool,
        Err(e) => return eprintln!("error: a thread pool: {e}"),
    };
    pool.install(|| {
        // One step's masks: the embeddings, then per layer the attention weights and the
        // two residual branches.
        let (rows, c, heads, t, batch) = (64 * 16, 128, 4, 16, 64);
        let sizes = [rows * c]
            .into_iter()
            .chain((0..4).flat_map(|_| [batch * heads * t * t, rows * c, rows * c]));
        let sizes: Vec<usize> = sizes.collect();
        let units: usize = sizes.iter().sum();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let masks = time(20, || {
            for &n in &sizes {
                std::hint::black_box(dropout_mask(&mut rng, n, 0.68));
            }
        });
        println!("dropout masks of one step ({units} units): {masks:.3} ms");

        let s = AttentionShape { batch, t, c, heads };
        let value = |i: usize, m: usize| ((i * 7919) % m) as f32 / m as f32 - 0.5;
        let qkv: Vec<f32> = (0..rows * 3 * c).map(|i| value(i, 1000)).collect();
        let dy: Vec<f32> = (0..rows * c).map(|i| value(i, 997)).collect();
        let mask = dropout_mask(&mut rng, batch * heads * t * t, 0.68);
        let (mut y, mut dqkv) = (vec![0.0; rows * c], vec![0.0; rows * 3 * c]);
        let mut probs = vec![0.0; batch * heads * t * t];
        let forward = time(100, || attention(&qkv, s, Some(&mask), &mut y, &mut probs));
        let backward = time(100, || {
            attention_backward(&qkv, &probs, Some(&mask), &dy, s, &mut dqkv)
        });
        println!("attention of one layer: forward {forward:.3} ms, backward {backward:.3} ms");

        // The block's linear layers: q, k and v (128 → 384), the attention's projection
        // (128 → 128), the MLP's two layers (128 → 512 → 128).
        type B = Autodiff<NdArray>;
        let device = Default::default();
        let tensor = |rows: usize, cols: usize, m: usize| {
            let values: Vec<f32> = (0..rows * cols).map(|i| value(i, m) * 0.2).collect();
            Tensor::<B, 2>::from_data(TensorData::new(values, [rows, cols]), &device)
        };
        let layers: Vec<_> = [(c, 3 * c), (c, c), (c, 4 * c), (4 * c, c)]
            .into_iter()
            .map(|(fan_in, fan_out)| {
                let w = tensor(fan_in, fan_out, 991).require_grad();
                let b = Tensor::<B, 1>::zeros([fan_out], &device).require_grad();
                (tensor(rows, fan_in, 983).require_grad(), w, b)
            })
            .collect();
        let forward = time(20, || {
            for (x, w, b) in &layers {
                std::hint::black_box(makemore_kernels::linear(x.clone(), w.clone(), b.clone(), false));
            }
        });
        let both = time(20, || {
            for (x, w, b) in &layers {
                let y = makemore_kernels::linear(x.clone(), w.clone(), b.clone(), false);
                std::hint::black_box(y.sum().backward());
            }
        });
        println!("linear layers of one layer: forward {forward:.3} ms, forward and backward {both:.3} ms");
    });
}
