//! Timing of the hot paths (training steps, evaluation, sampling) for `makemore bench`.
//! These are measurements, not tests: nothing here asserts a speed.

use std::time::Instant;

use burn::prelude::*;
use makemore_data::{MinibatchSampler, SplitName};
use makemore_model::threads::Polling;
use makemore_model::FusedAutodiff;

use crate::distill::TeacherTargets;
use crate::optimizer::TrainOptimizer;
use crate::step::{train_step, StepBuffers, StepExamples, StepSettings};
use crate::trainer::sized_config;
use crate::{evaluate_split, sample, PreparedData, SampleOptions, TrainError, TrainingConfig};

/// One timed measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Units of work timed (steps, examples or words).
    pub count: u64,
    /// Seconds they took.
    pub secs: f64,
}

impl Timing {
    /// Units per second.
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.secs.max(1e-12)
    }
}

/// Times `steps` training steps (forward, backward, optimiser update) of `config`'s model
/// after `warmup` untimed ones, with the config's learning-rate schedule over `steps`.
pub fn time_training<B: FusedAutodiff>(
    data: &PreparedData,
    config: &TrainingConfig,
    warmup: u64,
    steps: u64,
    device: &B::Device,
) -> Result<Timing, TrainError> {
    let config = sized_config(config, data)?;
    crate::check_data_fits(&config, data)?;
    // A distilled config's steps read its teacher's targets, as in a run.
    let teacher = TeacherTargets::of_config::<B::InnerBackend>(&config, data, device)?;
    let sampler = MinibatchSampler::new(config.batch_seed);
    let mut model = config.model.init::<B>(device);
    let mut optim = TrainOptimizer::new(config.optimizer);
    let mut bufs = StepBuffers::default();
    let mut polling = Polling::default();
    let train = StepExamples::<B>::new(&data.train, device).taught(teacher.as_ref());
    let mut last_loss = None;
    let mut start = Instant::now();
    for step in 0..warmup + steps {
        if step == warmup {
            B::sync(device)
                .map_err(|e| TrainError::Option(format!("backend sync failed: {e:?}")))?;
            start = Instant::now();
        }
        let lr = config.schedule.lr(step.saturating_sub(warmup), steps);
        let (next, loss) = polling.run(|| {
            train_step(
                model,
                &mut optim,
                &train,
                &sampler,
                &StepSettings::new(&config, step, lr),
                &mut bufs,
                device,
            )
        });
        model = next;
        last_loss = Some(loss);
    }
    B::sync(device).map_err(|e| TrainError::Option(format!("backend sync failed: {e:?}")))?;
    let secs = start.elapsed().as_secs_f64();
    // Read after the clock stops, as training reads losses in blocks: a non-finite loss
    // poisons every later step, so the last one tells.
    if let Some(loss) = last_loss {
        let loss: f32 = loss.into_scalar().elem();
        if !loss.is_finite() {
            return Err(TrainError::Option(format!(
                "the loss became {loss} within {} steps; lower the learning rate",
                warmup + steps
            )));
        }
    }
    Ok(Timing { count: steps, secs })
}

/// Times a no-grad evaluation of the whole `split` with a freshly initialised model
/// (`repeats` times after one untimed pass); counts examples.
pub fn time_evaluation<B: FusedAutodiff>(
    data: &PreparedData,
    config: &TrainingConfig,
    split: SplitName,
    repeats: u64,
    device: &B::Device,
) -> Result<Timing, TrainError> {
    let config = sized_config(config, data)?;
    let model = config.model.init::<B::InnerBackend>(device);
    let _ = evaluate_split(&model, data, split, device);
    let start = Instant::now();
    for _ in 0..repeats {
        let _ = evaluate_split(&model, data, split, device);
    }
    Ok(Timing {
        count: repeats * data.examples(split).len() as u64,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// Times sampling `words` words with a freshly initialised model; counts words.
pub fn time_sampling<B: FusedAutodiff>(
    data: &PreparedData,
    config: &TrainingConfig,
    words: usize,
    device: &B::Device,
) -> Result<Timing, TrainError> {
    let config = sized_config(config, data)?;
    let model = config.model.init::<B::InnerBackend>(device);
    let options = SampleOptions {
        n: words,
        ..SampleOptions::default()
    };
    let start = Instant::now();
    let out = sample(
        &model,
        &data.vocab,
        config.model.block_size,
        None,
        &options,
        device,
    )?;
    Ok(Timing {
        count: out.len() as u64,
        secs: start.elapsed().as_secs_f64(),
    })
}
