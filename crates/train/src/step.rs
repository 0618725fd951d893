//! One training step and what it needs: the examples on the right side of the device, the
//! reused index buffers, the per-step settings, and the losses waiting to be read back.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use makemore_data::{ContextBatch, ContextBatcher, MinibatchSampler, Tokens, MASKED};
use makemore_model::{DropoutStep, FusedAutodiff, FusedOps, Model};

use crate::distill::TeacherTargets;
use crate::optimizer::TrainOptimizer;
use crate::{TrainError, TrainingConfig};

/// Steps between two reads of the minibatch losses from an accelerator: a GPU step then
/// never waits for the device. A CPU backend reads every step's loss (it costs nothing
/// there), so progress, metrics and Ctrl-C act at every step; the numbers are the same
/// either way.
const LOSS_READBACK_EVERY: usize = 64;

/// How many steps' losses the trainer leaves on backend `B` before reading them.
pub(crate) fn readback_every<B: FusedOps>() -> usize {
    if B::is_accelerator() {
        LOSS_READBACK_EVERY
    } else {
        1
    }
}

/// Losses of finished steps still on the device: `(steps done, lr, loss [1])`.
pub(crate) struct PendingLosses<B: Backend> {
    steps: Vec<(u64, f64)>,
    losses: Vec<Tensor<B, 1>>,
}

impl<B: Backend> Default for PendingLosses<B> {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            losses: Vec::new(),
        }
    }
}

impl<B: Backend> PendingLosses<B> {
    pub(crate) fn push(&mut self, done: u64, lr: f64, loss: Tensor<B, 1>) {
        self.steps.push((done, lr));
        self.losses.push(loss);
    }

    pub(crate) fn len(&self) -> usize {
        self.steps.len()
    }

    /// Every pending step with its loss, read back in one transfer; empties the list. A
    /// failed read-back is an error with its cause (not NaN losses, which would read as a
    /// diverging run).
    pub(crate) fn take(&mut self) -> Result<Vec<(u64, f64, f32)>, TrainError> {
        if self.losses.is_empty() {
            return Ok(Vec::new());
        }
        let steps = std::mem::take(&mut self.steps);
        let failed = |why: String| TrainError::Device {
            what: format!(
                "cannot read back the losses of steps {} to {}: {why}",
                steps.first().map_or(0, |s| s.0),
                steps.last().map_or(0, |s| s.0)
            ),
        };
        let values: Vec<f32> = Tensor::cat(std::mem::take(&mut self.losses), 0)
            .try_into_data()
            .map_err(|e| failed(format!("{e:?}")))?
            .convert::<f32>()
            .to_vec()
            .map_err(|e| failed(format!("{e:?}")))?;
        if values.len() != steps.len() {
            return Err(failed(format!(
                "{} values came back for {} steps",
                values.len(),
                steps.len()
            )));
        }
        Ok(steps
            .into_iter()
            .zip(values)
            .map(|((done, lr), loss)| (done, lr, loss))
            .collect())
    }
}

/// The training split as a step reads it. On an accelerator the windows live on the device
/// for the whole run, and a step uploads only its minibatch indices and gathers the examples
/// there; on the CPU (and for sequences) a step gathers on the host into reused buffers
/// (faster there than a tensor gather, and the same values).
pub(crate) struct StepExamples<'a, B: Backend> {
    host: &'a Tokens,
    device: Option<(Tensor<B, 2, Int>, Tensor<B, 1, Int>)>,
    /// With distillation: the teacher's distributions, which each step's targets mix in.
    teacher: Option<&'a TeacherTargets>,
}

/// One step's rows: inputs `[rows, row_len]`, the targets that count, and for sequences
/// the flat positions `(word * row_len + t)` that have them.
pub(crate) struct StepBatch<B: Backend> {
    pub(crate) inputs: Tensor<B, 2, Int>,
    pub(crate) targets: Tensor<B, 1, Int>,
    pub(crate) positions: Option<Tensor<B, 1, Int>>,
}

/// Keeps the unmasked targets of flat sequence `targets` and records where they are.
pub(crate) fn unmasked(targets: &[u32], kept: &mut Vec<u32>, positions: &mut Vec<i64>) {
    kept.clear();
    positions.clear();
    for (i, &t) in targets.iter().enumerate() {
        if t != MASKED {
            kept.push(t);
            positions.push(i as i64);
        }
    }
}

impl<'a, B: FusedOps> StepExamples<'a, B> {
    pub(crate) fn new(tokens: &'a Tokens, device: &B::Device) -> Self {
        let device = match tokens.windows() {
            Some(examples) if B::is_accelerator() => {
                let batch =
                    ContextBatcher::from_flat::<B>(examples.inputs(), examples.targets(), device);
                Some((batch.inputs, batch.targets))
            }
            _ => None,
        };
        Self {
            host: tokens,
            device,
            teacher: None,
        }
    }

    /// The same split, whose targets mix in `teacher`'s distributions.
    pub(crate) fn taught(mut self, teacher: Option<&'a TeacherTargets>) -> Self {
        self.teacher = teacher;
        self
    }

    fn len(&self) -> usize {
        self.host.len()
    }

    /// The rows at the indices in `bufs.idx`.
    fn gather(&self, bufs: &mut StepBuffers, device: &B::Device) -> StepBatch<B> {
        let Some((inputs, targets)) = &self.device else {
            self.host.gather_into(&bufs.idx, &mut bufs.xs, &mut bufs.ys);
            if let Tokens::Sequences(s) = self.host {
                unmasked(&bufs.ys, &mut bufs.kept, &mut bufs.positions);
                let rows = bufs.idx.len();
                let inputs: Vec<i64> = bufs.xs.iter().map(|&x| i64::from(x)).collect();
                let targets: Vec<i64> = bufs.kept.iter().map(|&t| i64::from(t)).collect();
                let n = targets.len();
                return StepBatch {
                    inputs: Tensor::from_data(TensorData::new(inputs, [rows, s.seq_len()]), device),
                    targets: Tensor::from_data(TensorData::new(targets, [n]), device),
                    positions: Some(Tensor::from_data(
                        TensorData::new(bufs.positions.clone(), [n]),
                        device,
                    )),
                };
            }
            let ContextBatch { inputs, targets } =
                ContextBatcher::from_flat::<B>(&bufs.xs, &bufs.ys, device);
            return StepBatch {
                inputs,
                targets,
                positions: None,
            };
        };
        // The sampler gives a batch as large as the split only as the whole split in order
        // (full-batch training): that batch is the split as it lies.
        if bufs.idx.len() == self.len() {
            return StepBatch {
                inputs: inputs.clone(),
                targets: targets.clone(),
                positions: None,
            };
        }
        let idx: Vec<i64> = bufs.idx.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [bufs.idx.len()]), device);
        StepBatch {
            inputs: inputs.clone().select(0, idx.clone()),
            targets: targets.clone().select(0, idx),
            positions: None,
        }
    }
}

/// Host buffers reused by every step.
#[derive(Default)]
pub(crate) struct StepBuffers {
    idx: Vec<usize>,
    xs: Vec<u32>,
    ys: Vec<u32>,
    kept: Vec<u32>,
    positions: Vec<i64>,
}

/// What one step needs to know besides the model and the data.
pub(crate) struct StepSettings {
    step: u64,
    lr: f64,
    batch_size: usize,
    batch_seed: u64,
    dropout: f64,
}

impl StepSettings {
    pub(crate) fn new(config: &TrainingConfig, step: u64, lr: f64) -> Self {
        Self {
            step,
            lr,
            batch_size: config.batch_size,
            batch_seed: config.batch_seed,
            dropout: config.model.dropout,
        }
    }
}

/// Forward, backward and update on the minibatch of `step`. Returns the updated model and
/// the minibatch loss (before the update), still on the device: reading it is the caller's
/// choice, so that a GPU step does not wait for the device.
pub(crate) fn train_step<B: FusedAutodiff>(
    model: Model<B>,
    optim: &mut TrainOptimizer<B>,
    train: &StepExamples<'_, B>,
    sampler: &MinibatchSampler,
    settings: &StepSettings,
    bufs: &mut StepBuffers,
    device: &B::Device,
) -> (Model<B>, Tensor<B::InnerBackend, 1>) {
    let step = settings.step;
    sampler.fill(step, settings.batch_size, train.len(), &mut bufs.idx);
    let batch = train.gather(bufs, device);
    let soft = train.teacher.map(|t| t.targets::<B>(&bufs.idx, device));
    // Dropout masks depend only on the batch seed and the step: a resume redraws them exactly.
    let dropout = (settings.dropout > 0.0).then(|| DropoutStep {
        p: settings.dropout,
        seed: settings.batch_seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    });
    let logits = model.forward_train(batch.inputs, dropout);
    // A sequence model predicts every position; the loss counts those with a target.
    let logits = match batch.positions {
        Some(p) => makemore_model::fused::gather_rows(logits, p),
        None => logits,
    };
    let (loss, value) = match soft {
        // Cross-entropy against the mixed targets; the value reported is the plain one.
        Some(soft) => {
            let [n, _] = soft.dims();
            let log_probs = log_softmax(logits, 1);
            let value = log_probs
                .clone()
                .inner()
                .gather(1, batch.targets.inner().reshape([n, 1]))
                .mean()
                .neg();
            let loss = (log_probs * soft).sum().div_scalar(n as f64).neg();
            (loss, value)
        }
        None => {
            let loss = model.loss(logits, batch.targets);
            let value = loss.clone().inner();
            (loss, value)
        }
    };
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optim.step(settings.lr, model, grads), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn losses_come_back_in_order_and_a_bad_read_back_is_an_error_not_nan() {
        let device = Default::default();
        let loss = |v: &[f32]| Tensor::<NdArray, 1>::from_floats(v, &device);
        let mut pending = PendingLosses::<NdArray>::default();
        pending.push(1, 0.1, loss(&[2.5]));
        pending.push(2, 0.1, loss(&[2.25]));
        assert_eq!(pending.take().unwrap(), [(1, 0.1, 2.5), (2, 0.1, 2.25)]);
        assert!(pending.take().unwrap().is_empty());
        // Fewer (or more) values than steps: the losses cannot be told apart, so no guess.
        pending.push(3, 0.1, loss(&[2.0, 1.0]));
        let e = pending.take().unwrap_err().to_string();
        assert!(
            e.contains("steps 3 to 3") && e.contains("2 values came back for 1 steps"),
            "{e}"
        );
    }
}
