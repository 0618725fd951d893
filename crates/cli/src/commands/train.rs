//! `makemore train`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use makemore_model::FusedAutodiff;
use makemore_train::{
    prepare, sample, Checkpoint, RunLock, SampleOptions, TrainEvent, Trained, Trainer,
    TrainingConfig,
};
use serde::Serialize;

use crate::backend::{dispatch, WithBackend};
use crate::config_flags::{load_config, ConfigFlags};
use crate::{corpus, progress};

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
    lock: RunLock,
    /// The corpus file (`None`: the built-in corpus).
    data: Option<PathBuf>,
    words: Vec<String>,
}

/// Runs `makemore train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (config, dir, resume, lock) = match &args.resume {
        Some(dir) => {
            if !args.settings.overrides()?.is_empty() {
                bail!("--resume continues a run with its own config.json; leave out the training flags (or start a new run with --config {}/config.json)", dir.display());
            }
            let (ckpt, lock) = Checkpoint::open_to_resume(dir).context("cannot resume")?;
            (ckpt.config.clone(), dir.clone(), Some(ckpt), lock)
        }
        None => {
            let mut config = load_config(args.config.as_deref())?;
            args.settings.overrides()?.apply(&mut config)?;
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
        // Refused before anything is printed (the trainer checks again).
        if let Some(ckpt) = &resume {
            makemore_train::check_resume(ckpt, &data, &config)?;
        }
        makemore_train::check_data_fits(&config, &data)?;
        let stop = progress::stop_on_ctrl_c();
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
            .lock(lock)
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
