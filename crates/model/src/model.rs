//! [`Model`]: the one type the trainer, the evaluator, the sampler and the checkpoints
//! see, whatever the [`ModelKind`]. Every kind answers the same contract (after
//! `makemore.py`'s `forward(idx, targets)`): rows of inputs in, one row of logits per
//! predicted position out, and the logits of the next character after a context.

use burn::module::Module;
use burn::prelude::*;

use crate::dropout::Masks;
use crate::{
    fused, Bow, DropoutStep, FusedOps, Kernels, Mlp, ModelConfig, ModelKind, Rnn, Transformer,
};

/// A makemore model of any kind.
// One model per run, never in bulk: the variants' sizes do not matter (and burn's Module
// derive takes the modules themselves, not boxes).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model<B: Backend> {
    /// The MLP (makemore parts 2–5).
    Mlp(Mlp<B>),
    /// The RNN or the GRU.
    Rnn(Rnn<B>),
    /// The causal bag of words.
    Bow(Bow<B>),
    /// The Transformer.
    Transformer(Transformer<B>),
}

impl ModelConfig {
    /// Builds the model this config's `kind` names, with weights drawn from `init_seed` on
    /// the host (the same numbers on every backend).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Model<B> {
        match self.kind {
            ModelKind::Mlp => Model::Mlp(self.init_mlp(device)),
            ModelKind::Rnn | ModelKind::Gru => Model::Rnn(self.init_rnn(device)),
            ModelKind::Bow => Model::Bow(self.init_bow(device)),
            ModelKind::Transformer => Model::Transformer(self.init_transformer(device)),
        }
    }
}

impl<B: FusedOps> Model<B> {
    /// Logits of every predicted position, with dropout when given (training).
    ///
    /// # Shapes
    /// - `inputs`: `[rows, block_size]`: context windows (MLP) or whole words (sequence
    ///   models)
    /// - returns: `[rows, vocab]` (MLP) or `[rows * block_size, vocab]`, row-major by word
    ///   and then position (sequence models)
    pub fn forward_train(
        &self,
        inputs: Tensor<B, 2, Int>,
        dropout: Option<DropoutStep>,
    ) -> Tensor<B, 2> {
        let mut masks = Masks::new(dropout);
        match self {
            Model::Mlp(m) => m.forward_train(inputs, dropout),
            Model::Rnn(m) => m.forward(inputs, masks.as_mut()),
            Model::Bow(m) => m.forward(inputs, masks.as_mut()),
            Model::Transformer(m) => m.forward(inputs, masks.as_mut()),
        }
    }

    /// [`Model::forward_train`] without dropout (evaluation).
    pub fn forward(&self, inputs: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        self.forward_train(inputs, None)
    }

    /// The logits of the next character after each context.
    ///
    /// # Shapes
    /// - `contexts`: `[n, t]`: the last `block_size` characters, boundary-padded on the
    ///   left (MLP), or the word so far after its boundary, `t <= block_size` (sequence
    ///   models)
    /// - returns: `[n, vocab]`
    pub fn next_logits(&self, contexts: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        if let Model::Mlp(m) = self {
            return m.forward(contexts);
        }
        let [n, t] = contexts.dims();
        let logits = self.forward(contexts);
        let [_, v] = logits.dims();
        logits
            .reshape([n, t, v])
            .slice([0..n, t - 1..t, 0..v])
            .reshape([n, v])
    }

    /// Mean cross-entropy of `logits` `[rows, vocab]` against `targets` `[rows]`.
    pub fn loss(&self, logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        match self {
            Model::Mlp(m) => m.loss(logits, targets),
            _ => fused::cross_entropy(logits, targets),
        }
    }

    /// The MLP's kernels choice (sequence models use burn's operations and the fused loss).
    pub fn kernels(&self) -> Kernels {
        match self {
            Model::Mlp(m) => m.kernels,
            _ => Kernels::Fused,
        }
    }
}

impl<B: Backend> Model<B> {
    /// The MLP, when this is one.
    pub fn as_mlp(&self) -> Option<&Mlp<B>> {
        match self {
            Model::Mlp(m) => Some(m),
            _ => None,
        }
    }

    /// The token embedding table `[vocab, n_embd]`, as host values (for plots).
    pub fn embedding_table(&self) -> Result<Vec<Vec<f32>>, String> {
        let table = match self {
            Model::Mlp(m) => return m.embedding_table(),
            Model::Rnn(m) => m.wte.weight.val(),
            Model::Bow(m) => m.wte.weight.val(),
            Model::Transformer(m) => m.transformer.wte.weight.val(),
        };
        let [_, n_embd] = table.dims();
        let values: Vec<f32> = table
            .try_into_data()
            .map_err(|e| format!("cannot read the embeddings back: {e:?}"))?
            .convert::<f32>()
            .to_vec()
            .map_err(|e| format!("cannot read the embeddings back: {e:?}"))?;
        Ok(values.chunks(n_embd.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// Folds BatchNorm's latest running statistics into what is saved (the MLP's; the other
    /// kinds have none).
    pub fn sync_running_stats(&self) {
        if let Model::Mlp(m) = self {
            m.sync_running_stats();
        }
    }

    /// Floats the forward pass of one row of inputs of `row_len` holds (a window of the
    /// MLP, a word of a sequence model): for sizing evaluation chunks.
    pub fn activation_floats(&self, row_len: usize) -> u64 {
        let dims = |w: &Tensor<B, 2>| w.dims();
        let (kind, e, h, v, layers, heads) = match self {
            Model::Mlp(m) => return m.activation_floats(row_len),
            Model::Rnn(m) => {
                let [v, e] = dims(&m.wte.weight.val());
                let [_, h] = dims(&m.start.val());
                let kind = match m.cell {
                    crate::Cell::Rnn(_) => ModelKind::Rnn,
                    crate::Cell::Gru(_) => ModelKind::Gru,
                };
                (kind, e, h, v, 1, 1)
            }
            Model::Bow(m) => {
                let [v, e] = dims(&m.wte.weight.val());
                let [_, h] = dims(&m.context_block.mlp.c_fc.weight.val());
                (ModelKind::Bow, e, h, v, 1, 1)
            }
            Model::Transformer(m) => {
                let [v, e] = dims(&m.transformer.wte.weight.val());
                let heads = m.transformer.h.first().map_or(1, |b| b.attn.n_head);
                (
                    ModelKind::Transformer,
                    e,
                    4 * e,
                    v,
                    m.transformer.h.len(),
                    heads,
                )
            }
        };
        let c = ModelConfig::new(v, row_len)
            .with_kind(kind)
            .with_n_embd(e)
            .with_n_hidden(h)
            .with_n_layers(layers)
            .with_n_head(heads);
        crate::config::sequence_activation_floats(kind, row_len, &c)
    }
}
