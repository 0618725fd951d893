use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong while training, evaluating, sampling or handling checkpoints.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A config value that cannot work; names the field.
    #[error("invalid config: {0}")]
    Config(String),
    /// A sampling or evaluation option that cannot work; names the option.
    #[error("{0}")]
    Option(String),
    /// Models that cannot be scored or sampled as one ensemble; says why.
    #[error("ensemble: {0}")]
    Ensemble(String),
    /// A data problem.
    #[error(transparent)]
    Data(#[from] makemore_data::DataError),
    /// A vocabulary problem.
    #[error(transparent)]
    Vocab(#[from] makemore_vocab::VocabError),
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A checkpoint that is missing, damaged or does not fit.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("loss became {loss} at step {step} (learning rate {lr}); try a smaller learning rate. The last good checkpoint (step {last_good_step}) is in {dir}")]
    NonFinite {
        /// The step.
        step: u64,
        /// The loss value.
        loss: f32,
        /// The learning rate at that step.
        lr: f64,
        /// The step of the last saved checkpoint.
        last_good_step: u64,
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// The run would need more memory than the machine has left.
    #[error("{what} would need {need}, but only {available} of memory are available; make the model, the batch or the block size smaller")]
    Memory {
        /// What was about to be allocated.
        what: String,
        /// How much, by part.
        need: String,
        /// What the machine (or the job's cgroup) has left.
        available: String,
    },
    /// The device (a GPU) failed: a transfer or a kernel.
    #[error("the device failed: {what}")]
    Device {
        /// What was being done, and the backend's error.
        what: String,
    },
    /// A fresh run was asked for in a directory that already holds one.
    #[error("{dir} already holds a run")]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
    /// Another process holds the run directory's lock.
    #[error("{dir} is in use by another makemore process ({holder}); wait for it to finish. If no such process runs there any more, the lock is stale (a node that crashed holds it until the file server notices): remove {lock_file}")]
    InUse {
        /// The run directory.
        dir: PathBuf,
        /// Who holds it, as the holder wrote it ("pid 1234 on node07 since …").
        holder: String,
        /// The lock file.
        lock_file: PathBuf,
    },
    /// The run directory's file system cannot lock files, so two writers could not be kept
    /// apart.
    #[error("cannot lock {path}: this file system does not support advisory locks (flock), so makemore cannot keep two processes from writing one run; put the run on a local disk, or on a shared file system with locking (NFS with its lock service)")]
    LockUnsupported {
        /// The lock file.
        path: PathBuf,
    },
    /// Resuming with data or settings that differ from the run's.
    #[error("cannot resume {path}: {reason}")]
    Resume {
        /// The checkpoint directory.
        path: PathBuf,
        /// What differs.
        reason: String,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
