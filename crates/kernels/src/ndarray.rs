//! [`FusedOps`] for the ndarray CPU backend (`f32`): the [`kernels`](super::kernels) run on
//! the tensors' own buffers; inputs of another dtype take the generic path.

use burn::backend::ndarray::{NdArrayTensor, SharedArray};
use burn::backend::NdArray;
use burn::tensor::ops::{FloatTensor, FloatTensorOps, IntTensor};
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};
use ndarray::{
    Array1, Array2, ArrayView, ArrayView1, ArrayView2, Axis, CowArray, Dimension, Ix1, Ix2, IxDyn,
};
use rayon::prelude::*;

use super::buffer::{matrix, zeros};
use super::gemm::{affine, product};
use super::recurrence::RecurrenceShape;
use super::{
    count_fallback, kernels, plain, recurrence_cpu, simd, AttentionOps, DeviceOps, LinearOps,
    LossOps, NormOps, OptimizerOps, RecurrenceOps, SamplingOps,
};

/// The values of an array in row-major order, borrowed when it is laid out that way.
fn values<'a, E: Copy, D: Dimension>(view: &'a ArrayView<'a, E, D>) -> std::borrow::Cow<'a, [E]> {
    match view.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(view.iter().copied().collect()),
    }
}

/// An `f32` tensor of `shape` holding `values` (row-major, as many as the shape has).
fn from_vec(shape: &[usize], values: Vec<f32>) -> NdArrayTensor {
    match SharedArray::from_shape_vec(IxDyn(shape), values) {
        Ok(array) => array.into(),
        // Every caller passes exactly the product of the shape, so this cannot happen.
        Err(e) => unreachable!("{e}"),
    }
}

/// A new `f32` tensor of `shape` filled by `fill`.
fn build(shape: &[usize], fill: impl FnOnce(&mut [f32])) -> NdArrayTensor {
    let mut out = zeros(shape.iter().product());
    fill(&mut out);
    from_vec(shape, out)
}

/// Runs `f` (or `g`) on the targets as `i64` (or `i32`) values and `out`; `None` for
/// targets of another dtype.
fn with_targets<R>(
    targets: &NdArrayTensor,
    out: &mut [f32],
    f: impl FnOnce(&[i64], &mut [f32]) -> R,
    g: impl FnOnce(&[i32], &mut [f32]) -> R,
) -> Option<R> {
    match targets {
        NdArrayTensor::I64(t) => Some(f(&values(&t.view()), out)),
        NdArrayTensor::I32(t) => Some(g(&values(&t.view()), out)),
        _ => None,
    }
}

/// A 2-D `f32` view of a tensor, any strides (a transposed weight is used as it lies).
fn view2(t: &NdArrayTensor) -> Option<ArrayView2<'_, f32>> {
    match t {
        NdArrayTensor::F32(s) => s.view().into_dimensionality::<Ix2>().ok(),
        _ => None,
    }
}

/// A 1-D `f32` view of a tensor.
fn view1(t: &NdArrayTensor) -> Option<ArrayView1<'_, f32>> {
    match t {
        NdArrayTensor::F32(s) => s.view().into_dimensionality::<Ix1>().ok(),
        _ => None,
    }
}

/// Wraps a finished array as a tensor.
fn tensor(a: Array2<f32>) -> NdArrayTensor {
    a.into_dyn().into_shared().into()
}

/// `x·w + b`, then tanh when asked: one matrix product into rows that start as the bias
/// (written by each thread into its own piece of the output, see [`affine`]).
fn linear(x: ArrayView2<f32>, w: ArrayView2<f32>, b: ArrayView1<f32>, tanh: bool) -> Array2<f32> {
    let mut y = affine(x, w, &values(&b));
    if tanh {
        if let Some(values) = y.as_slice_mut() {
            kernels::tanh_in_place(values);
        } else {
            y.mapv_inplace(kernels::tanh);
        }
    }
    y
}

/// `[dx, dw, db]` of [`linear`]: the gradient before tanh, two matrix products against the
/// transposed views, and a column sum.
fn linear_backward(
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    y: Option<ArrayView2<f32>>,
    grad: ArrayView2<f32>,
) -> [Array2<f32>; 3] {
    let pre = match y {
        Some(y) => {
            let mut pre = matrix(grad.nrows(), grad.ncols(), zeros(grad.len()));
            match (pre.as_slice_mut(), grad.as_slice(), y.as_slice()) {
                (Some(p), Some(g), Some(y)) => kernels::tanh_backward(g, y, p),
                _ => ndarray::Zip::from(&mut pre)
                    .and(&grad)
                    .and(&y)
                    .for_each(|p, &g, &y| *p = g * (1.0 - y * y)),
            }
            CowArray::from(pre)
        }
        None => CowArray::from(grad),
    };
    let dx = product(pre.view(), w.t());
    let dw = product(x.t(), pre.view());
    let db = column_sums(pre.view()).insert_axis(Axis(0));
    [dx, dw, db]
}

/// The sum of each column, row after row from the first (as ndarray's `sum_axis(Axis(0))`
/// adds them); wide matrices are split by columns over rayon's threads.
pub(super) fn column_sums(a: ArrayView2<f32>) -> Array1<f32> {
    let cols = a.ncols();
    let mut sums = Array1::zeros(cols);
    let Some(out) = sums.as_slice_mut() else {
        unreachable!("a new array is contiguous")
    };
    // Narrow matrices stay whole: a piece of a few columns per row is not worth a thread.
    let piece = if cols < 64 {
        cols.max(1)
    } else {
        kernels::units_per_piece(cols, a.nrows())
    };
    out.par_chunks_mut(piece).enumerate().for_each(|(i, out)| {
        simd::vectorized(
            #[inline(always)]
            || {
                let first = i * piece;
                let cut = first..first + out.len();
                match a.as_slice() {
                    // Row-major: each row's piece is a slice of the buffer (no view per row).
                    Some(all) => {
                        for row in all.chunks_exact(cols) {
                            out.iter_mut()
                                .zip(&row[cut.clone()])
                                .for_each(|(o, &x)| *o += x);
                        }
                    }
                    None => {
                        for row in a.rows() {
                            let row = row.slice_move(ndarray::s![cut.clone()]);
                            out.iter_mut().zip(row).for_each(|(o, &x)| *o += x);
                        }
                    }
                }
            },
        )
    });
    sums
}

/// Copies row `contexts[r][k]` of `table` to columns `k·dim..(k+1)·dim` of output row `r`.
/// A context index outside the table gives NaN embeddings, not a panic.
fn embedding<T: Copy + TryInto<usize>>(
    table: ArrayView2<f32>,
    contexts: ArrayView2<T>,
) -> Array2<f32> {
    let (rows, block) = contexts.dim();
    let (vocab, dim) = table.dim();
    let mut out = matrix(rows, block * dim, zeros(rows * block * dim));
    let (Some(dst), false) = (out.as_slice_mut(), dim == 0) else {
        return out;
    };
    let table = values(&table);
    // The output, `dim` values at a time, in the order of the context indices.
    for (dst, &c) in dst.chunks_exact_mut(dim).zip(contexts.iter()) {
        match c.try_into().ok().filter(|&c: &usize| c < vocab) {
            Some(c) => dst.copy_from_slice(&table[c * dim..(c + 1) * dim]),
            None => dst.fill(f32::NAN),
        }
    }
    out
}

/// The gradient of [`embedding`] with respect to the table.
fn embedding_backward<T: Copy + TryInto<usize>>(
    contexts: ArrayView2<T>,
    grad: ArrayView2<f32>,
    vocab: usize,
) -> Array2<f32> {
    let block = contexts.ncols();
    let dim = grad.ncols() / block.max(1);
    let mut table = matrix(vocab, dim, zeros(vocab * dim));
    let (Some(dst), false) = (table.as_slice_mut(), dim == 0) else {
        return table;
    };
    let width = grad.ncols();
    let grad = values(&grad);
    for (row, context) in grad.chunks_exact(width.max(1)).zip(contexts.rows()) {
        for (src, &c) in row.chunks_exact(dim).zip(context) {
            if let Some(c) = c.try_into().ok().filter(|&c: &usize| c < vocab) {
                for (d, s) in dst[c * dim..(c + 1) * dim].iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
    table
}

/// `Some(f(view))` with a 2-D view of an `i64` or `i32` tensor; `None` for other dtypes
/// or ranks. (A macro: the closure is instantiated once per integer type.)
macro_rules! with_int_view2 {
    ($tensor:expr, |$view:ident| $body:expr) => {
        match $tensor {
            NdArrayTensor::I64(c) => c
                .view()
                .into_dimensionality::<Ix2>()
                .ok()
                .map(|$view| $body),
            NdArrayTensor::I32(c) => c
                .view()
                .into_dimensionality::<Ix2>()
                .ok()
                .map(|$view| $body),
            _ => None,
        }
    };
}

/// LayerNorm (with tanh when `tanh`) of `[rows, cols]` rows in one pass, or the inputs back
/// when the kernel does not take them.
fn layer_norm_forward(
    x: &NdArrayTensor,
    gamma: &NdArrayTensor,
    beta: &NdArrayTensor,
    epsilon: f64,
    tanh: bool,
) -> Option<[NdArrayTensor; 3]> {
    if let (Some(xv), Some(gv), Some(bv)) = (view2(x), view1(gamma), view1(beta)) {
        let (rows, cols) = xv.dim();
        if gv.len() == cols && bv.len() == cols {
            let (xs, g, b) = (values(&xv), values(&gv), values(&bv));
            let (mut y, mut x_hat, mut rstd) =
                (zeros(rows * cols), zeros(rows * cols), zeros(rows));
            let eps = epsilon as f32;
            if tanh {
                kernels::layer_norm_tanh(&xs, cols, &g, &b, eps, &mut y, &mut x_hat, &mut rstd);
            } else {
                kernels::layer_norm(&xs, cols, &g, &b, eps, &mut y, &mut x_hat, &mut rstd);
            }
            return Some([
                from_vec(&[rows, cols], y),
                from_vec(&[rows, cols], x_hat),
                from_vec(&[rows, 1], rstd),
            ]);
        }
    }
    None
}

/// The gradients `[dx, dγ, dβ]` of [`layer_norm_forward`] (through tanh when its output `y`
/// is given), or `None` when the kernel does not take the tensors.
fn layer_norm_backward(
    x_hat: &NdArrayTensor,
    rstd: &NdArrayTensor,
    gamma: &NdArrayTensor,
    y: Option<&NdArrayTensor>,
    grad: &NdArrayTensor,
) -> Option<[NdArrayTensor; 3]> {
    let (xh, r, gm, gv) = (view2(x_hat)?, view2(rstd)?, view1(gamma)?, view2(grad)?);
    let yv = match y {
        Some(y) => Some(view2(y)?),
        None => None,
    };
    let (rows, cols) = xh.dim();
    let fits = r.dim() == (rows, 1)
        && gm.len() == cols
        && gv.dim() == xh.dim()
        && yv.is_none_or(|y| y.dim() == xh.dim());
    if !fits {
        return None;
    }
    let (xh, r, gm, gv) = (values(&xh), values(&r), values(&gm), values(&gv));
    let yv = yv.as_ref().map(values);
    let mut dx = zeros(rows * cols);
    let mut dz = matrix(rows, cols, zeros(rows * cols));
    let mut dzx = matrix(rows, cols, zeros(rows * cols));
    if let (Some(dz_s), Some(dzx_s)) = (dz.as_slice_mut(), dzx.as_slice_mut()) {
        kernels::layer_norm_tanh_backward(
            &xh,
            &r,
            &gm,
            yv.as_deref(),
            &gv,
            cols,
            &mut dx,
            dz_s,
            dzx_s,
        );
    }
    let dgamma = column_sums(dzx.view()).into_dyn().into_shared().into();
    let dbeta = column_sums(dz.view()).into_dyn().into_shared().into();
    Some([from_vec(&[rows, cols], dx), dgamma, dbeta])
}

impl DeviceOps for NdArray<f32> {}

impl LinearOps for NdArray<f32> {
    fn fused_embedding(table: FloatTensor<Self>, contexts: IntTensor<Self>) -> FloatTensor<Self> {
        if let Some(tv) = view2(&table) {
            if let Some(out) = with_int_view2!(&contexts, |c| embedding(tv, c)) {
                return tensor(out);
            }
        }
        count_fallback();
        plain::embedding::<Self>(table, contexts)
    }

    fn fused_embedding_backward(
        contexts: IntTensor<Self>,
        grad: FloatTensor<Self>,
        vocab: usize,
    ) -> FloatTensor<Self> {
        if let Some(gv) = view2(&grad) {
            if let Some(out) = with_int_view2!(&contexts, |c| embedding_backward(c, gv, vocab)) {
                return tensor(out);
            }
        }
        count_fallback();
        plain::embedding_backward::<Self>(contexts, grad, vocab)
    }

    fn fused_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        tanh: bool,
    ) -> FloatTensor<Self> {
        if let (Some(xv), Some(wv), Some(bv)) = (view2(&x), view2(&w), view1(&b)) {
            if xv.ncols() == wv.nrows() && bv.len() == wv.ncols() {
                return tensor(linear(xv, wv, bv, tanh));
            }
        }
        count_fallback();
        plain::linear::<Self>(x, w, b, tanh)
    }

    fn fused_linear_backward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        y: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        let yv = y.as_ref().map(view2);
        if let (Some(xv), Some(wv), Some(gv)) = (view2(&x), view2(&w), view2(&grad)) {
            let shapes_agree = xv.ncols() == wv.nrows()
                && gv.dim() == (xv.nrows(), wv.ncols())
                && yv.is_none_or(|y| y.is_some_and(|y| y.dim() == gv.dim()));
            if shapes_agree {
                let [dx, dw, db] = linear_backward(xv, wv, yv.flatten(), gv);
                let db: NdArrayTensor = db
                    .index_axis_move(Axis(0), 0)
                    .into_dyn()
                    .into_shared()
                    .into();
                return [tensor(dx), tensor(dw), db];
            }
        }
        count_fallback();
        plain::linear_backward::<Self>(x, w, y, grad)
    }

    fn fused_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match &x {
            NdArrayTensor::F32(s) => {
                let view = s.view();
                let mut out = values(&view).into_owned();
                kernels::tanh_in_place(&mut out);
                from_vec(view.shape(), out)
            }
            _ => {
                count_fallback();
                <Self as FloatTensorOps<Self>>::float_tanh(x)
            }
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match &x {
            NdArrayTensor::F32(s) => {
                let view = s.view();
                let mut out = zeros(view.len());
                kernels::gelu(&values(&view), &mut out);
                from_vec(view.shape(), out)
            }
            _ => {
                count_fallback();
                super::plain::gelu::<Self>(x)
            }
        }
    }

    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        match (&x, &grad) {
            (NdArrayTensor::F32(xs), NdArrayTensor::F32(gs)) if xs.shape() == gs.shape() => {
                let (xv, gv) = (xs.view(), gs.view());
                let mut out = zeros(gv.len());
                kernels::gelu_backward(&values(&xv), &values(&gv), &mut out);
                from_vec(gv.shape(), out)
            }
            _ => {
                count_fallback();
                super::plain::gelu_backward::<Self>(x, grad)
            }
        }
    }

    fn fused_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        match (&y, &grad) {
            (NdArrayTensor::F32(ys), NdArrayTensor::F32(gs)) if ys.shape() == gs.shape() => {
                let (yv, gv) = (ys.view(), gs.view());
                let mut out = zeros(gv.len());
                kernels::tanh_backward(&values(&gv), &values(&yv), &mut out);
                from_vec(gv.shape(), out)
            }
            _ => {
                count_fallback();
                plain::tanh_backward::<Self>(y, grad)
            }
        }
    }
}

impl NormOps for NdArray<f32> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        layer_norm_forward(&x, &gamma, &beta, epsilon, false).unwrap_or_else(|| {
            count_fallback();
            plain::layer_norm::<Self>(x, gamma, beta, epsilon)
        })
    }

    fn fused_layer_norm_backward(
        x_hat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        layer_norm_backward(&x_hat, &rstd, &gamma, None, &grad).unwrap_or_else(|| {
            count_fallback();
            plain::layer_norm_backward::<Self>(x_hat, rstd, gamma, grad)
        })
    }

    fn fused_layer_norm_tanh(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        layer_norm_forward(&x, &gamma, &beta, epsilon, true).unwrap_or_else(|| {
            count_fallback();
            plain::layer_norm_tanh::<Self>(x, gamma, beta, epsilon)
        })
    }

    fn fused_layer_norm_tanh_backward(
        x_hat: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3] {
        layer_norm_backward(&x_hat, &rstd, &gamma, Some(&y), &grad).unwrap_or_else(|| {
            count_fallback();
            plain::layer_norm_tanh_backward::<Self>(x_hat, rstd, gamma, y, grad)
        })
    }
}

impl AttentionOps for NdArray<f32> {
    fn fused_attention(
        qkv: FloatTensor<Self>,
        batch: usize,
        n_head: usize,
        mask: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 2] {
        if let Some(qv) = view2(&qkv) {
            let (rows, c3) = qv.dim();
            let shape = kernels::AttentionShape {
                batch,
                t: rows / batch.max(1),
                c: c3 / 3,
                heads: n_head,
            };
            let t = shape.t;
            let mask_values = mask
                .as_ref()
                .and_then(view2)
                .map(|m| values(&m).into_owned());
            let fits = batch > 0
                && rows == batch * t
                && c3 % 3 == 0
                && n_head > 0
                && shape.c.is_multiple_of(n_head)
                && mask.is_none() == mask_values.is_none()
                && mask_values
                    .as_ref()
                    .is_none_or(|m| m.len() == batch * n_head * t * t);
            if fits {
                let mut y = zeros(rows * shape.c);
                let mut probs = zeros(batch * n_head * t * t);
                kernels::attention(
                    &values(&qv),
                    shape,
                    mask_values.as_deref(),
                    &mut y,
                    &mut probs,
                );
                return [
                    from_vec(&[rows, shape.c], y),
                    from_vec(&[batch * n_head * t, t], probs),
                ];
            }
        }
        count_fallback();
        super::plain::attention::<Self>(qkv, batch, n_head, mask)
    }

    fn fused_attention_backward(
        qkv: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        mask: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
        batch: usize,
        n_head: usize,
    ) -> FloatTensor<Self> {
        if let (Some(qv), Some(pv), Some(gv)) = (view2(&qkv), view2(&probs), view2(&grad)) {
            let (rows, c3) = qv.dim();
            let shape = kernels::AttentionShape {
                batch,
                t: rows / batch.max(1),
                c: c3 / 3,
                heads: n_head,
            };
            let mask_values = mask
                .as_ref()
                .and_then(view2)
                .map(|m| values(&m).into_owned());
            if gv.dim() == (rows, shape.c) && mask.is_none() == mask_values.is_none() {
                let mut dqkv = zeros(rows * c3);
                kernels::attention_backward(
                    &values(&qv),
                    &values(&pv),
                    mask_values.as_deref(),
                    &values(&gv),
                    shape,
                    &mut dqkv,
                );
                return from_vec(&[rows, c3], dqkv);
            }
        }
        count_fallback();
        super::plain::attention_backward::<Self>(qkv, probs, mask, grad, batch, n_head)
    }

    fn fused_causal_softmax(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        if let NdArrayTensor::F32(s) = &x {
            let view = s.view();
            let shape = view.shape();
            if let [.., a, b] = shape {
                if a == b {
                    let t = *b;
                    let mut out = zeros(view.len());
                    kernels::causal_softmax(&values(&view), t, scale as f32, &mut out);
                    return from_vec(shape, out);
                }
            }
        }
        count_fallback();
        super::plain::causal_softmax::<Self>(x, scale)
    }

    fn fused_causal_softmax_backward(
        y: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        if let (NdArrayTensor::F32(ys), NdArrayTensor::F32(gs)) = (&y, &grad) {
            let (yv, gv) = (ys.view(), gs.view());
            if yv.shape() == gv.shape() {
                let t = *yv.shape().last().unwrap_or(&1);
                let mut out = zeros(gv.len());
                kernels::causal_softmax_backward(
                    &values(&yv),
                    &values(&gv),
                    t,
                    scale as f32,
                    &mut out,
                );
                return from_vec(gv.shape(), out);
            }
        }
        count_fallback();
        super::plain::causal_softmax_backward::<Self>(y, grad, scale)
    }

    fn fused_causal_mean(x: FloatTensor<Self>, t: usize) -> FloatTensor<Self> {
        sequence_kernel(&x, t, kernels::causal_mean).unwrap_or_else(|| {
            count_fallback();
            super::plain::causal_mean::<Self>(x, t)
        })
    }

    fn fused_causal_mean_backward(grad: FloatTensor<Self>, t: usize) -> FloatTensor<Self> {
        sequence_kernel(&grad, t, kernels::causal_mean_backward).unwrap_or_else(|| {
            count_fallback();
            super::plain::causal_mean_backward::<Self>(grad, t)
        })
    }
}

/// `kernel(x, t, c, out)` on `x` `[sequences · t, c]` into a new tensor of its shape;
/// `None` for other dtypes, ranks or lengths.
fn sequence_kernel(
    x: &NdArrayTensor,
    t: usize,
    kernel: fn(&[f32], usize, usize, &mut [f32]),
) -> Option<NdArrayTensor> {
    let xv = view2(x)?;
    let [rows, c] = [xv.nrows(), xv.ncols()];
    (t > 0 && rows % t == 0).then(|| build(&[rows, c], |out| kernel(&values(&xv), t, c, out)))
}

impl RecurrenceOps for NdArray<f32> {
    fn fused_recurrence(
        shape: RecurrenceShape,
        x: FloatTensor<Self>,
        start: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> Option<[FloatTensor<Self>; 2]> {
        let RecurrenceShape { batch, t, e, h, .. } = shape;
        let gh = shape.cell.gates() * h;
        let views = (view2(&x), view2(&start), view2(&w), view1(&b));
        if let (Some(xv), Some(sv), Some(wv), Some(bv)) = views {
            if xv.dim() == (batch * t, e)
                && sv.dim() == (1, h)
                && wv.dim() == (e + h, gh)
                && bv.len() == gh
            {
                let [hidden, gates] = recurrence_cpu::forward(shape, xv, sv, wv, bv);
                return Some([tensor(hidden), tensor(gates)]);
            }
        }
        count_fallback();
        None
    }

    fn fused_recurrence_backward(
        shape: RecurrenceShape,
        x: FloatTensor<Self>,
        start: FloatTensor<Self>,
        w: FloatTensor<Self>,
        hidden: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 4] {
        let views = (
            view2(&x),
            view2(&start),
            view2(&w),
            view2(&hidden),
            view2(&gates),
            view2(&grad),
        );
        if let (Some(xv), Some(sv), Some(wv), Some(hv), Some(gv), Some(dv)) = views {
            if dv.dim() == hv.dim() {
                let [dx, dstart, dw, db] = recurrence_cpu::backward(shape, xv, sv, wv, hv, gv, dv);
                let db = db.index_axis_move(Axis(0), 0).into_dyn().into_shared();
                return [tensor(dx), tensor(dstart), tensor(dw), db.into()];
            }
        }
        count_fallback();
        super::recurrence::backward::<Self>(shape, x, start, w, hidden, gates, grad)
    }
}

impl LossOps for NdArray<f32> {
    fn fused_cross_entropy_forward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if let NdArrayTensor::F32(l) = &logits {
            let view = l.view();
            if let &[rows, classes] = view.shape() {
                let lv = values(&view);
                let mut loss = None;
                let probs = build(&[rows, classes], |probs| {
                    loss = with_targets(
                        &targets,
                        probs,
                        |t, probs| kernels::cross_entropy_into(&lv, t, classes, probs),
                        |t, probs| kernels::cross_entropy_into(&lv, t, classes, probs),
                    );
                });
                if let (Some(loss), true) = (loss, targets.shape().num_elements() == rows) {
                    return (build(&[1], |out| out[0] = loss), probs);
                }
            }
        }
        count_fallback();
        plain::cross_entropy_forward::<Self>(logits, targets)
    }

    fn fused_cross_entropy_backward(
        probs: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if let (NdArrayTensor::F32(p), NdArrayTensor::F32(g)) = (&probs, &grad) {
            let view = p.view();
            let g = values(&g.view()).first().copied();
            if let (&[rows, classes], Some(g)) = (view.shape(), g) {
                let pv = values(&view);
                let mut result = None;
                let out = build(&[rows, classes], |out| {
                    result = with_targets(
                        &targets,
                        out,
                        |t, out| kernels::cross_entropy_backward_into(&pv, t, classes, g, out),
                        |t, out| kernels::cross_entropy_backward_into(&pv, t, classes, g, out),
                    );
                });
                if result.is_some() && targets.shape().num_elements() == rows {
                    return out;
                }
            }
        }
        count_fallback();
        plain::cross_entropy_backward::<Self>(probs, targets, grad)
    }
}

impl OptimizerOps for NdArray<f32> {
    fn fused_adamw<const D: usize>(
        w: Tensor<Self, D>,
        g: Tensor<Self, D>,
        moments: Option<(Tensor<Self, D>, Tensor<Self, D>)>,
        step: crate::AdamWStep,
    ) -> [Tensor<Self, D>; 3] {
        let dims = w.dims();
        let f32s = |t: &Tensor<Self, D>| match t.clone().into_primitive().tensor() {
            NdArrayTensor::F32(a) => Some(a),
            _ => None,
        };
        let arrays = (
            f32s(&w),
            f32s(&g),
            moments.as_ref().map(|(m, v)| (f32s(m), f32s(v))),
        );
        let (Some(wa), Some(ga), m) = arrays else {
            count_fallback();
            return plain::adamw(w, g, moments, step);
        };
        let mv = match m {
            None => None,
            Some((Some(m), Some(v))) => Some((m, v)),
            Some(_) => {
                count_fallback();
                return plain::adamw(w, g, moments, step);
            }
        };
        let (wv, gv) = (wa.view(), ga.view());
        let (wv, gv) = (values(&wv), values(&gv));
        let views = mv.as_ref().map(|(m, v)| (m.view(), v.view()));
        let slices = views.as_ref().map(|(m, v)| (values(m), values(v)));
        let n = wv.len();
        let same = gv.len() == n
            && slices
                .as_ref()
                .is_none_or(|(m, v)| m.len() == n && v.len() == n);
        if !same {
            count_fallback();
            return plain::adamw(w, g, moments, step);
        }
        let (mut w_new, mut m_new, mut v_new) = (zeros(n), zeros(n), zeros(n));
        kernels::adamw(
            &wv,
            &gv,
            slices.as_ref().map(|(m, v)| (&m[..], &v[..])),
            step,
            (&mut w_new, &mut m_new, &mut v_new),
        );
        let wrap = |values: Vec<f32>| {
            Tensor::from_primitive(TensorPrimitive::Float(from_vec(&dims, values)))
        };
        [wrap(w_new), wrap(m_new), wrap(v_new)]
    }
}

impl SamplingOps for NdArray<f32> {}

// `f64` tensors get the generic implementation (the kernels are `f32`).
crate::default_fused_ops!(NdArray<f64>);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};

    /// Column sums add each column's values row after row, in `f32`, whether the matrix is
    /// row-major or not, narrow or split over threads: the same bits as a plain loop.
    #[test]
    fn column_sums_add_rows_in_order() {
        for threads in [1, 3] {
            let pool = crate::test_pool(threads);
            for (rows, cols) in [(5, 3), (700, 200), (3000, 64), (4, 0)] {
                let a = Array2::from_shape_fn((rows, cols), |(i, j)| {
                    ((i * 37 + j * 11) % 101) as f32 * 0.013 - 0.6
                });
                let at = a.t().to_owned();
                let expected = Array1::from_shape_fn(cols, |j| {
                    (0..rows).fold(0.0f32, |sum, i| sum + a[[i, j]])
                });
                for view in [a.view(), at.t()] {
                    let sums = pool.install(|| column_sums(view));
                    assert_eq!(sums, expected, "{rows}×{cols}, {threads} thread(s)");
                }
            }
        }
    }

    #[test]
    fn linear_and_its_gradients_against_loops() {
        let x = array![[1.0f32, -2.0, 0.5], [0.0, 3.0, -1.0]];
        let w = array![[0.1f32, 0.2], [-0.3, 0.4], [0.5, -0.6]];
        let b: Array1<f32> = array![0.05, -0.05];
        let y = linear(x.view(), w.view(), b.view(), true);
        for i in 0..2 {
            for j in 0..2 {
                let pre: f32 = (0..3).map(|k| x[[i, k]] * w[[k, j]]).sum::<f32>() + b[j];
                assert!((y[[i, j]] - pre.tanh()).abs() < 1e-6);
            }
        }
        let g = array![[1.0f32, -1.0], [0.5, 2.0]];
        // The weight passed transposed-in-memory must give the same result as a copy.
        let wt = w.t().to_owned();
        let [dx, dw, db] = linear_backward(x.view(), wt.t(), Some(y.view()), g.view());
        let pre = &g * &y.mapv(|v| 1.0 - v * v);
        for i in 0..2 {
            for k in 0..3 {
                let e: f32 = (0..2).map(|j| pre[[i, j]] * w[[k, j]]).sum();
                assert!((dx[[i, k]] - e).abs() < 1e-6);
            }
        }
        for k in 0..3 {
            for j in 0..2 {
                let e: f32 = (0..2).map(|i| x[[i, k]] * pre[[i, j]]).sum();
                assert!((dw[[k, j]] - e).abs() < 1e-6);
            }
        }
        for j in 0..2 {
            assert!((db[[0, j]] - (pre[[0, j]] + pre[[1, j]])).abs() < 1e-6);
        }
    }

    #[test]
    fn embedding_gathers_rows_and_its_gradient_adds_them_back() {
        let table = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        let contexts = array![[0i64, 2], [2, 2]];
        let e = embedding(table.view(), contexts.view());
        assert_eq!(e, array![[1.0f32, 2.0, 5.0, 6.0], [5.0, 6.0, 5.0, 6.0]]);
        let g = array![[1.0f32, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0]];
        let dt = embedding_backward(contexts.view(), g.view(), 3);
        assert_eq!(dt, array![[1.0f32, 1.0], [0.0, 0.0], [9.0, 9.0]]);
        // An index outside the table reads NaN and writes nothing, never panics.
        let bad = array![[7i32, 0]];
        assert!(embedding(table.view(), bad.view())[[0, 0]].is_nan());
        let dt = embedding_backward(bad.view(), array![[1.0f32, 1.0, 1.0, 1.0]].view(), 3);
        assert_eq!(dt.sum(), 2.0);
    }

    /// The running mean over positions: the kernel gives the generic path's bits, forward
    /// and backward, on one and on three threads; it is the mean of the rows so far (f64),
    /// and its backward pass is its transpose (`⟨mean(x), g⟩ = ⟨x, mean'(g)⟩`).
    #[test]
    fn causal_mean_is_the_generic_path_bit_for_bit_and_its_backward_is_its_transpose() {
        // 153,600 values: more than `kernels::PARALLEL_MIN`, so three threads split them.
        let (words, t, c) = (150, 16, 64);
        let x: Vec<f32> = (0..words * t * c)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 1.7)
            .collect();
        let g: Vec<f32> = (0..words * t * c)
            .map(|i| (i * 104_729 % 997) as f32 / 498.5 - 1.0)
            .collect();
        let tensor = |v: &[f32]| from_vec(&[words * t, c], v.to_vec());
        let floats = |t: NdArrayTensor| -> Vec<f32> {
            Tensor::<NdArray<f32>, 2>::from_primitive(TensorPrimitive::Float(t))
                .into_data()
                .to_vec()
                .unwrap()
        };
        let plain_y = floats(plain::causal_mean::<NdArray<f32>>(tensor(&x), t));
        let plain_dx = floats(plain::causal_mean_backward::<NdArray<f32>>(tensor(&g), t));
        for threads in [1, 3] {
            let pool = crate::test_pool(threads);
            let y = pool.install(|| floats(NdArray::<f32>::fused_causal_mean(tensor(&x), t)));
            let dx =
                pool.install(|| floats(NdArray::<f32>::fused_causal_mean_backward(tensor(&g), t)));
            assert_eq!(y, plain_y, "{threads} threads");
            assert_eq!(dx, plain_dx, "{threads} threads");
        }
        let (mut lhs, mut rhs) = (0f64, 0f64);
        for w in 0..words {
            for i in 0..t {
                for k in 0..c {
                    let at = |j: usize| (w * t + j) * c + k;
                    let mean = (0..=i).map(|j| f64::from(x[at(j)])).sum::<f64>() / (i + 1) as f64;
                    assert!((f64::from(plain_y[at(i)]) - mean).abs() < 1e-5);
                    lhs += f64::from(plain_y[at(i)]) * f64::from(g[at(i)]);
                    rhs += f64::from(x[at(i)]) * f64::from(plain_dx[at(i)]);
                }
            }
        }
        assert!(
            (lhs - rhs).abs() < 1e-6 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
    }
}
