//! Training, evaluation, checkpoints and sampling for makemore models.
//!
//! Everything here is generic over burn's backends: [`train`] needs an autodiff backend with
//! the model's fused operations ([`FusedAutodiff`](makemore_model::FusedAutodiff)),
//! evaluation and sampling any backend with them ([`FusedOps`](makemore_model::FusedOps));
//! every burn backend has them through the trait's default bodies. A run is described by a
//! [`TrainingConfig`] (model, optimiser, schedule, split) that is saved as JSON next to
//! every [`Checkpoint`]; a checkpoint directory holds everything needed to evaluate,
//! sample or resume the run exactly where it stopped.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use makemore_train::{prepare, train, TrainingConfig, TrainEvent};
//!
//! let words: Vec<String> = ["emma", "olivia", "ava", "isabella", "sophia", "mia"]
//!     .iter().map(|w| w.to_string()).collect();
//! let mut config = TrainingConfig::default();
//! config.steps = 20;
//! config.batch_size = 8;
//! let data = prepare(words, &config).unwrap();
//! let out = tempfile::tempdir().unwrap();
//! let stop = std::sync::atomic::AtomicBool::new(false);
//! let trained = train::<Autodiff<NdArray>>(&data, &config, out.path(), None, &Default::default(),
//!     &stop, &mut |_: &TrainEvent| {}).unwrap();
//! assert_eq!(trained.summary.steps_done, 20);
//! assert!(trained.summary.train_loss.is_finite());
//! // The trained model, ready to evaluate and sample.
//! let dev = makemore_train::evaluate_split(&trained.model, &data, makemore_data::SplitName::Dev, &Default::default());
//! assert!(dev.is_some_and(f64::is_finite));
//! ```

pub mod bench;
mod checkpoint;
mod config;
mod distill;
#[cfg(test)]
mod doc_tables;
mod ema;
mod ensemble;
mod error;
mod evaluate;
#[cfg(all(
    debug_assertions,
    not(test),
    any(feature = "ndarray", feature = "wgpu", feature = "cuda")
))]
#[doc(hidden)]
pub mod instances;
mod lock;
mod lr_find;
mod memory;
mod metrics;
mod optimizer;
mod overrides;
mod prepare;
mod resume;
mod sample;
mod schedule;
mod step;
mod trainer;

pub use checkpoint::{
    BestSoFar, Checkpoint, TrainingState, BEST_DIR, COMMIT_LOCK_FILE, CONFIG_FILE, EMA_DIR,
    JOURNAL_FILE, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, VOCAB_FILE,
};
pub use config::{EmaConfig, OptimizerKind, TrainingConfig};
pub use distill::{absolute_teacher, DistillConfig};
pub use ensemble::{score_ensemble, EnsembleLoss, EnsembleSpec, MemberSpec};
pub use error::TrainError;
pub use evaluate::{evaluate, evaluate_split, target_log_probs};
pub use lock::{RunLock, LOCK_FILE};
pub use lr_find::{lowest_smoothed_loss, lr_find, suggest_lr, LrFindPoint, LR_SUGGESTION_RULE};
pub use memory::{available_memory, check_memory, check_run_memory, MemoryNeed};
pub use metrics::{read_metrics, MetricsRow, MetricsWriter};
pub use overrides::{OptimizerChoice, ScheduleKind, TrainingOverrides};
pub use prepare::{corpus_digest, prepare, prepare_with_vocab, PreparedData};
pub use resume::check_resume;
pub use sample::{sample, sample_ensemble, Origin, Sample, SampleOptions};
pub use schedule::LrSchedule;
pub use trainer::{
    check_data_fits, sized_config, train, TrainEvent, TrainSummary, Trained, Trainer,
};
