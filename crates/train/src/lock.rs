//! One writer per run directory: an advisory lock held for the life of a run.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::TrainError;

/// The lock file in a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive advisory lock (`flock`) on a run directory's [`LOCK_FILE`], released when
/// dropped or when the process ends, however it ends. A second process that tries to take
/// it gets [`TrainError::InUse`] naming the holder, so two runs never write one directory.
///
/// On a file system without advisory locks the lock is not taken, and runs proceed as
/// before.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of the existing directory `dir` without waiting. Nothing in the
    /// directory changes but the lock file's creation; [`RunLock::claim`] then records
    /// this process as the holder.
    pub fn acquire(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                return Err(TrainError::InUse {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "holder unknown".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(fs::TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
        }
        Ok(Self { file, path })
    }

    /// Writes this process's id into the lock file, for the message a second process gets.
    pub fn claim(&mut self) -> Result<(), TrainError> {
        let io = |e| TrainError::io(&self.path, e);
        self.file.set_len(0).map_err(io)?;
        let mut f = &self.file;
        f.write_all(format!("pid {}\n", std::process::id()).as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))
    }
}
