//! The flags that describe a model and its training, shared by the verbs that take a
//! config (`train`, `lr-find`, `bench`), and their translation into
//! [`TrainingOverrides`]: the library decides what they mean.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use makemore_data::SplitRatios;
use makemore_model::{InitScheme, ModelKind, NormKind};
use makemore_train::{OptimizerChoice, ScheduleKind, TrainingConfig, TrainingOverrides};

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

/// Reads `--config FILE` (or the default config when there is none), naming the file on error.
pub fn load_config(path: Option<&std::path::Path>) -> Result<TrainingConfig> {
    let Some(path) = path else {
        return Ok(TrainingConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    TrainingConfig::from_json(&text).with_context(|| format!("in {}", path.display()))
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

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    /// --lr at every step.
    Constant,
    /// --lr, then --lr-final from step --lr-decay-at (the notebook: 0.1 then 0.01 at half).
    Step,
    /// Linear warm-up over --warmup steps, then cosine from --lr to --lr-final.
    Cosine,
}

/// Optimiser.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizerArg {
    /// Plain minibatch SGD (the notebook).
    Sgd,
    /// AdamW with --weight-decay.
    Adamw,
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

/// Model and training settings; every one overrides the config it is applied to.
#[derive(Debug, Default, Args)]
pub struct ConfigFlags {
    /// The model. A sequence model (rnn, gru, bow, transformer) reads whole words and
    /// starts from makemore.py's settings: --n-embd 64 --n-hidden 64 (--layers 4 --heads 4
    /// for the transformer), AdamW (weight decay 0.01, beta2 0.99, eps 1e-8) at a constant
    /// 5e-4, batches of 32 words, 20,000 steps, the best dev weights kept in best/; any
    /// flag given changes that.
    #[arg(long, value_enum, help_heading = "Model")]
    pub model: Option<ModelArg>,
    /// Characters of context (MLP); positions per word for a sequence model (default: the
    /// longest word + 1).
    #[arg(long, help_heading = "Model")]
    pub block_size: Option<usize>,
    /// Embedding dimensions per character.
    #[arg(long, alias = "embedding-size", help_heading = "Model")]
    pub n_embd: Option<usize>,
    /// Units per hidden layer.
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
    /// Weight initialisation.
    #[arg(long, value_enum, help_heading = "Model")]
    pub init: Option<InitArg>,
    /// Seed of the weight initialisation.
    #[arg(long, help_heading = "Model")]
    pub init_seed: Option<u64>,
    /// tanh and loss kernels: `fused` (default; same function, to f32 rounding, several
    /// times faster on the CPU) or `plain` (burn's generic operations).
    #[arg(long, value_enum, help_heading = "Model")]
    pub kernels: Option<KernelsArg>,

    /// Optimisation steps.
    #[arg(long, help_heading = "Training")]
    pub steps: Option<u64>,
    /// Examples per step (>= the training examples: full batch).
    #[arg(long, help_heading = "Training")]
    pub batch_size: Option<usize>,
    /// Learning rate (the peak rate for cosine).
    #[arg(long, allow_negative_numbers = true, help_heading = "Training")]
    pub lr: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, help_heading = "Training")]
    pub lr_schedule: Option<ScheduleArg>,
    /// Rate after the decay (step) or at the end (cosine); default: the config's ratio to
    /// the peak (a tenth) times --lr.
    #[arg(long, allow_negative_numbers = true, help_heading = "Training")]
    pub lr_final: Option<f64>,
    /// First step of the decayed rate (step schedule; default: half the steps).
    #[arg(long, help_heading = "Training")]
    pub lr_decay_at: Option<u64>,
    /// Warm-up steps (cosine schedule).
    #[arg(long, help_heading = "Training")]
    pub warmup: Option<u64>,
    /// A file with one learning rate per line, one per step (overrides --lr-schedule).
    #[arg(long, value_name = "FILE", help_heading = "Training")]
    pub lr_list: Option<PathBuf>,
    /// Optimiser.
    #[arg(long, value_enum, help_heading = "Training")]
    pub optimizer: Option<OptimizerArg>,
    /// Weight decay (AdamW).
    #[arg(long, help_heading = "Training")]
    pub weight_decay: Option<f64>,
    /// AdamW's second-moment decay (default 0.999; makemore.py's 0.99).
    #[arg(long, help_heading = "Training")]
    pub beta2: Option<f64>,
    /// AdamW's epsilon (default 1e-5; makemore.py's 1e-8).
    #[arg(long, help_heading = "Training")]
    pub adam_eps: Option<f64>,
    /// Keep the weights with the lowest dev loss (checked every --eval-every steps) in
    /// DIR/best/, a checkpoint that eval and sample read.
    #[arg(long, help_heading = "Training")]
    pub keep_best: Option<bool>,
    /// Seed of the minibatch sampler.
    #[arg(long, help_heading = "Training")]
    pub batch_seed: Option<u64>,
    /// Split fractions train,dev,test.
    #[arg(
        long,
        value_name = "T,D,T",
        value_delimiter = ',',
        allow_negative_numbers = true,
        help_heading = "Training"
    )]
    pub split: Option<Vec<f64>>,
    /// Seed of the shuffle before the split (Python's random.seed).
    #[arg(long, help_heading = "Training")]
    pub split_seed: Option<u64>,
    /// Evaluate the dev split every N steps (0: only at the end).
    #[arg(long, help_heading = "Training")]
    pub eval_every: Option<u64>,
    /// Save a checkpoint every N steps (0: only at the end).
    #[arg(long, help_heading = "Training")]
    pub checkpoint_every: Option<u64>,
}

impl ConfigFlags {
    /// The config flags that were given, as overrides (reads `--lr-list`).
    pub fn overrides(&self) -> Result<TrainingOverrides> {
        let lr_list = match &self.lr_list {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --lr-list {}", path.display()))?;
                let lrs = text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| {
                        l.trim().parse::<f64>().with_context(|| {
                            format!("{}:{}: not a number: {l:?}", path.display(), i + 1)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some(lrs)
            }
        };
        let split = match self.split.as_deref() {
            None => None,
            Some(&[train, dev, test]) => Some(SplitRatios { train, dev, test }),
            Some(s) => bail!(
                "--split takes three fractions train,dev,test (like 0.8,0.1,0.1), got {} values",
                s.len()
            ),
        };
        Ok(TrainingOverrides {
            model: self.model.map(Into::into),
            n_head: self.heads,
            beta_2: self.beta2,
            epsilon: self.adam_eps,
            keep_best: self.keep_best,
            block_size: self.block_size,
            n_embd: self.n_embd,
            n_hidden: self.n_hidden,
            n_layers: self.layers,
            direct: self.direct,
            hierarchical: self.hierarchical,
            norm: self.norm.map(|n| match n {
                NormArg::None => NormKind::None,
                NormArg::Layer => NormKind::Layer,
                NormArg::Batch => NormKind::Batch,
            }),
            dropout: self.dropout,
            init: self.init.map(Into::into),
            init_seed: self.init_seed,
            kernels: self.kernels.map(Into::into),
            steps: self.steps,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule: self.lr_schedule.map(|k| match k {
                ScheduleArg::Constant => ScheduleKind::Constant,
                ScheduleArg::Step => ScheduleKind::Step,
                ScheduleArg::Cosine => ScheduleKind::Cosine,
            }),
            final_lr: self.lr_final,
            decay_at: self.lr_decay_at,
            warmup: self.warmup,
            lr_list,
            optimizer: self.optimizer.map(|o| match o {
                OptimizerArg::Sgd => OptimizerChoice::Sgd,
                OptimizerArg::Adamw => OptimizerChoice::Adamw,
            }),
            weight_decay: self.weight_decay,
            batch_seed: self.batch_seed,
            split,
            split_seed: self.split_seed,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
        })
    }
}
