//! A whole recurrence (`makemore.py`'s RNN or GRU cell over every position of a batch of
//! words) as one operation: [`RecurrenceOps::fused_recurrence`](crate::RecurrenceOps::fused_recurrence) and its backward pass.
//!
//! The cell's linear layers enter stacked: `w` `[n_embd + n_hidden, gates · n_hidden]` holds
//! the layers' weights side by side (the RNN's one; the GRU's update gate `z`, reset gate `r`
//! and candidate `hbar`, in that order), `b` their biases. With `x_t` the inputs and `h` the
//! previous state, a step is
//! - RNN: `h' = tanh([x_t, h]·w + b)`;
//! - GRU: `z = σ([x_t, h]·w_z + b_z)`, `r = σ([x_t, h]·w_r + b_r)`,
//!   `hbar = tanh([x_t, r·h]·w_hbar + b_hbar)`, `h' = (1 − z)·h + z·hbar`,
//!
//! with `σ(a) = (1 + tanh(a / 2)) / 2`, as the model's step-by-step path computes it.

use burn::prelude::*;
use burn::tensor::ops::FloatTensor;

use super::{float, FusedOps};

/// Which cell a recurrence runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// `h' = tanh([x, h]·w + b)`: one gate's worth of columns.
    Rnn,
    /// The GRU: `z`, `r` and `hbar`, three gates' worth of columns.
    Gru,
}

impl CellKind {
    /// Columns of `w` per hidden unit.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn => 1,
            CellKind::Gru => 3,
        }
    }
}

/// The shapes of one recurrence: `batch` words of `t` positions, inputs of `e` values,
/// states of `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecurrenceShape {
    /// The cell.
    pub cell: CellKind,
    /// Words.
    pub batch: usize,
    /// Positions per word.
    pub t: usize,
    /// Input width (`n_embd`).
    pub e: usize,
    /// State width (`n_hidden`).
    pub h: usize,
}

impl RecurrenceShape {
    /// The shape of a recurrence over `x` `[batch · t, e]` with `w` `[e + h, gates · h]`, or
    /// `None` when the two do not fit together.
    pub fn of(cell: CellKind, x: [usize; 2], w: [usize; 2], batch: usize) -> Option<Self> {
        let [rows, e] = x;
        let [inputs, cols] = w;
        let h = cols / cell.gates();
        let fits = batch > 0
            && rows.is_multiple_of(batch)
            && h > 0
            && cols == cell.gates() * h
            && inputs == e + h;
        fits.then_some(RecurrenceShape {
            cell,
            batch,
            t: rows / batch,
            e,
            h,
        })
    }
}

/// The hidden states of a recurrence through the backend's kernel, `[batch · t, h]` (rows
/// word by word, then position), or `None` when the backend has none (the caller then runs
/// the cell a step at a time).
///
/// # Shapes
/// - `x`: `[batch · t, e]`, `start`: `[1, h]`, `w`: `[e + h, gates · h]`, `b`: `[gates · h]`
pub fn recurrence<B: FusedOps>(
    cell: CellKind,
    x: Tensor<B, 2>,
    start: Tensor<B, 2>,
    w: Tensor<B, 2>,
    b: Tensor<B, 1>,
    batch: usize,
) -> Option<Tensor<B, 2>> {
    let shape = RecurrenceShape::of(cell, x.dims(), w.dims(), batch)?;
    if start.dims() != [1, shape.h] {
        return None;
    }
    let [hidden, _] = B::fused_recurrence(
        shape,
        x.into_primitive().tensor(),
        start.into_primitive().tensor(),
        w.into_primitive().tensor(),
        b.into_primitive().tensor(),
    )?;
    Some(float(hidden))
}

/// The default body of [`RecurrenceOps::fused_recurrence_backward`](crate::RecurrenceOps::fused_recurrence_backward) in burn's operations: back
/// through the positions from the last, one step's gradients at a time, then the weights'
/// gradients as a few products over all positions.
pub fn backward<B: Backend>(
    s: RecurrenceShape,
    x: FloatTensor<B>,
    start: FloatTensor<B>,
    w: FloatTensor<B>,
    hidden: FloatTensor<B>,
    gates: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> [FloatTensor<B>; 4] {
    let RecurrenceShape { batch, t, e, h, .. } = s;
    let gh = s.cell.gates() * h;
    let x: Tensor<B, 2> = float(x);
    let start: Tensor<B, 2> = float(start);
    let w: Tensor<B, 2> = float(w);
    let hidden: Tensor<B, 3> = float::<B, 2>(hidden).reshape([batch, t, h]);
    let grad: Tensor<B, 3> = float::<B, 2>(grad).reshape([batch, t, h]);
    let at = |m: &Tensor<B, 3>, i: usize, cols: std::ops::Range<usize>| {
        let width = cols.len();
        m.clone()
            .slice([0..batch, i..i + 1, cols])
            .reshape([batch, width])
    };
    let wx = w.clone().slice([0..e, 0..gh]);
    let wh = w.slice([e..e + h, 0..gh]);
    let gates3: Option<Tensor<B, 3>> =
        (s.cell == CellKind::Gru).then(|| float::<B, 2>(gates).reshape([batch, t, gh]));
    let previous = |i: usize| match i {
        0 => start.clone().expand([batch, h]),
        _ => at(&hidden, i - 1, 0..h),
    };
    let mut dh = Tensor::<B, 2>::zeros([batch, h], &x.device());
    let mut steps = Vec::with_capacity(t);
    for i in (0..t).rev() {
        dh = dh + at(&grad, i, 0..h);
        let da = match &gates3 {
            None => {
                let y = at(&hidden, i, 0..h);
                let da = dh.clone() * (y.clone().neg() * y + 1.0);
                dh = da.clone().matmul(wh.clone().transpose());
                da
            }
            Some(g) => {
                let (z, r, hbar) = (at(g, i, 0..h), at(g, i, h..2 * h), at(g, i, 2 * h..3 * h));
                let hp = previous(i);
                let one_minus = |v: &Tensor<B, 2>| v.clone().neg() + 1.0;
                let da_h =
                    dh.clone() * z.clone() * (hbar.clone() * hbar.clone()).neg().add_scalar(1.0);
                let da_z = dh.clone() * (hbar - hp.clone()) * z.clone() * one_minus(&z);
                let d_rh = da_h
                    .clone()
                    .matmul(wh.clone().slice([0..h, 2 * h..3 * h]).transpose());
                let da_r = d_rh.clone() * hp * r.clone() * one_minus(&r);
                let da_zr = Tensor::cat(vec![da_z, da_r], 1);
                dh = dh * one_minus(&z)
                    + d_rh * r
                    + da_zr
                        .clone()
                        .matmul(wh.clone().slice([0..h, 0..2 * h]).transpose());
                Tensor::cat(vec![da_zr, da_h], 1)
            }
        };
        steps.push(da);
    }
    steps.reverse();
    let da: Tensor<B, 2> = Tensor::stack::<3>(steps, 1).reshape([batch * t, gh]);
    let mut previous_rows: Vec<Tensor<B, 3>> =
        vec![start.expand([batch, h]).reshape([batch, 1, h])];
    if t > 1 {
        previous_rows.push(hidden.slice([0..batch, 0..t - 1, 0..h]));
    }
    let hp_all: Tensor<B, 2> = Tensor::cat(previous_rows, 1).reshape([batch * t, h]);
    let dx = da.clone().matmul(wx.transpose());
    let db = da.clone().sum_dim(0).reshape([gh]);
    let dwx = x.transpose().matmul(da.clone());
    let dwh = match gates3 {
        None => hp_all.transpose().matmul(da),
        Some(g) => {
            let r_all = g.slice([0..batch, 0..t, h..2 * h]).reshape([batch * t, h]);
            Tensor::cat(
                vec![
                    hp_all
                        .clone()
                        .transpose()
                        .matmul(da.clone().slice([0..batch * t, 0..2 * h])),
                    (r_all * hp_all)
                        .transpose()
                        .matmul(da.slice([0..batch * t, 2 * h..3 * h])),
                ],
                1,
            )
        }
    };
    let dstart = dh.sum_dim(0);
    let dw = Tensor::cat(vec![dwx, dwh], 0);
    [
        dx.into_primitive().tensor(),
        dstart.into_primitive().tensor(),
        dw.into_primitive().tensor(),
        db.into_primitive().tensor(),
    ]
}
