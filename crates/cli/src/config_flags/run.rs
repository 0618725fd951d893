//! The run flags: steps, batches, seeds, the split, evaluation and checkpoints.

use anyhow::{bail, Result};
use clap::Args;
use makemore_data::SplitRatios;
use makemore_train::TrainingOverrides;

/// How long the run trains, on which split, and what it records.
#[derive(Debug, Default, Args)]
pub struct RunFlags {
    /// Optimisation steps.
    #[arg(long, help_heading = "Training")]
    pub steps: Option<u64>,
    /// Examples per step (>= the training examples: full batch).
    #[arg(long, help_heading = "Training")]
    pub batch_size: Option<usize>,
    /// Keep the weights with the lowest dev loss (checked every --eval-every steps) in
    /// DIR/best/, a checkpoint that eval and sample read.
    #[arg(long, help_heading = "Training")]
    pub keep_best: Option<bool>,
    /// Keep an exponential moving average of the weights in DIR/ema/ (a checkpoint that eval
    /// and sample read), updated after every step with this decay (0.999: about the last
    /// 1,000 steps) and evaluated on dev with the live weights; 0 turns it off.
    #[arg(long, value_name = "DECAY", help_heading = "Training")]
    pub ema: Option<f64>,
    /// With --keep-best true, keep the averaged weights in DIR/best/ when their dev loss is the
    /// lowest so far (instead of the live weights).
    #[arg(long, help_heading = "Training")]
    pub ema_best: Option<bool>,
    /// Distillation: train toward the next-character distributions of this teacher, a
    /// checkpoint directory or an ensemble file (as `eval --ensemble` reads), trained on the
    /// same corpus and split. Each target becomes W · the teacher's distribution + (1 − W) ·
    /// the true character (W: --distill-weight, 0.5 unless set); progress and metrics.csv
    /// still report the plain loss.
    #[arg(long, value_name = "PATH", help_heading = "Training")]
    pub distill: Option<std::path::PathBuf>,
    /// The teacher's share W of each distillation target, in (0, 1].
    #[arg(long, value_name = "W", help_heading = "Training")]
    pub distill_weight: Option<f64>,
    /// Seed of the minibatch sampler.
    #[arg(long, help_heading = "Training")]
    pub batch_seed: Option<u64>,
    /// Split fractions train,dev,test.
    #[arg(
        long,
        value_name = "T,D,T",
        value_delimiter = ',',
        allow_negative_numbers = true,
        help_heading = "Training"
    )]
    pub split: Option<Vec<f64>>,
    /// Seed of the shuffle before the split (Python's random.seed).
    #[arg(long, help_heading = "Training")]
    pub split_seed: Option<u64>,
    /// Evaluate the dev split every N steps (0: only at the end).
    #[arg(long, help_heading = "Training")]
    pub eval_every: Option<u64>,
    /// Save a checkpoint every N steps (0: only at the end).
    #[arg(long, help_heading = "Training")]
    pub checkpoint_every: Option<u64>,
}

impl RunFlags {
    /// Sets the run's overrides.
    pub fn apply(&self, o: &mut TrainingOverrides) -> Result<()> {
        o.split = match self.split.as_deref() {
            None => None,
            Some(&[train, dev, test]) => Some(SplitRatios { train, dev, test }),
            Some(s) => bail!(
                "--split takes three fractions train,dev,test (like 0.8,0.1,0.1), got {} values",
                s.len()
            ),
        };
        o.steps = self.steps;
        o.batch_size = self.batch_size;
        o.keep_best = self.keep_best;
        o.ema = self.ema;
        o.ema_best = self.ema_best;
        o.distill = self.distill.clone();
        o.distill_weight = self.distill_weight;
        o.batch_seed = self.batch_seed;
        o.split_seed = self.split_seed;
        o.eval_every = self.eval_every;
        o.checkpoint_every = self.checkpoint_every;
        Ok(())
    }
}
