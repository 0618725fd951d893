//! `makemore eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use makemore_data::SplitName;
use makemore_model::FusedAutodiff;
use makemore_train::{evaluate_split, prepare_with_vocab, Checkpoint};
use serde::Serialize;

use crate::backend::{dispatch, WithBackend};
use crate::corpus;

/// A split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// Training words.
    Train,
    /// Development words.
    Dev,
    /// Held-out test words (evaluate once, for the model you chose on dev).
    Test,
}

impl From<SplitArg> for SplitName {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => SplitName::Train,
            SplitArg::Dev => SplitName::Dev,
            SplitArg::Test => SplitName::Test,
        }
    }
}

/// `makemore eval`: the loss of each split, re-split exactly as the run was.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint directory (a run's --out).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub corpus: crate::shared_args::DataArg,
    /// Splits to evaluate (repeatable; default train and dev; test only when asked for).
    #[arg(long, value_enum)]
    pub split: Vec<SplitArg>,
    /// Print one JSON object keyed by split name.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub device: crate::shared_args::BackendArg,
}

/// The loss of one split.
#[derive(Debug, Serialize)]
pub struct SplitLoss {
    /// Mean negative log-likelihood, nats per character.
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
    /// Characters predicted (each character of each word and its end), for every model.
    pub examples: usize,
}

struct EvalJob {
    args: EvalArgs,
    ckpt: Checkpoint,
    words: Vec<String>,
}

/// Runs `makemore eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let ckpt = Checkpoint::open(&args.checkpoint).context("cannot evaluate")?;
    let words = corpus::load_words(corpus::of_run(args.corpus.data.as_ref(), &ckpt)?.as_ref())?;
    dispatch(args.device.backend, EvalJob { args, ckpt, words })
}

impl WithBackend for EvalJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<()> {
        let EvalJob { args, ckpt, words } = self;
        let data = prepare_with_vocab(words, &ckpt.config, Some(ckpt.vocab.clone()))
            .context("the corpus does not fit this checkpoint's vocabulary")?;
        if data.corpus_sha256 != ckpt.state.corpus_sha256 {
            eprintln!("note: this corpus differs from the one the checkpoint was trained on");
        }
        let model = ckpt.load_model::<B::InnerBackend>(&device)?;
        let splits: Vec<SplitName> = if args.split.is_empty() {
            vec![SplitName::Train, SplitName::Dev]
        } else {
            args.split.iter().map(|&s| s.into()).collect()
        };
        let mut out = Vec::new();
        for name in splits {
            if let Some(loss) = evaluate_split(&model, &data, name, &device) {
                // Characters predicted (each character of each word and its end): the same
                // count for windows and sequences.
                let examples = data.examples(name).characters();
                out.push((
                    name.as_str(),
                    SplitLoss {
                        loss,
                        perplexity: loss.exp(),
                        examples,
                    },
                ));
            }
        }
        if args.json {
            // One key per split, and the model's trainable parameter count.
            let mut keyed: BTreeMap<_, _> = out
                .into_iter()
                .map(|(name, l)| Ok((name, serde_json::to_value(l)?)))
                .collect::<Result<_>>()?;
            keyed.insert("params", ckpt.config.model.num_params().into());
            println!("{}", serde_json::to_string(&keyed)?);
        } else {
            // In the order asked for (train before dev by default).
            for (name, l) in &out {
                println!(
                    "{name:<5} loss {:.4}  perplexity {:.3}  ({} examples)",
                    l.loss, l.perplexity, l.examples
                );
            }
        }
        Ok(())
    }
}
