//! `makemore.py`'s recurrent models: a vanilla RNN cell or a GRU cell, run over the word
//! one position at a time from a learned start state.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use crate::dense::dense;
use crate::dropout::Masks;
use crate::fused::CellKind;
use crate::init::NormalStream;
use crate::{fused, FusedOps, ModelConfig, ModelKind};

/// The RNN or GRU language model, with `makemore.py`'s parameter names: `start`
/// `[1, n_hidden]`, `wte.weight` `[vocab, n_embd]`, `cell.xh_to_h.*` (RNN) or
/// `cell.xh_to_z.*`, `cell.xh_to_r.*`, `cell.xh_to_hbar.*` (GRU), `lm_head.*`.
#[derive(Module, Debug)]
pub struct Rnn<B: Backend> {
    /// The hidden state before the first position.
    pub start: Param<Tensor<B, 2>>,
    /// Token embeddings.
    pub wte: Embedding<B>,
    /// The recurrence.
    pub cell: Cell<B>,
    /// Hidden state to logits.
    pub lm_head: Linear<B>,
}

/// One step of the recurrence: `(x_t, h_t-1) -> h_t`.
#[allow(clippy::large_enum_variant)] // one per model
#[derive(Module, Debug)]
pub enum Cell<B: Backend> {
    /// `h_t = tanh(xh_to_h([x_t, h_t-1]))`.
    Rnn(RnnCell<B>),
    /// The GRU: a reset gate `r`, a candidate `hbar` from `[x_t, r * h_t-1]`, and an update
    /// gate `z` blending `h_t-1` and `hbar`.
    Gru(GruCell<B>),
}

/// The vanilla cell.
#[derive(Module, Debug)]
pub struct RnnCell<B: Backend> {
    /// `[n_embd + n_hidden] -> [n_hidden]`.
    pub xh_to_h: Linear<B>,
}

/// The GRU cell.
#[derive(Module, Debug)]
pub struct GruCell<B: Backend> {
    /// Update gate.
    pub xh_to_z: Linear<B>,
    /// Reset gate.
    pub xh_to_r: Linear<B>,
    /// Candidate state.
    pub xh_to_hbar: Linear<B>,
}

impl ModelConfig {
    /// The RNN or GRU of this config (`kind` says which), initialised as PyTorch
    /// initialises `makemore.py`'s (embeddings N(0, 1), linear layers uniform in
    /// ±1/√fan_in, start state 0).
    pub(crate) fn init_rnn<B: Backend>(&self, device: &B::Device) -> Rnn<B> {
        let mut rng = NormalStream::new(self.init_seed);
        let (e, h, v) = (self.n_embd, self.n_hidden, self.vocab_size);
        let start = rng.zeros([1, h], device);
        let wte = rng.embedding(v, e, device);
        let cell = if self.kind == ModelKind::Gru {
            Cell::Gru(GruCell {
                xh_to_z: rng.torch_linear(e + h, h, true, device),
                xh_to_r: rng.torch_linear(e + h, h, true, device),
                xh_to_hbar: rng.torch_linear(e + h, h, true, device),
            })
        } else {
            Cell::Rnn(RnnCell {
                xh_to_h: rng.torch_linear(e + h, h, true, device),
            })
        };
        let lm_head = rng.torch_linear(h, v, true, device);
        Rnn {
            start,
            wte,
            cell,
            lm_head,
        }
    }
}

/// The logistic function as `(1 + tanh(x / 2)) / 2`: stable for any `x`, in the backend's
/// precision (burn's `sigmoid` works in `f32` even for `f64` tensors), and through the
/// fused tanh.
fn sigmoid<B: FusedOps>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    fused::tanh(x * 0.5) * 0.5 + 0.5
}

impl<B: FusedOps> Cell<B> {
    fn kind(&self) -> CellKind {
        match self {
            Cell::Rnn(_) => CellKind::Rnn,
            Cell::Gru(_) => CellKind::Gru,
        }
    }

    /// The cell's layers, in the order [`Cell::stacked`] puts them side by side.
    fn layers(&self) -> Vec<&Linear<B>> {
        match self {
            Cell::Rnn(c) => vec![&c.xh_to_h],
            Cell::Gru(c) => vec![&c.xh_to_z, &c.xh_to_r, &c.xh_to_hbar],
        }
    }

    /// The cell's layers side by side, as [`fused::recurrence`] takes them: weights
    /// `[n_embd + n_hidden, gates · n_hidden]` and biases (`z`, `r`, `hbar` for the GRU).
    fn stacked(&self) -> Option<(Tensor<B, 2>, Tensor<B, 1>)> {
        let layers = self.layers();
        let biases = layers
            .iter()
            .map(|l| l.bias.as_ref().map(|b| b.val()))
            .collect::<Option<Vec<_>>>()?;
        let weights = layers.iter().map(|l| l.weight.val()).collect();
        Some((Tensor::cat(weights, 1), Tensor::cat(biases, 0)))
    }

    fn step(&self, x: Tensor<B, 2>, h: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Cell::Rnn(c) => dense(&c.xh_to_h, Tensor::cat(vec![x, h], 1), true),
            Cell::Gru(c) => {
                let xh = Tensor::cat(vec![x.clone(), h.clone()], 1);
                let r = sigmoid(dense(&c.xh_to_r, xh.clone(), false));
                let hbar = dense(&c.xh_to_hbar, Tensor::cat(vec![x, r * h.clone()], 1), true);
                let z = sigmoid(dense(&c.xh_to_z, xh, false));
                (z.clone().neg() + 1.0) * h + z * hbar
            }
        }
    }
}

impl<B: FusedOps> Rnn<B> {
    /// Logits at every position of every word, `[words * positions, vocab]` (row-major:
    /// word, then position). Dropout, when given, applies to the hidden states before the
    /// head.
    ///
    /// The recurrence is one [`fused::recurrence`] where the backend has a kernel for it
    /// (ndarray), else the cell a step at a time through burn's operations.
    ///
    /// # Shapes
    /// - `idx`: `[words, positions]`
    pub(crate) fn forward(
        &self,
        idx: Tensor<B, 2, Int>,
        masks: Option<&mut Masks>,
    ) -> Tensor<B, 2> {
        let [b, t] = idx.dims();
        let e = self.wte.weight.dims()[1];
        let x = fused::embedding(self.wte.weight.val(), idx).reshape([b * t, e]);
        let fused = self.cell.stacked().and_then(|(w, bias)| {
            fused::recurrence(self.cell.kind(), x.clone(), self.start.val(), w, bias, b)
        });
        let mut hidden = match fused {
            Some(hidden) => hidden,
            None => self.steps(x, b),
        };
        if let Some(masks) = masks {
            hidden = masks.apply(hidden);
        }
        dense(&self.lm_head, hidden, false)
    }

    /// The hidden states `[words * positions, n_hidden]` of the cell run a step at a time
    /// over `x` `[words * positions, n_embd]`.
    pub(crate) fn steps(&self, x: Tensor<B, 2>, b: usize) -> Tensor<B, 2> {
        let [rows, e] = x.dims();
        let t = rows / b.max(1);
        let x = x.reshape([b, t, e]);
        let [_, h_dim] = self.start.dims();
        let mut h = self.start.val().expand([b, h_dim]);
        let mut states = Vec::with_capacity(t);
        for i in 0..t {
            let x = x.clone().slice([0..b, i..i + 1, 0..e]).reshape([b, e]);
            h = self.cell.step(x, h);
            states.push(h.clone());
        }
        Tensor::stack::<3>(states, 1).reshape([b * t, h_dim])
    }
}

#[cfg(all(test, feature = "ndarray"))]
mod tests {
    use super::*;
    use crate::RecurrenceOps;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::TensorPrimitive;

    use crate::fused::{recurrence, RecurrenceShape};

    type Ad = Autodiff<NdArray<f32>>;
    type Inner = NdArray<f32>;

    fn values<const D: usize>(t: Tensor<Inner, D>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap_or_default()
    }

    fn float<const D: usize>(t: FloatTensor<Inner>) -> Tensor<Inner, D> {
        Tensor::from_primitive(TensorPrimitive::Float(t))
    }

    /// Largest difference relative to the largest entry of `want`.
    fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what} is all zeros");
        let diff = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= tol * scale,
            "{what}: difference {diff} of values up to {scale}"
        );
    }

    use burn::tensor::ops::FloatTensor;

    /// The fused recurrence (ndarray's kernel, and the default backward body in burn's
    /// operations) against `Autodiff` through the step-by-step cell: hidden states and the
    /// gradients at the inputs, the start state, the weights and the biases.
    #[test]
    fn the_fused_recurrence_matches_the_cell_run_step_by_step() {
        let device = Default::default();
        let (batch, t) = (5, 7);
        for kind in [ModelKind::Rnn, ModelKind::Gru] {
            let config = ModelConfig::new(27, 0)
                .with_kind(kind)
                .with_n_embd(8)
                .with_n_hidden(6);
            let mut model = config.init_rnn::<Ad>(&device);
            // A start state that is not zero, so that its path is tested.
            model.start = Param::from_tensor(Tensor::from_data(
                TensorData::new((0..6).map(|i| 0.1 * i as f32 - 0.2).collect(), [1, 6]),
                &device,
            ));
            let rows = batch * t;
            let x = Tensor::<Ad, 2>::from_data(
                TensorData::new(
                    (0..rows * 8)
                        .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.15)
                        .collect(),
                    [rows, 8],
                ),
                &device,
            )
            .require_grad();
            let probe = Tensor::<Ad, 2>::from_data(
                TensorData::new(
                    (0..rows * 6)
                        .map(|i| ((i * 17 % 13) as f32 - 6.0) * 0.1)
                        .collect(),
                    [rows, 6],
                ),
                &device,
            );
            let kind = model.cell.kind();
            // Both paths read the same parameters: the layers' gradients, stacked as the
            // kernel takes the layers, so that the default backward body's can be compared.
            let run = |hidden: Tensor<Ad, 2>| {
                let grads = (hidden.clone() * probe.clone()).sum().backward();
                let layers = model.cell.layers();
                let w = Tensor::cat(
                    layers
                        .iter()
                        .map(|l| l.weight.grad(&grads).unwrap())
                        .collect(),
                    1,
                );
                let b = Tensor::cat(
                    layers
                        .iter()
                        .filter_map(|l| l.bias.as_ref()?.grad(&grads))
                        .collect(),
                    0,
                );
                let x_grad = values(x.grad(&grads).unwrap());
                let start_grad = values(model.start.grad(&grads).unwrap());
                (
                    values(hidden.inner()),
                    [x_grad, start_grad, values(w), values(b)],
                )
            };
            let (w, b) = model.cell.stacked().unwrap();
            let fused = recurrence(
                kind,
                x.clone(),
                model.start.val(),
                w.clone(),
                b.clone(),
                batch,
            )
            .expect("ndarray f32 has the kernel");
            let (fused_hidden, fused_grads) = run(fused);
            // The reference: the model's own cell, a step at a time.
            let steps = model.steps(x.clone(), batch);
            let (step_hidden, step_grads) = run(steps);
            close(
                &format!("{kind:?} hidden"),
                &fused_hidden,
                &step_hidden,
                1e-5,
            );
            for (i, (f, s)) in fused_grads.iter().zip(&step_grads).enumerate() {
                close(&format!("{kind:?} gradient {i}"), f, s, 1e-5);
            }
            // The default backward body (burn's operations) from the kernel's saved states.
            let h = 6;
            let shape =
                RecurrenceShape::of(kind, [rows, 8], [8 + h, kind.gates() * h], batch).unwrap();
            let prim = |t: Tensor<Ad, 2>| t.inner().into_primitive().tensor();
            let [hidden, gates] = <Inner as RecurrenceOps>::fused_recurrence(
                shape,
                prim(x.clone()),
                prim(model.start.val()),
                prim(w.clone()),
                b.clone().inner().into_primitive().tensor(),
            )
            .unwrap();
            let grad = prim(probe.clone());
            let default = crate::fused::recurrence::backward::<Inner>(
                shape,
                prim(x.clone()),
                prim(model.start.val()),
                prim(w.clone()),
                hidden,
                gates,
                grad,
            );
            for (i, (d, s)) in default.into_iter().zip(&step_grads).enumerate() {
                let d: Vec<f32> = if i == 3 {
                    values(float::<1>(d))
                } else {
                    values(float::<2>(d))
                };
                close(&format!("{kind:?} default gradient {i}"), &d, s, 1e-5);
            }
        }
    }
}
