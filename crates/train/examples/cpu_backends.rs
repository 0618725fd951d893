//! burn 0.21's pure-Rust CPU backends on makemore's models: training steps per second of
//! ndarray (makemore's default, with and without its fused kernels) and burn-flex (burn's own
//! operations; makemore has no kernels for it), after checking that flex trains the same
//! model to the same dev loss as ndarray.
//!
//! ```console
//! $ cargo run --release -p makemore-train --example cpu_backends --features flex -- [STEPS] [CORPUS]
//! ```
//!
//! STEPS timed steps per case (default 300; the MLP gets 20 times as many; after 20 untimed
//! ones); CORPUS defaults to
//! `../shared/data/names.txt` beside the repository, else the shipped `data/names.txt`.
//! A measurement, not a test: nothing here asserts a speed. It exits non-zero if the two
//! backends disagree.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, Flex, NdArray};
use makemore_data::{read_words, SplitName};
use makemore_model::{FusedAutodiff, Kernels};
use makemore_train::bench::time_training;
use makemore_train::{evaluate_split, prepare, PreparedData, Trainer, TrainingConfig};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    makemore_model::threads::join_thread_pool(None)?;
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let canonical = root.join("../shared/data/names.txt");
        if canonical.exists() {
            canonical
        } else {
            root.join("data/names.txt")
        }
    });
    let words = read_words(&corpus)?;
    println!(
        "corpus {}; {steps} timed steps per case (the MLP: {}); {} threads",
        corpus.display(),
        steps * 20,
        makemore_model::threads::count()
    );
    // The MLP's steps are ~100 times cheaper: it gets 20 times as many, so that each case
    // takes seconds.
    let cases = [
        (
            "the notebook's MLP, batch 32",
            TrainingConfig::default(),
            20,
        ),
        (
            "makemore.py's transformer, batch 32",
            config(&root, "transformer")?,
            1,
        ),
        ("makemore.py's gru, batch 32", config(&root, "gru")?, 1),
    ];
    let mut disagree = false;
    println!("| model | ndarray, fused | ndarray, plain | flex, fused | flex, plain | dev after 200 steps (ndarray / flex) |");
    println!("|---|---:|---:|---:|---:|---|");
    for (name, config, scale) in cases {
        let steps = steps * scale;
        let data = prepare(words.clone(), &config)?;
        let fused = with_kernels(&config, Kernels::Fused);
        let plain = with_kernels(&config, Kernels::Plain);
        let rates = [
            rate::<Autodiff<NdArray>>(&data, &fused, steps)?,
            rate::<Autodiff<NdArray>>(&data, &plain, steps)?,
            rate::<Autodiff<Flex>>(&data, &fused, steps)?,
            rate::<Autodiff<Flex>>(&data, &plain, steps)?,
        ];
        let short = TrainingConfig {
            steps: 200,
            eval_every: 0,
            keep_best: false,
            ..fused.clone()
        };
        let on_ndarray = dev_after::<Autodiff<NdArray>>(&data, &short)?;
        let on_flex = dev_after::<Autodiff<Flex>>(&data, &short)?;
        let agree = ((on_ndarray - on_flex) / on_ndarray).abs() < 1e-3;
        disagree |= !agree;
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {on_ndarray:.5} / {on_flex:.5}{} |",
            rates[0],
            rates[1],
            rates[2],
            rates[3],
            if agree { "" } else { " DISAGREE" }
        );
    }
    if disagree {
        return Err("flex and ndarray disagree by more than 1e-3 relative".into());
    }
    Ok(())
}

fn config(root: &Path, kind: &str) -> Result<TrainingConfig, Error> {
    let path = root.join(format!("examples/configs/makemore-py/{kind}.json"));
    Ok(TrainingConfig::from_json(&std::fs::read_to_string(path)?)?)
}

fn with_kernels(config: &TrainingConfig, kernels: Kernels) -> TrainingConfig {
    let mut config = config.clone();
    config.model.kernels = kernels;
    config
}

/// Training steps per second.
fn rate<B: FusedAutodiff>(
    data: &PreparedData,
    config: &TrainingConfig,
    steps: u64,
) -> Result<f64, Error> {
    let device = Default::default();
    Ok(time_training::<B>(data, config, 20, steps, &device)?.per_sec())
}

/// Dev loss after `config.steps` steps trained on `B`.
fn dev_after<B: FusedAutodiff>(data: &PreparedData, config: &TrainingConfig) -> Result<f64, Error> {
    let out = tempfile::tempdir()?;
    let device = Default::default();
    let trained = Trainer::new(data, config, out.path()).fit::<B>(&device)?;
    evaluate_split(&trained.model, data, SplitName::Dev, &device)
        .ok_or_else(|| "no dev split".into())
}
