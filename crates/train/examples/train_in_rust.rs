//! Trains, evaluates and samples a makemore model from a Rust program, without the CLI.
//!
//! `cargo run --release -p makemore-train --example train_in_rust` (it also runs with the
//! tests: `cargo test --workspace --all-features`).

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use makemore_data::{read_words, SplitName};
use makemore_train::{evaluate_split, prepare, sample, SampleOptions, Trainer, TrainingConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Optional: this thread joins the pool that splits large CPU work (all cores).
    makemore_model::threads::join_thread_pool(None)?;
    // The shipped names, the notebook's model, a short run.
    let words = read_words(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/names.txt"))?;
    let config = TrainingConfig {
        steps: 3_000,
        ..TrainingConfig::default()
    };
    let data = prepare(words, &config)?;
    let out = std::env::temp_dir().join(format!("makemore-example-{}", std::process::id()));
    let device = Default::default();

    // Checkpoints go to `out`; `fit` returns the trained model, ready to evaluate and sample.
    let trained = Trainer::new(&data, &config, &out).fit::<Autodiff<NdArray>>(&device)?;
    let dev = evaluate_split(&trained.model, &data, SplitName::Dev, &device).unwrap_or(f64::NAN);
    println!(
        "{} steps: train loss {:.4}, dev loss {dev:.4}",
        trained.summary.steps_done, trained.summary.train_loss
    );
    let options = SampleOptions {
        n: 5,
        ..SampleOptions::default()
    };
    for s in sample(
        &trained.model,
        &data.vocab,
        config.model.block_size,
        Some(&data.split),
        &options,
        &device,
    )? {
        println!("  {:<12} {}", s.word, s.origin.label());
    }
    std::fs::remove_dir_all(&out)?;
    // Better than the bigram model (2.47) after a few thousand steps.
    assert!(dev < 2.45, "dev loss {dev}");
    Ok(())
}
