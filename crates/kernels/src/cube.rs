//! [`FusedOps`] for burn's CubeCL backends (wgpu, CUDA): kernels written once in CubeCL,
//! compiled for whichever runtime the backend uses.
//!
//! This is burn's custom-kernel pattern (the `custom-cubecl-kernel` example): the trait is
//! implemented for the generic `CubeBackend<R, F, I, BT>`, so `Wgpu` and `Cuda` share every
//! kernel. What each kernel saves over the generic bodies:
//!
//! - cross-entropy: one pass per row computes the loss *and* the gradient
//!   `(softmax − onehot) / rows`, which is all the backward pass needs (it scales it by the
//!   incoming gradient); the generic body takes a log-softmax, a gather, a mean, an `exp`, a
//!   one-hot, a mask and two multiplications.
//! - linear: burn's matrix product, then the bias and tanh in one element-wise pass.
//! - tanh backward: `grad · (1 − y²)` in one pass from the saved output.
//! - categorical draw (sampling): one unit per row runs the host's draw, so sampling reads
//!   back characters, not probabilities.
//! - embedding: a gather that writes each output element once, and a deterministic
//!   scatter-add (no atomics: each output element sums its share of rows in a fixed order, and
//!   the partial sums are added by burn's reduction), so GPU runs repeat exactly.
//!
//! Inputs whose dtype is not the backend's own (`F` for floats, `I` for indices) take the
//! generic path and are counted by [`fallbacks`](super::fallbacks).

use burn::tensor::ops::{FloatTensor, FloatTensorOps, IntTensor, IntTensorOps};
use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeCount, CubeDim};

use super::{
    count_fallback, float, plain, AttentionOps, DeviceOps, LinearOps, LossOps, NormOps,
    OptimizerOps, RecurrenceOps, SamplingOps,
};

/// Rows of the embedding gradient that one unit of the scatter sums before the partial
/// sums are reduced: small enough to give the GPU thousands of units at batch 4096.
const SCATTER_CHUNK: usize = 256;

#[cube(launch)]
fn tanh_backward_kernel<F: Float>(y: &Tensor<F>, grad: &Tensor<F>, out: &mut Tensor<F>) {
    if ABSOLUTE_POS >= out.len() {
        terminate!();
    }
    let v = y[ABSOLUTE_POS];
    out[ABSOLUTE_POS] = grad[ABSOLUTE_POS] * (F::new(1.0) - v * v);
}

#[cube(launch)]
fn bias_tanh_kernel<F: Float>(
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    out: &mut Tensor<F>,
    #[comptime] tanh: bool,
) {
    if ABSOLUTE_POS >= out.len() {
        terminate!();
    }
    let v = pre[ABSOLUTE_POS] + bias[ABSOLUTE_POS % bias.len()];
    if tanh {
        out[ABSOLUTE_POS] = F::tanh(v);
    } else {
        out[ABSOLUTE_POS] = v;
    }
}

/// One unit per row: the row's loss `ln Σ exp(l − max) − (l_target − max)` and, with
/// `with_grad`, its gradient row `(softmax − onehot) / rows`.
#[cube(launch)]
fn cross_entropy_kernel<F: Float, I: Int>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    losses: &mut Tensor<F>,
    dlogits: &mut Tensor<F>,
    #[comptime] with_grad: bool,
) {
    let row = ABSOLUTE_POS;
    let rows = losses.len();
    if row >= rows {
        terminate!();
    }
    let classes = logits.len() / rows;
    let base = row * classes;
    let mut max = logits[base];
    for c in 1..classes {
        max = F::max(max, logits[base + c]);
    }
    let mut sum = F::new(0.0);
    for c in 0..classes {
        sum += F::exp(logits[base + c] - max);
    }
    let target = usize::cast_from(targets[row]);
    losses[row] = F::ln(sum) - (logits[base + target] - max);
    if with_grad {
        let scale = F::new(1.0) / (sum * F::cast_from(rows as f32));
        let inv_rows = F::new(1.0) / F::cast_from(rows as f32);
        for c in 0..classes {
            let p = F::exp(logits[base + c] - max) * scale;
            dlogits[base + c] = select(c == target, p - inv_rows, p);
        }
    }
}

/// Adds, xors and rotates one ChaCha quarter round of the state words `a`, `b`, `c`, `d`.
#[cube]
#[allow(clippy::manual_rotate)] // shifts and or: what every CubeCL target compiles
fn quarter_round(x: &mut Array<u32>, a: usize, b: usize, c: usize, d: usize) {
    x[a] += x[b];
    let v = x[d] ^ x[a];
    x[d] = (v << 16u32) | (v >> 16u32);
    x[c] += x[d];
    let v = x[b] ^ x[c];
    x[b] = (v << 12u32) | (v >> 20u32);
    x[a] += x[b];
    let v = x[d] ^ x[a];
    x[d] = (v << 8u32) | (v >> 24u32);
    x[c] += x[d];
    let v = x[b] ^ x[c];
    x[b] = (v << 7u32) | (v >> 25u32);
}

/// One unit per mask value: the ChaCha8 block holding words `start + 2i`, `start + 2i + 1` of
/// the stream of the key `k0..k7` (rand_chacha's layout), and the keep test on their 53 high
/// bits as two 32-bit halves (`(hi, lo) < (bound_hi, bound_lo)`; no 64-bit integers on every
/// GPU): the host's mask ([`crate::mask::dropout_mask_at`]) bit for bit.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn dropout_mask_kernel<F: Float, I: Int>(
    out: &mut Tensor<F>,
    key: &Tensor<I>,
    start_lo: u32,
    start_hi: u32,
    bound_hi: u32,
    bound_lo: u32,
    scale: f32,
) {
    if ABSOLUTE_POS >= out.len() {
        terminate!();
    }
    // Word w = start + 2i as (hi, lo); start is even, so both words are in one block.
    let i = u32::cast_from(ABSOLUTE_POS);
    let lo_add = i * 2u32;
    let w_lo = start_lo + lo_add;
    let mut w_hi = start_hi;
    if w_lo < start_lo {
        w_hi += 1u32;
    }
    // The upper half of 2i (i < 2^32).
    w_hi += i >> 31u32;
    let block_lo = (w_lo >> 4u32) | (w_hi << 28u32);
    let block_hi = w_hi >> 4u32;
    let offset = w_lo & 15u32;
    let mut x = Array::<u32>::new(16usize);
    let mut init = Array::<u32>::new(16usize);
    init[0] = 0x6170_7865u32;
    init[1] = 0x3320_646eu32;
    init[2] = 0x7962_2d32u32;
    init[3] = 0x6b20_6574u32;
    for j in 0..8usize {
        // The key's bits, stored as the backend's integers.
        init[4 + j] = u32::cast_from(key[j]);
    }
    init[12] = block_lo;
    init[13] = block_hi;
    init[14] = 0u32;
    init[15] = 0u32;
    for j in 0..16usize {
        x[j] = init[j];
    }
    for _ in 0..4u32 {
        quarter_round(&mut x, 0, 4, 8, 12);
        quarter_round(&mut x, 1, 5, 9, 13);
        quarter_round(&mut x, 2, 6, 10, 14);
        quarter_round(&mut x, 3, 7, 11, 15);
        quarter_round(&mut x, 0, 5, 10, 15);
        quarter_round(&mut x, 1, 6, 11, 12);
        quarter_round(&mut x, 2, 7, 8, 13);
        quarter_round(&mut x, 3, 4, 9, 14);
    }
    let o = usize::cast_from(offset);
    let lo = x[o] + init[o];
    let hi = x[o + 1] + init[o + 1];
    // x >> 11 as (upper 21 bits, lower 32 bits).
    let u_hi = hi >> 11u32;
    let u_lo = (hi << 21u32) | (lo >> 11u32);
    let kept = u_hi < bound_hi || (u_hi == bound_hi && u_lo < bound_lo);
    if kept {
        out[ABSOLUTE_POS] = F::cast_from(scale);
    } else {
        out[ABSOLUTE_POS] = F::new(0.0);
    }
}

/// One unit per parameter element: AdamW's update, burn's `AdamW` operation for operation
/// (`m·β₁ + g·(1−β₁)`, `v·β₂ + g²·(1−β₂)`, `(m/c₁) / (√(v/c₂) + ε)`, decay, step) in one pass
/// instead of about thirteen kernels. `first`: no moments yet (`m`, `v` are not read).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adamw_kernel<F: Float>(
    w: &Tensor<F>,
    g: &Tensor<F>,
    m: &Tensor<F>,
    v: &Tensor<F>,
    w_out: &mut Tensor<F>,
    m_out: &mut Tensor<F>,
    v_out: &mut Tensor<F>,
    beta_1: f32,
    factor_1: f32,
    beta_2: f32,
    factor_2: f32,
    c1: f32,
    c2: f32,
    epsilon: f32,
    keep: f32,
    lr: f32,
    #[comptime] first: bool,
    #[comptime] decay: bool,
) {
    if ABSOLUTE_POS >= w_out.len() {
        terminate!();
    }
    // `keep` = 1 − lr·λ; `factor_i` = 1 − βᵢ; `cᵢ` the bias corrections.
    let gi = g[ABSOLUTE_POS];
    let mut mi = gi * F::cast_from(factor_1);
    let mut vi = (gi * gi) * F::cast_from(factor_2);
    if !first {
        mi = m[ABSOLUTE_POS] * F::cast_from(beta_1) + mi;
        vi = v[ABSOLUTE_POS] * F::cast_from(beta_2) + vi;
    }
    let delta = (mi / F::cast_from(c1)) / (F::sqrt(vi / F::cast_from(c2)) + F::cast_from(epsilon));
    let mut wi = w[ABSOLUTE_POS];
    if decay {
        wi *= F::cast_from(keep);
    }
    w_out[ABSOLUTE_POS] = wi - delta * F::cast_from(lr);
    m_out[ABSOLUTE_POS] = mi;
    v_out[ABSOLUTE_POS] = vi;
}

/// One unit per row of `x` `[rows, cols]`: LayerNorm (the biased variance, two passes), then
/// tanh when `tanh`; writes `y`, `x̂` and the row's `1/√(var + ε)`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_kernel<F: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    y: &mut Tensor<F>,
    x_hat: &mut Tensor<F>,
    rstd: &mut Tensor<F>,
    epsilon: f32,
    #[comptime] tanh: bool,
) {
    let row = ABSOLUTE_POS;
    if row >= rstd.len() {
        terminate!();
    }
    let cols = gamma.len();
    let base = row * cols;
    let n = F::cast_from(cols as u32);
    let mut sum = F::new(0.0);
    for c in 0..cols {
        sum += x[base + c];
    }
    let mean = sum / n;
    let mut sq = F::new(0.0);
    for c in 0..cols {
        let d = x[base + c] - mean;
        sq += d * d;
    }
    let r = F::new(1.0) / F::sqrt(sq / n + F::cast_from(epsilon));
    for c in 0..cols {
        let h = (x[base + c] - mean) * r;
        x_hat[base + c] = h;
        let z = h * gamma[c] + beta[c];
        if tanh {
            y[base + c] = F::tanh(z);
        } else {
            y[base + c] = z;
        }
    }
    rstd[row] = r;
}

/// One unit per row: the gradient at LayerNorm's (+ tanh's) input, and the row's terms of
/// the parameter gradients (`dz · x̂` and `dz`, summed over the rows afterwards).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_backward_kernel<F: Float>(
    x_hat: &Tensor<F>,
    rstd: &Tensor<F>,
    gamma: &Tensor<F>,
    y: &Tensor<F>,
    grad: &Tensor<F>,
    dx: &mut Tensor<F>,
    dz_x_hat: &mut Tensor<F>,
    dz_out: &mut Tensor<F>,
    #[comptime] tanh: bool,
) {
    let row = ABSOLUTE_POS;
    if row >= rstd.len() {
        terminate!();
    }
    let cols = gamma.len();
    let base = row * cols;
    let n = F::cast_from(cols as u32);
    let mut sum_d = F::new(0.0);
    let mut sum_dh = F::new(0.0);
    for c in 0..cols {
        let mut dz = grad[base + c];
        if tanh {
            let v = y[base + c];
            dz *= F::new(1.0) - v * v;
        }
        let h = x_hat[base + c];
        let d = dz * gamma[c];
        sum_d += d;
        sum_dh += d * h;
        dz_x_hat[base + c] = dz * h;
        dz_out[base + c] = dz;
    }
    let mean_d = sum_d / n;
    let mean_dh = sum_dh / n;
    let r = rstd[row];
    for c in 0..cols {
        let d = dz_out[base + c] * gamma[c];
        dx[base + c] = (d - mean_d - x_hat[base + c] * mean_dh) * r;
    }
}

/// One unit per row: the categorical draw of [`SamplingOps::fused_categorical`](crate::SamplingOps::fused_categorical), the host's
/// arithmetic in order (the total, then `u < p` and `u −= p` class by class).
#[cube(launch)]
fn categorical_kernel<F: Float, I: Int>(probs: &Tensor<F>, u: &Tensor<F>, out: &mut Tensor<I>) {
    let row = ABSOLUTE_POS;
    let rows = out.len();
    if row >= rows {
        terminate!();
    }
    let classes = probs.len() / rows;
    let base = row * classes;
    let mut total = probs[base];
    for c in 1..classes {
        total += probs[base + c];
    }
    let mut left = u[row] * total;
    let mut chosen = classes - 1;
    let mut open = true;
    for c in 0..classes {
        let p = probs[base + c];
        if open && left < p {
            chosen = c;
            open = false;
        }
        left -= p;
    }
    out[row] = I::cast_from(chosen);
}

/// `out[p·dim + d] = table[contexts[p]·dim + d]` for every context position `p`.
#[cube(launch)]
fn embedding_kernel<F: Float, I: Int>(
    table: &Tensor<F>,
    contexts: &Tensor<I>,
    out: &mut Tensor<F>,
) {
    if ABSOLUTE_POS >= out.len() {
        terminate!();
    }
    let dim = table.shape(1);
    let row = usize::cast_from(contexts[ABSOLUTE_POS / dim]);
    out[ABSOLUTE_POS] = table[row * dim + ABSOLUTE_POS % dim];
}

/// `partial[c, v, d]`: the sum of `grad[p·dim + d]` over the positions `p` of chunk `c`
/// whose context is `v`, in order.
#[cube(launch)]
fn embedding_backward_kernel<F: Float, I: Int>(
    contexts: &Tensor<I>,
    grad: &Tensor<F>,
    partial: &mut Tensor<F>,
    #[comptime] chunk: usize,
) {
    if ABSOLUTE_POS >= partial.len() {
        terminate!();
    }
    let vocab = partial.shape(1);
    let dim = partial.shape(2);
    let c = ABSOLUTE_POS / (vocab * dim);
    let v = (ABSOLUTE_POS / dim) % vocab;
    let d = ABSOLUTE_POS % dim;
    let n = contexts.len();
    let start = c * chunk;
    let end = select(start + chunk > n, n, start + chunk);
    let mut acc = F::new(0.0);
    for p in start..end {
        if usize::cast_from(contexts[p]) == v {
            acc += grad[p * dim + d];
        }
    }
    partial[ABSOLUTE_POS] = acc;
}

/// Cube count and size for `units` independent units of work.
fn grid<R: CubeRuntime>(tensor: &CubeTensor<R>, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(&tensor.client, units);
    (
        calculate_cube_count_elemwise(&tensor.client, units, dim),
        dim,
    )
}

/// A new uninitialised `F` tensor of `shape` on the device of `like`.
fn empty<R: CubeRuntime, F: FloatElement>(like: &CubeTensor<R>, shape: Shape) -> CubeTensor<R> {
    empty_device::<R, F>(like.client.clone(), like.device.clone(), shape)
}

/// Whether [`layer_norm_on_device`] takes these inputs: the backend's dtype, `x` a matrix,
/// `γ` and `β` one value per column (else the generic path).
fn layer_norm_takes<R: CubeRuntime, F: FloatElement>(
    x: &CubeTensor<R>,
    gamma: &CubeTensor<R>,
    beta: &CubeTensor<R>,
) -> bool {
    let shape = x.shape();
    [x, gamma, beta].iter().all(|t| t.dtype == F::dtype())
        && shape.num_dims() == 2
        && gamma.shape().num_elements() == shape[1]
        && beta.shape().num_elements() == shape[1]
}

/// LayerNorm (+ tanh) forward on the device, `[y, x̂, rstd]`, for inputs that
/// [`layer_norm_takes`].
fn layer_norm_on_device<R: CubeRuntime, F: FloatElement>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: CubeTensor<R>,
    epsilon: f64,
    tanh: bool,
) -> [CubeTensor<R>; 3] {
    let shape = x.shape();
    let (x, gamma, beta) = (
        into_contiguous(x),
        into_contiguous(gamma),
        into_contiguous(beta),
    );
    let rows = shape[0];
    let y = empty::<R, F>(&x, shape.clone());
    let x_hat = empty::<R, F>(&x, shape);
    let rstd = empty::<R, F>(&x, Shape::new([rows, 1]));
    let (count, dim) = grid(&x, rows);
    layer_norm_kernel::launch::<F, R>(
        &x.client.clone(),
        count,
        dim,
        x.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        x_hat.clone().into_tensor_arg(),
        rstd.clone().into_tensor_arg(),
        epsilon as f32,
        tanh,
    );
    [y, x_hat, rstd]
}

/// Whether [`layer_norm_backward_on_device`] takes these inputs (else the generic path).
fn layer_norm_backward_takes<R: CubeRuntime, F: FloatElement>(
    x_hat: &CubeTensor<R>,
    rstd: &CubeTensor<R>,
    gamma: &CubeTensor<R>,
    y: Option<&CubeTensor<R>>,
    grad: &CubeTensor<R>,
) -> bool {
    let shape = x_hat.shape();
    [x_hat, rstd, gamma, grad]
        .iter()
        .all(|t| t.dtype == F::dtype())
        && y.is_none_or(|y| y.dtype == F::dtype() && y.shape() == shape)
        && shape.num_dims() == 2
        && shape[1] == gamma.shape().num_elements()
        && grad.shape() == shape
        && rstd.shape().num_elements() == shape[0]
}

/// LayerNorm (+ tanh, when `y` is given) backward on the device, `[dx, dγ, dβ]`, for inputs
/// that [`layer_norm_backward_takes`]: the parameter gradients are burn's sums over the rows
/// of the kernel's per-row terms.
fn layer_norm_backward_on_device<R, F, I, BT>(
    x_hat: CubeTensor<R>,
    rstd: CubeTensor<R>,
    gamma: CubeTensor<R>,
    y: Option<CubeTensor<R>>,
    grad: CubeTensor<R>,
) -> [CubeTensor<R>; 3]
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    let shape = x_hat.shape();
    let cols = gamma.shape().num_elements();
    let tanh = y.is_some();
    let (x_hat, rstd, gamma, grad) = (
        into_contiguous(x_hat),
        into_contiguous(rstd),
        into_contiguous(gamma),
        into_contiguous(grad),
    );
    // Not read without tanh.
    let y = y.map_or_else(|| grad.clone(), into_contiguous);
    let rows = shape[0];
    let dx = empty::<R, F>(&x_hat, shape.clone());
    let dz_x_hat = empty::<R, F>(&x_hat, shape.clone());
    let dz = empty::<R, F>(&x_hat, shape);
    let (count, dim) = grid(&x_hat, rows);
    layer_norm_backward_kernel::launch::<F, R>(
        &x_hat.client.clone(),
        count,
        dim,
        x_hat.into_tensor_arg(),
        rstd.into_tensor_arg(),
        gamma.into_tensor_arg(),
        y.into_tensor_arg(),
        grad.into_tensor_arg(),
        dx.clone().into_tensor_arg(),
        dz_x_hat.clone().into_tensor_arg(),
        dz.clone().into_tensor_arg(),
        tanh,
    );
    type B<R, F, I, BT> = CubeBackend<R, F, I, BT>;
    let column_sums = |t: CubeTensor<R>| {
        B::<R, F, I, BT>::float_reshape(B::<R, F, I, BT>::float_sum_dim(t, 0), Shape::new([cols]))
    };
    [dx, column_sums(dz_x_hat), column_sums(dz)]
}

impl<R, F, I, BT> DeviceOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn is_accelerator() -> bool {
        true
    }
}

impl<R, F, I, BT> LinearOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn fused_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if y.dtype != F::dtype() || grad.dtype != F::dtype() || y.shape() != grad.shape() {
            count_fallback();
            return plain::tanh_backward::<Self>(y, grad);
        }
        let (y, grad) = (into_contiguous(y), into_contiguous(grad));
        let out = empty::<R, F>(&y, y.shape());
        let (count, dim) = grid(&y, out.meta.num_elements());
        tanh_backward_kernel::launch::<F, R>(
            &y.client.clone(),
            count,
            dim,
            y.into_tensor_arg(),
            grad.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }

    fn fused_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        tanh: bool,
    ) -> FloatTensor<Self> {
        if b.dtype != F::dtype() || x.dtype != F::dtype() {
            count_fallback();
            return plain::linear::<Self>(x, w, b, tanh);
        }
        let pre = into_contiguous(Self::float_matmul(x, w));
        let b = into_contiguous(b);
        let out = empty::<R, F>(&pre, pre.shape());
        let (count, dim) = grid(&pre, out.meta.num_elements());
        bias_tanh_kernel::launch::<F, R>(
            &pre.client.clone(),
            count,
            dim,
            pre.into_tensor_arg(),
            b.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            tanh,
        );
        out
    }

    fn fused_embedding(table: FloatTensor<Self>, contexts: IntTensor<Self>) -> FloatTensor<Self> {
        if table.dtype != F::dtype() || contexts.dtype != I::dtype() {
            count_fallback();
            return plain::embedding::<Self>(table, contexts);
        }
        let (table, contexts) = (into_contiguous(table), into_contiguous(contexts));
        let [rows, block] = contexts.shape().dims();
        let dim = table.shape()[1];
        let out = empty::<R, F>(&table, Shape::new([rows, block * dim]));
        let (count, cube_dim) = grid(&table, rows * block * dim);
        embedding_kernel::launch::<F, I, R>(
            &table.client.clone(),
            count,
            cube_dim,
            table.into_tensor_arg(),
            contexts.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }

    fn fused_embedding_backward(
        contexts: IntTensor<Self>,
        grad: FloatTensor<Self>,
        vocab: usize,
    ) -> FloatTensor<Self> {
        if grad.dtype != F::dtype() || contexts.dtype != I::dtype() {
            count_fallback();
            return plain::embedding_backward::<Self>(contexts, grad, vocab);
        }
        let (contexts, grad) = (into_contiguous(contexts), into_contiguous(grad));
        let [rows, block] = contexts.shape().dims();
        let dim = grad.shape()[1] / block.max(1);
        let chunks = (rows * block).div_ceil(SCATTER_CHUNK).max(1);
        let partial = empty::<R, F>(&grad, Shape::new([chunks, vocab, dim]));
        let (count, cube_dim) = grid(&grad, chunks * vocab * dim);
        embedding_backward_kernel::launch::<F, I, R>(
            &grad.client.clone(),
            count,
            cube_dim,
            contexts.into_tensor_arg(),
            grad.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            SCATTER_CHUNK,
        );
        let summed = if chunks > 1 {
            Self::float_sum_dim(partial, 0)
        } else {
            partial
        };
        Self::float_reshape(summed, Shape::new([vocab, dim]))
    }
}

impl<R, F, I, BT> NormOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn fused_layer_norm_tanh(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        if !layer_norm_takes::<R, F>(&x, &gamma, &beta) {
            count_fallback();
            return plain::layer_norm_tanh::<Self>(x, gamma, beta, epsilon);
        }
        layer_norm_on_device::<R, F>(x, gamma, beta, epsilon, true)
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        if !layer_norm_takes::<R, F>(&x, &gamma, &beta) {
            count_fallback();
            return plain::layer_norm::<Self>(x, gamma, beta, epsilon);
        }
        layer_norm_on_device::<R, F>(x, gamma, beta, epsilon, false)
    }

    fn fused_layer_norm_tanh_backward(
        x_hat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        if !layer_norm_backward_takes::<R, F>(&x_hat, &rstd, &gamma, Some(&y), &grad) {
            count_fallback();
            return plain::layer_norm_tanh_backward::<Self>(x_hat, rstd, gamma, y, grad);
        }
        layer_norm_backward_on_device::<R, F, I, BT>(x_hat, rstd, gamma, Some(y), grad)
    }

    fn fused_layer_norm_backward(
        x_hat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        if !layer_norm_backward_takes::<R, F>(&x_hat, &rstd, &gamma, None, &grad) {
            count_fallback();
            return plain::layer_norm_backward::<Self>(x_hat, rstd, gamma, grad);
        }
        layer_norm_backward_on_device::<R, F, I, BT>(x_hat, rstd, gamma, None, grad)
    }
}

impl<R, F, I, BT> AttentionOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
}

impl<R, F, I, BT> RecurrenceOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
}

impl<R, F, I, BT> LossOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn fused_cross_entropy_forward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !cross_entropy_takes::<R, F, I>(&logits, &targets) {
            count_fallback();
            let (loss, probs) = plain::cross_entropy_forward::<Self>(logits, targets.clone());
            // The backward pass below expects the gradient, not the probabilities.
            let one = float::<Self, 1>(loss.clone()).ones_like();
            let one = one.into_primitive().tensor();
            let grad = plain::cross_entropy_backward::<Self>(probs, targets, one);
            return (loss, grad);
        }
        cross_entropy::<R, F, I, BT>(logits, targets, true)
    }

    /// `saved` is what [`fused_cross_entropy_forward`](crate::LossOps::fused_cross_entropy_forward)
    /// returned here: the gradient for a unit incoming gradient, so this only scales it.
    fn fused_cross_entropy_backward(
        saved: FloatTensor<Self>,
        _targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        (float::<Self, 2>(saved) * float::<Self, 1>(grad).reshape([1, 1]))
            .into_primitive()
            .tensor()
    }

    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        if !cross_entropy_takes::<R, F, I>(&logits, &targets) {
            count_fallback();
            return plain::cross_entropy_forward::<Self>(logits, targets).0;
        }
        cross_entropy::<R, F, I, BT>(logits, targets, false).0
    }
}

impl<R, F, I, BT> OptimizerOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn fused_adamw<const D: usize>(
        w: burn::tensor::Tensor<Self, D>,
        g: burn::tensor::Tensor<Self, D>,
        moments: Option<(burn::tensor::Tensor<Self, D>, burn::tensor::Tensor<Self, D>)>,
        step: crate::AdamWStep,
    ) -> [burn::tensor::Tensor<Self, D>; 3] {
        use burn::tensor::{Tensor, TensorPrimitive};
        let prim = |t: &Tensor<Self, D>| t.clone().into_primitive().tensor();
        let (wp, gp) = (prim(&w), prim(&g));
        let mv = moments.as_ref().map(|(m, v)| (prim(m), prim(v)));
        let same = |t: &CubeTensor<R>| t.dtype == F::dtype() && t.shape() == wp.shape();
        if !same(&wp) || !same(&gp) || mv.as_ref().is_some_and(|(m, v)| !same(m) || !same(v)) {
            count_fallback();
            return plain::adamw(w, g, moments, step);
        }
        let (factor_1, factor_2) = (1.0 - step.beta_1, 1.0 - step.beta_2);
        let (c1, c2) = step.bias_corrections();
        let decay_rate = step.lr * f64::from(step.weight_decay);
        let (wp, gp) = (into_contiguous(wp), into_contiguous(gp));
        let first = mv.is_none();
        let (mp, vp) = match mv {
            Some((m, v)) => (into_contiguous(m), into_contiguous(v)),
            // Not read on the first step.
            None => (gp.clone(), gp.clone()),
        };
        let shape = wp.shape();
        let outs = [
            empty::<R, F>(&wp, shape.clone()),
            empty::<R, F>(&wp, shape.clone()),
            empty::<R, F>(&wp, shape),
        ];
        let (count, dim) = grid(&wp, outs[0].meta.num_elements());
        adamw_kernel::launch::<F, R>(
            &wp.client.clone(),
            count,
            dim,
            wp.into_tensor_arg(),
            gp.into_tensor_arg(),
            mp.into_tensor_arg(),
            vp.into_tensor_arg(),
            outs[0].clone().into_tensor_arg(),
            outs[1].clone().into_tensor_arg(),
            outs[2].clone().into_tensor_arg(),
            // In f32, as burn's scalar operations round them for an f32 tensor.
            step.beta_1,
            factor_1,
            step.beta_2,
            factor_2,
            c1,
            c2,
            step.epsilon,
            (1.0 - decay_rate) as f32,
            step.lr as f32,
            first,
            decay_rate != 0.0,
        );
        outs.map(|t| Tensor::from_primitive(TensorPrimitive::Float(t)))
    }
}

impl<R, F, I, BT> SamplingOps for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn fused_dropout_mask(
        shape: Shape,
        key: [u32; 8],
        start: u64,
        keep: f64,
        device: &burn::tensor::Device<Self>,
    ) -> FloatTensor<Self> {
        let client = R::client(device);
        let out = empty_device::<R, F>(client.clone(), device.clone(), shape);
        let n = out.shape().num_elements();
        // The key's words as the backend's integers, bit for bit (an i32 holds a u32's bits).
        let words: Vec<i64> = key.iter().map(|&k| i64::from(k as i32)).collect();
        // Converted to `I` first: uploaded as i64 they would be read as pairs of i32 halves.
        let words = burn::tensor::TensorData::new(words, [8]).convert::<I>();
        let key = Self::int_from_data(words, device);
        let bound = crate::mask::keep_bound(keep);
        let (count, dim) = grid(&out, n);
        dropout_mask_kernel::launch::<F, I, R>(
            &client,
            count,
            dim,
            out.clone().into_tensor_arg(),
            key.into_tensor_arg(),
            start as u32,
            (start >> 32) as u32,
            (bound >> 32) as u32,
            bound as u32,
            (1.0 / keep) as f32,
        );
        out
    }

    fn fused_categorical(probs: FloatTensor<Self>, u: FloatTensor<Self>) -> IntTensor<Self> {
        let shape = probs.shape();
        let takes = probs.dtype == F::dtype()
            && u.dtype == F::dtype()
            && shape.num_dims() == 2
            && shape[1] > 0
            && u.shape().num_elements() == shape[0];
        if !takes {
            count_fallback();
            return plain::categorical::<Self>(probs, u);
        }
        let (probs, u) = (into_contiguous(probs), into_contiguous(u));
        let rows = shape[0];
        let out = empty_device::<R, I>(
            probs.client.clone(),
            probs.device.clone(),
            Shape::new([rows]),
        );
        let (count, dim) = grid(&probs, rows);
        categorical_kernel::launch::<F, I, R>(
            &probs.client.clone(),
            count,
            dim,
            probs.into_tensor_arg(),
            u.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }
}

/// True when the cross-entropy kernel takes these inputs: the backend's own dtypes, logits
/// `[rows, classes]` and one target per row.
fn cross_entropy_takes<R: CubeRuntime, F: FloatElement, I: IntElement>(
    logits: &CubeTensor<R>,
    targets: &CubeTensor<R>,
) -> bool {
    let shape = logits.shape();
    logits.dtype == F::dtype()
        && targets.dtype == I::dtype()
        && shape.num_dims() == 2
        && targets.shape().num_elements() == shape[0]
}

/// The cross-entropy kernel on inputs it takes ([`cross_entropy_takes`]): `(mean loss [1],
/// gradient [rows, classes])`, the gradient only when `with_grad` (else a placeholder).
fn cross_entropy<R, F, I, BT>(
    logits: CubeTensor<R>,
    targets: CubeTensor<R>,
    with_grad: bool,
) -> (CubeTensor<R>, CubeTensor<R>)
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    let (logits, targets) = (into_contiguous(logits), into_contiguous(targets));
    let rows = logits.shape()[0];
    let losses = empty::<R, F>(&logits, Shape::new([rows]));
    let grad_shape = if with_grad {
        logits.shape()
    } else {
        Shape::new([1])
    };
    let grad = empty::<R, F>(&logits, grad_shape);
    let (count, dim) = grid(&logits, rows);
    cross_entropy_kernel::launch::<F, I, R>(
        &logits.client.clone(),
        count,
        dim,
        logits.into_tensor_arg(),
        targets.into_tensor_arg(),
        losses.clone().into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        with_grad,
    );
    let loss = CubeBackend::<R, F, I, BT>::float_mean(losses);
    (loss, grad)
}
