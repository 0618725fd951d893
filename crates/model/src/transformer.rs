//! `makemore.py`'s Transformer, which is GPT-2's: token and position embeddings,
//! pre-LayerNorm blocks of causal multi-head self-attention and a 4x GELU MLP (GPT-2's
//! tanh approximation of GELU), a final LayerNorm and a head without bias.
//!
//! burn's `TransformerEncoder` computes another function (post-norm by default, exact
//! GELU, separate q/k/v projections), so the block is written here, with `makemore.py`'s
//! parameter names and layouts (one `c_attn` projection for q, k and v, in that order).

use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::prelude::*;

use crate::dense::dense;
use crate::dropout::Masks;
use crate::init::NormalStream;
use crate::{fused, FusedOps, ModelConfig};

/// The model: `transformer.wte`, `transformer.wpe`, `transformer.h.{i}.*`,
/// `transformer.ln_f`, `lm_head.weight` (no bias).
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    /// Embeddings, blocks and the final norm.
    pub transformer: TransformerBody<B>,
    /// `n_embd -> vocab`, without bias.
    pub lm_head: Linear<B>,
}

/// What `makemore.py` keeps in its `transformer` `ModuleDict`.
#[derive(Module, Debug)]
pub struct TransformerBody<B: Backend> {
    /// Token embeddings `[vocab, n_embd]`.
    pub wte: Embedding<B>,
    /// Position embeddings `[block_size, n_embd]`.
    pub wpe: Embedding<B>,
    /// The blocks.
    pub h: Vec<Block<B>>,
    /// The final LayerNorm.
    pub ln_f: LayerNorm<B>,
}

/// `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    /// Before attention.
    pub ln_1: LayerNorm<B>,
    /// Causal self-attention.
    pub attn: CausalSelfAttention<B>,
    /// Before the MLP.
    pub ln_2: LayerNorm<B>,
    /// The MLP.
    pub mlp: BlockMlp<B>,
}

/// Multi-head causal self-attention with one input projection for q, k and v.
#[derive(Module, Debug)]
pub struct CausalSelfAttention<B: Backend> {
    /// `n_embd -> 3 * n_embd`: q, k, v side by side.
    pub c_attn: Linear<B>,
    /// `n_embd -> n_embd`.
    pub c_proj: Linear<B>,
    /// Heads.
    #[module(skip)]
    pub n_head: usize,
}

/// `c_proj(gelu(c_fc(x)))`.
#[derive(Module, Debug)]
pub struct BlockMlp<B: Backend> {
    /// `n_embd -> 4 * n_embd`.
    pub c_fc: Linear<B>,
    /// `4 * n_embd -> n_embd`.
    pub c_proj: Linear<B>,
}

impl ModelConfig {
    /// The Transformer of this config, initialised as PyTorch initialises `makemore.py`'s
    /// (embeddings N(0, 1), linear layers uniform in ±1/√fan_in, LayerNorms 1 and 0).
    pub(crate) fn init_transformer<B: Backend>(&self, device: &B::Device) -> Transformer<B> {
        let mut rng = NormalStream::new(self.init_seed);
        let (e, v) = (self.n_embd, self.vocab_size);
        let wte = rng.embedding(v, e, device);
        let wpe = rng.embedding(self.block_size, e, device);
        let h = (0..self.n_layers)
            .map(|_| Block {
                ln_1: rng.layer_norm(e, device),
                attn: CausalSelfAttention {
                    c_attn: rng.torch_linear(e, 3 * e, true, device),
                    c_proj: rng.torch_linear(e, e, true, device),
                    n_head: self.n_head,
                },
                ln_2: rng.layer_norm(e, device),
                mlp: BlockMlp {
                    c_fc: rng.torch_linear(e, 4 * e, true, device),
                    c_proj: rng.torch_linear(4 * e, e, true, device),
                },
            })
            .collect();
        let ln_f = rng.layer_norm(e, device);
        let lm_head = rng.torch_linear(e, v, false, device);
        Transformer {
            transformer: TransformerBody { wte, wpe, h, ln_f },
            lm_head,
        }
    }
}

/// `norm(x)` for `x` `[rows, c]` through the fused LayerNorm.
fn norm<B: FusedOps>(norm: &LayerNorm<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
    match &norm.beta {
        Some(beta) => fused::layer_norm(
            x,
            norm.gamma.val(),
            beta.val(),
            crate::mlp::LAYER_NORM_EPSILON,
        ),
        None => norm.forward(x),
    }
}

impl<B: FusedOps> Transformer<B> {
    /// Logits at every position of every word, `[words * positions, vocab]`. Dropout, when
    /// given, applies to the embeddings, the attention weights and each residual branch.
    ///
    /// Every position is a row of `[words * positions, n_embd]` throughout; only the
    /// attention sees the words (one fused kernel: scores, causal softmax, weighted sum).
    pub(crate) fn forward(
        &self,
        idx: Tensor<B, 2, Int>,
        mut masks: Option<&mut Masks>,
    ) -> Tensor<B, 2> {
        let [b, t] = idx.dims();
        let device = idx.device();
        let body = &self.transformer;
        let pos = Tensor::<B, 1, Int>::arange(0..t as i64, &device).reshape([1, t]);
        let x3 = body.wte.forward(idx) + body.wpe.forward(pos);
        let [_, _, c] = x3.dims();
        let mut x: Tensor<B, 2> = x3.reshape([b * t, c]);
        if let Some(masks) = masks.as_deref_mut() {
            x = masks.apply(x);
        }
        for block in &body.h {
            let nh = block.attn.n_head;
            let qkv = dense(&block.attn.c_attn, norm(&block.ln_1, x.clone()), false);
            let weights = masks
                .as_deref_mut()
                .map(|m| m.draw([b * nh * t, t], &device));
            let mut y = dense(
                &block.attn.c_proj,
                fused::attention(qkv, b, nh, weights),
                false,
            );
            if let Some(masks) = masks.as_deref_mut() {
                y = masks.apply(y);
            }
            x = x + y;
            let m = &block.mlp;
            let mut y = dense(
                &m.c_proj,
                fused::gelu(dense(&m.c_fc, norm(&block.ln_2, x.clone()), false)),
                false,
            );
            if let Some(masks) = masks.as_deref_mut() {
                y = masks.apply(y);
            }
            x = x + y;
        }
        dense(&self.lm_head, norm(&body.ln_f, x), false)
    }
}
