//! `makemore lr-find`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use makemore_model::FusedAutodiff;
use makemore_train::{
    lowest_smoothed_loss, lr_find, prepare, suggest_lr, TrainingConfig, LR_SUGGESTION_RULE,
};

use crate::backend::{dispatch, WithBackend};
use crate::commands::plot::FormatArg;
use crate::config_flags::{load_config, InitArg};
use crate::corpus;
use makemore_plot::{line_chart, Chart, ImageFormat, Line};

/// `makemore lr-find`: the notebook's learning-rate finder. From a fresh model, one
/// minibatch step at each learning rate 10^e, e evenly spaced from --min-exp to --max-exp;
/// writes lr-find.csv and a plot of loss against e, and suggests a learning rate.
#[derive(Debug, Args)]
pub struct LrFindArgs {
    #[command(flatten)]
    pub corpus: crate::shared_args::DataArg,
    /// Smallest exponent.
    #[arg(long, default_value_t = -3.0, allow_negative_numbers = true)]
    pub min_exp: f64,
    /// Largest exponent.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub max_exp: f64,
    /// Learning rates to try (one step each).
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Directory for lr-find.csv and lr-find.png.
    #[arg(long, value_name = "DIR", default_value = "runs/lr-find")]
    pub out: PathBuf,
    /// Picture format.
    #[arg(long, value_enum, default_value_t = FormatArg::Png)]
    pub format: FormatArg,
    /// Model and training settings as JSON (default: the notebook's recipe).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Weight initialisation of the MLP (default `notebook`, as the lecture; makemore.py's
    /// models have their own and refuse this option).
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Embedding dimensions per character.
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Units in the hidden layer.
    #[arg(long)]
    pub n_hidden: Option<usize>,
    /// Examples per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub device: crate::shared_args::BackendArg,
}

struct LrFindJob {
    args: LrFindArgs,
    config: TrainingConfig,
    words: Vec<String>,
}

/// Runs `makemore lr-find`.
pub fn run(args: LrFindArgs) -> Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    match args.init {
        Some(init) => config.model.init = init.into(),
        None if !config.model.kind.is_sequence() => config.model.init = InitArg::Notebook.into(),
        None => {}
    }
    if let Some(v) = args.n_embd {
        config.model.n_embd = v;
    }
    if let Some(v) = args.n_hidden {
        config.model.n_hidden = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create --out {}", args.out.display()))?;
    let words = corpus::load_words(args.corpus.data.as_ref())?;
    dispatch(
        args.device.backend,
        LrFindJob {
            args,
            config,
            words,
        },
    )
}

impl WithBackend for LrFindJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<()> {
        let LrFindJob {
            args,
            config,
            words,
        } = self;
        let data = prepare(words, &config)?;
        let points = lr_find::<B>(
            &data,
            &config,
            args.min_exp,
            args.max_exp,
            args.steps,
            &device,
        )?;
        let csv_path = args.out.join("lr-find.csv");
        let mut csv = String::from("exponent,lr,loss\n");
        for p in &points {
            csv.push_str(&format!("{},{},{}\n", p.exponent, p.lr, p.loss));
        }
        makemore_io::write_atomic(&csv_path, csv.as_bytes())
            .with_context(|| format!("cannot write {}", csv_path.display()))?;
        let img = args
            .out
            .join(format!("lr-find.{}", ImageFormat::from(args.format).ext()));
        let chart = Chart {
            title: "learning-rate finder: one minibatch step per rate",
            x_label: "log10(learning rate)",
            y_label: "minibatch loss",
            lines: vec![Line {
                label: "loss".into(),
                points: points
                    .iter()
                    .map(|p| (p.exponent, f64::from(p.loss)))
                    .collect(),
                dots: false,
            }],
        };
        line_chart(&chart, &img, args.format.into())?;
        if points.len() < args.steps {
            println!(
                "the loss diverged at lr {:.3e}; stopped after {} rates",
                points[points.len() - 1].lr,
                points.len()
            );
        }
        if let Some((e, loss)) = lowest_smoothed_loss(&points) {
            println!(
                "lowest smoothed loss {loss:.3} at learning rate {:.3} (10^{e:.2})",
                10f64.powf(e)
            );
        }
        match suggest_lr(&points) {
            Some(lr) => println!("suggested learning rate: {lr:.3} (rule: {LR_SUGGESTION_RULE})"),
            None => println!("no suggestion: the loss was never finite"),
        }
        println!("wrote {} and {}", csv_path.display(), img.display());
        Ok(())
    }
}
