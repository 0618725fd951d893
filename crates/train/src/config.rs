use makemore_data::SplitRatios;
use makemore_model::{InitScheme, Kernels, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::{DistillConfig, LrSchedule, TrainError};

/// Which optimiser updates the weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerKind {
    /// Plain minibatch SGD, as in the notebook.
    Sgd,
    /// AdamW (decoupled weight decay), with `beta_1` 0.9.
    Adamw {
        /// Weight decay coefficient.
        weight_decay: f64,
        /// Decay of the second moment (absent in configs from before it was a choice:
        /// 0.999, burn's default; `makemore.py` uses 0.99).
        #[serde(default = "default_beta_2")]
        beta_2: f64,
        /// Added to the second moment's square root (absent before: 1e-5, burn's default;
        /// PyTorch's and `makemore.py`'s is 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f64,
    },
}

fn default_beta_2() -> f64 {
    0.999
}

fn default_epsilon() -> f64 {
    1e-5
}

impl OptimizerKind {
    /// AdamW with `weight_decay` and burn's `beta_2` (0.999) and `epsilon` (1e-5).
    pub fn adamw(weight_decay: f64) -> Self {
        OptimizerKind::Adamw {
            weight_decay,
            beta_2: default_beta_2(),
            epsilon: default_epsilon(),
        }
    }
}

/// Everything that defines a run: saved as `config.json` next to every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// The model. `vocab_size` is filled in from the corpus.
    pub model: ModelConfig,
    /// Optimisation steps.
    pub steps: u64,
    /// Examples per step; a value >= the training examples means full-batch training.
    pub batch_size: usize,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Seed of the word shuffle before the split (Python's `random.seed`).
    pub split_seed: u64,
    /// Split fractions.
    pub split: SplitRatios,
    /// Seed of the minibatch sampler.
    pub batch_seed: u64,
    /// Evaluate the full dev split every this many steps (0: only at the end).
    pub eval_every: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Keep the weights with the lowest dev loss (evaluated every `eval_every` steps) in
    /// `best/` beside the last checkpoint, as `makemore.py` keeps its best model.
    #[serde(default)]
    pub keep_best: bool,
    /// An exponential moving average of the weights, kept in `ema/` beside the live ones
    /// (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<EmaConfig>,
    /// Train toward a teacher's next-character distributions (absent: on the characters
    /// alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
}

/// An exponential moving average of the weights (Polyak averaging): after every step,
/// `ema = decay · ema + (1 − decay) · weights`, starting from the initial weights. The run
/// keeps it in `ema/`, a checkpoint that `eval` and `sample` read, committed together with
/// each save of the run, and evaluates it on dev at every `eval_every`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// Weight of the average kept at each step, in (0, 1): 0.999 averages over about the
    /// last 1,000 steps.
    pub decay: f64,
    /// With `keep_best`, `best/` keeps the averaged weights when their dev loss is the
    /// lowest so far (instead of the live ones).
    #[serde(default)]
    pub best: bool,
}

impl Default for TrainingConfig {
    /// The notebook's final recipe, with the better default initialisation.
    fn default() -> Self {
        Self {
            model: ModelConfig::new(27, 3),
            steps: 200_000,
            batch_size: 32,
            schedule: LrSchedule::default(),
            optimizer: OptimizerKind::Sgd,
            split_seed: 42,
            split: SplitRatios::default(),
            batch_seed: 2_147_483_647,
            eval_every: 10_000,
            checkpoint_every: 10_000,
            keep_best: false,
            ema: None,
            distill: None,
        }
    }
}

impl TrainingConfig {
    /// The notebook's recipe with the notebook's N(0, 1) initialisation.
    pub fn notebook() -> Self {
        let mut config = Self::default();
        config.model.init = InitScheme::Notebook;
        config
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |msg: String| Err(TrainError::Config(msg));
        self.model.validate().map_err(TrainError::Config)?;
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        self.schedule
            .validate()
            .map_err(|e| TrainError::Config(format!("learning rate: {e}")))?;
        if let OptimizerKind::Adamw {
            weight_decay,
            beta_2,
            epsilon,
        } = self.optimizer
        {
            if !weight_decay.is_finite() || weight_decay < 0.0 {
                return bad(format!(
                    "weight_decay must be a finite number >= 0, got {weight_decay}"
                ));
            }
            if !(0.0..1.0).contains(&beta_2) {
                return bad(format!("beta_2 must be in [0, 1), got {beta_2}"));
            }
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return bad(format!(
                    "epsilon must be a finite number > 0, got {epsilon}"
                ));
            }
        }
        if self.keep_best && self.eval_every == 0 {
            return bad("keep_best needs eval_every > 0: the best weights are chosen at each dev evaluation".into());
        }
        if let Some(ema) = self.ema {
            if !(ema.decay > 0.0 && ema.decay < 1.0) {
                return bad(format!("ema decay must be in (0, 1), got {}", ema.decay));
            }
            if ema.best && !self.keep_best {
                return bad(
                    "ema best needs keep_best: it chooses which weights best/ keeps".into(),
                );
            }
        }
        if let Some(d) = &self.distill {
            d.validate()?;
        }
        self.split.validate()?;
        Ok(())
    }

    /// Parses a config file from JSON, naming the problem. Model fields added after the first
    /// release take their defaults when absent (`model.norm`: none, `model.dropout`: 0,
    /// `model.hierarchical`: false,
    /// `model.kernels`: fused), so older config files keep working.
    pub fn from_json(json: &str) -> Result<Self, TrainError> {
        Self::parse(json, Kernels::Fused)
    }

    /// Parses the `config.json` of a checkpoint: as [`TrainingConfig::from_json`], except that
    /// a checkpoint that does not name its kernels predates fused kernels and was trained with
    /// the plain ones, which it keeps, so that it resumes bit for bit.
    ///
    /// A checkpoint from before options that a model kind ignores were refused may record
    /// such options (`--init notebook` for a GRU): they changed nothing in its training and
    /// are read as their defaults.
    pub fn from_checkpoint_json(json: &str) -> Result<Self, TrainError> {
        let mut config = Self::parse(json, Kernels::Plain)?;
        config.model.clear_unused();
        Ok(config)
    }

    fn parse(json: &str, kernels: Kernels) -> Result<Self, TrainError> {
        let bad = |e: serde_json::Error| TrainError::Config(format!("config JSON: {e}"));
        let mut value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
        if let Some(model) = value.get_mut("model").and_then(|m| m.as_object_mut()) {
            // Every field with a default may be absent: added after the first release, or
            // left out because the model's kind does not use it.
            let defaults = serde_json::to_value(ModelConfig::new(0, 0)).map_err(bad)?;
            if let Some(defaults) = defaults.as_object() {
                for (k, v) in defaults {
                    if matches!(k.as_str(), "vocab_size" | "block_size" | "kernels") {
                        continue;
                    }
                    model.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            if !model.contains_key("kernels") {
                model.insert(
                    "kernels".into(),
                    serde_json::to_value(kernels).map_err(bad)?,
                );
            }
        }
        serde_json::from_value(value).map_err(bad)
    }

    /// Pretty JSON, without the model fields that its kind does not use
    /// ([`makemore_model::ModelKind::unused_fields`]).
    pub fn to_json(&self) -> String {
        self.try_to_json().unwrap_or_default()
    }

    /// [`TrainingConfig::to_json`], with the error of a value JSON cannot hold (a NaN).
    pub fn try_to_json(&self) -> Result<String, serde_json::Error> {
        let mut value = serde_json::to_value(self)?;
        if let Some(model) = value.get_mut("model").and_then(|m| m.as_object_mut()) {
            for field in self.model.kind.unused_fields() {
                model.remove(*field);
            }
        }
        serde_json::to_string_pretty(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_older_files_without_new_fields() {
        let c = TrainingConfig::notebook();
        assert_eq!(TrainingConfig::from_json(&c.to_json()).unwrap(), c);
        let mut v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        let model = v["model"].as_object_mut().unwrap();
        model.remove("norm");
        model.remove("dropout");
        model.remove("hierarchical");
        model.remove("kernels");
        model.remove("kind");
        model.remove("n_head");
        v["optimizer"] = serde_json::json!({"kind": "sgd"});
        v.as_object_mut().unwrap().remove("keep_best");
        // A config file without the new fields gets the defaults...
        assert_eq!(TrainingConfig::from_json(&v.to_string()).unwrap(), c);
        assert_eq!(c.model.kernels, Kernels::Fused);
        // ...and an older checkpoint keeps the kernels it was trained with.
        let old = TrainingConfig::from_checkpoint_json(&v.to_string()).unwrap();
        let mut c = c;
        c.model.kernels = Kernels::Plain;
        assert_eq!(old, c);
        assert_eq!(
            TrainingConfig::from_checkpoint_json(&c.to_json()).unwrap(),
            c
        );
        // A config leaves out what its model does not use.
        assert!(!c.to_json().contains("n_head"));
        let e = TrainingConfig::from_json(r#"{"model": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid config: config JSON"), "{e}");
    }
}
