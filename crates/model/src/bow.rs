//! `makemore.py`'s causal bag of words: every position averages the token and position
//! embeddings up to it, adds them to its own, then a tanh MLP block.

use burn::module::Module;
use burn::nn::{Embedding, Linear};
use burn::prelude::*;

use crate::dense::dense;
use crate::dropout::Masks;
use crate::init::NormalStream;
use crate::{fused, FusedOps, ModelConfig};

/// The bag-of-words model, with `makemore.py`'s parameter names: `wte.weight`, `wpe.weight`
/// `[block_size, n_embd]`, `context_block.mlp.c_fc.*` (`n_embd -> n_hidden`),
/// `context_block.mlp.c_proj.*` (`n_hidden -> n_embd`), `lm_head.*`.
#[derive(Module, Debug)]
pub struct Bow<B: Backend> {
    /// Token embeddings.
    pub wte: Embedding<B>,
    /// Position embeddings.
    pub wpe: Embedding<B>,
    /// The causal average and the MLP.
    pub context_block: BowBlock<B>,
    /// To logits.
    pub lm_head: Linear<B>,
}

/// `x + mean(x_0..x_t)`, then `x + c_proj(tanh(c_fc(x)))`.
#[derive(Module, Debug)]
pub struct BowBlock<B: Backend> {
    /// The MLP.
    pub mlp: BowMlp<B>,
}

/// The block's MLP.
#[derive(Module, Debug)]
pub struct BowMlp<B: Backend> {
    /// `n_embd -> n_hidden`.
    pub c_fc: Linear<B>,
    /// `n_hidden -> n_embd`.
    pub c_proj: Linear<B>,
}

impl ModelConfig {
    /// The bag-of-words model of this config, initialised as PyTorch initialises
    /// `makemore.py`'s.
    pub(crate) fn init_bow<B: Backend>(&self, device: &B::Device) -> Bow<B> {
        let mut rng = NormalStream::new(self.init_seed);
        let (e, h, v) = (self.n_embd, self.n_hidden, self.vocab_size);
        Bow {
            wte: rng.embedding(v, e, device),
            wpe: rng.embedding(self.block_size, e, device),
            context_block: BowBlock {
                mlp: BowMlp {
                    c_fc: rng.torch_linear(e, h, true, device),
                    c_proj: rng.torch_linear(h, e, true, device),
                },
            },
            lm_head: rng.torch_linear(e, v, true, device),
        }
    }
}

impl<B: FusedOps> Bow<B> {
    /// Logits at every position of every word, `[words * positions, vocab]`. Dropout, when
    /// given, applies to the MLP's hidden units.
    pub(crate) fn forward(
        &self,
        idx: Tensor<B, 2, Int>,
        masks: Option<&mut Masks>,
    ) -> Tensor<B, 2> {
        let [b, t] = idx.dims();
        let device = idx.device();
        let e = self.wte.weight.dims()[1];
        let pos = Tensor::<B, 1, Int>::arange(0..t as i64, &device).reshape([1, t]);
        // Each word's positions as rows: the token embeddings [b, t, e] plus the positions'.
        let tokens = fused::embedding(self.wte.weight.val(), idx).reshape([b, t, e]);
        let positions = fused::embedding(self.wpe.weight.val(), pos).reshape([1, t, e]);
        let x = (tokens + positions).reshape([b * t, e]);
        let x = x.clone() + fused::causal_mean(x, t);
        let m = &self.context_block.mlp;
        let mut hidden = dense(&m.c_fc, x.clone(), true);
        if let Some(masks) = masks {
            hidden = masks.apply(hidden);
        }
        let x = x + dense(&m.c_proj, hidden, false);
        dense(&self.lm_head, x, false)
    }
}
