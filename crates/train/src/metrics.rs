use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::TrainError;

/// Appends one CSV row per step: `step,lr,loss,dev_loss` (dev_loss empty between
/// evaluations), which `pandas.read_csv` reads as is.
pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
}

const HEADER: &str = "step,lr,loss,dev_loss\n";

impl MetricsWriter {
    /// Starts a new file (truncating any old one).
    pub fn create(path: &Path) -> Result<Self, TrainError> {
        let file = File::create(path).map_err(|e| TrainError::io(path, e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            bytes: 0,
        };
        w.write(HEADER)?;
        Ok(w)
    }

    /// Reopens a file for a resumed run, dropping whatever was written after `bytes`
    /// (rows of steps that the resumed run will redo).
    pub fn resume(path: &Path, bytes: u64) -> Result<Self, TrainError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        let len = file.metadata().map_err(|e| TrainError::io(path, e))?.len();
        if len < bytes {
            return Err(TrainError::checkpoint(
                path,
                format!("is {len} bytes, shorter than the {bytes} the checkpoint recorded"),
            ));
        }
        file.set_len(bytes).map_err(|e| TrainError::io(path, e))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| TrainError::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            bytes,
        })
    }

    fn write(&mut self, s: &str) -> Result<(), TrainError> {
        self.out
            .write_all(s.as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))?;
        self.bytes += s.len() as u64;
        Ok(())
    }

    /// One row.
    pub fn row(
        &mut self,
        step: u64,
        lr: f64,
        loss: f32,
        dev_loss: Option<f64>,
    ) -> Result<(), TrainError> {
        let dev = dev_loss.map(|d| format!("{d:.6}")).unwrap_or_default();
        self.write(&format!("{step},{lr},{loss:.6},{dev}\n"))
    }

    /// Flushes to disk and returns the byte length, recorded with a checkpoint.
    pub fn sync(&mut self) -> Result<u64, TrainError> {
        self.out
            .flush()
            .map_err(|e| TrainError::io(&self.path, e))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| TrainError::io(&self.path, e))?;
        Ok(self.bytes)
    }
}
