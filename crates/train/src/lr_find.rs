//! The notebook's learning-rate finder: one minibatch step at each of a range of rates.

use burn::prelude::*;
use makemore_data::MinibatchSampler;
use makemore_model::FusedAutodiff;
use serde::Serialize;

use crate::distill::TeacherTargets;
use crate::optimizer::TrainOptimizer;
use crate::step::{train_step, StepBuffers, StepExamples, StepSettings};
use crate::trainer::sized_config;
use crate::{check_data_fits, PreparedData, TrainError, TrainingConfig};

/// One point of a learning-rate sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LrFindPoint {
    /// log10 of the learning rate.
    pub exponent: f64,
    /// The learning rate.
    pub lr: f64,
    /// Minibatch loss at this step (before its update).
    pub loss: f32,
}

/// The notebook's learning-rate finder: from a fresh model, one minibatch step at each of
/// `steps` learning rates `10^e`, `e` evenly spaced from `min_exp` to `max_exp`, recording
/// the loss. Stops early when the loss stops being finite.
pub fn lr_find<B: FusedAutodiff>(
    data: &PreparedData,
    config: &TrainingConfig,
    min_exp: f64,
    max_exp: f64,
    steps: usize,
    device: &B::Device,
) -> Result<Vec<LrFindPoint>, TrainError> {
    let config = sized_config(config, data)?;
    check_data_fits(&config, data)?;
    if !(min_exp.is_finite() && max_exp.is_finite() && min_exp < max_exp) {
        return Err(TrainError::Config(format!(
            "need min-exp < max-exp, got {min_exp} and {max_exp}"
        )));
    }
    if steps < 2 {
        return Err(TrainError::Config(
            "the learning-rate finder needs at least 2 steps".into(),
        ));
    }
    let sampler = MinibatchSampler::new(config.batch_seed);
    // A distilled config's steps read its teacher's targets, as in a run.
    let teacher = TeacherTargets::of_config::<B::InnerBackend>(&config, data, device)?;
    let train = StepExamples::<B>::new(&data.train, device).taught(teacher.as_ref());
    let mut model = config.model.init::<B>(device);
    let mut optim = TrainOptimizer::new(config.optimizer);
    let mut bufs = StepBuffers::default();
    let mut points = Vec::with_capacity(steps);
    for i in 0..steps {
        let exponent = min_exp + (max_exp - min_exp) * i as f64 / (steps - 1) as f64;
        let lr = 10f64.powf(exponent);
        let (next, loss) = train_step(
            model,
            &mut optim,
            &train,
            &sampler,
            &StepSettings::new(&config, i as u64, lr),
            &mut bufs,
            device,
        );
        model = next;
        // Each point is read as it comes: the sweep stops at the first non-finite loss.
        let loss: f32 = loss.into_scalar().elem();
        points.push(LrFindPoint { exponent, lr, loss });
        if !loss.is_finite() {
            break;
        }
    }
    Ok(points)
}

/// The rule behind the suggested learning rate, in words.
pub const LR_SUGGESTION_RULE: &str =
    "smooth the losses with a centred moving average over 5% of the points, \
find the exponent with the lowest smoothed loss, and suggest the rate half a decade below it \
(10^(e_min - 0.5)): still fast, but clear of the edge where the loss turns up";

/// Suggests a learning rate from a sweep (see [`LR_SUGGESTION_RULE`]).
pub fn suggest_lr(points: &[LrFindPoint]) -> Option<f64> {
    let (e_min, _) = lowest_smoothed_loss(points)?;
    let lowest = points.first()?.exponent;
    Some(10f64.powf((e_min - 0.5).max(lowest)))
}

/// The bottom of the valley: the exponent with the lowest smoothed loss (a centred moving
/// average over 5% of the finite points), and that loss. The lecture reads its 0.1 off the
/// same curve.
pub fn lowest_smoothed_loss(points: &[LrFindPoint]) -> Option<(f64, f64)> {
    let finite: Vec<&LrFindPoint> = points.iter().take_while(|p| p.loss.is_finite()).collect();
    if finite.is_empty() {
        return None;
    }
    let half = (finite.len() / 40).max(1);
    let smoothed = (0..finite.len()).map(|i| {
        let lo = i.saturating_sub(half);
        let hi = (i + half + 1).min(finite.len());
        let mean = finite[lo..hi]
            .iter()
            .map(|p| f64::from(p.loss))
            .sum::<f64>()
            / (hi - lo) as f64;
        (finite[i].exponent, mean)
    });
    Some(smoothed.fold((f64::NAN, f64::INFINITY), |best, (e, l)| {
        if l < best.1 {
            (e, l)
        } else {
            best
        }
    }))
}
