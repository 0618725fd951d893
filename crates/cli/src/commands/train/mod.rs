//! `makemore train`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use makemore_train::Checkpoint;

use crate::backend::dispatch;
use crate::config_flags::{load_config, ConfigFlags};
use crate::corpus;

/// `makemore train`: every flag overrides the config (the defaults reproduce the notebook's
/// final recipe: block 3, embedding 10, hidden 200, 200,000 steps of batch 32, lr 0.1 then
/// 0.01 from step 100,000, 80/10/10 split with seed 42).
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub corpus: crate::shared_args::DataArg,
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
    #[command(flatten)]
    pub device: crate::shared_args::BackendArg,

    /// Model and training settings (each overrides --config and the defaults).
    #[command(flatten)]
    pub settings: ConfigFlags,

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

mod job;

use job::TrainJob;

/// Runs `makemore train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (config, dir, resume, lock) = match &args.resume {
        Some(dir) => {
            if !args.settings.overrides()?.is_empty() {
                bail!("--resume continues a run with its own config.json; leave out the training flags (or start a new run with --config {}/config.json)", dir.display());
            }
            let (ckpt, lock) = Checkpoint::open_to_resume(dir).context("cannot resume")?;
            if let Some(d) = &ckpt.config.distill {
                d.teacher_spec()
                    .and_then(|spec| spec.open())
                    .context("cannot resume: the run distils from a teacher that cannot be read")?;
            }
            (ckpt.config.clone(), dir.clone(), Some(ckpt), lock)
        }
        None => {
            let mut config = load_config(args.config.as_deref())?;
            args.settings.overrides()?.apply(&mut config)?;
            // Refuse bad settings before touching --out (vocab_size comes from the corpus later).
            let mut probe = config.clone();
            probe.model.vocab_size = probe.model.vocab_size.max(2);
            // A sequence model's positions (0: from the corpus) are filled in later too.
            if probe.model.kind.is_sequence() && probe.model.block_size == 0 {
                probe.model.block_size = 2;
            }
            probe.validate()?;
            // The teacher is read again at every resume, perhaps from another directory.
            if let Some(d) = &mut config.distill {
                d.teacher = makemore_train::absolute_teacher(&d.teacher);
                d.teacher_spec()
                    .and_then(|spec| spec.open())
                    .context("cannot use the distillation teacher")?;
            }
            if args.print_config {
                // vocab_size is a placeholder here: a run fills it in from its corpus.
                println!("{}", config.to_json());
                return Ok(());
            }
            // A run too large for this machine's memory is refused before --out changes.
            let words = corpus::load_words(args.corpus.data.as_ref())?;
            let on_host = matches!(args.device.backend, crate::backend::BackendChoice::Ndarray);
            makemore_train::check_run_memory(&config, &words, on_host)?;
            let lock = Checkpoint::prepare_dir(&args.out, args.force).map_err(|e| match e {
                makemore_train::TrainError::RunExists { .. } => anyhow::anyhow!(
                    "--out {e}; pass --force to replace it, --resume {} to continue it, or choose another --out",
                    args.out.display()
                ),
                e => anyhow::Error::new(e).context(format!("cannot use --out {}", args.out.display())),
            })?;
            (config, args.out.clone(), None, lock)
        }
    };
    let data = match &resume {
        Some(ckpt) => corpus::of_run(args.corpus.data.as_ref(), ckpt)?,
        None => args.corpus.data.clone(),
    };
    let words = corpus::load_words(data.as_ref())?;
    let backend = args.device.backend;
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
