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
    /// Also fit on every word of the corpus and score every word, as makemore part 1 does
    /// (its figure: 2.4544 on the canonical names.txt).
    #[arg(long)]
    pub whole_corpus: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The lecture's number: a model fitted on every word, scored on every word.
#[derive(Serialize)]
struct WholeCorpus {
    /// Mean NLL, summed in f64.
    loss: f64,
    perplexity: f64,
    /// Bigrams scored (each character of each word and its end).
    bigrams: usize,
    /// The negated log-likelihood summed in float32 one bigram at a time, as the lecture
    /// does, and its mean (what the lecture prints).
    lecture_nll_sum: f32,
    lecture_loss: f32,
}

#[derive(Serialize)]
struct Report {
    train_loss: f64,
    dev_loss: f64,
    train_perplexity: f64,
    dev_perplexity: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    whole_corpus: Option<WholeCorpus>,
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
    let encode = |ws: &[String]| {
        ws.iter()
            .map(|w| vocab.encode(w))
            .collect::<Result<Vec<_>, _>>()
    };
    let whole_corpus = if args.whole_corpus {
        let all = encode(&words)?;
        let loss = Bigram::fit(&all, vocab.len(), args.smoothing).nll(&all);
        let (lecture_nll_sum, lecture_loss, bigrams) =
            Bigram::lecture_nll(&all, vocab.len(), args.smoothing);
        Some(WholeCorpus {
            loss,
            perplexity: loss.exp(),
            bigrams,
            lecture_nll_sum,
            lecture_loss,
        })
    } else {
        None
    };
    let split = Split::new(words, args.split_seed, SplitRatios::default())?;
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
        whole_corpus,
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
    if let Some(w) = &report.whole_corpus {
        println!(
            "whole corpus (fitted and scored on every word, as makemore part 1): loss {:.5}  perplexity {:.3}  ({} bigrams)",
            w.loss, w.perplexity, w.bigrams
        );
        println!(
            "  summed in float32 as the lecture does: nll {} / {} = {:.4}",
            w.lecture_nll_sum, w.bigrams, w.lecture_loss
        );
    }
    println!("samples:");
    for s in &report.samples {
        println!("  {s:<20} {}", Origin::of(s, &split).label());
    }
    Ok(())
}
