//! Ensembles: trained models of any kinds whose next-character probabilities are averaged.
//!
//! An ensemble is described by a small JSON file ([`EnsembleSpec`]): its members'
//! checkpoint directories and weights. Its loss on a split is the mean over the split's
//! characters of `−ln Σᵢ wᵢ pᵢ(c)`, with the weights normalised to sum to 1: the members
//! must score the same characters (the same corpus, split and vocabulary), which
//! [`score_ensemble`] checks.

use std::path::{Path, PathBuf};

use makemore_data::Tokens;
use makemore_model::{FusedOps, Model};
use serde::{Deserialize, Serialize};

use crate::{target_log_probs, Checkpoint, TrainError};

/// An ensemble's description, as its JSON file holds it:
///
/// ```json
/// {"members": [{"checkpoint": "runs/transformer-best/best", "weight": 2},
///              {"checkpoint": "runs/wavenet-best"}]}
/// ```
///
/// A relative `checkpoint` is relative to the file's directory; `weight` defaults to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// The models, in order.
    pub members: Vec<MemberSpec>,
}

/// One model of an ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    /// Its checkpoint directory.
    pub checkpoint: PathBuf,
    /// Its weight (> 0; normalised with the others').
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

impl EnsembleSpec {
    /// The checkpoints `dirs`, weighted equally.
    pub fn equal(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            members: dirs
                .into_iter()
                .map(|checkpoint| MemberSpec {
                    checkpoint,
                    weight: 1.0,
                })
                .collect(),
        }
    }

    /// Reads an ensemble file; relative checkpoint paths become relative to its directory.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let mut spec: Self = serde_json::from_str(&text)
            .map_err(|e| TrainError::Ensemble(format!("{} does not parse: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for m in &mut spec.members {
            if m.checkpoint.is_relative() {
                m.checkpoint = base.join(&m.checkpoint);
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    /// Checks that there is a member and that every weight is a finite number > 0.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.members.is_empty() {
            return Err(TrainError::Ensemble("has no members".into()));
        }
        if let Some(m) = self
            .members
            .iter()
            .find(|m| !(m.weight.is_finite() && m.weight > 0.0))
        {
            return Err(TrainError::Ensemble(format!(
                "{}: weight must be a finite number > 0, got {}",
                m.checkpoint.display(),
                m.weight
            )));
        }
        Ok(())
    }

    /// Opens every member's checkpoint, with its weight. They must share the vocabulary, the
    /// split (fractions and seed) and the corpus, so that they predict the same characters.
    pub fn open(&self) -> Result<Vec<(Checkpoint, f64)>, TrainError> {
        self.validate()?;
        let members = self
            .members
            .iter()
            .map(|m| Ok((Checkpoint::open(&m.checkpoint)?, m.weight)))
            .collect::<Result<Vec<_>, TrainError>>()?;
        let (first, _) = &members[0];
        for (c, _) in &members[1..] {
            let differs =
                first_difference(c, &first.vocab, &first.config, &first.state.corpus_sha256);
            if let Some(what) = differs {
                return Err(TrainError::Ensemble(format!(
                    "{} and {} were trained with a different {what}: their losses are not over the same characters",
                    first.dir.display(),
                    c.dir.display()
                )));
            }
        }
        Ok(members)
    }
}

/// What keeps checkpoint `c` from predicting the characters of a run with `vocab`, `config`'s
/// split and the corpus `corpus_sha256`: the first of the vocabulary, the split and the corpus
/// that differs, or `None`.
pub(crate) fn first_difference(
    c: &Checkpoint,
    vocab: &makemore_vocab::Vocab,
    config: &crate::TrainingConfig,
    corpus_sha256: &str,
) -> Option<&'static str> {
    if c.vocab != *vocab {
        Some("vocabulary")
    } else if c.config.split != config.split || c.config.split_seed != config.split_seed {
        Some("split")
    } else if c.state.corpus_sha256 != corpus_sha256 {
        Some("corpus")
    } else {
        None
    }
}

/// What [`score_ensemble`] finds: each member's loss and the ensemble's, in nats per character.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnsembleLoss {
    /// The ensemble's loss.
    pub loss: f64,
    /// Each member's own loss, in the order given.
    pub members: Vec<f64>,
    /// Characters scored.
    pub characters: usize,
}

/// Scores each `(model, weight, tokens)` on its tokens (one split, as that model reads it:
/// windows of its context, or words) and their mixture (weights normalised). `None` when
/// there is nothing to score. The members must predict the same characters in the same
/// order (one corpus, split and vocabulary: [`EnsembleSpec::open`] checks that); a
/// difference is an error.
pub fn score_ensemble<B: FusedOps>(
    members: &[(&Model<B>, f64, &Tokens)],
    device: &B::Device,
) -> Result<Option<EnsembleLoss>, TrainError> {
    let Some(n) = members.first().map(|m| m.2.characters()) else {
        return Ok(None);
    };
    if n == 0 {
        return Ok(None);
    }
    let total: f64 = members.iter().map(|m| m.1).sum();
    let mut chars = None;
    let mut log_probs = Vec::with_capacity(members.len());
    for &(model, _, tokens) in members {
        let (c, lp) = target_log_probs(model, tokens, device);
        match &chars {
            None => chars = Some(c),
            Some(first) if *first != c => {
                return Err(TrainError::Ensemble(
                    "the members predict different characters".into(),
                ))
            }
            Some(_) => {}
        }
        log_probs.push(lp);
    }
    let member_losses = log_probs
        .iter()
        .map(|lp| -lp.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64)
        .collect();
    let log_weights: Vec<f64> = members.iter().map(|m| (m.1 / total).ln()).collect();
    let mut sum = 0.0f64;
    for i in 0..n {
        // ln Σ wⱼ pⱼ = ln Σ exp(ln wⱼ + ln pⱼ), shifted by the largest term.
        let terms = log_probs
            .iter()
            .zip(&log_weights)
            .map(|(lp, lw)| lw + f64::from(lp[i]));
        let top = terms.clone().fold(f64::NEG_INFINITY, f64::max);
        sum += top + terms.map(|t| (t - top).exp()).sum::<f64>().ln();
    }
    Ok(Some(EnsembleLoss {
        loss: -sum / n as f64,
        members: member_losses,
        characters: n,
    }))
}
