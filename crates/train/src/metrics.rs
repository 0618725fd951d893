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
        rows.push(parse_row(&f).ok_or_else(bad)?);
    }
    Ok(rows)
}

/// Checks that the first `bytes` of the file are the header and one row per step `1..=step`.
fn check_prefix(path: &Path, file: &mut File, bytes: u64, step: u64) -> Result<(), TrainError> {
    use std::io::Read;
    let mut prefix = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| Read::by_ref(file).take(bytes).read_to_end(&mut prefix))
        .map_err(|e| TrainError::io(path, e))?;
    let changed = |what: String| {
        TrainError::checkpoint(
            path,
            format!("{what}: the file was changed after the checkpoint; restore it, or start the run again"),
        )
    };
    let text = std::str::from_utf8(&prefix).map_err(|_| changed("is not text".into()))?;
    if bytes == 0 {
        return Ok(());
    }
    let mut lines = text.split_inclusive('\n');
    if lines.next() != Some(HEADER) {
        return Err(changed("does not start with its header".into()));
    }
    let mut expected = 1;
    for (i, line) in lines.enumerate() {
        let row = line
            .strip_suffix('\n')
            .and_then(|l| parse_row(l.split(',').collect::<Vec<_>>().as_slice()));
        match row {
            Some(r) if r.step == expected => expected += 1,
            _ => {
                return Err(changed(format!(
                    "line {} is not the row of step {expected}",
                    i + 2
                )))
            }
        }
    }
    if expected != step + 1 {
        return Err(changed(format!(
            "holds rows up to step {} where the checkpoint is at step {step}",
            expected - 1
        )));
    }
    Ok(())
}

fn parse_row(f: &[&str]) -> Option<MetricsRow> {
    let [step, lr, loss, dev] = f[..] else {
        return None;
    };
    Some(MetricsRow {
        step: step.parse().ok()?,
        lr: lr.parse().ok()?,
        loss: loss.parse().ok()?,
        dev_loss: match dev {
            "" => None,
            d => Some(d.parse().ok()?),
        },
    })
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

    /// Reopens a file for a resumed run at `step`, dropping whatever was written after
    /// `bytes` (rows of steps that the resumed run will redo). What stays must be the
    /// checkpoint's rows: one per step, `1..=step`; a file changed since is refused.
    pub fn resume(path: &Path, bytes: u64, step: u64) -> Result<Self, TrainError> {
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
        check_prefix(path, &mut file, bytes, step)?;
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
