//! Settings given one at a time (a command line's flags, a notebook's cell) on top of a
//! [`TrainingConfig`]: the one place where defaults that depend on other choices are decided.

use makemore_data::SplitRatios;
use makemore_model::{InitScheme, Kernels, ModelKind, NormKind};

use crate::{DistillConfig, EmaConfig, LrSchedule, OptimizerKind, TrainError, TrainingConfig};

/// A learning-rate schedule's kind, without its rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleKind {
    /// One rate throughout.
    Constant,
    /// A rate, then a lower one from a step on.
    Step,
    /// Linear warm-up, then a cosine down to a final rate.
    Cosine,
}

/// An optimiser's kind, without its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerChoice {
    /// Plain minibatch SGD.
    Sgd,
    /// AdamW (weight decay 0.01 unless given).
    Adamw,
}

/// Changes to a [`TrainingConfig`]; every `None` keeps the config's value.
///
/// [`TrainingOverrides::apply`] resolves the defaults that depend on other settings, so that
/// a config never contradicts itself:
/// - a final learning rate that is not given follows the peak rate, keeping the config's
///   ratio (a tenth by default): a cosine schedule with `lr` 0.002 ends at 0.0002;
/// - the step schedule decays at half the steps unless `decay_at` is given (also when only
///   `steps` changes);
/// - AdamW's weight decay is 0.01 unless given, and weight decay without AdamW is refused;
/// - the hierarchical model takes `n_layers = log2(block_size)` unless `n_layers` is given;
/// - choosing a sequence model (`model`, when it changes the config's kind) starts from
///   `makemore.py`'s defaults for it: `n_embd` 64, and `n_hidden` 64 (RNN, GRU, bag of
///   words) or 4 layers and 4 heads (Transformer), positions = the longest word + 1 (`block_size` 0 until the corpus is
///   known), AdamW with weight decay 0.01, `beta_2` 0.99 and `epsilon` 1e-8 at a constant
///   5e-4, batches of 32 words; then 20,000 steps with a dev evaluation every 1,000 and
///   the best weights kept (`makemore.py` trains until stopped and keeps its best).
///   Choosing the MLP starts from the notebook's defaults. Every other flag then applies.
///
/// ```
/// use makemore_train::{LrSchedule, ScheduleKind, TrainingConfig, TrainingOverrides};
///
/// let mut config = TrainingConfig::default();
/// let overrides = TrainingOverrides {
///     schedule: Some(ScheduleKind::Cosine),
///     lr: Some(0.002),
///     ..TrainingOverrides::default()
/// };
/// overrides.apply(&mut config).unwrap();
/// assert!(matches!(config.schedule, LrSchedule::Cosine { final_lr, .. } if (final_lr - 0.0002).abs() < 1e-15));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingOverrides {
    /// Which model (a different kind starts from that kind's defaults).
    pub model: Option<ModelKind>,
    /// Characters of context.
    pub block_size: Option<usize>,
    /// Embedding dimensions.
    pub n_embd: Option<usize>,
    /// Hidden units per layer.
    pub n_hidden: Option<usize>,
    /// Hidden layers, or Transformer blocks.
    pub n_layers: Option<usize>,
    /// Transformer heads.
    pub n_head: Option<usize>,
    /// Direct embedding-to-output connections.
    pub direct: Option<bool>,
    /// Part 5's hierarchical model.
    pub hierarchical: Option<bool>,
    /// Normalisation before tanh.
    pub norm: Option<NormKind>,
    /// Dropout probability.
    pub dropout: Option<f64>,
    /// Weight initialisation.
    pub init: Option<InitScheme>,
    /// Seed of the initialisation.
    pub init_seed: Option<u64>,
    /// Fused or plain kernels.
    pub kernels: Option<Kernels>,
    /// Training steps.
    pub steps: Option<u64>,
    /// Examples per step.
    pub batch_size: Option<usize>,
    /// Learning rate (the peak of a cosine).
    pub lr: Option<f64>,
    /// Schedule kind.
    pub schedule: Option<ScheduleKind>,
    /// Rate after the decay (step) or at the end (cosine).
    pub final_lr: Option<f64>,
    /// First step of the decayed rate (step schedule).
    pub decay_at: Option<u64>,
    /// Warm-up steps (cosine).
    pub warmup: Option<u64>,
    /// One rate per step (replaces the schedule).
    pub lr_list: Option<Vec<f64>>,
    /// Optimiser kind.
    pub optimizer: Option<OptimizerChoice>,
    /// AdamW's weight decay.
    pub weight_decay: Option<f64>,
    /// AdamW's second-moment decay.
    pub beta_2: Option<f64>,
    /// AdamW's epsilon.
    pub epsilon: Option<f64>,
    /// Keep the weights with the best dev loss in `best/`.
    pub keep_best: Option<bool>,
    /// Decay of a moving average of the weights (`ema/`); 0 turns it off.
    pub ema: Option<f64>,
    /// With `keep_best`, keep the averaged weights in `best/` when theirs is the best dev loss.
    pub ema_best: Option<bool>,
    /// The distillation teacher: a checkpoint directory or an ensemble file.
    pub distill: Option<std::path::PathBuf>,
    /// The teacher's share of each target (default 0.5 for a new teacher).
    pub distill_weight: Option<f64>,
    /// Seed of the minibatch sampler.
    pub batch_seed: Option<u64>,
    /// Train, dev and test fractions.
    pub split: Option<SplitRatios>,
    /// Seed of the shuffle before the split.
    pub split_seed: Option<u64>,
    /// Evaluate the dev split every this many steps.
    pub eval_every: Option<u64>,
    /// Save a checkpoint every this many steps.
    pub checkpoint_every: Option<u64>,
}

/// Where a config starts when its model becomes `kind`: `makemore.py`'s defaults for a
/// sequence model, the notebook's for the MLP; the split and seeds stay.
fn preset(kind: ModelKind, from: &TrainingConfig) -> TrainingConfig {
    let mut c = TrainingConfig {
        split: from.split,
        split_seed: from.split_seed,
        batch_seed: from.batch_seed,
        ..TrainingConfig::default()
    };
    c.model.init_seed = from.model.init_seed;
    c.model.kind = kind;
    if kind.is_sequence() {
        // Only what the kind uses: the other fields keep their defaults.
        c.model.block_size = 0;
        c.model.n_embd = 64;
        if kind == ModelKind::Transformer {
            c.model.n_layers = 4;
            c.model.n_head = 4;
        } else {
            c.model.n_hidden = 64;
        }
        c.optimizer = OptimizerKind::Adamw {
            weight_decay: 0.01,
            beta_2: 0.99,
            epsilon: 1e-8,
        };
        c.schedule = LrSchedule::Constant { lr: 5e-4 };
        c.batch_size = 32;
        c.steps = 20_000;
        c.eval_every = 1_000;
        c.checkpoint_every = 1_000;
        c.keep_best = true;
    }
    c
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

impl TrainingOverrides {
    /// True when nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the overrides to `config` (see the type's docs for the dependent defaults).
    /// The result is not validated here: [`TrainingConfig::validate`] does that.
    pub fn apply(&self, config: &mut TrainingConfig) -> Result<(), TrainError> {
        if let Some(kind) = self.model.filter(|&k| k != config.model.kind) {
            *config = preset(kind, config);
        }
        let m = &mut config.model;
        set(&mut m.n_head, self.n_head);
        set(&mut m.block_size, self.block_size);
        set(&mut m.n_embd, self.n_embd);
        set(&mut m.n_hidden, self.n_hidden);
        set(&mut m.n_layers, self.n_layers);
        set(&mut m.direct, self.direct);
        set(&mut m.hierarchical, self.hierarchical);
        if m.hierarchical && self.n_layers.is_none() && m.block_size.is_power_of_two() {
            m.n_layers = m.block_size.trailing_zeros() as usize;
        }
        set(&mut m.dropout, self.dropout);
        set(&mut m.norm, self.norm);
        set(&mut m.init, self.init);
        set(&mut m.init_seed, self.init_seed);
        set(&mut m.kernels, self.kernels);
        set(&mut config.steps, self.steps);
        set(&mut config.batch_size, self.batch_size);
        set(&mut config.batch_seed, self.batch_seed);
        set(&mut config.split_seed, self.split_seed);
        set(&mut config.split, self.split);
        set(&mut config.eval_every, self.eval_every);
        set(&mut config.checkpoint_every, self.checkpoint_every);
        self.apply_schedule(config);
        let no_adamw = || TrainError::Config("weight_decay needs the AdamW optimizer".into());
        match (self.optimizer, self.weight_decay) {
            (Some(OptimizerChoice::Sgd), Some(_)) => return Err(no_adamw()),
            (Some(OptimizerChoice::Sgd), None) => config.optimizer = OptimizerKind::Sgd,
            (Some(OptimizerChoice::Adamw), wd) => {
                if !matches!(config.optimizer, OptimizerKind::Adamw { .. }) {
                    config.optimizer = OptimizerKind::adamw(0.01);
                }
                if let (Some(wd), OptimizerKind::Adamw { weight_decay, .. }) =
                    (wd, &mut config.optimizer)
                {
                    *weight_decay = wd;
                }
            }
            (None, Some(wd)) => match &mut config.optimizer {
                OptimizerKind::Adamw { weight_decay, .. } => *weight_decay = wd,
                OptimizerKind::Sgd => return Err(no_adamw()),
            },
            (None, None) => {}
        }
        match &mut config.optimizer {
            OptimizerKind::Adamw {
                beta_2, epsilon, ..
            } => {
                set(beta_2, self.beta_2);
                set(epsilon, self.epsilon);
            }
            OptimizerKind::Sgd if self.beta_2.is_some() || self.epsilon.is_some() => {
                return Err(TrainError::Config(
                    "beta_2 and epsilon are AdamW's settings; choose the AdamW optimizer".into(),
                ))
            }
            OptimizerKind::Sgd => {}
        }
        set(&mut config.keep_best, self.keep_best);
        match self.ema {
            Some(0.0) => config.ema = None,
            Some(decay) => {
                let best = config.ema.is_some_and(|e| e.best);
                config.ema = Some(EmaConfig { decay, best });
            }
            None => {}
        }
        if let Some(best) = self.ema_best {
            match &mut config.ema {
                Some(e) => e.best = best,
                None if best => {
                    return Err(TrainError::Config(
                        "ema_best needs a moving average of the weights (--ema DECAY)".into(),
                    ))
                }
                None => {}
            }
        }
        if let Some(teacher) = &self.distill {
            let weight = config.distill.as_ref().map_or(0.5, |d| d.weight);
            config.distill = Some(DistillConfig {
                teacher: teacher.clone(),
                weight,
            });
        }
        if let Some(weight) = self.distill_weight {
            match &mut config.distill {
                Some(d) => d.weight = weight,
                None => {
                    return Err(TrainError::Config(
                        "distill_weight needs a teacher (--distill PATH)".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    fn apply_schedule(&self, config: &mut TrainingConfig) {
        if let Some(lrs) = &self.lr_list {
            config.schedule = LrSchedule::List { lrs: lrs.clone() };
            return;
        }
        // The config's own values, for what no flag sets (its warm-up too: reset to 0 once).
        let (cur_lr, cur_final, cur_warmup) = match &config.schedule {
            LrSchedule::Constant { lr } => (*lr, *lr * 0.1, 0),
            LrSchedule::Step { lr, decayed_lr, .. } => (*lr, *decayed_lr, 0),
            LrSchedule::Cosine {
                lr,
                final_lr,
                warmup,
            } => (*lr, *final_lr, *warmup),
            LrSchedule::List { lrs } => (lrs.first().copied().unwrap_or(0.1), 0.0, 0),
        };
        let kind = match (self.schedule, &config.schedule) {
            (Some(k), _) => k,
            (None, LrSchedule::Constant { .. }) => ScheduleKind::Constant,
            (None, LrSchedule::Cosine { .. }) => ScheduleKind::Cosine,
            (None, _) => ScheduleKind::Step,
        };
        let lr = self.lr.unwrap_or(cur_lr);
        // A final rate not given follows the peak, keeping the config's ratio (a tenth by
        // default), rounded to 12 significant digits (0.0001, not 0.00009999999999999999).
        let final_lr = self.final_lr.unwrap_or(if cur_lr > 0.0 {
            format!("{:.11e}", lr * (cur_final / cur_lr))
                .parse()
                .unwrap_or(cur_final)
        } else {
            cur_final
        });
        config.schedule = match kind {
            ScheduleKind::Constant => LrSchedule::Constant { lr },
            ScheduleKind::Step => {
                let current_at = match &config.schedule {
                    LrSchedule::Step { decay_at, .. } if self.steps.is_none() => Some(*decay_at),
                    _ => None,
                };
                let decay_at = self.decay_at.or(current_at).unwrap_or(config.steps / 2);
                LrSchedule::Step {
                    lr,
                    decayed_lr: final_lr,
                    decay_at,
                }
            }
            ScheduleKind::Cosine => LrSchedule::Cosine {
                lr,
                final_lr,
                warmup: self.warmup.unwrap_or(cur_warmup),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_overrides_change_nothing() {
        let mut config = TrainingConfig::default();
        assert!(TrainingOverrides::default().is_empty());
        TrainingOverrides::default().apply(&mut config).unwrap();
        assert_eq!(config, TrainingConfig::default());
    }

    /// `makemore train --config FILE` with no other flag trains exactly FILE: every committed
    /// config (a cosine warm-up among them, which this once reset to 0) comes through intact.
    #[test]
    fn empty_overrides_keep_every_committed_config() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
        let mut dirs = vec![root];
        let mut seen = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let json = std::fs::read_to_string(&path).unwrap();
                let file = TrainingConfig::from_json(&json).unwrap();
                let mut config = file.clone();
                TrainingOverrides::default().apply(&mut config).unwrap();
                assert_eq!(config, file, "{}", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 9, "found only {seen} configs");
        let mut warm = TrainingConfig {
            schedule: LrSchedule::Cosine {
                lr: 0.003,
                final_lr: 0.0001,
                warmup: 1000,
            },
            ..TrainingConfig::default()
        };
        let lr = TrainingOverrides {
            lr: Some(0.006),
            ..Default::default()
        };
        lr.apply(&mut warm).unwrap();
        assert_eq!(
            warm.schedule,
            LrSchedule::Cosine {
                lr: 0.006,
                final_lr: 0.0002,
                warmup: 1000
            }
        );
        let no_warmup = TrainingOverrides {
            warmup: Some(0),
            ..Default::default()
        };
        no_warmup.apply(&mut warm).unwrap();
        assert!(matches!(
            warm.schedule,
            LrSchedule::Cosine { warmup: 0, .. }
        ));
    }

    #[test]
    fn dependent_defaults_follow_their_choices() {
        let apply = |o: TrainingOverrides| {
            let mut c = TrainingConfig::default();
            o.apply(&mut c).map(|()| c)
        };
        let c = apply(TrainingOverrides {
            steps: Some(3000),
            ..Default::default()
        })
        .unwrap();
        assert!(matches!(
            c.schedule,
            LrSchedule::Step { decay_at: 1500, .. }
        ));
        let c = apply(TrainingOverrides {
            optimizer: Some(OptimizerChoice::Adamw),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.optimizer, OptimizerKind::adamw(0.01));
        let e = apply(TrainingOverrides {
            weight_decay: Some(0.1),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("AdamW"), "{e}");
        let c = apply(TrainingOverrides {
            block_size: Some(16),
            hierarchical: Some(true),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.model.n_layers, 4);
    }
}
