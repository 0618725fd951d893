//! One writer per run directory: an advisory lock held for the life of a run.

use std::path::{Path, PathBuf};

use makemore_io::{Lock, LockError};

use crate::TrainError;

/// The lock file in a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive advisory lock (`flock`) on a run directory's [`LOCK_FILE`], released when
/// dropped or when the process ends, however it ends. A second process that tries to take
/// it gets [`TrainError::InUse`] naming the holder's host and pid, so two runs never write
/// one directory. A file system without advisory locks is an error
/// ([`TrainError::LockUnsupported`]), never a run without the lock.
#[derive(Debug)]
pub struct RunLock {
    lock: Lock,
    dir: PathBuf,
}

pub(crate) fn lock_error(dir: &Path, e: LockError) -> TrainError {
    match e {
        LockError::Held { path, holder } => TrainError::InUse {
            dir: dir.to_path_buf(),
            holder: holder.to_string(),
            lock_file: path,
        },
        LockError::Unsupported { path } => TrainError::LockUnsupported { path },
        LockError::Io { path, source } => TrainError::io(path, source),
    }
}

impl RunLock {
    /// Takes the lock of the existing directory `dir` without waiting. Nothing in the
    /// directory changes but the lock file's creation; [`RunLock::claim`] then records
    /// this process as the holder.
    pub fn acquire(dir: &Path) -> Result<Self, TrainError> {
        let lock = Lock::try_exclusive(&dir.join(LOCK_FILE)).map_err(|e| lock_error(dir, e))?;
        Ok(Self {
            lock,
            dir: dir.to_path_buf(),
        })
    }

    /// Writes this process's host, pid and start time into the lock file, for the message
    /// a second process gets.
    pub fn claim(&mut self) -> Result<(), TrainError> {
        self.lock
            .claim()
            .map_err(|e| TrainError::io(self.lock.path(), e))
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
