use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::Kernels;

/// Which model: the MLP of the notebook and the lectures, or one of `makemore.py`'s
/// sequence models, which read a whole word at once and predict every next character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Embeddings of the previous `block_size` characters, concatenated, through tanh hidden
    /// layers (flat or hierarchical): makemore parts 2 to 5.
    #[default]
    Mlp,
    /// `makemore.py`'s vanilla RNN: a learned start state, `h_t = tanh(W [x_t, h_t-1] + b)`.
    Rnn,
    /// `makemore.py`'s GRU cell on the same recurrence.
    Gru,
    /// `makemore.py`'s causal bag of words: each position averages the embeddings up to it,
    /// then a tanh MLP block.
    Bow,
    /// `makemore.py`'s GPT-2 Transformer: token and position embeddings, pre-LayerNorm
    /// blocks of causal self-attention and a 4x GELU MLP, a final LayerNorm, a head
    /// without bias.
    Transformer,
}

impl ModelKind {
    /// True for the models that read whole words ([`ModelKind::Mlp`] reads windows).
    pub fn is_sequence(self) -> bool {
        self != ModelKind::Mlp
    }

    /// The fields of [`ModelConfig`] that this kind of model does not read: a config of this
    /// kind leaves them at their defaults (and `config.json` leaves them out), so that an
    /// option that would change nothing is refused instead of recorded.
    pub fn unused_fields(self) -> &'static [&'static str] {
        match self {
            ModelKind::Mlp => &["n_head"],
            ModelKind::Rnn | ModelKind::Gru | ModelKind::Bow => &[
                "n_layers",
                "n_head",
                "hierarchical",
                "direct",
                "init",
                "norm",
                "kernels",
            ],
            ModelKind::Transformer => &[
                "n_hidden",
                "hierarchical",
                "direct",
                "init",
                "norm",
                "kernels",
            ],
        }
    }

    /// Why this kind has no use for `field` (one of [`ModelKind::unused_fields`]).
    fn why_unused(self, field: &str) -> &'static str {
        match (self, field) {
            (ModelKind::Mlp, _) => "it has no attention",
            (ModelKind::Transformer, "n_hidden") => "its MLP is 4 * n_embd wide, as in GPT-2",
            (_, "n_layers") => "it has one layer, as in makemore.py",
            (_, "n_head") => "it has no attention",
            (_, "init") => "it is initialised as makemore.py's PyTorch modules are",
            (_, "kernels") => "it always runs the fused kernels",
            _ => "it is an option of the MLP",
        }
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Rnn => "rnn",
            ModelKind::Gru => "gru",
            ModelKind::Bow => "bow",
            ModelKind::Transformer => "transformer",
        }
    }
}

/// How the weights are initialised.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum InitScheme {
    /// Every parameter from N(0, 1), exactly the notebook's `torch.randn` for C, W1, b1, W2, b2.
    Notebook,
    /// The default: embeddings N(0, 1); hidden weights N(0, 1) × (5/3)/√fan_in (Kaiming gain
    /// for tanh), hidden biases × 0.01, output weights × 0.01, output bias 0. The first loss is
    /// then ≈ ln(vocab) instead of ≈ 20, and tanh does not saturate (makemore part 3).
    Scaled,
}

/// Normalisation of each hidden layer's pre-activations (before tanh).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// None, as in the notebook.
    None,
    /// LayerNorm over the hidden units, with a learned scale and shift (PyTorch's
    /// `nn.LayerNorm`, eps 1e-5). Unlike BatchNorm it needs no running statistics, so
    /// training and evaluation compute the same function.
    Layer,
    /// BatchNorm (makemore part 3, PyTorch's `nn.BatchNorm1d`: eps 1e-5, momentum 0.1) over
    /// the rows of each batch, with a learned scale and shift; the hidden layers then have no
    /// bias (the shift replaces it). Training normalises with the batch's statistics and
    /// updates running estimates; evaluation and sampling use the running estimates, which
    /// are saved in the checkpoint.
    Batch,
}

/// Which model ([`ModelKind`]), its shape and its initialisation: what [`ModelConfig::init`]
/// builds into a [`Model`](crate::Model).
///
/// The sizes mean the same for every kind where they can: `n_embd` is the embedding width
/// (`makemore.py`'s `n_embd`), `n_hidden` the hidden width (`makemore.py`'s `n_embd2`:
/// the RNN's state, the bag of words' MLP; the Transformer's MLP is `4 * n_embd`, as in
/// GPT-2), `n_layers` the MLP's hidden layers or the Transformer's blocks, and
/// `block_size` the MLP's characters of context or a sequence model's positions (the
/// longest word + 1).
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// Which model (absent in configs from before there was a choice: the MLP).
    #[config(default = "ModelKind::Mlp")]
    pub kind: ModelKind,
    /// Tokens in the vocabulary, the boundary included (27 for a–z).
    pub vocab_size: usize,
    /// Characters of context (MLP), or positions per word (sequence models).
    pub block_size: usize,
    /// Embedding dimensions per character.
    #[config(default = 10)]
    pub n_embd: usize,
    /// Units in each tanh hidden layer (sequence models: `makemore.py`'s `n_embd2`).
    #[config(default = 200)]
    pub n_hidden: usize,
    /// Number of tanh hidden layers (the notebook has 1), or of Transformer blocks.
    #[config(default = 1)]
    pub n_layers: usize,
    /// Attention heads of each Transformer block (`n_embd` must be a multiple).
    #[config(default = 4)]
    pub n_head: usize,
    /// The hierarchical model of makemore part 5 (a WaveNet-like tree): the first hidden
    /// layer reads each pair of neighbouring characters, and each further layer a pair of
    /// neighbouring outputs of the one below, so `block_size` must be `2^n_layers` (context
    /// 8: three layers). Off: the flat MLP, whose first layer reads the whole context.
    #[config(default = false)]
    pub hierarchical: bool,
    /// Bengio et al.'s direct connections from the embeddings to the output.
    #[config(default = false)]
    pub direct: bool,
    /// Weight initialisation.
    #[config(default = "InitScheme::Scaled")]
    pub init: InitScheme,
    /// Seed of the initialisation (2147483647 is the notebook's generator seed).
    #[config(default = 2147483647)]
    pub init_seed: u64,
    /// Normalisation before each tanh (off by default, as in the notebook).
    #[config(default = "NormKind::None")]
    pub norm: NormKind,
    /// Probability of zeroing each hidden unit during training (inverted dropout; 0 = off).
    /// The Transformer drops out its embeddings, attention weights and each residual
    /// branch with it, as GPT-2 does.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// tanh and cross-entropy kernels: fused (the default; fast on the CPU) or burn's plain
    /// operations (what checkpoints from before fused kernels used).
    #[config(default = "Kernels::Fused")]
    pub kernels: Kernels,
}

/// Largest size accepted for any one dimension; refuses absurd configs before allocating.
pub const MAX_DIM: usize = 1 << 20;
/// Largest parameter count accepted (about 2 GB of f32).
pub const MAX_PARAMS: usize = 1 << 29;

/// Floats one example's forward pass holds at once: the concatenated embeddings, each
/// hidden layer's pre-activation and output, and the logits with their softmax. `input` is
/// the embedding floats per example (`block_size * n_embd`); `layers` are `(fan_in, out)`.
/// A layer's rows per example follow from its input width, so the hierarchical model's
/// narrower, more numerous rows are counted right.
pub fn activation_floats(
    input: usize,
    layers: impl IntoIterator<Item = (usize, usize)>,
    vocab: usize,
) -> u64 {
    let mut width = input as u64;
    let mut total = width;
    for (fan_in, out) in layers {
        let rows = width / (fan_in.max(1) as u64);
        width = rows * out as u64;
        total += 2 * width;
    }
    total + 2 * vocab as u64
}

/// Floats a sequence model's forward pass holds for one word of `t` positions: about what
/// each position keeps for the backward pass (inputs and outputs of every layer, the
/// attention weights, the logits), with the sizes of `c` (`n_embd`, `n_hidden`,
/// `vocab_size`, `n_layers`, `n_head`).
pub(crate) fn sequence_activation_floats(kind: ModelKind, t: usize, c: &ModelConfig) -> u64 {
    let (t, e, h, v) = (
        t as u64,
        c.n_embd as u64,
        c.n_hidden as u64,
        c.vocab_size as u64,
    );
    let per_position = match kind {
        ModelKind::Mlp | ModelKind::Rnn => 2 * e + 3 * h + 2 * v,
        ModelKind::Gru => 2 * e + 9 * h + 2 * v,
        ModelKind::Bow => 4 * e + 2 * h + 2 * v,
        ModelKind::Transformer => {
            e + c.n_layers as u64 * (18 * e + 2 * c.n_head as u64 * t) + 2 * e + 2 * v
        }
    };
    t * per_position
}

impl ModelConfig {
    /// The fields that [`ModelKind::unused_fields`] names and that differ from their
    /// defaults here: options this config's kind would ignore.
    pub fn unused_but_set(&self) -> Vec<&'static str> {
        let mut cleared = self.clone();
        self.kind
            .unused_fields()
            .iter()
            .copied()
            .filter(|f| cleared.reset_to_default(f))
            .collect()
    }

    /// Sets the fields this kind does not use to their defaults (what a checkpoint from
    /// before they were refused recorded of them changed nothing in its training).
    pub fn clear_unused(&mut self) {
        for f in self.kind.unused_fields() {
            self.reset_to_default(f);
        }
    }

    /// Sets the model field named `field` to its default; true when that changed it.
    fn reset_to_default(&mut self, field: &str) -> bool {
        fn reset<T: PartialEq>(slot: &mut T, default: T) -> bool {
            let changed = *slot != default;
            *slot = default;
            changed
        }
        let d = ModelConfig::new(self.vocab_size, self.block_size);
        match field {
            "n_hidden" => reset(&mut self.n_hidden, d.n_hidden),
            "n_layers" => reset(&mut self.n_layers, d.n_layers),
            "n_head" => reset(&mut self.n_head, d.n_head),
            "hierarchical" => reset(&mut self.hierarchical, d.hierarchical),
            "direct" => reset(&mut self.direct, d.direct),
            "init" => reset(&mut self.init, d.init),
            "norm" => reset(&mut self.norm, d.norm),
            "kernels" => reset(&mut self.kernels, d.kernels),
            _ => false,
        }
    }

    /// Floats one example's forward pass holds at once ([`activation_floats`] for the MLP;
    /// for a sequence model, one word's: every position's activations).
    pub fn activation_floats(&self) -> u64 {
        if self.kind == ModelKind::Mlp {
            let layers = (0..self.n_layers).map(|i| (self.fan_in(i), self.n_hidden));
            return activation_floats(self.block_size * self.n_embd, layers, self.vocab_size);
        }
        sequence_activation_floats(self.kind, self.block_size, self)
    }

    /// Number of trainable parameters this config gives (BatchNorm's running statistics
    /// are state, not parameters, and are not counted).
    pub fn num_params(&self) -> usize {
        usize::try_from(self.params_u128()).unwrap_or(usize::MAX)
    }

    /// [`ModelConfig::num_params`] without overflow, for validating absurd configs.
    fn params_u128(&self) -> u128 {
        let (v, e, h) = (
            self.vocab_size as u128,
            self.n_embd as u128,
            self.n_hidden as u128,
        );
        let (t, l) = (self.block_size as u128, self.n_layers as u128);
        match self.kind {
            ModelKind::Mlp => {}
            // A learned start state, embeddings, one (RNN) or three (GRU) [x, h] -> h
            // layers, the head.
            ModelKind::Rnn => return h + v * e + (e + h) * h + h + h * v + v,
            ModelKind::Gru => return h + v * e + 3 * ((e + h) * h + h) + h * v + v,
            // Token and position embeddings, the MLP block, the head.
            ModelKind::Bow => return v * e + t * e + e * h + h + h * e + e + e * v + v,
            ModelKind::Transformer => {
                let block = 2 * e
                    + (3 * e * e + 3 * e)
                    + (e * e + e)
                    + 2 * e
                    + (4 * e * e + 4 * e)
                    + (4 * e * e + e);
                return v * e + t * e + l * block + 2 * e + e * v;
            }
        }
        let input = self.block_size as u128 * e;
        let mut n = v * e;
        for i in 0..self.n_layers {
            let fan_in = match (self.hierarchical, i) {
                (false, 0) => input,
                (false, _) => h,
                (true, 0) => 2 * e,
                (true, _) => 2 * h,
            };
            n += fan_in * h;
            if self.hidden_bias() {
                n += h;
            }
        }
        let out_in = if self.n_layers == 0 { input } else { h };
        n += out_in * v + v;
        if self.direct {
            n += input * v;
        }
        if self.norm != NormKind::None {
            n += 2 * self.n_layers as u128 * h;
        }
        n
    }

    /// Inputs of hidden layer `i`: the whole context (flat) or two neighbours (hierarchical)
    /// for the first layer, the layer below's width (or two of its outputs) after it.
    pub fn fan_in(&self, i: usize) -> usize {
        match (self.hierarchical, i) {
            (false, 0) => self.block_size * self.n_embd,
            (false, _) => self.n_hidden,
            (true, 0) => 2 * self.n_embd,
            (true, _) => 2 * self.n_hidden,
        }
    }

    /// Inputs of the output layer.
    pub fn output_fan_in(&self) -> usize {
        if self.n_layers == 0 {
            self.block_size * self.n_embd
        } else {
            self.n_hidden
        }
    }

    /// Whether the hidden layers have a bias (not before BatchNorm, whose shift replaces it).
    pub fn hidden_bias(&self) -> bool {
        self.norm != NormKind::Batch
    }

    /// Checks every size is positive and the model fits in memory; says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("n_embd", self.n_embd),
            ("n_hidden", self.n_hidden),
        ];
        for (name, value) in fields {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
            if value > MAX_DIM {
                return Err(format!(
                    "{name} = {value} is larger than the limit {MAX_DIM}"
                ));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if let Some(field) = self.unused_but_set().first() {
            return Err(format!(
                "{field} is not an option of the {} model ({}): remove it",
                self.kind.name(),
                self.kind.why_unused(field)
            ));
        }
        if self.kind.is_sequence() {
            let kind = self.kind.name();
            if self.block_size < 2 {
                return Err(format!(
                    "block_size of the {kind} model is its positions per word (the longest word + 1), at least 2"
                ));
            }
        }
        if self.kind == ModelKind::Transformer {
            if self.n_layers == 0 || self.n_layers > 64 {
                return Err(format!(
                    "the transformer needs 1 to 64 blocks (n_layers), got {}",
                    self.n_layers
                ));
            }
            if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
                return Err(format!(
                    "n_embd ({}) must be a multiple of the number of heads ({})",
                    self.n_embd, self.n_head
                ));
            }
        }
        if self.vocab_size < 2 {
            return Err("vocab_size must be at least 2 (the boundary and one character)".into());
        }
        if self.hierarchical
            && (self.n_layers == 0
                || self.n_layers >= usize::BITS as usize
                || self.block_size != 1 << self.n_layers)
        {
            return Err(format!(
                "the hierarchical model merges pairs, so block_size must be 2^n_layers: \
                 block_size {} and n_layers {} do not fit (block_size 8 needs n_layers 3)",
                self.block_size, self.n_layers
            ));
        }
        if self.n_layers > 64 {
            return Err(format!(
                "n_layers = {} is larger than the limit 64",
                self.n_layers
            ));
        }
        let params = self.params_u128();
        if params > MAX_PARAMS as u128 {
            return Err(format!(
                "the model would have about {params} parameters, more than the limit {MAX_PARAMS}"
            ));
        }
        Ok(())
    }
}
