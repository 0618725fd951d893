use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::prelude::*;
use makemore_data::MinibatchSampler;
use makemore_model::threads::Polling;
use makemore_model::{FusedAutodiff, Model};
use serde::Serialize;

use crate::checkpoint::{self, Checkpoint, TrainingState, EMA_DIR, METRICS_FILE};
use crate::distill::TeacherTargets;
use crate::ema::Ema;
use crate::optimizer::TrainOptimizer;
use crate::resume::check_resume;
use crate::step::{
    readback_every, train_step, PendingLosses, StepBuffers, StepExamples, StepSettings,
};
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
    /// With distillation, after `Start`: the teacher's loss on the training characters.
    Teacher {
        /// Mean nats per training character under the teacher.
        train_loss: f64,
        /// The teacher's share of each target.
        weight: f64,
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
        /// Dev loss of the moving average of the weights, when the run keeps one.
        ema_dev_loss: Option<f64>,
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
    /// Dev loss of the moving average of the weights (`ema/`), when the run keeps one.
    pub ema_dev_loss: Option<f64>,
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
    model: Model<B>,
    optim: TrainOptimizer<B>,
    metrics: MetricsWriter,
    state: TrainingState,
    /// The moving average of the weights, and its last dev loss.
    ema: Option<(Ema<B::InnerBackend>, Option<f64>)>,
}

/// Trains (or, with `resume`, continues) a run whose checkpoints go to `dir`, and returns the
/// trained model with a summary: the short form of [`Trainer`] for a run that only needs a
/// stop flag and an event callback.
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
) -> Result<Trained<B::InnerBackend>, TrainError> {
    let mut trainer = Trainer::new(data, config, dir)
        .stop(stop)
        .on_event(on_event);
    if let Some(ckpt) = resume {
        trainer = trainer.resume(ckpt);
    }
    trainer.fit::<B>(device)
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
#[derive(Debug)]
pub struct Trained<B: Backend> {
    /// The model after the last step.
    pub model: Model<B>,
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
        // Under the lock, the directory is as the last writer left it: finish a save that a
        // crash interrupted, and continue from what is on disk now.
        let resume = match self.resume {
            Some(ckpt) => {
                checkpoint::recover(self.dir, &lock)?;
                for sub in [checkpoint::BEST_DIR, EMA_DIR] {
                    let sub = self.dir.join(sub);
                    if sub.is_dir() {
                        checkpoint::recover(&sub, &lock)?;
                    }
                }
                let ckpt = Checkpoint::open(&ckpt.dir)?;
                check_resume(&ckpt, self.data, &config)?;
                Some(ckpt)
            }
            None => None,
        };
        check_data_fits(&config, self.data)?;
        // On the CPU the model, its optimiser state and a batch live in this process's
        // memory (on a GPU, in the device's, which this cannot see).
        if !B::is_accelerator() {
            crate::check_memory(
                crate::MemoryNeed::training(&config),
                crate::available_memory(),
                "training this model",
            )?;
        }
        let teacher = TeacherTargets::of_config::<B::InnerBackend>(&config, self.data, device)?;
        if let (Some(t), Some(ckpt)) = (&teacher, &resume) {
            if ckpt.state.teacher_sha256.as_deref() != Some(t.sha256.as_str()) {
                return Err(TrainError::Resume {
                    path: ckpt.dir.clone(),
                    reason: "the teacher predicts differently from when the run began (retrained or reweighted): resuming would not continue the same run".into(),
                });
            }
        }
        lock.claim()?;
        let mut run: Run<'_, B> = match resume {
            Some(ckpt) => {
                let mut run = Run::resume(self.data, &config, self.dir, ckpt, device)?;
                if self.corpus_path.is_some() {
                    run.state.corpus_path = self.corpus_path;
                }
                run
            }
            None => Run::fresh(
                self.data,
                &config,
                self.dir,
                self.corpus_path,
                device,
                teacher.as_ref().map(|t| t.sha256.clone()),
            )?,
        };
        let never = AtomicBool::new(false);
        let mut ignore = |_: &TrainEvent| {};
        let on_event = match self.on_event {
            Some(f) => f,
            None => &mut ignore,
        };
        let until = self.until.unwrap_or(u64::MAX).min(config.steps);
        let summary = run.go(
            self.stop.unwrap_or(&never),
            until,
            teacher.as_ref(),
            on_event,
        )?;
        Ok(Trained {
            model: run.model.valid(),
            summary,
        })
    }
}

/// The config with what comes from the corpus filled in (the vocabulary size, and a
/// sequence model's positions when `block_size` is 0), validated.
pub fn sized_config(
    config: &TrainingConfig,
    data: &PreparedData,
) -> Result<TrainingConfig, TrainError> {
    let mut config = config.clone();
    config.model.vocab_size = data.vocab.len();
    // A sequence model's positions come from the corpus unless given (block_size 0).
    if config.model.kind.is_sequence() {
        config.model.block_size = data.train.row_len();
    }
    config.validate()?;
    Ok(config)
}

/// Checks that the data can feed this config: a non-empty training split no smaller
/// than one batch.
pub fn check_data_fits(config: &TrainingConfig, data: &PreparedData) -> Result<(), TrainError> {
    let n_train = data.train.len();
    // A batch is a number of examples (MLP) or of words (sequence models).
    let rows = if config.model.kind.is_sequence() {
        "words"
    } else {
        "examples"
    };
    if n_train == 0 {
        return Err(TrainError::Config(format!(
            "the training split has no {rows}"
        )));
    }
    if config.batch_size > n_train {
        return Err(TrainError::Config(format!(
            "batch_size {} is larger than the training split ({n_train} {rows}); use {n_train} for full-batch training",
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
        teacher_sha256: Option<String>,
    ) -> Result<Self, TrainError> {
        checkpoint::write_run_files(dir, config, &data.vocab)?;
        if config.ema.is_some() {
            checkpoint::write_run_files(&dir.join(EMA_DIR), config, &data.vocab)?;
        }
        let started_config = serde_json::to_value(config).map_err(|e| {
            TrainError::checkpoint(
                dir.join(checkpoint::STATE_FILE),
                format!("cannot record the config: {e}"),
            )
        })?;
        let model = config.model.init::<B>(device);
        let ema = config.ema.map(|e| (Ema::new(model.valid(), e.decay), None));
        let mut run = Self {
            data,
            config,
            dir,
            device,
            model,
            ema,
            optim: TrainOptimizer::new(config.optimizer),
            metrics: MetricsWriter::create(&dir.join(METRICS_FILE), config.ema.is_some())?,
            state: TrainingState {
                step: 0,
                metrics_bytes: 0,
                corpus_sha256: data.corpus_sha256.clone(),
                elapsed_secs: 0.0,
                train_loss: None,
                dev_loss: None,
                finished: false,
                corpus_path,
                config: Some(started_config),
                best: None,
                teacher_sha256,
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
        let metrics = MetricsWriter::resume(
            &dir.join(METRICS_FILE),
            ckpt.state.metrics_bytes,
            ckpt.state.step,
            config.ema.is_some(),
        )?;
        let ema = match config.ema {
            Some(e) => {
                let saved = Checkpoint::open(dir.join(EMA_DIR))?;
                // Committed with every save of the run: a different step is a damaged run.
                if saved.state.step != ckpt.state.step {
                    return Err(TrainError::Resume {
                        path: saved.dir.clone(),
                        reason: format!(
                            "holds the average of step {}, the run is at step {}",
                            saved.state.step, ckpt.state.step
                        ),
                    });
                }
                let model = saved.load_model::<B::InnerBackend>(device)?;
                Some((Ema::new(model, e.decay), saved.state.dev_loss))
            }
            None => None,
        };
        Ok(Self {
            data,
            config,
            dir,
            device,
            model,
            ema,
            optim,
            metrics,
            state: ckpt.state,
        })
    }

    /// With `keep_best`, saves the weights as `best/` (a checkpoint `eval` and `sample`
    /// read) when their dev loss is the lowest so far: the live weights with `dev_loss`, or
    /// with `ema.best` the averaged ones with theirs.
    fn keep_if_best(&mut self, dev_loss: f64) -> Result<(), TrainError> {
        let averaged = match (&self.ema, self.config.ema) {
            (Some((ema, Some(loss))), Some(c)) if c.best => Some((ema.model(), *loss)),
            _ => None,
        };
        let dev_loss = averaged.map_or(dev_loss, |(_, loss)| loss);
        if !self.config.keep_best || self.state.best.is_some_and(|b| b.dev_loss <= dev_loss) {
            return Ok(());
        }
        let dir = self.dir.join(checkpoint::BEST_DIR);
        let best = checkpoint::BestSoFar {
            step: self.state.step,
            dev_loss,
        };
        let state = TrainingState {
            metrics_bytes: 0,
            train_loss: None,
            dev_loss: Some(dev_loss),
            finished: true,
            best: Some(best),
            ..self.state.clone()
        };
        let model = match averaged {
            Some((ema, _)) => checkpoint::model_bytes(ema, &self.config.model, state.step)?,
            None => checkpoint::model_bytes(&self.model.valid(), &self.config.model, state.step)?,
        };
        checkpoint::write_run_files(&dir, self.config, &self.data.vocab)?;
        let state_json = checkpoint::state_json(&dir, &state)?;
        checkpoint::save_commit(
            &dir,
            &[
                (checkpoint::MODEL_FILE, &model),
                (checkpoint::STATE_FILE, state_json.as_bytes()),
            ],
        )?;
        self.state.best = Some(best);
        Ok(())
    }

    /// Commits the weights, the optimiser state, the moving average (`ema/`) and the state
    /// as one save.
    fn save(&mut self) -> Result<(), TrainError> {
        self.state.metrics_bytes = self.metrics.sync()?;
        let model = checkpoint::model_bytes(&self.model, &self.config.model, self.state.step)?;
        let optim = self.optim.state_bytes()?;
        let ema = match &self.ema {
            Some((ema, dev_loss)) => {
                let state = TrainingState {
                    metrics_bytes: 0,
                    train_loss: None,
                    dev_loss: *dev_loss,
                    // Read by eval and sample; not a run to resume.
                    finished: true,
                    best: None,
                    ..self.state.clone()
                };
                let bytes = checkpoint::model_bytes(ema.model(), &self.config.model, state.step)?;
                let json = checkpoint::state_json(&self.dir.join(EMA_DIR), &state)?;
                Some((bytes, json))
            }
            None => None,
        };
        let state = checkpoint::state_json(self.dir, &self.state)?;
        let (ema_model, ema_state) = (
            format!("{EMA_DIR}/{}", checkpoint::MODEL_FILE),
            format!("{EMA_DIR}/{}", checkpoint::STATE_FILE),
        );
        let mut files: Vec<(&str, &[u8])> = vec![(checkpoint::MODEL_FILE, &model)];
        if let Some(optim) = &optim {
            files.push((checkpoint::OPTIMIZER_FILE, optim));
        }
        if let Some((bytes, json)) = &ema {
            files.push((&ema_model, bytes));
            files.push((&ema_state, json.as_bytes()));
        }
        // The run's state last, as before the average was part of a save.
        files.push((checkpoint::STATE_FILE, state.as_bytes()));
        checkpoint::save_commit(self.dir, &files)
    }

    fn go(
        &mut self,
        stop: &AtomicBool,
        until: u64,
        teacher: Option<&TeacherTargets>,
        on_event: &mut dyn FnMut(&TrainEvent),
    ) -> Result<TrainSummary, TrainError> {
        let config = self.config;
        let params = config.model.num_params();
        on_event(&TrainEvent::Start {
            params,
            start_step: self.state.step,
            total_steps: config.steps,
        });
        if let (Some(t), Some(d)) = (teacher, &config.distill) {
            on_event(&TrainEvent::Teacher {
                train_loss: t.train_loss(),
                weight: d.weight,
            });
        }
        let sampler = MinibatchSampler::new(config.batch_seed);
        let train = StepExamples::<B>::new(&self.data.train, self.device).taught(teacher);
        let mut bufs = StepBuffers::default();
        let mut polling = Polling::default();
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
            let (model, loss) = polling.run(|| {
                train_step(
                    self.model.clone(),
                    &mut self.optim,
                    &train,
                    &sampler,
                    &StepSettings::new(config, step, lr),
                    &mut bufs,
                    self.device,
                )
            });
            self.model = model;
            if let Some((ema, _)) = &mut self.ema {
                ema.update(&self.model.valid());
            }
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
                self.evaluate_ema();
                self.flush(&mut pending, dev_loss, on_event)?;
                if let Some(d) = dev_loss {
                    self.keep_if_best(d)?;
                }
            } else if checkpoint_due || (pending.len() >= readback_every::<B>() && done < until) {
                // The last step's row waits for the final evaluation below.
                self.flush(&mut pending, None, on_event)?;
            }
            if checkpoint_due {
                self.state.elapsed_secs += clock.elapsed().as_secs_f64();
                self.save()?;
                clock = Instant::now();
                on_event(&TrainEvent::Checkpoint { step: done });
            }
        }
        self.state.elapsed_secs += clock.elapsed().as_secs_f64();
        let finished = self.state.step >= config.steps;
        // A stopped run saves before it evaluates: a scheduler's grace period after SIGTERM
        // may be short.
        if !finished {
            self.flush(&mut pending, None, on_event)?;
            self.save()?;
            on_event(&TrainEvent::Checkpoint {
                step: self.state.step,
            });
        }
        let valid = self.model.valid();
        let inner_device = self.device;
        let train_loss = evaluate(&valid, &self.data.train, inner_device).unwrap_or(f64::NAN);
        let dev_loss = evaluate(&valid, &self.data.dev, inner_device);
        if finished {
            self.evaluate_ema();
        }
        // The last step's row of metrics.csv carries the final dev loss, as every
        // `eval_every`-th row carries its own.
        if finished {
            self.flush(&mut pending, dev_loss, on_event)?;
            if let Some(d) = dev_loss {
                self.keep_if_best(d)?;
            }
            self.state.finished = true;
            self.state.train_loss = Some(train_loss);
            self.state.dev_loss = dev_loss;
            self.save()?;
            on_event(&TrainEvent::Checkpoint {
                step: self.state.step,
            });
        }
        Ok(TrainSummary {
            steps_done: self.state.step,
            interrupted,
            finished,
            train_loss,
            dev_loss,
            ema_dev_loss: self.ema.as_ref().and_then(|(_, loss)| *loss),
            params,
            train_secs: self.state.elapsed_secs,
        })
    }

    /// Evaluates the moving average of the weights on dev, if the run keeps one.
    fn evaluate_ema(&mut self) {
        if let Some((ema, loss)) = &mut self.ema {
            *loss = evaluate(ema.model(), &self.data.dev, self.device);
        }
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
        let steps = pending.take()?;
        let last = steps.len();
        let ema_dev_loss = self.ema.as_ref().and_then(|(_, loss)| *loss);
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
            self.metrics
                .row(done, lr, loss, dev_loss, dev_loss.and(ema_dev_loss))?;
            on_event(&TrainEvent::Step {
                step: done,
                lr,
                loss,
            });
            if let Some(dev_loss) = dev_loss {
                on_event(&TrainEvent::Eval {
                    step: done,
                    dev_loss,
                    ema_dev_loss,
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
