//! The RNN and GRU recurrences ([`recurrence`](super::recurrence)) on `f32` arrays, for
//! the ndarray backend: the inputs' share of every position's pre-activations is one matrix
//! product over all rows, so that only the state's share (a `[batch, h]·[h, gates · h]`
//! product) and the gates' element-wise arithmetic are left to each step; the backward
//! pass mirrors it, and the weights' gradients are again products over all rows.
//!
//! Rows are word by word, then position: the rows of position `i` are `i, i + t, i + 2t, …`,
//! a strided view that the products take as it lies.

use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Zip};

use super::gemm::{affine, matmul, product, rows_of};
use super::kernels::tanh;
use super::ndarray::column_sums;
use super::recurrence::{CellKind, RecurrenceShape};

/// `σ(a) = (1 + tanh(a / 2)) / 2`, as the step-by-step path computes it.
fn sigmoid(a: f32) -> f32 {
    tanh(0.5 * a) * 0.5 + 0.5
}

/// The rows of position `i` of `[batch · t, ·]` rows.
fn position<'a>(m: &'a Array2<f32>, i: usize, t: usize) -> ArrayView2<'a, f32> {
    m.slice(s![i..;t, ..])
}

/// [`position`], writable.
fn position_mut<'a>(m: &'a mut Array2<f32>, i: usize, t: usize) -> ArrayViewMut2<'a, f32> {
    m.slice_mut(s![i..;t, ..])
}

/// The inputs' rows of `w` and the state's: `[e, gates · h]` and `[h, gates · h]`.
fn split(sh: RecurrenceShape, w: ArrayView2<f32>) -> (ArrayView2<f32>, ArrayView2<f32>) {
    let (wx, wh) = w.split_at(Axis(0), sh.e);
    (wx, wh)
}

/// `[hidden [batch · t, h], gates]` (gates `[batch · t, 3h]` for the GRU, `[0, 0]` for the
/// RNN) of the recurrence over `x` `[batch · t, e]` from `start` `[1, h]`.
pub fn forward(
    sh: RecurrenceShape,
    x: ArrayView2<f32>,
    start: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
) -> [Array2<f32>; 2] {
    let RecurrenceShape {
        cell, batch, t, h, ..
    } = sh;
    let (gh, rows) = (cell.gates() * h, batch * t);
    let (wx, wh) = split(sh, w);
    // The inputs' share of every pre-activation, bias included: one product.
    let pre = affine(x, wx, &b.to_vec());
    let mut hidden = Array2::zeros((rows, h));
    let mut gates = match cell {
        CellKind::Gru => Array2::zeros((rows, gh)),
        CellKind::Rnn => Array2::zeros((0, 0)),
    };
    let mut state = start
        .broadcast((batch, h))
        .map_or_else(|| Array2::zeros((batch, h)), |s| s.to_owned());
    let mut acc = Array2::<f32>::zeros((batch, gh));
    let mut reset_state = Array2::<f32>::zeros((batch, h));
    for i in 0..t {
        acc.assign(&position(&pre, i, t));
        match cell {
            CellKind::Rnn => {
                matmul(state.view(), wh, 1.0, acc.view_mut());
                Zip::from(&mut state)
                    .and(&acc)
                    .for_each(|s, &a| *s = tanh(a));
            }
            CellKind::Gru => {
                matmul(
                    state.view(),
                    wh.slice(s![.., ..2 * h]),
                    1.0,
                    acc.slice_mut(s![.., ..2 * h]),
                );
                acc.slice_mut(s![.., ..2 * h]).mapv_inplace(sigmoid);
                Zip::from(&mut reset_state)
                    .and(acc.slice(s![.., h..2 * h]))
                    .and(&state)
                    .for_each(|rh, &r, &hp| *rh = r * hp);
                let mut cand = acc.slice_mut(s![.., 2 * h..]);
                matmul(
                    reset_state.view(),
                    wh.slice(s![.., 2 * h..]),
                    1.0,
                    cand.view_mut(),
                );
                cand.mapv_inplace(tanh);
                Zip::from(&mut state)
                    .and(acc.slice(s![.., ..h]))
                    .and(acc.slice(s![.., 2 * h..]))
                    .for_each(|hp, &z, &hbar| *hp = (-z + 1.0) * *hp + z * hbar);
                position_mut(&mut gates, i, t).assign(&acc);
            }
        }
        position_mut(&mut hidden, i, t).assign(&state);
    }
    [hidden, gates]
}

/// `[dx, dstart, dw, db]` of [`forward`] from the gradient `grad` `[batch · t, h]` at its
/// hidden states.
pub fn backward(
    sh: RecurrenceShape,
    x: ArrayView2<f32>,
    start: ArrayView2<f32>,
    w: ArrayView2<f32>,
    hidden: ArrayView2<f32>,
    gates: ArrayView2<f32>,
    grad: ArrayView2<f32>,
) -> [Array2<f32>; 4] {
    let RecurrenceShape {
        cell, batch, t, h, ..
    } = sh;
    let (gh, rows) = (cell.gates() * h, batch * t);
    let e = sh.e;
    let (wx, wh) = split(sh, w);
    // The state before each row's step.
    let mut previous = Array2::<f32>::zeros((rows, h));
    if let Some(start) = start.broadcast((batch, h)) {
        position_mut(&mut previous, 0, t).assign(&start);
    }
    for i in 1..t {
        position_mut(&mut previous, i, t).assign(&hidden.slice(s![i - 1..;t, ..]));
    }
    // The gradient at every pre-activation, and the one carried to the previous step.
    let mut da = Array2::<f32>::zeros((rows, gh));
    let mut dh = Array2::<f32>::zeros((batch, h));
    let mut d_rh = Array2::<f32>::zeros((batch, h));
    // `whᵀ`, copied into rows once for every position's products (see `rows_of`).
    let wh_t = rows_of(wh.t(), batch);
    for i in (0..t).rev() {
        dh += &grad.slice(s![i..;t, ..]);
        let prev = position(&previous, i, t);
        let mut da_i = position_mut(&mut da, i, t);
        match cell {
            CellKind::Rnn => {
                Zip::from(&mut da_i)
                    .and(&dh)
                    .and(hidden.slice(s![i..;t, ..]))
                    .for_each(|d, &g, &y| *d = g * (1.0 - y * y));
                matmul(da_i.view(), wh_t.view(), 0.0, dh.view_mut());
            }
            CellKind::Gru => {
                let g = gates.slice(s![i..;t, ..]);
                let (z, r, hbar) = (
                    g.slice(s![.., ..h]),
                    g.slice(s![.., h..2 * h]),
                    g.slice(s![.., 2 * h..]),
                );
                // Candidate and update gate first: the reset gate's needs `d(r·h)`.
                Zip::from(da_i.slice_mut(s![.., 2 * h..]))
                    .and(&dh)
                    .and(z)
                    .and(hbar)
                    .for_each(|d, &g, &z, &hb| *d = g * z * (1.0 - hb * hb));
                Zip::from(da_i.slice_mut(s![.., ..h]))
                    .and(&dh)
                    .and(z)
                    .and(hbar)
                    .and(prev)
                    .for_each(|d, &g, &z, &hb, &hp| *d = g * (hb - hp) * z * (1.0 - z));
                matmul(
                    da_i.slice(s![.., 2 * h..]),
                    wh_t.slice(s![2 * h.., ..]),
                    0.0,
                    d_rh.view_mut(),
                );
                Zip::from(da_i.slice_mut(s![.., h..2 * h]))
                    .and(&d_rh)
                    .and(r)
                    .and(prev)
                    .for_each(|d, &g, &r, &hp| *d = g * hp * r * (1.0 - r));
                // The state's gradient: through `1 − z`, through `r·h`, and through the
                // gates' products.
                Zip::from(&mut dh)
                    .and(&d_rh)
                    .and(z)
                    .and(r)
                    .for_each(|d, &g, &z, &r| *d = *d * (1.0 - z) + g * r);
                matmul(
                    da_i.slice(s![.., ..2 * h]),
                    wh_t.slice(s![..2 * h, ..]),
                    1.0,
                    dh.view_mut(),
                );
            }
        }
    }
    let dstart = column_sums(dh.view()).insert_axis(Axis(0));
    let dx = product(da.view(), wx.t());
    let db = column_sums(da.view()).insert_axis(Axis(0));
    let mut dw = Array2::zeros((e + h, gh));
    matmul(x.t(), da.view(), 0.0, dw.slice_mut(s![..e, ..]));
    match cell {
        CellKind::Rnn => matmul(previous.t(), da.view(), 0.0, dw.slice_mut(s![e.., ..])),
        CellKind::Gru => {
            matmul(
                previous.t(),
                da.slice(s![.., ..2 * h]),
                0.0,
                dw.slice_mut(s![e.., ..2 * h]),
            );
            // The candidate's state input is `r·h`.
            let mut reset_previous = previous;
            reset_previous *= &gates.slice(s![.., h..2 * h]);
            matmul(
                reset_previous.t(),
                da.slice(s![.., 2 * h..]),
                0.0,
                dw.slice_mut(s![e.., 2 * h..]),
            );
        }
    }
    [dx, dstart, dw, db]
}
