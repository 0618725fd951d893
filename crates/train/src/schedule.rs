use serde::{Deserialize, Serialize};

/// Learning rate as a function of the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The same rate at every step.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// `lr` before `decay_at`, `decayed_lr` from then on (the notebook: 0.1, then 0.01 from
    /// step 100,000).
    Step {
        /// Rate before the decay.
        lr: f64,
        /// Rate from `decay_at` on.
        decayed_lr: f64,
        /// First step with the decayed rate.
        decay_at: u64,
    },
    /// Linear warm-up from 0 over `warmup` steps, then cosine from `lr` to `final_lr`.
    Cosine {
        /// Peak rate.
        lr: f64,
        /// Rate at the last step.
        final_lr: f64,
        /// Warm-up steps.
        warmup: u64,
    },
    /// An explicit rate for every step; the last one repeats if the run is longer.
    List {
        /// One rate per step.
        lrs: Vec<f64>,
    },
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule::Step {
            lr: 0.1,
            decayed_lr: 0.01,
            decay_at: 100_000,
        }
    }
}

impl LrSchedule {
    /// The rate at `step` (0-based) of a run of `total` steps.
    pub fn lr(&self, step: u64, total: u64) -> f64 {
        match self {
            LrSchedule::Constant { lr } => *lr,
            LrSchedule::Step {
                lr,
                decayed_lr,
                decay_at,
            } => {
                if step < *decay_at {
                    *lr
                } else {
                    *decayed_lr
                }
            }
            LrSchedule::Cosine {
                lr,
                final_lr,
                warmup,
            } => {
                if step < *warmup {
                    return lr * (step + 1) as f64 / *warmup as f64;
                }
                let span = total.saturating_sub(*warmup).max(1) as f64;
                let t = ((step - warmup) as f64 / span).min(1.0);
                final_lr + 0.5 * (lr - final_lr) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::List { lrs } => {
                let i = (step as usize).min(lrs.len().saturating_sub(1));
                lrs.get(i).copied().unwrap_or(0.0)
            }
        }
    }

    /// Every rate must be finite and positive (a zero final cosine rate is allowed).
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number > 0, got {v}"))
            }
        };
        match self {
            LrSchedule::Constant { lr } => positive("lr", *lr),
            LrSchedule::Step { lr, decayed_lr, .. } => {
                positive("lr", *lr)?;
                positive("decayed_lr", *decayed_lr)
            }
            LrSchedule::Cosine { lr, final_lr, .. } => {
                positive("lr", *lr)?;
                if final_lr.is_finite() && *final_lr >= 0.0 {
                    Ok(())
                } else {
                    Err(format!(
                        "final_lr must be a finite number >= 0, got {final_lr}"
                    ))
                }
            }
            LrSchedule::List { lrs } => {
                if lrs.is_empty() {
                    return Err("the learning-rate list is empty".into());
                }
                lrs.iter()
                    .enumerate()
                    .try_for_each(|(i, &v)| positive(&format!("lrs[{i}]"), v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notebook_step_decay() {
        let s = LrSchedule::default();
        assert_eq!(s.lr(0, 200_000), 0.1);
        assert_eq!(s.lr(99_999, 200_000), 0.1);
        assert_eq!(s.lr(100_000, 200_000), 0.01);
    }

    #[test]
    fn cosine_warms_up_and_ends_at_final() {
        let s = LrSchedule::Cosine {
            lr: 1.0,
            final_lr: 0.1,
            warmup: 10,
        };
        assert!((s.lr(0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(9, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(110, 110) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn list_repeats_last_and_validation() {
        let s = LrSchedule::List {
            lrs: vec![0.5, 0.25],
        };
        assert_eq!(s.lr(5, 10), 0.25);
        assert!(LrSchedule::Constant { lr: -1.0 }.validate().is_err());
        assert!(LrSchedule::Constant { lr: f64::NAN }.validate().is_err());
        assert!(LrSchedule::List { lrs: vec![] }.validate().is_err());
    }
}
