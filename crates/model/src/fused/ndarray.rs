//! [`FusedOps`] for the ndarray CPU backend (`f32`): the [`kernels`](super::kernels) run on
//! the tensors' own buffers; inputs of another dtype take the generic path.

use burn::backend::ndarray::{NdArrayTensor, SharedArray};
use burn::backend::NdArray;
use burn::tensor::ops::{FloatTensor, FloatTensorOps, IntTensor};
use burn::tensor::TensorMetadata;
use ndarray::{ArrayView, IxDyn};

use super::{kernels, plain, FusedOps};

/// The values of an array in row-major order, borrowed when it is laid out that way.
fn values<'a, E: Copy>(view: &'a ArrayView<'a, E, IxDyn>) -> std::borrow::Cow<'a, [E]> {
    match view.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(view.iter().copied().collect()),
    }
}

/// A new `f32` tensor of `shape` filled by `fill`.
fn build(shape: &[usize], fill: impl FnOnce(&mut [f32])) -> NdArrayTensor {
    let mut out = vec![0.0f32; shape.iter().product()];
    fill(&mut out);
    match SharedArray::from_shape_vec(IxDyn(shape), out) {
        Ok(array) => array.into(),
        // The length is the product of the shape, so this cannot happen.
        Err(e) => unreachable!("{e}"),
    }
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

impl FusedOps for NdArray<f32> {
    fn fused_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match &x {
            NdArrayTensor::F32(s) => {
                let view = s.view();
                build(view.shape(), |out| kernels::tanh_into(&values(&view), out))
            }
            _ => <Self as FloatTensorOps<Self>>::float_tanh(x),
        }
    }

    fn fused_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        match (&y, &grad) {
            (NdArrayTensor::F32(ys), NdArrayTensor::F32(gs)) if ys.shape() == gs.shape() => {
                let (yv, gv) = (ys.view(), gs.view());
                build(yv.shape(), |out| {
                    kernels::tanh_backward_into(&values(&yv), &values(&gv), out);
                })
            }
            _ => plain::tanh_backward::<Self>(y, grad),
        }
    }

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
        plain::cross_entropy_backward::<Self>(probs, targets, grad)
    }
}

/// `f64` tensors get the generic implementation (the kernels are `f32`).
impl FusedOps for NdArray<f64> {}
