//! `makemore train`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use makemore_data::SplitRatios;
use makemore_model::{FusedAutodiff, InitScheme, NormKind};
use makemore_train::{
    prepare, sample, Checkpoint, OptimizerChoice, RunLock, SampleOptions, ScheduleKind, TrainEvent,
    Trained, Trainer, TrainingConfig, TrainingOverrides,
};
use serde::Serialize;

use crate::backend::{dispatch, BackendChoice, WithBackend};
use crate::{corpus, progress};

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

/// `makemore train`: every flag overrides the config (the defaults reproduce the notebook's
/// final recipe: block 3, embedding 10, hidden 200, 200,000 steps of batch 32, lr 0.1 then
/// 0.01 from step 100,000, 80/10/10 split with seed 42).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Word list, one word per line (default: the built-in data/names.txt; with --resume,
    /// the run's own corpus).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Checkpoint directory for this run.
    #[arg(long, value_name = "DIR", default_value = "runs/mlp")]
    pub out: PathBuf,
    /// Start from this JSON config (a run's config.json works); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue the run in DIR exactly where it stopped, with its own config.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config"])]
    pub resume: Option<PathBuf>,
    /// Replace a different run already in --out.
    #[arg(long)]
    pub force: bool,
    /// Stop after STEP steps in all, with a checkpoint, unfinished (as Ctrl-C would):
    /// `--resume` later continues the same run bit for bit. Successive halving in
    /// `cargo xtask sweep` compares runs this way part-way through.
    #[arg(long, value_name = "STEP")]
    pub until: Option<u64>,
    /// Print the resolved config (defaults, --config, then flags) as JSON and exit
    /// without training; the result works as a --config file.
    #[arg(long)]
    pub print_config: bool,
    /// Backend to train on.
    #[arg(long, value_enum, default_value_t = BackendChoice::default())]
    pub backend: BackendChoice,

    /// Characters of context.
    #[arg(long, help_heading = "Model")]
    pub block_size: Option<usize>,
    /// Embedding dimensions per character.
    #[arg(long, alias = "embedding-size", help_heading = "Model")]
    pub n_embd: Option<usize>,
    /// Units per hidden layer.
    #[arg(long, alias = "hidden-size", help_heading = "Model")]
    pub n_hidden: Option<usize>,
    /// Number of tanh hidden layers.
    #[arg(long, help_heading = "Model")]
    pub layers: Option<usize>,
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

    /// Words to sample at the end (0: none).
    #[arg(long, default_value_t = 10, help_heading = "Output")]
    pub samples: usize,
    /// Print one JSON summary line on stdout instead of text.
    #[arg(long, help_heading = "Output")]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short, help_heading = "Output")]
    pub quiet: bool,
}

impl TrainArgs {
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

#[derive(Debug, Serialize)]
struct Summary {
    checkpoint: String,
    params: usize,
    steps: u64,
    interrupted: bool,
    finished: bool,
    train_loss: f64,
    dev_loss: Option<f64>,
    train_secs: f64,
    samples: Vec<String>,
}

struct TrainJob {
    args: TrainArgs,
    config: TrainingConfig,
    dir: PathBuf,
    resume: Option<Checkpoint>,
    /// The run directory's lock, held from before any file in it changes.
    lock: Option<RunLock>,
    /// The corpus file (`None`: the built-in corpus).
    data: Option<PathBuf>,
    words: Vec<String>,
}

/// Runs `makemore train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (config, dir, resume, lock) = match &args.resume {
        Some(dir) => {
            if !args.overrides()?.is_empty() {
                bail!("--resume continues a run with its own config.json; leave out the training flags (or start a new run with --config {}/config.json)", dir.display());
            }
            // Taken before opening: opening may finish an interrupted save.
            let lock = if dir.is_dir() {
                Some(RunLock::acquire(dir)?)
            } else {
                None
            };
            let ckpt = Checkpoint::open(dir).context("cannot resume")?;
            if ckpt.state.finished {
                bail!(
                    "the run in {} already finished all {} steps",
                    dir.display(),
                    ckpt.config.steps
                );
            }
            (ckpt.config.clone(), dir.clone(), Some(ckpt), lock)
        }
        None => {
            let mut config = load_config(args.config.as_deref())?;
            args.overrides()?.apply(&mut config)?;
            // Refuse bad settings before touching --out (vocab_size comes from the corpus later).
            let mut probe = config.clone();
            probe.model.vocab_size = probe.model.vocab_size.max(2);
            probe.validate()?;
            if args.print_config {
                // vocab_size is a placeholder here: a run fills it in from its corpus.
                println!("{}", config.to_json());
                return Ok(());
            }
            let lock = Checkpoint::prepare_dir(&args.out, args.force).map_err(|e| match e {
                makemore_train::TrainError::RunExists { .. } => anyhow::anyhow!(
                    "--out {e}; pass --force to replace it, --resume {} to continue it, or choose another --out",
                    args.out.display()
                ),
                e => anyhow::Error::new(e).context(format!("cannot use --out {}", args.out.display())),
            })?;
            (config, args.out.clone(), None, Some(lock))
        }
    };
    let data = match &resume {
        Some(ckpt) => corpus::of_run(args.data.as_ref(), ckpt)?,
        None => args.data.clone(),
    };
    let words = corpus::load_words(data.as_ref())?;
    let backend = args.backend;
    dispatch(
        backend,
        TrainJob {
            args,
            config,
            dir,
            resume,
            lock,
            data,
            words,
        },
    )
}

impl WithBackend for TrainJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<()> {
        let TrainJob {
            args,
            mut config,
            dir,
            resume,
            lock,
            data: data_path,
            words,
        } = self;
        let data = prepare(words, &config)?;
        config.model.vocab_size = data.vocab.len();
        if let Some(ckpt) = &resume {
            makemore_train::check_resume(ckpt, &data, &config)?;
        }
        makemore_train::check_data_fits(&config, &data)?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            // A second Ctrl-C kills at once; the first asks for a clean checkpoint.
            let _ = ctrlc::set_handler(move || {
                if stop.swap(true, Ordering::Relaxed) {
                    std::process::exit(130);
                }
            });
        }
        if !args.json {
            eprintln!(
                "training {} parameters on {} ({} train / {} dev examples) -> {}",
                config.model.num_params(),
                corpus::describe(data_path.as_ref()),
                data.train.len(),
                data.dev.len(),
                dir.display()
            );
        }
        let start = resume.as_ref().map_or(0, |c| c.state.step);
        let bar = progress::steps_bar(config.steps, start, args.quiet || args.json);
        let mut on_event = |e: &TrainEvent| match e {
            TrainEvent::Step { step, loss, .. } if step.is_multiple_of(100) => {
                bar.set_position(*step);
                bar.set_message(format!("loss {loss:.4}"));
            }
            TrainEvent::Eval { step, dev_loss } => {
                bar.println(format!("step {step:>7}  dev loss {dev_loss:.4}"))
            }
            _ => {}
        };
        let mut trainer = Trainer::new(&data, &config, &dir)
            .stop(&stop)
            .on_event(&mut on_event);
        if let Some(ckpt) = resume {
            trainer = trainer.resume(ckpt);
        }
        if let Some(step) = args.until {
            trainer = trainer.until(step);
        }
        if let Some(path) = &data_path {
            trainer = trainer.corpus_path(path);
        }
        if let Some(lock) = lock {
            trainer = trainer.lock(lock);
        }
        let trained = trainer.fit::<B>(&device);
        bar.finish_and_clear();
        let Trained { model, summary } = trained?;
        let options = SampleOptions {
            n: args.samples,
            ..SampleOptions::default()
        };
        let samples = if args.samples > 0 {
            sample(
                &model,
                &data.vocab,
                config.model.block_size,
                Some(&data.split),
                &options,
                &device,
            )?
        } else {
            Vec::new()
        };
        let out = Summary {
            checkpoint: dir.display().to_string(),
            params: summary.params,
            steps: summary.steps_done,
            interrupted: summary.interrupted,
            finished: summary.finished,
            train_loss: summary.train_loss,
            dev_loss: summary.dev_loss,
            train_secs: summary.train_secs,
            samples: samples.iter().map(|s| s.word.clone()).collect(),
        };
        if args.json {
            println!("{}", serde_json::to_string(&out)?);
            return Ok(());
        }
        if !summary.finished {
            println!(
                "{} at step {}; continue with: makemore train --resume {}",
                if summary.interrupted {
                    "interrupted"
                } else {
                    "stopped"
                },
                summary.steps_done,
                dir.display()
            );
        }
        println!("parameters   {}", summary.params);
        println!(
            "steps        {} in {:.1} s ({:.0} steps/s)",
            summary.steps_done,
            summary.train_secs,
            summary.steps_done as f64 / summary.train_secs.max(1e-9)
        );
        println!("train loss   {:.4}", summary.train_loss);
        match summary.dev_loss {
            Some(d) => println!("dev loss     {d:.4}"),
            None => println!("dev loss     n/a (empty dev split)"),
        }
        println!("checkpoint   {}", dir.display());
        if !samples.is_empty() {
            println!("samples:");
            for s in samples {
                println!("  {:<20} {}", s.word, s.origin.label());
            }
        }
        Ok(())
    }
}
