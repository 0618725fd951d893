//! `makemore sample`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use makemore_data::Split;
use makemore_model::FusedAutodiff;
use makemore_train::{sample_ensemble, Checkpoint, SampleOptions};

use crate::backend::{dispatch, WithBackend};
use crate::corpus;

/// `makemore sample`: make more words, each marked as in train / in dev / in test / new.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("models").required(true).multiple(true)))]
pub struct SampleArgs {
    /// Checkpoint directory (a run's --out). Repeat it to draw from an ensemble of equal
    /// weights: each character from the models' probabilities averaged.
    #[arg(long, value_name = "DIR", group = "models")]
    pub checkpoint: Vec<PathBuf>,
    /// An ensemble's file (see `makemore eval --help`); its members come after any
    /// --checkpoint.
    #[arg(long, value_name = "FILE", group = "models")]
    pub ensemble: Option<PathBuf>,
    /// Number of words.
    #[arg(short, long, default_value_t = 20)]
    pub n: usize,
    /// Seed of the draw.
    #[arg(long, default_value_t = 2_147_483_647)]
    pub seed: u64,
    /// Divide logits by T (< 1: safer, more common words; > 1: wilder).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Draw only from the K most likely characters at each step.
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Start every word with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Stop a word after this many characters.
    #[arg(long, default_value_t = 50)]
    pub max_len: usize,
    /// Only words that are in no split of the corpus.
    #[arg(long)]
    pub only_new: bool,
    #[command(flatten)]
    pub corpus: crate::shared_args::DataArg,
    /// Print JSON lines: {"word", "origin", "truncated"}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: crate::shared_args::BackendArg,
}

struct SampleJob {
    args: SampleArgs,
    /// The models with their weights (one, or an ensemble's).
    members: Vec<(Checkpoint, f64)>,
    split: Split,
}

/// Runs `makemore sample`.
pub fn run(args: SampleArgs) -> Result<()> {
    let members = match super::eval::ensemble_of(&args.checkpoint, args.ensemble.as_deref())? {
        Some(spec) => spec.open().context("cannot sample from the ensemble")?,
        None => vec![(
            Checkpoint::open(&args.checkpoint[0]).context("cannot sample")?,
            1.0,
        )],
    };
    let ckpt = &members[0].0;
    let words = corpus::load_words(corpus::of_run(args.corpus.data.as_ref(), ckpt)?.as_ref())?;
    let split = Split::new(words, ckpt.config.split_seed, ckpt.config.split)?;
    dispatch(
        args.device.backend,
        SampleJob {
            args,
            members,
            split,
        },
    )
}

impl WithBackend for SampleJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<()> {
        let SampleJob {
            args,
            members,
            split,
        } = self;
        let vocab = &members[0].0.vocab;
        let options = SampleOptions {
            n: args.n,
            seed: args.seed,
            temperature: args.temperature,
            top_k: args.top_k,
            prefix: args.prefix.clone(),
            max_len: args.max_len,
            only_new: args.only_new,
        };
        options.validate(vocab)?;
        let models = members
            .iter()
            .map(|(c, w)| {
                Ok((
                    c.load_model::<B::InnerBackend>(&device)?,
                    *w,
                    c.config.model.block_size,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = models.iter().map(|(m, w, b)| (m, *w, *b)).collect();
        let samples = sample_ensemble(&refs, vocab, Some(&split), &options, &device)?;
        for s in &samples {
            if args.json {
                println!("{}", serde_json::to_string(s)?);
            } else {
                let cut = if s.truncated {
                    " (cut at --max-len)"
                } else {
                    ""
                };
                println!("{:<24} {}{cut}", s.word, s.origin.label());
            }
        }
        if args.only_new && samples.len() < args.n {
            eprintln!(
                "note: found only {} new words in {} attempts",
                samples.len(),
                args.n * 100
            );
        }
        Ok(())
    }
}
