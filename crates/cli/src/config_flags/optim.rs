//! The optimiser and learning-rate flags.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use makemore_train::{OptimizerChoice, ScheduleKind, TrainingOverrides};

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    /// --lr at every step.
    Constant,
    /// --lr, then --lr-final from step --lr-decay-at (the notebook: 0.1 then 0.01 at half).
    Step,
    /// Linear warm-up over --warmup steps, then cosine from --lr to --lr-final.
    Cosine,
}

/// Optimiser.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizerArg {
    /// Plain minibatch SGD (the notebook).
    Sgd,
    /// AdamW with --weight-decay.
    Adamw,
}

/// How the weights move: the optimiser and its learning-rate schedule.
#[derive(Debug, Default, Args)]
pub struct OptimFlags {
    /// Learning rate (the peak rate for cosine).
    #[arg(long, allow_negative_numbers = true, help_heading = "Training")]
    pub lr: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, help_heading = "Training")]
    pub lr_schedule: Option<ScheduleArg>,
    /// Rate after the decay (step) or at the end (cosine); default: the config's ratio to
    /// the peak (a tenth) times --lr.
    #[arg(long, allow_negative_numbers = true, help_heading = "Training")]
    pub lr_final: Option<f64>,
    /// First step of the decayed rate (step schedule; default: half the steps).
    #[arg(long, help_heading = "Training")]
    pub lr_decay_at: Option<u64>,
    /// Warm-up steps (cosine schedule).
    #[arg(long, help_heading = "Training")]
    pub warmup: Option<u64>,
    /// A file with one learning rate per line, one per step (overrides --lr-schedule).
    #[arg(long, value_name = "FILE", help_heading = "Training")]
    pub lr_list: Option<PathBuf>,
    /// Optimiser.
    #[arg(long, value_enum, help_heading = "Training")]
    pub optimizer: Option<OptimizerArg>,
    /// Weight decay (AdamW).
    #[arg(long, help_heading = "Training")]
    pub weight_decay: Option<f64>,
    /// AdamW's second-moment decay (default 0.999; makemore.py's 0.99).
    #[arg(long, help_heading = "Training")]
    pub beta2: Option<f64>,
    /// AdamW's epsilon (default 1e-5; makemore.py's 1e-8).
    #[arg(long, help_heading = "Training")]
    pub adam_eps: Option<f64>,
}

impl OptimFlags {
    /// Sets the optimiser's and the schedule's overrides (reads `--lr-list`).
    pub fn apply(&self, o: &mut TrainingOverrides) -> Result<()> {
        o.lr_list = match &self.lr_list {
            None => None,
            Some(path) => Some(read_lr_list(path)?),
        };
        o.lr = self.lr;
        o.schedule = self.lr_schedule.map(|k| match k {
            ScheduleArg::Constant => ScheduleKind::Constant,
            ScheduleArg::Step => ScheduleKind::Step,
            ScheduleArg::Cosine => ScheduleKind::Cosine,
        });
        o.final_lr = self.lr_final;
        o.decay_at = self.lr_decay_at;
        o.warmup = self.warmup;
        o.optimizer = self.optimizer.map(|k| match k {
            OptimizerArg::Sgd => OptimizerChoice::Sgd,
            OptimizerArg::Adamw => OptimizerChoice::Adamw,
        });
        o.weight_decay = self.weight_decay;
        o.beta_2 = self.beta2;
        o.epsilon = self.adam_eps;
        Ok(())
    }
}

/// One learning rate per non-blank line of `path`.
fn read_lr_list(path: &std::path::Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --lr-list {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim()
                .parse::<f64>()
                .with_context(|| format!("{}:{}: not a number: {l:?}", path.display(), i + 1))
        })
        .collect()
}
