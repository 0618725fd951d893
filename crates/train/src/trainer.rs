use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use makemore_data::{ContextBatch, ContextBatcher, Examples, MinibatchSampler};
use makemore_model::{DropoutStep, FusedAutodiff, FusedOps, Mlp};
use serde::Serialize;

use crate::checkpoint::{self, Checkpoint, TrainingState, METRICS_FILE};
use crate::optimizer::TrainOptimizer;
use crate::RunLock;
use crate::{evaluate, MetricsWriter, PreparedData, TrainError, TrainingConfig};

/// What the trainer reports while it runs (for progress bars and logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// Training begins (or resumes) at `start_step` of `total_steps`.
    Start {
        /// Trainable parameters.
        params: usize,
        /// First step to run.
        start_step: u64,
        /// Steps in the whole run.
        total_steps: u64,
    },
    /// One optimisation step finished.
    Step {
        /// Steps completed.
        step: u64,
        /// Learning rate used.
        lr: f64,
        /// Minibatch loss.
        loss: f32,
    },
    /// Full dev evaluation.
    Eval {
        /// Steps completed.
        step: u64,
        /// Dev loss.
        dev_loss: f64,
    },
    /// A checkpoint was committed.
    Checkpoint {
        /// Steps completed.
        step: u64,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainSummary {
    /// Steps completed in total (including before a resume).
    pub steps_done: u64,
    /// True when the run stopped early because it was asked to (the stop flag).
    pub interrupted: bool,
    /// True when the run has done all its steps; false after a stop or [`Trainer::until`].
    pub finished: bool,
    /// Full train-split loss.
    pub train_loss: f64,
    /// Full dev-split loss (`None` for an empty dev split).
    pub dev_loss: Option<f64>,
    /// Trainable parameters.
    pub params: usize,
    /// Seconds spent in training steps (this process and earlier ones of the run).
    pub train_secs: f64,
}

struct Run<'a, B: FusedAutodiff> {
    data: &'a PreparedData,
    config: &'a TrainingConfig,
    dir: &'a Path,
    device: &'a B::Device,
    model: Mlp<B>,
    optim: TrainOptimizer<B>,
    metrics: MetricsWriter,
    state: TrainingState,
}

/// Trains (or, with `resume`, continues) a run whose checkpoints go to `dir`: the short
/// form of [`Trainer`] for a run that only needs a stop flag and an event callback.
///
/// `config.model.vocab_size` is taken from the data. A fresh run writes `config.json`,
/// `vocab.json` and a step-0 checkpoint before the first step, so a last good checkpoint
/// always exists. Setting `stop` makes the run save a checkpoint and return at the next
/// step boundary with `interrupted: true`.
pub fn train<B: FusedAutodiff>(
    data: &PreparedData,
    config: &TrainingConfig,
    dir: &Path,
    resume: Option<Checkpoint>,
    device: &B::Device,
    stop: &AtomicBool,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainSummary, TrainError> {
    let mut trainer = Trainer::new(data, config, dir)
        .stop(stop)
        .on_event(on_event);
    if let Some(ckpt) = resume {
        trainer = trainer.resume(ckpt);
    }
    Ok(trainer.fit::<B>(device)?.summary)
}

/// One training run, set up step by step, then [`Trainer::fit`]:
///
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use makemore_train::{prepare, Trainer, TrainingConfig};
///
/// let words: Vec<String> = ["emma", "olivia", "ava", "isabella", "sophia", "mia"]
///     .iter().map(|w| w.to_string()).collect();
/// let mut config = TrainingConfig::default();
/// config.steps = 40;
/// config.batch_size = 8;
/// let data = prepare(words, &config).unwrap();
/// let out = tempfile::tempdir().unwrap();
/// // Stop half-way (with a checkpoint), then continue the same run to the end.
/// let half = Trainer::new(&data, &config, out.path()).until(20).fit::<Autodiff<NdArray>>(&Default::default()).unwrap();
/// assert_eq!((half.summary.steps_done, half.summary.finished), (20, false));
/// let ckpt = makemore_train::Checkpoint::open(out.path()).unwrap();
/// let done = Trainer::new(&data, &config, out.path()).resume(ckpt).fit::<Autodiff<NdArray>>(&Default::default()).unwrap();
/// assert!(done.summary.finished);
/// let logits = done.model.forward(burn::prelude::Tensor::zeros([1, 3], &Default::default()));
/// assert_eq!(logits.dims(), [1, data.vocab.len()]);
/// ```
pub struct Trainer<'a> {
    data: &'a PreparedData,
    config: &'a TrainingConfig,
    dir: &'a Path,
    resume: Option<Checkpoint>,
    stop: Option<&'a AtomicBool>,
    until: Option<u64>,
    corpus_path: Option<PathBuf>,
    lock: Option<RunLock>,
    on_event: Option<&'a mut dyn FnMut(&TrainEvent)>,
}

/// What [`Trainer::fit`] returns: the model as training left it (on the inner backend, ready
/// to evaluate and sample) and how the run ended.
pub struct Trained<B: Backend> {
    /// The model after the last step.
    pub model: Mlp<B>,
    /// Steps, losses and time.
    pub summary: TrainSummary,
}

impl<'a> Trainer<'a> {
    /// A fresh run of `config` on `data`, checkpointing into `dir`.
    pub fn new(data: &'a PreparedData, config: &'a TrainingConfig, dir: &'a Path) -> Self {
        Self {
            data,
            config,
            dir,
            resume: None,
            stop: None,
            until: None,
            corpus_path: None,
            lock: None,
            on_event: None,
        }
    }

    /// The run directory's lock, when the caller took it earlier (to clean the directory
    /// first, say); otherwise [`Trainer::fit`] takes it.
    pub fn lock(mut self, lock: RunLock) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Records where the corpus came from (a file; made absolute) in the checkpoint, so that
    /// a resume can read it again without being told.
    pub fn corpus_path(mut self, path: &Path) -> Self {
        self.corpus_path = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        self
    }

    /// Continues the run saved in `ckpt` (which must be `dir`'s) instead of starting afresh;
    /// its corpus, vocabulary and config must be this run's ([`check_resume`]).
    pub fn resume(mut self, ckpt: Checkpoint) -> Self {
        self.resume = Some(ckpt);
        self
    }

    /// When `stop` becomes true, the run saves a checkpoint and returns at the next step
    /// boundary, with `interrupted: true`.
    pub fn stop(mut self, stop: &'a AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Stops after `step` steps in all (counting those before a resume) with a checkpoint,
    /// unfinished: resuming continues exactly as if the run had not stopped. Successive
    /// halving uses it to compare runs part-way. At or past `config.steps` it changes nothing.
    pub fn until(mut self, step: u64) -> Self {
        self.until = Some(step);
        self
    }

    /// Called with each step's loss, each evaluation and each checkpoint.
    pub fn on_event(mut self, on_event: &'a mut dyn FnMut(&TrainEvent)) -> Self {
        self.on_event = Some(on_event);
        self
    }

    /// Runs the training on `device` and returns the trained model and a summary.
    pub fn fit<B: FusedAutodiff>(
        self,
        device: &B::Device,
    ) -> Result<Trained<B::InnerBackend>, TrainError> {
        let mut lock = match self.lock {
            Some(lock) => lock,
            None => {
                std::fs::create_dir_all(self.dir).map_err(|e| TrainError::io(self.dir, e))?;
                RunLock::acquire(self.dir)?
            }
        };
        let config = sized_config(self.config, self.data)?;
        if let Some(ckpt) = &self.resume {
            check_resume(ckpt, self.data, &config)?;
        }
        check_data_fits(&config, self.data)?;
        lock.claim()?;
        let mut run: Run<'_, B> = match self.resume {
            Some(ckpt) => {
                let mut run = Run::resume(self.data, &config, self.dir, ckpt, device)?;
                if self.corpus_path.is_some() {
                    run.state.corpus_path = self.corpus_path;
                }
                run
            }
            None => Run::fresh(self.data, &config, self.dir, self.corpus_path, device)?,
        };
        let never = AtomicBool::new(false);
        let mut ignore = |_: &TrainEvent| {};
        let on_event = match self.on_event {
            Some(f) => f,
            None => &mut ignore,
        };
        let until = self.until.unwrap_or(u64::MAX).min(config.steps);
        let summary = run.go(self.stop.unwrap_or(&never), until, on_event)?;
        Ok(Trained {
            model: run.model.valid(),
            summary,
        })
    }
}

/// The config with the corpus's vocabulary size filled in, validated.
pub(crate) fn sized_config(
    config: &TrainingConfig,
    data: &PreparedData,
) -> Result<TrainingConfig, TrainError> {
    let mut config = config.clone();
    config.model.vocab_size = data.vocab.len();
    config.validate()?;
    Ok(config)
}

/// Checks that a resume continues the same run: same corpus, vocabulary and config.
pub fn check_resume(
    ckpt: &Checkpoint,
    data: &PreparedData,
    config: &TrainingConfig,
) -> Result<(), TrainError> {
    let refuse = |reason: String| TrainError::Resume {
        path: ckpt.dir.clone(),
        reason,
    };
    if ckpt.state.corpus_sha256 != data.corpus_sha256 {
        return Err(refuse(
            "the corpus differs from the one the run started with (pass the run's --data)".into(),
        ));
    }
    if ckpt.vocab != data.vocab {
        return Err(refuse("the vocabulary differs from the run's".into()));
    }
    if let Some(started) = ckpt.state.started_config()? {
        let mut started = started;
        started.model.vocab_size = ckpt.config.model.vocab_size;
        if started != ckpt.config {
            let fields = config_differences(&started, &ckpt.config).join(", ");
            return Err(refuse(format!(
                "config.json was edited after the run started (in: {fields}); restore it, or start a new run with --config"
            )));
        }
    }
    if &ckpt.config != config {
        let fields = config_differences(&ckpt.config, config).join(", ");
        return Err(refuse(format!(
            "the config differs from the run's config.json in: {fields}"
        )));
    }
    Ok(())
}

/// Dotted names of the fields where two configs differ.
fn config_differences(a: &TrainingConfig, b: &TrainingConfig) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let null = serde_json::Value::Null;
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(
                        &name,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let to_value = |c: &TrainingConfig| serde_json::to_value(c).unwrap_or_default();
    walk("", &to_value(a), &to_value(b), &mut out);
    out
}

/// Checks that the data can feed this config: a non-empty training split no smaller
/// than one batch.
pub fn check_data_fits(config: &TrainingConfig, data: &PreparedData) -> Result<(), TrainError> {
    let n_train = data.train.len();
    if n_train == 0 {
        return Err(TrainError::Config(
            "the training split has no examples".into(),
        ));
    }
    if config.batch_size > n_train {
        return Err(TrainError::Config(format!(
            "batch_size {} is larger than the training split ({n_train} examples); use {n_train} for full-batch training",
            config.batch_size
        )));
    }
    Ok(())
}

impl<'a, B: FusedAutodiff> Run<'a, B> {
    fn fresh(
        data: &'a PreparedData,
        config: &'a TrainingConfig,
        dir: &'a Path,
        corpus_path: Option<PathBuf>,
        device: &'a B::Device,
    ) -> Result<Self, TrainError> {
        checkpoint::write_run_files(dir, config, &data.vocab)?;
        let mut run = Self {
            data,
            config,
            dir,
            device,
            model: config.model.init::<B>(device),
            optim: TrainOptimizer::new(config.optimizer),
            metrics: MetricsWriter::create(&dir.join(METRICS_FILE))?,
            state: TrainingState {
                step: 0,
                metrics_bytes: 0,
                corpus_sha256: data.corpus_sha256.clone(),
                elapsed_secs: 0.0,
                train_loss: None,
                dev_loss: None,
                finished: false,
                corpus_path,
                config: serde_json::to_value(config).ok(),
            },
        };
        run.save()?;
        Ok(run)
    }

    fn resume(
        data: &'a PreparedData,
        config: &'a TrainingConfig,
        dir: &'a Path,
        ckpt: Checkpoint,
        device: &'a B::Device,
    ) -> Result<Self, TrainError> {
        // `train` has already checked the checkpoint against the data and config.
        let model = ckpt.load_model::<B>(device)?;
        let mut optim = TrainOptimizer::new(config.optimizer);
        match ckpt.optimizer_bytes()? {
            Some(bytes) => optim = optim.load_state(bytes, device, &ckpt.dir)?,
            // AdamW's moments are part of the run: restarting them from zero would silently
            // make this a different run from the uninterrupted one.
            None if optim.has_state() => {
                return Err(TrainError::Resume {
                    path: ckpt.dir.clone(),
                    reason: format!(
                        "{} is missing: AdamW's moment estimates cannot be restored, so the resumed run would not be the uninterrupted one",
                        checkpoint::OPTIMIZER_FILE
                    ),
                })
            }
            None => {}
        }
        let metrics = MetricsWriter::resume(&dir.join(METRICS_FILE), ckpt.state.metrics_bytes)?;
        Ok(Self {
            data,
            config,
            dir,
            device,
            model,
            optim,
            metrics,
            state: ckpt.state,
        })
    }

    fn save(&mut self) -> Result<(), TrainError> {
        self.state.metrics_bytes = self.metrics.sync()?;
        let model = checkpoint::model_bytes(&self.model, self.state.step)?;
        let optim = self.optim.state_bytes()?;
        checkpoint::save_commit(self.dir, &model, optim.as_deref(), &self.state)
    }

    fn go(
        &mut self,
        stop: &AtomicBool,
        until: u64,
        on_event: &mut dyn FnMut(&TrainEvent),
    ) -> Result<TrainSummary, TrainError> {
        let config = self.config;
        let params = config.model.num_params();
        on_event(&TrainEvent::Start {
            params,
            start_step: self.state.step,
            total_steps: config.steps,
        });
        let sampler = MinibatchSampler::new(config.batch_seed);
        let train = StepExamples::<B>::new(&self.data.train, self.device);
        let mut bufs = StepBuffers::default();
        let mut pending = PendingLosses::default();
        let mut interrupted = false;
        let mut clock = Instant::now();
        while self.state.step < until {
            if stop.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let step = self.state.step;
            let lr = config.schedule.lr(step, config.steps);
            let (model, loss) = train_step(
                self.model.clone(),
                &mut self.optim,
                &train,
                &sampler,
                &StepSettings::new(config, step, lr),
                &mut bufs,
                self.device,
            );
            self.model = model;
            self.state.step += 1;
            let done = self.state.step;
            pending.push(done, lr, loss);
            let eval_due = config.eval_every > 0
                && done.is_multiple_of(config.eval_every)
                && done < config.steps;
            let checkpoint_due = config.checkpoint_every > 0
                && done.is_multiple_of(config.checkpoint_every)
                && done < config.steps;
            if eval_due {
                let dev_loss = evaluate(&self.model.valid(), &self.data.dev, self.device);
                self.flush(&mut pending, dev_loss, on_event)?;
            } else if checkpoint_due || pending.len() >= readback_every::<B>() {
                self.flush(&mut pending, None, on_event)?;
            }
            if checkpoint_due {
                self.state.elapsed_secs += clock.elapsed().as_secs_f64();
                self.save()?;
                clock = Instant::now();
                on_event(&TrainEvent::Checkpoint { step: done });
            }
        }
        self.flush(&mut pending, None, on_event)?;
        self.state.elapsed_secs += clock.elapsed().as_secs_f64();
        let valid = self.model.valid();
        let inner_device = self.device;
        let train_loss = evaluate(&valid, &self.data.train, inner_device).unwrap_or(f64::NAN);
        let dev_loss = evaluate(&valid, &self.data.dev, inner_device);
        let finished = self.state.step >= config.steps;
        if finished {
            self.state.finished = true;
            self.state.train_loss = Some(train_loss);
            self.state.dev_loss = dev_loss;
        }
        self.save()?;
        on_event(&TrainEvent::Checkpoint {
            step: self.state.step,
        });
        Ok(TrainSummary {
            steps_done: self.state.step,
            interrupted,
            finished,
            train_loss,
            dev_loss,
            params,
            train_secs: self.state.elapsed_secs,
        })
    }

    /// Reads back the losses of the steps since the last flush (one device round trip),
    /// writes their metrics rows and reports them; `dev_loss` belongs to the last of them.
    /// A non-finite loss stops the run with an error naming its step: the model has been
    /// updated with it since, so nothing is saved and the last checkpoint stays the good one.
    fn flush(
        &mut self,
        pending: &mut PendingLosses<B::InnerBackend>,
        dev_loss: Option<f64>,
        on_event: &mut dyn FnMut(&TrainEvent),
    ) -> Result<(), TrainError> {
        let steps = pending.take();
        let last = steps.len();
        for (i, (done, lr, loss)) in steps.into_iter().enumerate() {
            if !loss.is_finite() {
                return Err(TrainError::NonFinite {
                    step: done,
                    loss,
                    lr,
                    last_good_step: self.last_saved_step(),
                    dir: self.dir.to_path_buf(),
                });
            }
            let dev_loss = if i + 1 == last { dev_loss } else { None };
            self.metrics.row(done, lr, loss, dev_loss)?;
            on_event(&TrainEvent::Step {
                step: done,
                lr,
                loss,
            });
            if let Some(dev_loss) = dev_loss {
                on_event(&TrainEvent::Eval {
                    step: done,
                    dev_loss,
                });
            }
        }
        Ok(())
    }

    fn last_saved_step(&self) -> u64 {
        Checkpoint::open(self.dir)
            .map(|c| c.state.step)
            .unwrap_or(0)
    }
}

/// Steps between two reads of the minibatch losses from an accelerator: a GPU step then
/// never waits for the device. A CPU backend reads every step's loss (it costs nothing
/// there), so progress, metrics and Ctrl-C act at every step; the numbers are the same
/// either way.
const LOSS_READBACK_EVERY: usize = 64;

/// How many steps' losses the trainer leaves on backend `B` before reading them.
fn readback_every<B: FusedOps>() -> usize {
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
    let train = StepExamples::<B>::new(&data.train, device);
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
    let (e_min, _) = smoothed.fold((f64::NAN, f64::INFINITY), |best, (e, l)| {
        if l < best.1 {
            (e, l)
        } else {
            best
        }
    });
    let lowest = finite[0].exponent;
    Some(10f64.powf((e_min - 0.5).max(lowest)))
}
