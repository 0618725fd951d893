//! The model flags: its kind, sizes, initialisation, normalisation and kernels.

use clap::{Args, ValueEnum};
use makemore_model::{InitScheme, ModelKind, NormKind};
use makemore_train::TrainingOverrides;

/// Weight initialisation.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitArg {
    /// Every parameter from N(0, 1), exactly as the notebook.
    Notebook,
    /// Scaled so tanh does not saturate and the first loss is ≈ ln(vocab) (the default).
    Scaled,
}

impl From<InitArg> for InitScheme {
    fn from(init: InitArg) -> Self {
        match init {
            InitArg::Notebook => InitScheme::Notebook,
            InitArg::Scaled => InitScheme::Scaled,
        }
    }
}

/// Hidden-layer normalisation.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NormArg {
    /// None (the notebook).
    None,
    /// LayerNorm before each tanh.
    Layer,
    /// BatchNorm before each tanh (running statistics at evaluation; no hidden bias).
    Batch,
}

/// tanh and cross-entropy kernels.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KernelsArg {
    /// Single-pass kernels with hand-written gradients (fast on the CPU).
    Fused,
    /// burn's generic operations (bit-identical to runs made before fused kernels existed).
    Plain,
}

impl From<KernelsArg> for makemore_model::Kernels {
    fn from(k: KernelsArg) -> Self {
        match k {
            KernelsArg::Fused => Self::Fused,
            KernelsArg::Plain => Self::Plain,
        }
    }
}

/// Which model.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// The notebook's MLP over the previous --block-size characters (the default).
    Mlp,
    /// makemore.py's vanilla RNN (--n-hidden: the state).
    Rnn,
    /// makemore.py's GRU.
    Gru,
    /// makemore.py's causal bag of words.
    Bow,
    /// makemore.py's GPT-2 Transformer (--layers blocks of --heads heads, --n-embd wide).
    Transformer,
}

impl From<ModelArg> for ModelKind {
    fn from(m: ModelArg) -> Self {
        match m {
            ModelArg::Mlp => ModelKind::Mlp,
            ModelArg::Rnn => ModelKind::Rnn,
            ModelArg::Gru => ModelKind::Gru,
            ModelArg::Bow => ModelKind::Bow,
            ModelArg::Transformer => ModelKind::Transformer,
        }
    }
}

/// What the model is.
#[derive(Debug, Default, Args)]
pub struct ModelFlags {
    /// The model. A sequence model (rnn, gru, bow, transformer) reads whole words and
    /// starts from makemore.py's settings: --n-embd 64, and --n-hidden 64 (rnn, gru, bow)
    /// or --layers 4 --heads 4 (transformer), AdamW (weight decay 0.01, beta2 0.99, eps
    /// 1e-8) at a constant 5e-4, batches of 32 words, 20,000 steps, the best dev weights
    /// kept in best/; any flag given changes that. A flag the model does not use is refused.
    #[arg(long, value_enum, help_heading = "Model")]
    pub model: Option<ModelArg>,
    /// Characters of context (MLP); positions per word for a sequence model (default: the
    /// longest word + 1).
    #[arg(long, help_heading = "Model")]
    pub block_size: Option<usize>,
    /// Embedding dimensions per character.
    #[arg(long, alias = "embedding-size", help_heading = "Model")]
    pub n_embd: Option<usize>,
    /// Units per hidden layer (MLP), the state (RNN, GRU) or the MLP block (bow); not an
    /// option of the transformer, whose MLP is 4 * --n-embd.
    #[arg(long, alias = "hidden-size", help_heading = "Model")]
    pub n_hidden: Option<usize>,
    /// Number of tanh hidden layers (MLP), or of Transformer blocks.
    #[arg(long, help_heading = "Model")]
    pub layers: Option<usize>,
    /// Attention heads per Transformer block (--n-embd must be a multiple).
    #[arg(long, help_heading = "Model")]
    pub heads: Option<usize>,
    /// Add Bengio et al.'s direct embedding-to-output connections.
    #[arg(long, help_heading = "Model")]
    pub direct: Option<bool>,
    /// The hierarchical model of makemore part 5: each layer merges pairs of neighbours, so
    /// `--block-size 8` has 3 layers (set from the block size unless `--layers` is given).
    #[arg(long, help_heading = "Model")]
    pub hierarchical: Option<bool>,
    /// Normalise each hidden layer before tanh (`layer`: LayerNorm, `batch`: BatchNorm;
    /// default `none`).
    #[arg(long, value_enum, help_heading = "Model")]
    pub norm: Option<NormArg>,
    /// Dropout probability after each tanh, during training only (default 0: off).
    #[arg(long, allow_negative_numbers = true, help_heading = "Model")]
    pub dropout: Option<f64>,
    /// Weight initialisation (MLP; makemore.py's models are initialised as its PyTorch
    /// modules are).
    #[arg(long, value_enum, help_heading = "Model")]
    pub init: Option<InitArg>,
    /// Seed of the weight initialisation.
    #[arg(long, help_heading = "Model")]
    pub init_seed: Option<u64>,
    /// tanh and loss kernels: `fused` (default; same function, to f32 rounding, several
    /// times faster on the CPU) or `plain` (burn's generic operations). MLP only: the
    /// sequence models always run the fused kernels.
    #[arg(long, value_enum, help_heading = "Model")]
    pub kernels: Option<KernelsArg>,
}

impl ModelFlags {
    /// Sets the model's overrides.
    pub fn apply(&self, o: &mut TrainingOverrides) {
        o.model = self.model.map(Into::into);
        o.n_head = self.heads;
        o.block_size = self.block_size;
        o.n_embd = self.n_embd;
        o.n_hidden = self.n_hidden;
        o.n_layers = self.layers;
        o.direct = self.direct;
        o.hierarchical = self.hierarchical;
        o.norm = self.norm.map(|n| match n {
            NormArg::None => NormKind::None,
            NormArg::Layer => NormKind::Layer,
            NormArg::Batch => NormKind::Batch,
        });
        o.dropout = self.dropout;
        o.init = self.init.map(Into::into);
        o.init_seed = self.init_seed;
        o.kernels = self.kernels.map(Into::into);
    }
}
