//! One training step and what it needs: the examples on the right side of the device, the
//! reused index buffers, the per-step settings, and the losses waiting to be read back.

use burn::optim::GradientsParams;
use burn::prelude::*;
use makemore_data::{ContextBatch, ContextBatcher, Examples, MinibatchSampler};
use makemore_model::{DropoutStep, FusedAutodiff, FusedOps, Mlp};

use crate::optimizer::TrainOptimizer;
use crate::TrainingConfig;

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

    /// Every pending step with its loss, read back in one transfer; empties the list.
    pub(crate) fn take(&mut self) -> Vec<(u64, f64, f32)> {
        if self.losses.is_empty() {
            return Vec::new();
        }
        let values: Vec<f32> = Tensor::cat(std::mem::take(&mut self.losses), 0)
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        std::mem::take(&mut self.steps)
            .into_iter()
            .zip(values.into_iter().chain(std::iter::repeat(f32::NAN)))
            .map(|((done, lr), loss)| (done, lr, loss))
            .collect()
    }
}

/// The training split as a step reads it. On an accelerator it lives on the device for the
/// whole run, and a step uploads only its minibatch indices and gathers the examples there;
/// on the CPU a step gathers on the host into reused buffers (faster there than a tensor
/// gather, and the same values).
pub(crate) struct StepExamples<'a, B: Backend> {
    host: &'a Examples,
    device: Option<(Tensor<B, 2, Int>, Tensor<B, 1, Int>)>,
}

impl<'a, B: FusedOps> StepExamples<'a, B> {
    pub(crate) fn new(examples: &'a Examples, device: &B::Device) -> Self {
        let device = B::is_accelerator().then(|| {
            let batch =
                ContextBatcher::from_flat::<B>(examples.inputs(), examples.targets(), device);
            (batch.inputs, batch.targets)
        });
        Self {
            host: examples,
            device,
        }
    }

    fn len(&self) -> usize {
        self.host.len()
    }

    /// The examples at the indices in `bufs.idx`.
    fn gather(&self, bufs: &mut StepBuffers, device: &B::Device) -> ContextBatch<B> {
        let Some((inputs, targets)) = &self.device else {
            self.host.gather_into(&bufs.idx, &mut bufs.xs, &mut bufs.ys);
            return ContextBatcher::from_flat::<B>(&bufs.xs, &bufs.ys, device);
        };
        // The sampler gives a batch as large as the split only as the whole split in order
        // (full-batch training): that batch is the split as it lies.
        if bufs.idx.len() == self.len() {
            return ContextBatch {
                inputs: inputs.clone(),
                targets: targets.clone(),
            };
        }
        let idx: Vec<i64> = bufs.idx.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [bufs.idx.len()]), device);
        ContextBatch {
            inputs: inputs.clone().select(0, idx.clone()),
            targets: targets.clone().select(0, idx),
        }
    }
}

/// Host buffers reused by every step.
#[derive(Default)]
pub(crate) struct StepBuffers {
    idx: Vec<usize>,
    xs: Vec<u32>,
    ys: Vec<u32>,
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
    model: Mlp<B>,
    optim: &mut TrainOptimizer<B>,
    train: &StepExamples<'_, B>,
    sampler: &MinibatchSampler,
    settings: &StepSettings,
    bufs: &mut StepBuffers,
    device: &B::Device,
) -> (Mlp<B>, Tensor<B::InnerBackend, 1>) {
    let step = settings.step;
    sampler.fill(step, settings.batch_size, train.len(), &mut bufs.idx);
    let batch = train.gather(bufs, device);
    // Dropout masks depend only on the batch seed and the step: a resume redraws them exactly.
    let dropout = (settings.dropout > 0.0).then(|| DropoutStep {
        p: settings.dropout,
        seed: settings.batch_seed ^ step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    });
    let loss = model.loss(model.forward_train(batch.inputs, dropout), batch.targets);
    let value = loss.clone().inner();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optim.step(settings.lr, model, grads), value)
}
