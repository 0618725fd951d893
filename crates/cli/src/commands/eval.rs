//! `makemore eval`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use makemore_data::SplitName;
use makemore_model::FusedAutodiff;
use makemore_train::{
    evaluate_split, prepare_with_vocab, score_ensemble, Checkpoint, EnsembleSpec,
};
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
#[command(group(clap::ArgGroup::new("models").required(true).multiple(true)))]
pub struct EvalArgs {
    /// Checkpoint directory (a run's --out). Repeat it to score an ensemble of equal weights:
    /// the models' next-character probabilities averaged, beside each model's own loss.
    #[arg(long, value_name = "DIR", group = "models")]
    pub checkpoint: Vec<PathBuf>,
    /// An ensemble's file: {"members": [{"checkpoint": DIR, "weight": W}, ...]} (relative
    /// DIRs are relative to the file; weights default to 1). Its members come after any
    /// --checkpoint.
    #[arg(long, value_name = "FILE", group = "models")]
    pub ensemble: Option<PathBuf>,
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
    if let Some(spec) = ensemble_of(&args.checkpoint, args.ensemble.as_deref())? {
        let members = spec.open().context("cannot evaluate the ensemble")?;
        let words =
            corpus::load_words(corpus::of_run(args.corpus.data.as_ref(), &members[0].0)?.as_ref())?;
        return dispatch(
            args.device.backend,
            EnsembleJob {
                args,
                members,
                words,
            },
        );
    }
    let ckpt = Checkpoint::open(&args.checkpoint[0]).context("cannot evaluate")?;
    let words = corpus::load_words(corpus::of_run(args.corpus.data.as_ref(), &ckpt)?.as_ref())?;
    dispatch(args.device.backend, EvalJob { args, ckpt, words })
}

/// The ensemble that `--checkpoint` (repeated) and `--ensemble` describe; `None` for one
/// checkpoint alone.
pub(crate) fn ensemble_of(
    checkpoints: &[PathBuf],
    file: Option<&std::path::Path>,
) -> Result<Option<EnsembleSpec>> {
    if file.is_none() && checkpoints.len() == 1 {
        return Ok(None);
    }
    let mut spec = EnsembleSpec::equal(checkpoints.iter().cloned());
    if let Some(path) = file {
        let from_file = EnsembleSpec::read(path).context("cannot read the ensemble")?;
        spec.members.extend(from_file.members);
    }
    Ok(Some(spec))
}

/// The splits asked for: train and dev unless told.
fn splits_of(args: &EvalArgs) -> Vec<SplitName> {
    if args.split.is_empty() {
        vec![SplitName::Train, SplitName::Dev]
    } else {
        args.split.iter().map(|&s| s.into()).collect()
    }
}

struct EnsembleJob {
    args: EvalArgs,
    members: Vec<(Checkpoint, f64)>,
    words: Vec<String>,
}

/// One member in `--json` output.
#[derive(Debug, Serialize)]
struct MemberOut {
    checkpoint: String,
    kind: String,
    weight: f64,
    params: usize,
}

/// One split of an ensemble in `--json` output.
#[derive(Debug, Serialize)]
struct EnsembleSplit {
    loss: f64,
    perplexity: f64,
    examples: usize,
    /// Each member's own loss, in order.
    members: Vec<f64>,
}

impl WithBackend for EnsembleJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, _device_name: &str) -> Result<()> {
        let EnsembleJob {
            args,
            members,
            words,
        } = self;
        // Each model reads the corpus its own way (windows of its context, or words).
        let mut loaded = Vec::with_capacity(members.len());
        for (c, w) in &members {
            let data = prepare_with_vocab(words.clone(), &c.config, Some(c.vocab.clone()))
                .context("the corpus does not fit the ensemble's vocabulary")?;
            if data.corpus_sha256 != c.state.corpus_sha256 {
                eprintln!(
                    "note: this corpus differs from the one {} was trained on",
                    c.dir.display()
                );
            }
            loaded.push((c.load_model::<B::InnerBackend>(&device)?, *w, data));
        }
        let total: f64 = members.iter().map(|m| m.1).sum();
        let mut out = Vec::new();
        for name in splits_of(&args) {
            let refs: Vec<_> = loaded
                .iter()
                .map(|(m, w, data)| (m, *w, data.examples(name)))
                .collect();
            if let Some(l) = score_ensemble(&refs, &device)? {
                out.push((name.as_str(), l));
            }
        }
        if args.json {
            let mut keyed: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
            for (name, l) in out {
                let split = EnsembleSplit {
                    loss: l.loss,
                    perplexity: l.loss.exp(),
                    examples: l.characters,
                    members: l.members,
                };
                keyed.insert(name, serde_json::to_value(split)?);
            }
            let described: Vec<MemberOut> = members
                .iter()
                .map(|(c, w)| MemberOut {
                    checkpoint: c.dir.display().to_string(),
                    kind: format!("{:?}", c.config.model.kind).to_lowercase(),
                    weight: w / total,
                    params: c.config.model.num_params(),
                })
                .collect();
            keyed.insert("members", serde_json::to_value(described)?);
            println!("{}", serde_json::to_string(&keyed)?);
            return Ok(());
        }
        for (i, (c, w)) in members.iter().enumerate() {
            println!(
                "member {}  {:<11} weight {:.3}  {}",
                i + 1,
                format!("{:?}", c.config.model.kind).to_lowercase(),
                w / total,
                c.dir.display()
            );
        }
        for (name, l) in &out {
            for (i, loss) in l.members.iter().enumerate() {
                println!("{name:<5} loss {loss:.4}  member {}", i + 1);
            }
            println!(
                "{name:<5} loss {:.4}  perplexity {:.3}  ({} examples)  ensemble",
                l.loss,
                l.loss.exp(),
                l.characters
            );
        }
        Ok(())
    }
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
        let mut out = Vec::new();
        for name in splits_of(&args) {
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
