//! `makemore.py`'s recurrent models: a vanilla RNN cell or a GRU cell, run over the word
//! one position at a time from a learned start state.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use crate::dropout::Masks;
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

/// `layer(x)` (then tanh) through the fused linear layer, as the MLP's layers run.
fn dense<B: FusedOps>(layer: &Linear<B>, x: Tensor<B, 2>, tanh: bool) -> Tensor<B, 2> {
    match &layer.bias {
        Some(bias) => fused::linear(x, layer.weight.val(), bias.val(), tanh),
        None if tanh => fused::tanh(layer.forward(x)),
        None => layer.forward(x),
    }
}

impl<B: FusedOps> Cell<B> {
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
    /// # Shapes
    /// - `idx`: `[words, positions]`
    pub(crate) fn forward(
        &self,
        idx: Tensor<B, 2, Int>,
        masks: Option<&mut Masks>,
    ) -> Tensor<B, 2> {
        let [b, t] = idx.dims();
        let emb = self.wte.forward(idx);
        let [_, _, e] = emb.dims();
        let [_, h_dim] = self.start.dims();
        let mut h = self.start.val().expand([b, h_dim]);
        let mut states = Vec::with_capacity(t);
        for i in 0..t {
            let x = emb.clone().slice([0..b, i..i + 1, 0..e]).reshape([b, e]);
            h = self.cell.step(x, h);
            states.push(h.clone());
        }
        let mut hidden: Tensor<B, 2> = Tensor::stack::<3>(states, 1).reshape([b * t, h_dim]);
        if let Some(masks) = masks {
            hidden = masks.apply(hidden);
        }
        dense(&self.lm_head, hidden, false)
    }
}
