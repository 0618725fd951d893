use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::TrainError;

/// Appends one CSV row per step: `step,lr,loss,dev_loss` (dev_loss empty between
/// evaluations), which `pandas.read_csv` reads as is. A run that keeps a moving average of
/// its weights (`--ema`) has a fifth column, `ema_dev_loss`: the average's dev loss, on the
/// rows that have a `dev_loss`.
pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    ema: bool,
}

const HEADER: &str = "step,lr,loss,dev_loss\n";
const HEADER_EMA: &str = "step,lr,loss,dev_loss,ema_dev_loss\n";

/// The header of a file with (`true`) or without the moving average's column.
fn header(ema: bool) -> &'static str {
    if ema {
        HEADER_EMA
    } else {
        HEADER
    }
}

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
    /// Dev loss of the moving average of the weights, on those steps, in a run with `--ema`.
    pub ema_dev_loss: Option<f64>,
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
                    "line {}: expected step,lr,loss,dev_loss[,ema_dev_loss], got {line:?}",
                    i + 1
                ),
            )
        };
        let f: Vec<&str> = line.split(',').collect();
        rows.push(parse_row(&f).ok_or_else(bad)?);
    }
    Ok(rows)
}

/// Checks that the first `bytes` of the file are a header and one row per step `1..=step`,
/// and returns whether that header has the moving average's column (`None` for no bytes).
fn check_prefix(
    path: &Path,
    file: &mut File,
    bytes: u64,
    step: u64,
) -> Result<Option<bool>, TrainError> {
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
        return Ok(None);
    }
    let mut lines = text.split_inclusive('\n');
    let ema = match lines.next() {
        Some(HEADER) => false,
        Some(HEADER_EMA) => true,
        _ => return Err(changed("does not start with its header".into())),
    };
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
    Ok(Some(ema))
}

fn parse_row(f: &[&str]) -> Option<MetricsRow> {
    let optional = |v: &str| match v {
        "" => Some(None),
        v => v.parse().ok().map(Some),
    };
    let (step, lr, loss, dev, ema) = match f[..] {
        [step, lr, loss, dev] => (step, lr, loss, dev, ""),
        [step, lr, loss, dev, ema] => (step, lr, loss, dev, ema),
        _ => return None,
    };
    Some(MetricsRow {
        step: step.parse().ok()?,
        lr: lr.parse().ok()?,
        loss: loss.parse().ok()?,
        dev_loss: optional(dev)?,
        ema_dev_loss: optional(ema)?,
    })
}

impl MetricsWriter {
    /// Starts a new file (truncating any old one), with the moving average's column when
    /// `ema`.
    pub fn create(path: &Path, ema: bool) -> Result<Self, TrainError> {
        let file = File::create(path).map_err(|e| TrainError::io(path, e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            bytes: 0,
            ema,
        };
        w.write(header(ema))?;
        Ok(w)
    }

    /// Reopens a file for a resumed run at `step`, dropping whatever was written after
    /// `bytes` (rows of steps that the resumed run will redo). What stays must be the
    /// checkpoint's rows: one per step, `1..=step`; a file changed since is refused. The
    /// rows keep the columns of the file's header (a run with `--ema` started by a makemore
    /// from before the `ema_dev_loss` column goes on without it); `ema` says which columns
    /// an empty file gets.
    pub fn resume(path: &Path, bytes: u64, step: u64, ema: bool) -> Result<Self, TrainError> {
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
        let found = check_prefix(path, &mut file, bytes, step)?;
        file.set_len(bytes).map_err(|e| TrainError::io(path, e))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| TrainError::io(path, e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            bytes,
            ema: found.unwrap_or(ema),
        };
        if found.is_none() {
            w.write(header(ema))?;
        }
        Ok(w)
    }

    fn write(&mut self, s: &str) -> Result<(), TrainError> {
        self.out
            .write_all(s.as_bytes())
            .map_err(|e| TrainError::io(&self.path, e))?;
        self.bytes += s.len() as u64;
        Ok(())
    }

    /// One row; `ema_dev_loss` goes in the fifth column of a file that has it.
    pub fn row(
        &mut self,
        step: u64,
        lr: f64,
        loss: f32,
        dev_loss: Option<f64>,
        ema_dev_loss: Option<f64>,
    ) -> Result<(), TrainError> {
        let cell = |v: Option<f64>| v.map(|d| format!("{d:.6}")).unwrap_or_default();
        let dev = cell(dev_loss);
        if self.ema {
            let ema = cell(ema_dev_loss);
            self.write(&format!("{step},{lr},{loss:.6},{dev},{ema}\n"))
        } else {
            self.write(&format!("{step},{lr},{loss:.6},{dev}\n"))
        }
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
        let mut w = MetricsWriter::create(&path, false).unwrap();
        w.row(1, 0.1, 3.25, None, None).unwrap();
        w.row(2, 0.01, 2.5, Some(2.75), Some(2.5)).unwrap();
        w.sync().unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(
            rows,
            [
                MetricsRow {
                    step: 1,
                    lr: 0.1,
                    loss: 3.25,
                    dev_loss: None,
                    ema_dev_loss: None,
                },
                MetricsRow {
                    step: 2,
                    lr: 0.01,
                    loss: 2.5,
                    dev_loss: Some(2.75),
                    ema_dev_loss: None,
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

    /// With `--ema` the average's dev loss is a fifth column; a resume keeps the columns of
    /// the file it finds, so a run started without the column goes on without it.
    #[test]
    fn the_moving_average_has_its_own_column_and_a_resume_keeps_the_files_columns() {
        let dir = std::env::temp_dir().join(format!("makemore-metrics-ema-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("metrics.csv");
        let mut w = MetricsWriter::create(&path, true).unwrap();
        w.row(1, 0.1, 3.25, None, None).unwrap();
        w.row(2, 0.1, 3.0, Some(2.75), Some(2.625)).unwrap();
        let bytes = w.sync().unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "step,lr,loss,dev_loss,ema_dev_loss\n1,0.1,3.250000,,\n2,0.1,3.000000,2.750000,2.625000\n"
        );
        let mut w = MetricsWriter::resume(&path, bytes, 2, false).unwrap();
        w.row(3, 0.1, 2.5, Some(2.5), Some(2.25)).unwrap();
        w.sync().unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(rows[2].ema_dev_loss, Some(2.25));
        assert_eq!(rows[1].ema_dev_loss, Some(2.625));
        assert_eq!(rows[0].dev_loss, None);
        // A file of four columns (no average, or a makemore from before the column) stays so.
        std::fs::write(&path, "step,lr,loss,dev_loss\n1,0.1,3.25,\n").unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let mut w = MetricsWriter::resume(&path, len, 1, true).unwrap();
        w.row(2, 0.1, 3.0, Some(2.75), Some(2.5)).unwrap();
        w.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("\n2,0.1,3.000000,2.750000\n"), "{text}");
        assert_eq!(read_metrics(&path).unwrap()[1].ema_dev_loss, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
