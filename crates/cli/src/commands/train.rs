//! `makemore train`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use makemore_data::SplitRatios;
use makemore_model::FusedAutodiff;
use makemore_model::InitScheme;
use makemore_train::{
    prepare, sample, Checkpoint, LrSchedule, OptimizerKind, RunLock, SampleOptions, TrainEvent,
    Trained, Trainer, TrainingConfig,
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
    /// Rate after the decay (step) or at the end (cosine).
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
    fn has_overrides(&self) -> bool {
        let model = self.block_size.is_some()
            || self.n_embd.is_some()
            || self.n_hidden.is_some()
            || self.layers.is_some()
            || self.direct.is_some()
            || self.hierarchical.is_some()
            || self.norm.is_some()
            || self.dropout.is_some()
            || self.init.is_some()
            || self.init_seed.is_some()
            || self.kernels.is_some();
        let training = self.steps.is_some()
            || self.batch_size.is_some()
            || self.lr.is_some()
            || self.lr_schedule.is_some()
            || self.lr_final.is_some()
            || self.lr_decay_at.is_some()
            || self.warmup.is_some()
            || self.lr_list.is_some()
            || self.optimizer.is_some()
            || self.weight_decay.is_some()
            || self.batch_seed.is_some()
            || self.split.is_some()
            || self.split_seed.is_some()
            || self.eval_every.is_some()
            || self.checkpoint_every.is_some();
        model || training
    }

    /// Applies the flags that were given to `config`.
    pub fn apply(&self, config: &mut TrainingConfig) -> Result<()> {
        let m = &mut config.model;
        set(&mut m.block_size, self.block_size);
        set(&mut m.n_embd, self.n_embd);
        set(&mut m.n_hidden, self.n_hidden);
        set(&mut m.n_layers, self.layers);
        set(&mut m.direct, self.direct);
        set(&mut m.hierarchical, self.hierarchical);
        if m.hierarchical && self.layers.is_none() && m.block_size.is_power_of_two() {
            m.n_layers = m.block_size.trailing_zeros() as usize;
        }
        set(&mut m.dropout, self.dropout);
        if let Some(norm) = self.norm {
            m.norm = match norm {
                NormArg::None => makemore_model::NormKind::None,
                NormArg::Layer => makemore_model::NormKind::Layer,
                NormArg::Batch => makemore_model::NormKind::Batch,
            };
        }
        set(&mut m.init_seed, self.init_seed);
        if let Some(init) = self.init {
            m.init = init.into();
        }
        if let Some(kernels) = self.kernels {
            m.kernels = kernels.into();
        }
        set(&mut config.steps, self.steps);
        set(&mut config.batch_size, self.batch_size);
        set(&mut config.batch_seed, self.batch_seed);
        set(&mut config.split_seed, self.split_seed);
        set(&mut config.eval_every, self.eval_every);
        set(&mut config.checkpoint_every, self.checkpoint_every);
        if let Some(s) = &self.split {
            if s.len() != 3 {
                bail!("--split takes three fractions train,dev,test (like 0.8,0.1,0.1), got {} values", s.len());
            }
            config.split = SplitRatios {
                train: s[0],
                dev: s[1],
                test: s[2],
            };
        }
        self.apply_schedule(config)?;
        match (self.optimizer, self.weight_decay) {
            (Some(OptimizerArg::Sgd), Some(_)) => bail!("--weight-decay needs --optimizer adamw"),
            (Some(OptimizerArg::Sgd), None) => config.optimizer = OptimizerKind::Sgd,
            (Some(OptimizerArg::Adamw), wd) => {
                config.optimizer = OptimizerKind::Adamw {
                    weight_decay: wd.unwrap_or(0.01),
                }
            }
            (None, Some(wd)) => match &mut config.optimizer {
                OptimizerKind::Adamw { weight_decay } => *weight_decay = wd,
                OptimizerKind::Sgd => bail!("--weight-decay needs --optimizer adamw"),
            },
            (None, None) => {}
        }
        Ok(())
    }

    fn apply_schedule(&self, config: &mut TrainingConfig) -> Result<()> {
        if let Some(path) = &self.lr_list {
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
            config.schedule = LrSchedule::List { lrs };
            return Ok(());
        }
        let (cur_lr, cur_final) = match &config.schedule {
            LrSchedule::Constant { lr } => (*lr, *lr * 0.1),
            LrSchedule::Step { lr, decayed_lr, .. } => (*lr, *decayed_lr),
            LrSchedule::Cosine { lr, final_lr, .. } => (*lr, *final_lr),
            LrSchedule::List { lrs } => (lrs.first().copied().unwrap_or(0.1), 0.0),
        };
        let kind = match (self.lr_schedule, &config.schedule) {
            (Some(k), _) => k,
            (None, LrSchedule::Constant { .. }) => ScheduleArg::Constant,
            (None, LrSchedule::Cosine { .. }) => ScheduleArg::Cosine,
            (None, _) => ScheduleArg::Step,
        };
        let lr = self.lr.unwrap_or(cur_lr);
        let final_lr = self.lr_final.unwrap_or(cur_final);
        config.schedule = match kind {
            ScheduleArg::Constant => LrSchedule::Constant { lr },
            ScheduleArg::Step => {
                let current_at = match &config.schedule {
                    LrSchedule::Step { decay_at, .. } if self.steps.is_none() => Some(*decay_at),
                    _ => None,
                };
                let decay_at = self.lr_decay_at.or(current_at).unwrap_or(config.steps / 2);
                LrSchedule::Step {
                    lr,
                    decayed_lr: final_lr,
                    decay_at,
                }
            }
            ScheduleArg::Cosine => LrSchedule::Cosine {
                lr,
                final_lr,
                warmup: self.warmup.unwrap_or(0),
            },
        };
        Ok(())
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
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
            if args.has_overrides() {
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
            args.apply(&mut config)?;
            // Refuse bad settings before touching --out (vocab_size comes from the corpus later).
            let mut probe = config.clone();
            probe.model.vocab_size = probe.model.vocab_size.max(2);
            probe.validate()?;
            if args.print_config {
                // vocab_size is a placeholder here: a run fills it in from its corpus.
                println!("{}", config.to_json());
                return Ok(());
            }
            let lock = check_out_dir(&args.out, args.force)?;
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

/// Refuses to overwrite a directory that holds another run unless `force`, or one that
/// another process is using at all; returns its lock.
fn check_out_dir(out: &std::path::Path, force: bool) -> Result<RunLock> {
    if out.exists() && !out.is_dir() {
        bail!("--out {} exists and is not a directory", out.display());
    }
    // A directory another process trains in is refused first, --force or not.
    let held = out.is_dir().then(|| RunLock::acquire(out)).transpose()?;
    if Checkpoint::exists(out) && !force {
        bail!(
            "--out {} already holds a run; pass --force to replace it, --resume {} to continue it, or choose another --out",
            out.display(),
            out.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create --out {}", out.display()))?;
    let lock = match held {
        Some(lock) => lock,
        None => RunLock::acquire(out)?,
    };
    if force {
        // Leave nothing of the old run that the new one could be mistaken for.
        for name in [
            "state.json",
            "state.json.tmp",
            "model.safetensors",
            "optimizer.mpk",
            "metrics.csv",
        ] {
            let _ = std::fs::remove_file(out.join(name));
        }
    }
    let probe = out.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write to --out {}", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(lock)
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
