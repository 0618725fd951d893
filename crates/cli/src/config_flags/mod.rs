//! The flags that describe a model and its training, shared by the verbs that take a
//! config (`train`, `lr-find`, `bench`), and their translation into
//! [`TrainingOverrides`]: the library decides what they mean. One module per part of the
//! config they set: `model`, `optim` (the optimiser and its schedule) and `run`.

mod model;
mod optim;
mod run;

use anyhow::{Context, Result};
use clap::Args;
use makemore_train::{TrainingConfig, TrainingOverrides};

pub use model::{InitArg, KernelsArg, ModelFlags};
pub use optim::OptimFlags;
pub use run::RunFlags;

/// Reads `--config FILE` (or the default config when there is none), naming the file on error.
pub fn load_config(path: Option<&std::path::Path>) -> Result<TrainingConfig> {
    let Some(path) = path else {
        return Ok(TrainingConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    TrainingConfig::from_json(&text).with_context(|| format!("in {}", path.display()))
}

/// Model and training settings; every one overrides the config it is applied to.
#[derive(Debug, Default, Args)]
pub struct ConfigFlags {
    /// The model.
    #[command(flatten)]
    pub model: ModelFlags,
    /// The optimiser and its schedule.
    #[command(flatten)]
    pub optim: OptimFlags,
    /// Steps, batches, seeds, split, evaluation and checkpoints.
    #[command(flatten)]
    pub run: RunFlags,
}

impl ConfigFlags {
    /// The config flags that were given, as overrides (reads `--lr-list`).
    pub fn overrides(&self) -> Result<TrainingOverrides> {
        let mut o = TrainingOverrides::default();
        self.model.apply(&mut o);
        self.optim.apply(&mut o)?;
        self.run.apply(&mut o)?;
        Ok(o)
    }
}
