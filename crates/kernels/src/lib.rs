//! How each of burn's backends computes makemore's models: the fused operations, burn's
//! backend-extension pattern for the places where a training step spends its time (the
//! embedding lookup, each linear layer with its tanh, LayerNorm with and without tanh, GELU,
//! causal attention, a whole RNN or GRU recurrence, the cross-entropy, AdamW's update,
//! dropout masks and sampling's categorical draw). `makemore-model` (what the models are)
//! sits above this crate, as burn's `burn-nn` sits above its backend crates.
//!
//! [`FusedOps`] is a [`Backend`] extension trait made of one trait per family of operations:
//! [`LinearOps`] (embedding, linear layers, tanh, GELU), [`NormOps`] (LayerNorm),
//! [`AttentionOps`] (causal softmax and attention), [`RecurrenceOps`] (RNN and GRU),
//! [`LossOps`] (cross-entropy), [`OptimizerOps`] (AdamW), [`SamplingOps`] (categorical
//! draws, dropout masks) and [`DeviceOps`]. Their default methods compose burn's own tensor
//! operations, so every backend gets a correct implementation for free
//! ([`default_fused_ops!`]). burn's CubeCL
//! backends (wgpu, CUDA) override some with CubeCL kernels (`cube.rs`, with the
//! `wgpu`/`cuda` features). The ndarray CPU backend overrides them with single-pass `f32` kernels
//! (`kernels.rs`: a vectorisable rational `tanh`, a softmax cross-entropy that keeps its
//! probabilities for the backward pass, LayerNorm over each row in one pass), and
//! `Autodiff<B>` overrides them with hand-written backward passes that use the saved outputs
//! (`1 − y²` for tanh, `softmax − onehot` for the loss, LayerNorm's textbook gradient from
//! the normalised rows) instead of burn's generic ones, which recompute tanh and go through
//! many element-wise operations for the loss and for LayerNorm.
//!
//! Which path a model takes is [`Kernels`] in its config. The fused path computes the same
//! function to within `f32` rounding (tested against the plain path, loss and gradients, in
//! makemore-model's `tests/model/fused.rs`), but not bit for bit: a run trained with one is
//! not resumed with the other.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//!
//! let device = Default::default();
//! let x = Tensor::<NdArray, 2>::from_floats([[0.0, 1.0], [-1.0, 20.0]], &device);
//! let y = makemore_kernels::tanh(x).into_data().to_vec::<f32>().unwrap();
//! assert_eq!(y[0], 0.0);
//! assert!((y[1] - 1f32.tanh()).abs() < 1e-6 && y[3] == 1.0);
//! ```

mod autodiff;
#[cfg(feature = "ndarray")]
mod buffer;
#[cfg(feature = "cubecl")]
mod cube;
#[cfg(feature = "cubecl")]
mod fusion;
#[cfg(feature = "ndarray")]
mod gemm;
#[cfg(feature = "ndarray")]
pub mod kernels;
pub mod mask;
#[cfg(feature = "ndarray")]
mod ndarray;
pub mod recurrence;
#[cfg(feature = "ndarray")]
mod recurrence_cpu;
mod simd;

/// A rayon pool of `threads` threads, for the CPU kernels' tests that a result does not
/// depend on the thread count.
#[cfg(all(test, feature = "ndarray"))]
pub(crate) fn test_pool(threads: usize) -> rayon::ThreadPool {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool,
        Err(e) => panic!("a pool of {threads} threads: {e}"),
    }
}

pub use recurrence::{recurrence, CellKind, RecurrenceShape};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// burn-flex gets burn's own operations for every fused one: it is here to be measured
// (`cargo run --release -p makemore-train --example cpu_backends --features flex`).
#[cfg(feature = "flex")]
default_fused_ops!(burn::backend::Flex);

use burn::config::Config;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::TensorPrimitive;
use std::sync::atomic::{AtomicU64, Ordering};

static FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// How many times, in this process, a backend's fused kernel was handed inputs it does not
/// take (another dtype, an unexpected shape) and used the generic body instead. Tests assert
/// that it stays at zero, so that a comparison of fused against plain really compares the
/// kernels.
pub fn fallbacks() -> u64 {
    FALLBACKS.load(Ordering::Relaxed)
}

/// Records one fallback (see [`fallbacks`]).
#[allow(dead_code)] // only backends with kernels of their own fall back
pub(crate) fn count_fallback() {
    FALLBACKS.fetch_add(1, Ordering::Relaxed);
}

/// Which implementation of tanh and the loss a model uses.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// burn's generic operations, exactly as every backend computes them (`tanh` in the
    /// backend, cross-entropy as `log_softmax` + gather + mean). Checkpoints written before
    /// fused kernels existed use this.
    Plain,
    /// [`FusedOps`]: single-pass kernels with hand-written backward passes where the backend
    /// has them (ndarray), the plain operations elsewhere.
    Fused,
}

/// The settings of one AdamW update ([`OptimizerOps::fused_adamw`]): burn's `AdamW` with its
/// defaults, whose arithmetic the update repeats operation by operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub lr: f64,
    /// Steps taken, this one included (1 on the first).
    pub time: u64,
    /// Decay of the first moment (0.9).
    pub beta_1: f32,
    /// Decay of the second moment (0.999).
    pub beta_2: f32,
    /// Added to the second moment's square root (1e-5).
    pub epsilon: f32,
    /// Decoupled weight decay, as a fraction of the learning rate.
    pub weight_decay: f32,
}

impl AdamWStep {
    /// The bias corrections `1 - beta_1^t` and `1 - beta_2^t`, in `f32` as burn's AdamW
    /// computes them (`powi`). Past `i32::MAX` steps (where `powi` stops) both powers are
    /// long since 0 in `f32` (`0.999^t` is by t = 110,000), so the count saturates there
    /// instead of wrapping to a negative power.
    pub fn bias_corrections(&self) -> (f32, f32) {
        let t = i32::try_from(self.time).unwrap_or(i32::MAX);
        (1f32 - self.beta_1.powi(t), 1f32 - self.beta_2.powi(t))
    }
}

/// A [`Backend`] with every family of makemore's fused operations ([`DeviceOps`],
/// [`LinearOps`], [`NormOps`], [`AttentionOps`], [`RecurrenceOps`], [`LossOps`],
/// [`OptimizerOps`], [`SamplingOps`]); implemented for every backend that implements them
/// all. Models and the trainer are generic over `B: FusedOps`.
///
/// Every method has a default built from burn's operations, so
/// [`default_fused_ops!(MyBackend)`](default_fused_ops) (each family's `impl … for MyBackend {}`)
/// is a complete implementation.
pub trait FusedOps:
    DeviceOps
    + LinearOps
    + NormOps
    + AttentionOps
    + RecurrenceOps
    + LossOps
    + OptimizerOps
    + SamplingOps
{
}

impl<B> FusedOps for B where
    B: DeviceOps
        + LinearOps
        + NormOps
        + AttentionOps
        + RecurrenceOps
        + LossOps
        + OptimizerOps
        + SamplingOps
{
}

/// Implements every family of [`FusedOps`] for a backend type with the default bodies (burn's
/// operations): `makemore_kernels::default_fused_ops!(MyBackend);`.
#[macro_export]
macro_rules! default_fused_ops {
    ($backend:ty) => {
        impl $crate::DeviceOps for $backend {}
        impl $crate::LinearOps for $backend {}
        impl $crate::NormOps for $backend {}
        impl $crate::AttentionOps for $backend {}
        impl $crate::RecurrenceOps for $backend {}
        impl $crate::LossOps for $backend {}
        impl $crate::OptimizerOps for $backend {}
        impl $crate::SamplingOps for $backend {}
    };
}

/// What kind of device a backend computes on.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait DeviceOps: Backend {
    /// True for backends on an accelerator (the GPU ones): kernels are compiled per shape
    /// and queued asynchronously, and reading a result back waits for the device. Callers
    /// then keep shapes fixed from call to call (sampling runs every row until the last word
    /// ends) and read results in blocks (the trainer's losses) rather than one at a time.
    fn is_accelerator() -> bool {
        false
    }
}

/// Linear layers and activations: the embedding lookup, `x·W + b` (with tanh), tanh and GELU, with their backward passes.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait LinearOps: Backend {
    /// Element-wise tanh.
    fn fused_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_tanh(x)
    }

    /// The gradient of tanh from its output: `grad · (1 − y²)`.
    fn fused_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        plain::tanh_backward::<Self>(y, grad)
    }

    /// The embeddings of each context, concatenated: `table` `[vocab, dim]`, `contexts`
    /// `[rows, block]` → `[rows, block · dim]`.
    fn fused_embedding(table: FloatTensor<Self>, contexts: IntTensor<Self>) -> FloatTensor<Self> {
        plain::embedding::<Self>(table, contexts)
    }

    /// Gradient of [`LinearOps::fused_embedding`] with respect to the table, `[vocab, dim]`:
    /// each row of `grad` `[rows, block · dim]` added back to the rows it was read from.
    fn fused_embedding_backward(
        contexts: IntTensor<Self>,
        grad: FloatTensor<Self>,
        vocab: usize,
    ) -> FloatTensor<Self> {
        plain::embedding_backward::<Self>(contexts, grad, vocab)
    }

    /// A linear layer `x·W + b`, followed by tanh when `tanh`: `x` `[rows, in]`, `w` `[in, out]`
    /// (burn's `Linear` layout), `b` `[out]`.
    fn fused_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        tanh: bool,
    ) -> FloatTensor<Self> {
        plain::linear::<Self>(x, w, b, tanh)
    }

    /// Gradients `[dx, dw, db]` of [`LinearOps::fused_linear`] from the gradient `grad` at its
    /// output; `y` is that output when the layer ends in tanh.
    fn fused_linear_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        y: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        plain::linear_backward::<Self>(x, w, y, grad)
    }

    /// GPT-2's GELU, element-wise: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))` (what
    /// `makemore.py`'s `NewGELU` and burn's `gelu_approximate` compute).
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        plain::gelu::<Self>(x)
    }

    /// The gradient of [`LinearOps::fused_gelu`] at its input `x`: with `t = tanh(u)`,
    /// `u = k (x + 0.044715 x³)`, `grad · (0.5 (1 + t) + 0.5 x (1 − t²) k (1 + 3 · 0.044715 x²))`.
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        plain::gelu_backward::<Self>(x, grad)
    }
}

/// LayerNorm, alone and followed by tanh, with its backward pass.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait NormOps: LinearOps {
    /// LayerNorm over each row of `x` `[rows, cols]` with scale `gamma` and shift `beta`
    /// (`[cols]`), then tanh: `tanh(γ · (x − mean) / √(var + ε) + β)`, the variance biased,
    /// as burn's `LayerNorm`. Returns the output `y` and what
    /// [`NormOps::fused_layer_norm_tanh_backward`] needs besides it: the normalised rows
    /// `x̂` `[rows, cols]` and each row's `1 / √(var + ε)` `[rows, 1]`.
    fn fused_layer_norm_tanh(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        plain::layer_norm_tanh::<Self>(x, gamma, beta, epsilon)
    }

    /// Gradients `[dx, dγ, dβ]` of [`NormOps::fused_layer_norm_tanh`] from the gradient
    /// `grad` at its output `y`, given what the forward pass returned: with
    /// `dz = grad · (1 − y²)` and `d = dz · γ`, `dx = (d − mean(d) − x̂ · mean(d · x̂)) / √(var + ε)`
    /// row by row, `dγ = Σ_rows dz · x̂`, `dβ = Σ_rows dz`.
    fn fused_layer_norm_tanh_backward(
        x_hat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        plain::layer_norm_tanh_backward::<Self>(x_hat, rstd, gamma, y, grad)
    }

    /// LayerNorm over each row of `x` `[rows, cols]` (no tanh): `[y, x̂, 1/√(var + ε)]` as
    /// [`NormOps::fused_layer_norm_tanh`] returns them.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        plain::layer_norm::<Self>(x, gamma, beta, epsilon)
    }

    /// Gradients `[dx, dγ, dβ]` of [`NormOps::fused_layer_norm`]: those of
    /// [`NormOps::fused_layer_norm_tanh_backward`] with `dz = grad`.
    fn fused_layer_norm_backward(
        x_hat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        plain::layer_norm_backward::<Self>(x_hat, rstd, gamma, grad)
    }
}

/// Causal self-attention: the causal softmax, and whole multi-head attention (scores, mask, softmax and the product with V), with their backward passes.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait AttentionOps: Backend {
    /// Causal softmax over the last dimension of square attention scores `[.., t, t]`:
    /// row `i` is `softmax(scale · x[i, 0..=i])`, and 0 after position `i`.
    fn fused_causal_softmax(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        plain::causal_softmax::<Self>(x, scale)
    }

    /// The gradient of [`AttentionOps::fused_causal_softmax`] from its output `y`:
    /// `scale · y · (grad − Σ_j grad_j y_j)` row by row.
    fn fused_causal_softmax_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        plain::causal_softmax_backward::<Self>(y, grad, scale)
    }

    /// Causal multi-head self-attention (GPT-2's): `qkv` `[batch · t, 3c]` holds q, k and v
    /// of every position side by side, `n_head` heads of `c / n_head` each. Returns
    /// `[y [batch · t, c], probs [batch · n_head · t, t]]`: the heads' outputs side by side,
    /// and the attention weights (causal softmax of `q·k / √head`) that the backward pass
    /// reuses. `mask`, `[batch · n_head · t, t]`, multiplies the weights (dropout, scaled).
    fn fused_attention(
        qkv: FloatTensor<Self>,
        batch: usize,
        n_head: usize,
        mask: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 2] {
        plain::attention::<Self>(qkv, batch, n_head, mask)
    }

    /// The gradient at `qkv` of [`AttentionOps::fused_attention`] from the gradient `grad` at
    /// its output, given its saved weights.
    fn fused_attention_backward(
        qkv: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        mask: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
        batch: usize,
        n_head: usize,
    ) -> FloatTensor<Self> {
        plain::attention_backward::<Self>(qkv, probs, mask, grad, batch, n_head)
    }

    /// The running mean over each sequence's positions (`makemore.py`'s causal bag of
    /// words): `x` `[sequences · t, c]`, and row `i` of a sequence becomes the mean of its
    /// rows `0..=i`, summed in order and then scaled by `1 / (i + 1)`.
    fn fused_causal_mean(x: FloatTensor<Self>, t: usize) -> FloatTensor<Self> {
        plain::causal_mean::<Self>(x, t)
    }

    /// The gradient of [`AttentionOps::fused_causal_mean`]: row `j` of a sequence gets
    /// `Σ_{i ≥ j} grad_i / (i + 1)`, summed from the last position back.
    fn fused_causal_mean_backward(grad: FloatTensor<Self>, t: usize) -> FloatTensor<Self> {
        plain::causal_mean_backward::<Self>(grad, t)
    }
}

/// A whole RNN or GRU recurrence over a batch of sequences, with its backward pass.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait RecurrenceOps: Backend {
    /// A whole recurrence ([`recurrence`](mod@recurrence)): `[hidden [batch · t, h], gates]`,
    /// the state after every position and what the backward pass reuses (the GRU's `z`, `r`
    /// and `hbar` of every position, `[batch · t, 3h]`; nothing for the RNN). `None` (the
    /// default) where the backend has no kernel for it: the model then runs the cell a step
    /// at a time through burn's operations, which `Autodiff` differentiates itself.
    fn fused_recurrence(
        shape: RecurrenceShape,
        x: FloatTensor<Self>,
        start: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> Option<[FloatTensor<Self>; 2]> {
        let _ = (shape, x, start, w, b);
        None
    }

    /// The gradients `[dx, dstart, dw, db]` of [`RecurrenceOps::fused_recurrence`] from the
    /// gradient `grad` at its hidden states, given what the forward pass returned.
    #[allow(clippy::too_many_arguments)]
    fn fused_recurrence_backward(
        shape: RecurrenceShape,
        x: FloatTensor<Self>,
        start: FloatTensor<Self>,
        w: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 4] {
        recurrence::backward::<Self>(shape, x, start, w, hidden, gates, grad)
    }
}

/// The cross-entropy loss, with what its backward pass needs.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait LossOps: Backend {
    /// Mean cross-entropy of `logits` `[rows, classes]` against `targets` `[rows]`, and what
    /// [`LossOps::fused_cross_entropy_backward`] needs, `[rows, classes]`: the softmax
    /// probabilities in the default bodies; a backend that overrides both may save something
    /// else (the CubeCL kernels save the gradient itself).
    fn fused_cross_entropy_forward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        plain::cross_entropy_forward::<Self>(logits, targets)
    }

    /// Gradient of the mean cross-entropy with respect to the logits, given what
    /// [`LossOps::fused_cross_entropy_forward`] saved (the probabilities, in the default
    /// bodies) and the gradient `grad` (`[1]`) arriving at the loss:
    /// `(probs − onehot(targets)) · grad / rows`.
    fn fused_cross_entropy_backward(
        probs: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        plain::cross_entropy_backward::<Self>(probs, targets, grad)
    }

    /// Mean cross-entropy of `logits` against `targets`, `[1]`.
    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::fused_cross_entropy_forward(logits, targets).0
    }
}

/// AdamW's update of one parameter tensor.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait OptimizerOps: Backend {
    /// One AdamW update of a parameter `w` with gradient `g` and moments `(m, v)` (`None` on
    /// the first step): the new `[w, m, v]`. The default body is burn 0.21's `AdamW` step,
    /// tensor operation for tensor operation; a backend's own kernel must give the same bits,
    /// so that runs with AdamW keep their published losses and resume from older checkpoints.
    fn fused_adamw<const D: usize>(
        w: Tensor<Self, D>,
        g: Tensor<Self, D>,
        moments: Option<(Tensor<Self, D>, Tensor<Self, D>)>,
        step: AdamWStep,
    ) -> [Tensor<Self, D>; 3] {
        plain::adamw(w, g, moments, step)
    }
}

/// Random draws on the device: sampling's categorical draw and dropout masks.
///
/// One family of [`FusedOps`]; every method has a default body built from burn's
/// operations.
pub trait SamplingOps: Backend {
    /// One categorical draw per row of `probs` `[rows, classes]` with the uniform `u`
    /// `[rows]` (in `[0, 1)`), `[rows]`: scaled by the row's total (summed in order), `u` is
    /// compared with `p_0`, `p_1`, … and lowered by each in turn (`u < p_i` picks `i`, else
    /// `u −= p_i`); the last class when none is picked. The arithmetic of the host's draw
    /// in sampling, so that the same probabilities and uniforms give the same characters.
    fn fused_categorical(probs: FloatTensor<Self>, u: FloatTensor<Self>) -> IntTensor<Self> {
        plain::categorical::<Self>(probs, u)
    }

    /// An inverted-dropout mask of `shape`: unit `i` keeps `1 / keep` when the 64-bit draw
    /// made of words `start + 2i` and `start + 2i + 1` of the ChaCha8 stream of `key` is
    /// below `keep` (as `x >> 11 < ⌈keep · 2⁵³⌉`), else 0. The same numbers the CPU draws from
    /// its generator; the default body computes them on the host and uploads them, a GPU
    /// backend computes them on the device.
    fn fused_dropout_mask(
        shape: burn::tensor::Shape,
        key: [u32; 8],
        start: u64,
        keep: f64,
        device: &burn::tensor::Device<Self>,
    ) -> FloatTensor<Self> {
        let n = shape.num_elements();
        let mask = crate::mask::dropout_mask_at(&key, start, n, keep);
        let mask = TensorData::new(mask, shape).convert::<Self::FloatElem>();
        Self::float_from_data(mask, device)
    }
}

/// An autodiff backend whose inner (no-gradient) backend has [`FusedOps`] too: what training
/// needs, since evaluation runs on the inner backend.
pub trait FusedAutodiff: AutodiffBackend<InnerBackend: FusedOps> + FusedOps {}

impl<B> FusedAutodiff for B
where
    B: AutodiffBackend + FusedOps,
    B::InnerBackend: FusedOps,
{
}

/// A float primitive as a tensor of rank `D`.
fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// tanh of a tensor through [`LinearOps::fused_tanh`].
pub fn tanh<B: FusedOps, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    float(B::fused_tanh(x.into_primitive().tensor()))
}

/// The concatenated embeddings of each context through [`LinearOps::fused_embedding`].
///
/// # Shapes
/// - `table`: `[vocab, dim]`, `contexts`: `[rows, block]`
/// - returns: `[rows, block · dim]`
pub fn embedding<B: FusedOps>(table: Tensor<B, 2>, contexts: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    float(B::fused_embedding(
        table.into_primitive().tensor(),
        contexts.into_primitive(),
    ))
}

/// The rows `rows` of `x`, in that order (burn's `select` on the first dimension), through
/// [`LinearOps::fused_embedding`]: one gather forward and one scatter-add backward, where
/// burn's generic `select` goes value by value.
///
/// # Shapes
/// - `x`: `[n, c]`, `rows`: `[m]`
/// - returns: `[m, c]`
pub fn gather_rows<B: FusedOps>(x: Tensor<B, 2>, rows: Tensor<B, 1, Int>) -> Tensor<B, 2> {
    let [m] = rows.dims();
    embedding(x, rows.reshape([m, 1]))
}

/// `x·W + b` of a burn [`Linear`](burn::nn::Linear) with a bias, then tanh when `tanh`,
/// through [`LinearOps::fused_linear`].
///
/// # Shapes
/// - `x`: `[rows, in]`, `weight`: `[in, out]`, `bias`: `[out]`
/// - returns: `[rows, out]`
pub fn linear<B: FusedOps>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
    tanh: bool,
) -> Tensor<B, 2> {
    float(B::fused_linear(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
        tanh,
    ))
}

/// LayerNorm over each row, then tanh, through [`NormOps::fused_layer_norm_tanh`].
///
/// # Shapes
/// - `x`: `[rows, cols]`, `gamma` and `beta`: `[cols]`
/// - returns: `[rows, cols]`
pub fn layer_norm_tanh<B: FusedOps>(
    x: Tensor<B, 2>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, 2> {
    let [y, _, _] = B::fused_layer_norm_tanh(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
        epsilon,
    );
    float(y)
}

/// LayerNorm over each row through [`NormOps::fused_layer_norm`].
pub fn layer_norm<B: FusedOps>(
    x: Tensor<B, 2>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, 2> {
    let [y, _, _] = B::fused_layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
        epsilon,
    );
    float(y)
}

/// One draw per row through [`SamplingOps::fused_categorical`].
///
/// # Shapes
/// - `probs`: `[rows, classes]`, `u`: `[rows]`
/// - returns: `[rows]`
pub fn categorical<B: FusedOps>(probs: Tensor<B, 2>, u: Tensor<B, 1>) -> Tensor<B, 1, Int> {
    Tensor::from_primitive(B::fused_categorical(
        probs.into_primitive().tensor(),
        u.into_primitive().tensor(),
    ))
}

/// Mean cross-entropy through [`LossOps::fused_cross_entropy`]; the same function as
/// makemore-model's `cross_entropy` (burn's `log_softmax`, the targets' entries, the mean).
///
/// # Shapes
/// - `logits`: `[batch, vocab]`
/// - `targets`: `[batch]`
/// - returns: `[1]`
pub fn cross_entropy<B: FusedOps>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    float(B::fused_cross_entropy(
        logits.into_primitive().tensor(),
        targets.into_primitive(),
    ))
}

/// GPT-2's GELU through [`LinearOps::fused_gelu`].
pub fn gelu<B: FusedOps, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    float(B::fused_gelu(x.into_primitive().tensor()))
}

/// Causal softmax of attention scores `[.., t, t]` through [`AttentionOps::fused_causal_softmax`].
pub fn causal_softmax<B: FusedOps, const D: usize>(x: Tensor<B, D>, scale: f64) -> Tensor<B, D> {
    float(B::fused_causal_softmax(x.into_primitive().tensor(), scale))
}

/// The running mean over each sequence's positions through
/// [`AttentionOps::fused_causal_mean`].
///
/// # Shapes
/// - `x`: `[sequences · t, c]`
/// - returns: `[sequences · t, c]`
pub fn causal_mean<B: FusedOps>(x: Tensor<B, 2>, t: usize) -> Tensor<B, 2> {
    float(B::fused_causal_mean(x.into_primitive().tensor(), t))
}

/// Causal multi-head self-attention through [`AttentionOps::fused_attention`].
///
/// # Shapes
/// - `qkv`: `[batch · t, 3c]`, `mask`: `[batch · n_head · t, t]`
/// - returns: `[batch · t, c]`
pub fn attention<B: FusedOps>(
    qkv: Tensor<B, 2>,
    batch: usize,
    n_head: usize,
    mask: Option<Tensor<B, 2>>,
) -> Tensor<B, 2> {
    let [y, _] = B::fused_attention(
        qkv.into_primitive().tensor(),
        batch,
        n_head,
        mask.map(|m| m.into_primitive().tensor()),
    );
    float(y)
}

/// `√(2/π)` and GELU's cubic coefficient.
const GELU_K: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;

/// The default bodies of [`FusedOps`], in burn's generic operations; a backend that
/// overrides a method falls back to these for inputs its kernel does not take.
pub(crate) mod plain {
    use super::*;
    use burn::tensor::TensorMetadata;

    /// `t` as a tensor of rank `D` of `dims` (a reshape of the primitive).
    fn shaped<B: Backend, const D: usize>(t: FloatTensor<B>, dims: [usize; D]) -> Tensor<B, D> {
        float(B::float_reshape(t, burn::tensor::Shape::new(dims)))
    }

    fn back<B: Backend, const D: usize>(
        t: Tensor<B, D>,
        shape: burn::tensor::Shape,
    ) -> FloatTensor<B> {
        B::float_reshape(t.into_primitive().tensor(), shape)
    }

    pub fn gelu<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
        let shape = x.shape();
        let x: Tensor<B, 1> = shaped(x, [shape.num_elements()]);
        let u = (x.clone() + x.clone().powi_scalar(3) * GELU_C) * GELU_K;
        back((u.tanh() + 1.0) * x * 0.5, shape)
    }

    pub fn gelu_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
        let shape = x.shape();
        let n = shape.num_elements();
        let (x, g): (Tensor<B, 1>, Tensor<B, 1>) = (shaped(x, [n]), shaped(grad, [n]));
        let x2 = x.clone().powi_scalar(2);
        let t = ((x.clone() + x2.clone() * x.clone() * GELU_C) * GELU_K).tanh();
        let du = (x2 * (3.0 * GELU_C) + 1.0) * GELU_K;
        let d = (t.clone() + 1.0) * 0.5 + x * (t.clone().neg() * t + 1.0) * du * 0.5;
        back(g * d, shape)
    }

    /// q, k and v of `qkv` `[batch · t, 3c]` as `[batch, heads, t, head]` each.
    fn heads<B: Backend>(qkv: FloatTensor<B>, batch: usize, n_head: usize) -> [Tensor<B, 4>; 3] {
        let shape = qkv.shape();
        let (rows, c3) = (shape[0], shape[1]);
        let (t, c) = (rows / batch, c3 / 3);
        let hs = c / n_head;
        let qkv: Tensor<B, 3> = shaped(qkv, [batch, t, c3]);
        [0, 1, 2].map(|i| {
            qkv.clone()
                .slice([0..batch, 0..t, i * c..(i + 1) * c])
                .reshape([batch, t, n_head, hs])
                .swap_dims(1, 2)
        })
    }

    pub fn attention<B: Backend>(
        qkv: FloatTensor<B>,
        batch: usize,
        n_head: usize,
        mask: Option<FloatTensor<B>>,
    ) -> [FloatTensor<B>; 2] {
        let [q, k, v] = heads::<B>(qkv, batch, n_head);
        let [_, _, t, hs] = q.dims();
        let scale = 1.0 / (hs as f64).sqrt();
        let probs: Tensor<B, 4> = float(causal_softmax::<B>(
            q.matmul(k.swap_dims(2, 3)).into_primitive().tensor(),
            scale,
        ));
        let weights = match mask {
            Some(m) => probs.clone() * shaped::<B, 4>(m, [batch, n_head, t, t]),
            None => probs.clone(),
        };
        let y = weights
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch * t, n_head * hs]);
        [
            y.into_primitive().tensor(),
            B::float_reshape(
                probs.into_primitive().tensor(),
                burn::tensor::Shape::new([batch * n_head * t, t]),
            ),
        ]
    }

    pub fn attention_backward<B: Backend>(
        qkv: FloatTensor<B>,
        probs: FloatTensor<B>,
        mask: Option<FloatTensor<B>>,
        grad: FloatTensor<B>,
        batch: usize,
        n_head: usize,
    ) -> FloatTensor<B> {
        let [q, k, v] = heads::<B>(qkv, batch, n_head);
        let [_, _, t, hs] = q.dims();
        let scale = 1.0 / (hs as f64).sqrt();
        let probs: Tensor<B, 4> = shaped(probs, [batch, n_head, t, t]);
        let mask = mask.map(|m| shaped::<B, 4>(m, [batch, n_head, t, t]));
        let weights = match &mask {
            Some(m) => probs.clone() * m.clone(),
            None => probs.clone(),
        };
        let dy: Tensor<B, 4> = shaped::<B, 4>(grad, [batch, t, n_head, hs]).swap_dims(1, 2);
        let dv = weights.swap_dims(2, 3).matmul(dy.clone());
        let mut dw = dy.matmul(v.swap_dims(2, 3));
        if let Some(m) = mask {
            dw = dw * m;
        }
        let ds: Tensor<B, 4> = float(causal_softmax_backward::<B>(
            probs.into_primitive().tensor(),
            dw.into_primitive().tensor(),
            scale,
        ));
        let dq = ds.clone().matmul(k);
        let dk = ds.swap_dims(2, 3).matmul(q);
        let merge = |x: Tensor<B, 4>| x.swap_dims(1, 2).reshape([batch, t, n_head * hs]);
        let dqkv = Tensor::cat(vec![merge(dq), merge(dk), merge(dv)], 2);
        B::float_reshape(
            dqkv.into_primitive().tensor(),
            burn::tensor::Shape::new([batch * t, 3 * n_head * hs]),
        )
    }

    /// `1 / (i + 1)` at position `i`, `[1, t, 1]`.
    fn inverse_counts<B: Backend>(t: usize, device: &B::Device) -> Tensor<B, 3> {
        let w: Vec<f32> = (0..t).map(|i| 1.0 / (i + 1) as f32).collect();
        Tensor::from_data(TensorData::new(w, [1, t, 1]), device)
    }

    pub fn causal_mean<B: Backend>(x: FloatTensor<B>, t: usize) -> FloatTensor<B> {
        let shape = x.shape();
        let c = shape[1];
        let x: Tensor<B, 3> = shaped(x, [shape[0] / t, t, c]);
        let device = x.device();
        back(x.cumsum(1) * inverse_counts::<B>(t, &device), shape)
    }

    pub fn causal_mean_backward<B: Backend>(grad: FloatTensor<B>, t: usize) -> FloatTensor<B> {
        let shape = grad.shape();
        let c = shape[1];
        let g: Tensor<B, 3> = shaped(grad, [shape[0] / t, t, c]);
        let device = g.device();
        let scaled = g * inverse_counts::<B>(t, &device);
        back(scaled.flip([1]).cumsum(1).flip([1]), shape)
    }

    pub fn causal_softmax<B: Backend>(x: FloatTensor<B>, scale: f64) -> FloatTensor<B> {
        let shape = x.shape();
        let t = shape[shape.num_dims() - 1];
        let blocks = shape.num_elements() / (t * t);
        let x: Tensor<B, 3> = shaped(x, [blocks, t, t]);
        let device = x.device();
        let mask = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &device)
            .unsqueeze::<3>()
            .expand([blocks, t, t]);
        let y =
            burn::tensor::activation::softmax((x * scale).mask_fill(mask, f32::NEG_INFINITY), 2);
        back(y, shape)
    }

    pub fn causal_softmax_backward<B: Backend>(
        y: FloatTensor<B>,
        grad: FloatTensor<B>,
        scale: f64,
    ) -> FloatTensor<B> {
        let shape = y.shape();
        let t = shape[shape.num_dims() - 1];
        let rows = shape.num_elements() / t;
        let y: Tensor<B, 2> = shaped(y, [rows, t]);
        let g: Tensor<B, 2> = shaped(grad, [rows, t]);
        let dot = (g.clone() * y.clone()).sum_dim(1);
        back((g - dot) * y * scale, shape)
    }

    pub fn tanh_backward<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
        let one_minus_y2 =
            B::float_add_scalar(B::float_neg(B::float_mul(y.clone(), y)), 1f32.into());
        B::float_mul(grad, one_minus_y2)
    }

    pub fn embedding<B: Backend>(table: FloatTensor<B>, contexts: IntTensor<B>) -> FloatTensor<B> {
        let table = float::<B, 2>(table);
        let contexts = Tensor::<B, 2, Int>::from_primitive(contexts);
        let [rows, block] = contexts.dims();
        let [_, dim] = table.dims();
        table
            .select(0, contexts.reshape([rows * block]))
            .reshape([rows, block * dim])
            .into_primitive()
            .tensor()
    }

    pub fn embedding_backward<B: Backend>(
        contexts: IntTensor<B>,
        grad: FloatTensor<B>,
        vocab: usize,
    ) -> FloatTensor<B> {
        let contexts = Tensor::<B, 2, Int>::from_primitive(contexts);
        let grad = float::<B, 2>(grad);
        let [rows, block] = contexts.dims();
        let [_, width] = grad.dims();
        let dim = width / block.max(1);
        let zeros = grad.zeros_like().slice([0..1, 0..dim]).repeat_dim(0, vocab);
        zeros
            .select_assign(
                0,
                contexts.reshape([rows * block]),
                grad.reshape([rows * block, dim]),
                burn::tensor::IndexingUpdateOp::Add,
            )
            .into_primitive()
            .tensor()
    }

    pub fn linear<B: LinearOps>(
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        b: FloatTensor<B>,
        tanh: bool,
    ) -> FloatTensor<B> {
        let pre = float::<B, 2>(x).matmul(float(w)) + float::<B, 1>(b).unsqueeze::<2>();
        let pre = pre.into_primitive().tensor();
        if tanh {
            B::fused_tanh(pre)
        } else {
            pre
        }
    }

    pub fn linear_backward<B: LinearOps>(
        x: FloatTensor<B>,
        w: FloatTensor<B>,
        y: Option<FloatTensor<B>>,
        grad: FloatTensor<B>,
    ) -> [FloatTensor<B>; 3] {
        let pre_grad = match y {
            Some(y) => B::fused_tanh_backward(y, grad),
            None => grad,
        };
        let pre_grad = float::<B, 2>(pre_grad);
        let dx = pre_grad.clone().matmul(float::<B, 2>(w).transpose());
        let dw = float::<B, 2>(x).transpose().matmul(pre_grad.clone());
        let db = pre_grad.sum_dim(0).squeeze_dim::<1>(0);
        [
            dx.into_primitive().tensor(),
            dw.into_primitive().tensor(),
            db.into_primitive().tensor(),
        ]
    }

    pub fn layer_norm<B: NormOps>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
        epsilon: f64,
    ) -> [FloatTensor<B>; 3] {
        let x = float::<B, 2>(x);
        let centered = x.clone() - x.mean_dim(1);
        let var = (centered.clone() * centered.clone()).mean_dim(1);
        let rstd = var.add_scalar(epsilon).sqrt().recip();
        let x_hat = centered * rstd.clone();
        let y = x_hat.clone() * float::<B, 1>(gamma).unsqueeze::<2>()
            + float::<B, 1>(beta).unsqueeze::<2>();
        [
            y.into_primitive().tensor(),
            x_hat.into_primitive().tensor(),
            rstd.into_primitive().tensor(),
        ]
    }

    pub fn layer_norm_backward<B: NormOps>(
        x_hat: FloatTensor<B>,
        rstd: FloatTensor<B>,
        gamma: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> [FloatTensor<B>; 3] {
        let dz = float::<B, 2>(grad);
        let x_hat = float::<B, 2>(x_hat);
        let d = dz.clone() * float::<B, 1>(gamma).unsqueeze::<2>();
        let dx =
            (d.clone() - d.clone().mean_dim(1) - x_hat.clone() * (d * x_hat.clone()).mean_dim(1))
                * float::<B, 2>(rstd);
        let dgamma = (dz.clone() * x_hat).sum_dim(0).squeeze_dim::<1>(0);
        let dbeta = dz.sum_dim(0).squeeze_dim::<1>(0);
        [
            dx.into_primitive().tensor(),
            dgamma.into_primitive().tensor(),
            dbeta.into_primitive().tensor(),
        ]
    }

    pub fn layer_norm_tanh<B: NormOps>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
        epsilon: f64,
    ) -> [FloatTensor<B>; 3] {
        let [z, x_hat, rstd] = layer_norm::<B>(x, gamma, beta, epsilon);
        [B::fused_tanh(z), x_hat, rstd]
    }

    pub fn layer_norm_tanh_backward<B: NormOps>(
        x_hat: FloatTensor<B>,
        rstd: FloatTensor<B>,
        gamma: FloatTensor<B>,
        y: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> [FloatTensor<B>; 3] {
        layer_norm_backward::<B>(x_hat, rstd, gamma, B::fused_tanh_backward(y, grad))
    }

    pub fn categorical<B: Backend>(probs: FloatTensor<B>, u: FloatTensor<B>) -> IntTensor<B> {
        let probs = float::<B, 2>(probs);
        let [rows, classes] = probs.dims();
        let device = probs.device();
        let column = |i: usize| probs.clone().slice([0..rows, i..i + 1]);
        let mut total = column(0);
        for i in 1..classes {
            total = total + column(i);
        }
        let mut u = float::<B, 1>(u).reshape([rows, 1]) * total;
        let mut chosen = Tensor::<B, 2, Int>::full([rows, 1], classes as i64 - 1, &device);
        let mut found = Tensor::<B, 2, Int>::zeros([rows, 1], &device).equal_elem(1);
        for i in 0..classes {
            let p = column(i);
            let hit = u
                .clone()
                .lower(p.clone())
                .bool_and(found.clone().bool_not());
            chosen = chosen.mask_fill(hit.clone(), i as i64);
            found = found.bool_or(hit);
            u = u - p;
        }
        chosen.reshape([rows]).into_primitive()
    }

    /// burn 0.21's `AdamW::step` and `AdaptiveMomentumW::transform` (no AMSGrad, no
    /// cautious decay), in the same operations and order.
    pub fn adamw<B: Backend, const D: usize>(
        w: Tensor<B, D>,
        g: Tensor<B, D>,
        moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
        s: AdamWStep,
    ) -> [Tensor<B, D>; 3] {
        let factor_1 = 1.0 - s.beta_1;
        let factor_2 = 1.0 - s.beta_2;
        let (m, v) = match moments {
            Some((m, v)) => (
                m.mul_scalar(s.beta_1).add(g.clone().mul_scalar(factor_1)),
                v.mul_scalar(s.beta_2).add(g.square().mul_scalar(factor_2)),
            ),
            None => (
                g.clone().mul_scalar(factor_1),
                g.square().mul_scalar(factor_2),
            ),
        };
        let (c1, c2) = s.bias_corrections();
        let m_hat = m.clone().div_scalar(c1);
        let v_hat = v.clone().div_scalar(c2);
        let delta = m_hat.div(v_hat.sqrt().add_scalar(s.epsilon));
        let decay_rate = s.lr * (s.weight_decay as f64);
        let decayed = if decay_rate == 0.0 {
            w
        } else {
            w.mul_scalar(1.0 - decay_rate)
        };
        [decayed - delta.mul_scalar(s.lr), m, v]
    }

    pub fn cross_entropy_forward<B: Backend>(
        logits: FloatTensor<B>,
        targets: IntTensor<B>,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        let logits = float::<B, 2>(logits);
        let targets = Tensor::<B, 1, Int>::from_primitive(targets);
        let [rows, _] = logits.dims();
        let log_probs = log_softmax(logits, 1);
        let loss = log_probs
            .clone()
            .gather(1, targets.reshape([rows, 1]))
            .mean()
            .neg();
        (
            loss.into_primitive().tensor(),
            log_probs.exp().into_primitive().tensor(),
        )
    }

    pub fn cross_entropy_backward<B: Backend>(
        probs: FloatTensor<B>,
        targets: IntTensor<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        let probs = float::<B, 2>(probs);
        let targets = Tensor::<B, 1, Int>::from_primitive(targets);
        let grad = float::<B, 1>(grad);
        let [rows, classes] = probs.dims();
        // probs − onehot, built with a mask so that it stays in the dtype of `probs`
        // (`Int::float` would pick the device's default float dtype).
        let is_target = targets.one_hot::<2>(classes).equal_elem(1);
        let delta = probs.clone().mask_where(is_target, probs.sub_scalar(1.0));
        let scale = grad.reshape([1, 1]).div_scalar(rows as f32);
        (delta * scale).into_primitive().tensor()
    }
}

#[cfg(test)]
mod tests {
    use super::AdamWStep;

    #[test]
    fn adamw_step_counts_beyond_i32_saturate_instead_of_wrapping() {
        let at = |time| {
            AdamWStep {
                lr: 0.001,
                time,
                beta_1: 0.9,
                beta_2: 0.999,
                epsilon: 1e-5,
                weight_decay: 0.0,
            }
            .bias_corrections()
        };
        let (c1, c2) = at(1);
        assert!((c1 - 0.1).abs() < 1e-6 && (c2 - 0.001).abs() < 1e-6);
        // Long before 2^31 both powers are 0 in f32; past it nothing wraps.
        assert_eq!(at(200_000), (1.0, 1.0));
        assert_eq!(at(1 << 31), (1.0, 1.0));
        assert_eq!(at(1 << 40), (1.0, 1.0));
        assert_eq!(at(u64::MAX), (1.0, 1.0));
    }
}
