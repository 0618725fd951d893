//! Distillation: a student trained toward a teacher's next-character distributions.
//!
//! With [`DistillConfig`] in a run's config, every training character's target is no longer
//! the character alone but the mixture `weight · q + (1 − weight) · onehot(c)`, where `q` is
//! what the teacher predicts there: a checkpoint's distribution, or an ensemble's (its
//! members' probabilities averaged with their weights, as `makemore eval --ensemble` scores
//! them). The student's loss is the cross-entropy against that mixture; the loss it reports
//! (progress, `metrics.csv`) stays the plain one against `c`, so that its numbers compare
//! with every other run's.
//!
//! The teacher is scored once, when the run starts (or resumes), on the training split: a
//! table of `characters × vocab` probabilities (about 22 MB for the 32,033 names), which the
//! steps read. It must have been trained on the same corpus, split and vocabulary as the
//! student, so that it never saw the student's dev or test words; and the table's digest is
//! recorded in `state.json`, so that a resume with a teacher that has changed since (retrained,
//! reweighted) is refused instead of silently becoming another run.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use makemore_data::MASKED;
use makemore_model::FusedOps;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{EnsembleSpec, PreparedData, TrainError, TrainingConfig};

/// Train toward a teacher's distributions (knowledge distillation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher: a checkpoint directory, or an ensemble file (`makemore eval --ensemble`'s
    /// format).
    pub teacher: PathBuf,
    /// The teacher's share of each target, in (0, 1]: 1 trains on the teacher's
    /// distributions alone, 0.5 on their mean with the true characters.
    pub weight: f64,
}

impl DistillConfig {
    /// Checks the weight; the error names the field.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(self.weight > 0.0 && self.weight <= 1.0) {
            return Err(TrainError::Config(format!(
                "distill weight must be in (0, 1], got {}",
                self.weight
            )));
        }
        if self.teacher.as_os_str().is_empty() {
            return Err(TrainError::Config("distill teacher is empty".into()));
        }
        Ok(())
    }

    /// The teacher as an ensemble: a checkpoint directory is an ensemble of one.
    pub fn teacher_spec(&self) -> Result<EnsembleSpec, TrainError> {
        if self.teacher.is_dir() {
            Ok(EnsembleSpec::equal([self.teacher.clone()]))
        } else {
            EnsembleSpec::read(&self.teacher)
        }
    }
}

/// The teacher's distribution at every training character, and where each row's characters
/// start: what a step turns into soft targets.
pub(crate) struct TeacherTargets {
    vocab: usize,
    weight: f32,
    /// `characters × vocab`, the characters in evaluation order.
    probs: Vec<f32>,
    /// The true characters, in the same order.
    chars: Vec<u32>,
    /// `rows + 1` entries: row `r`'s characters are `row_start[r]..row_start[r + 1]`.
    row_start: Vec<usize>,
    /// sha256 of the weight and the table, recorded in `state.json`.
    pub(crate) sha256: String,
}

impl TeacherTargets {
    /// The teacher of `config` (the run's sized config) scored on `data`'s training split, if
    /// the config distils: what a run, `lr_find` and the step timing read.
    pub(crate) fn of_config<B: FusedOps>(
        config: &TrainingConfig,
        data: &PreparedData,
        device: &B::Device,
    ) -> Result<Option<Self>, TrainError> {
        config
            .distill
            .as_ref()
            .map(|d| Self::compute::<B>(d, data, config, device))
            .transpose()
    }

    /// Scores the teacher of `distill` on `data`'s training split, which `student` (the
    /// run's sized config) trains on.
    fn compute<B: FusedOps>(
        distill: &DistillConfig,
        data: &PreparedData,
        student: &TrainingConfig,
        device: &B::Device,
    ) -> Result<Self, TrainError> {
        let members = distill.teacher_spec()?.open()?;
        let (first, _) = &members[0];
        let differs =
            crate::ensemble::first_difference(first, &data.vocab, student, &data.corpus_sha256);
        if let Some(what) = differs {
            return Err(TrainError::Config(format!(
                "the teacher {} was trained with a different {what} from this run's: it may have seen this run's dev words",
                first.dir.display()
            )));
        }
        let v = data.vocab.len();
        let chars: Vec<u32> = data
            .train
            .targets()
            .iter()
            .copied()
            .filter(|&t| t != MASKED)
            .collect();
        let mut row_start = Vec::with_capacity(data.train.len() + 1);
        row_start.push(0);
        for row in data.train.targets().chunks(data.train.targets_per_row()) {
            let kept = row.iter().filter(|&&t| t != MASKED).count();
            row_start.push(row_start.last().copied().unwrap_or(0) + kept);
        }
        let total: f64 = members.iter().map(|m| m.1).sum();
        let mut probs = vec![0.0f32; chars.len() * v];
        for (ckpt, w) in &members {
            let tokens =
                crate::prepare::tokens_of(&data.split.train, &ckpt.config.model, &data.vocab)?;
            let model = ckpt.load_model::<B>(device)?;
            let w = (w / total) as f32;
            let mut at = 0;
            let mut same = true;
            crate::evaluate::for_each_distribution(&model, &tokens, device, |targets, p| {
                same &= chars.get(at..at + targets.len()) == Some(targets);
                if let Some(out) = probs.get_mut(at * v..(at + targets.len()) * v) {
                    for (o, &q) in out.iter_mut().zip(p) {
                        *o += w * q;
                    }
                }
                at += targets.len();
            });
            if !same || at != chars.len() {
                return Err(TrainError::Ensemble(format!(
                    "{} does not predict this run's training characters",
                    ckpt.dir.display()
                )));
            }
        }
        let weight = distill.weight as f32;
        let mut h = Sha256::new();
        h.update(weight.to_le_bytes());
        for p in &probs {
            h.update(p.to_le_bytes());
        }
        Ok(Self {
            vocab: v,
            weight,
            probs,
            chars,
            row_start,
            sha256: format!("{:x}", h.finalize()),
        })
    }

    /// The soft targets `[characters, vocab]` of the training rows `rows`, their characters
    /// in the order a step's loss reads them (row by row).
    pub(crate) fn targets<B: Backend>(&self, rows: &[usize], device: &B::Device) -> Tensor<B, 2> {
        let v = self.vocab;
        let mut out = Vec::new();
        for &r in rows {
            for j in self.row_start[r]..self.row_start[r + 1] {
                let start = out.len();
                out.extend(
                    self.probs[j * v..(j + 1) * v]
                        .iter()
                        .map(|p| p * self.weight),
                );
                out[start + self.chars[j] as usize] += 1.0 - self.weight;
            }
        }
        let n = out.len() / v;
        Tensor::from_data(TensorData::new(out, [n, v]), device)
    }

    /// The teacher's mean loss on the training characters (nats), for the run's log.
    pub(crate) fn train_loss(&self) -> f64 {
        let v = self.vocab;
        let sum: f64 = self
            .chars
            .iter()
            .enumerate()
            .map(|(j, &c)| -f64::from(self.probs[j * v + c as usize]).ln())
            .sum();
        sum / self.chars.len().max(1) as f64
    }
}

/// `path` made absolute against the current directory (as given if that fails), for a config
/// that a later resume, run from anywhere, reads.
pub fn absolute_teacher(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_outside_0_1_is_refused() {
        for w in [0.0, -0.5, 1.5, f64::NAN] {
            let d = DistillConfig {
                teacher: "t".into(),
                weight: w,
            };
            let e = d.validate().unwrap_err().to_string();
            assert!(e.contains("distill weight must be in (0, 1]"), "{e}");
        }
        let d = DistillConfig {
            teacher: "t".into(),
            weight: 1.0,
        };
        d.validate().unwrap();
    }
}
