//! `makemore bigram`.

use anyhow::Result;
use clap::Args;
use makemore_data::{Split, SplitRatios};
use makemore_model::Bigram;
use makemore_train::Origin;
use makemore_vocab::Vocab;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::corpus;

/// `makemore bigram`: the count-based bigram baseline (makemore part 1) on the same split.
#[derive(Debug, Args)]
pub struct BigramArgs {
    #[command(flatten)]
    pub corpus: crate::shared_args::DataArg,
    /// Add-k smoothing of every count.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub smoothing: f64,
    /// Words to sample.
    #[arg(short, long, default_value_t = 10)]
    pub n: usize,
    /// Seed of the samples.
    #[arg(long, default_value_t = 2_147_483_647)]
    pub seed: u64,
    /// Seed of the shuffle before the split.
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    train_loss: f64,
    dev_loss: f64,
    train_perplexity: f64,
    dev_perplexity: f64,
    samples: Vec<String>,
}

/// Runs `makemore bigram`.
pub fn run(args: BigramArgs) -> Result<()> {
    if !(args.smoothing.is_finite() && args.smoothing >= 0.0) {
        anyhow::bail!(
            "--smoothing must be a finite number >= 0, got {}",
            args.smoothing
        );
    }
    let words = corpus::load_words(args.corpus.data.as_ref())?;
    let vocab = Vocab::from_words(&words)?;
    let split = Split::new(words, args.split_seed, SplitRatios::default())?;
    let encode = |ws: &[String]| {
        ws.iter()
            .map(|w| vocab.encode(w))
            .collect::<Result<Vec<_>, _>>()
    };
    let (train, dev) = (encode(&split.train)?, encode(&split.dev)?);
    let model = Bigram::fit(&train, vocab.len(), args.smoothing);
    let (train_loss, dev_loss) = (model.nll(&train), model.nll(&dev));
    if dev_loss.is_infinite() {
        eprintln!("note: with --smoothing 0 a dev bigram never seen in training has probability 0");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let samples = (0..args.n)
        .map(|_| vocab.decode(&model.sample(&mut rng, 50)))
        .collect::<Result<Vec<_>, _>>()?;
    let report = Report {
        train_loss,
        dev_loss,
        train_perplexity: train_loss.exp(),
        dev_perplexity: dev_loss.exp(),
        samples,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "bigram model, add-{} smoothing, {} train / {} dev words",
        args.smoothing,
        split.train.len(),
        split.dev.len()
    );
    println!(
        "train loss {:.4}  perplexity {:.3}",
        report.train_loss, report.train_perplexity
    );
    println!(
        "dev   loss {:.4}  perplexity {:.3}",
        report.dev_loss, report.dev_perplexity
    );
    println!("samples:");
    for s in &report.samples {
        println!("  {s:<20} {}", Origin::of(s, &split).label());
    }
    Ok(())
}
