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

/// One row of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricsRow {
    /// Steps done.
    pub step: u64,
    /// Learning rate of that step.
    pub lr: f64,
    /// Minibatch loss of that step.
    pub loss: f64,
    /// Full dev-split loss, on the steps where it was evaluated.
    pub dev_loss: Option<f64>,
}

/// Reads a `metrics.csv` that [`MetricsWriter`] wrote; an error names the file and line.
/// A last line without its newline is a row that a running (or killed) writer had not
/// finished, and is left out.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let mut rows = Vec::new();
    for (i, line) in complete.lines().enumerate().skip(1) {
        let bad = || {
            TrainError::checkpoint(
                path,
                format!(
                    "line {}: expected step,lr,loss,dev_loss, got {line:?}",
                    i + 1
                ),
            )
        };
        let f: Vec<&str> = line.split(',').collect();
        let [step, lr, loss, dev] = f[..] else {
            return Err(bad());
        };
        rows.push(MetricsRow {
            step: step.parse().map_err(|_| bad())?,
            lr: lr.parse().map_err(|_| bad())?,
            loss: loss.parse().map_err(|_| bad())?,
            dev_loss: match dev {
                "" => None,
                d => Some(d.parse().map_err(|_| bad())?),
            },
        });
    }
    Ok(rows)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_reads_what_the_writer_wrote() {
        let dir = std::env::temp_dir().join(format!("makemore-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.csv");
        let mut w = MetricsWriter::create(&path).unwrap();
        w.row(1, 0.1, 3.25, None).unwrap();
        w.row(2, 0.01, 2.5, Some(2.75)).unwrap();
        w.sync().unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(
            rows,
            [
                MetricsRow {
                    step: 1,
                    lr: 0.1,
                    loss: 3.25,
                    dev_loss: None
                },
                MetricsRow {
                    step: 2,
                    lr: 0.01,
                    loss: 2.5,
                    dev_loss: Some(2.75)
                },
            ]
        );
        // A row being written is not there yet; a finished bad row is an error.
        std::fs::write(&path, "step,lr,loss,dev_loss\n1,0.1,3.25,\n2,0.0").unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 1);
        std::fs::write(&path, "step,lr,loss,dev_loss\n1,0.1\n").unwrap();
        let e = read_metrics(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
