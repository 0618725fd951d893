//! A sweep's results: one JSON line per run that ended (`ok`, `failed`, or `stopped` by
//! successive halving) and per rung a run reached (`rung`), appended to `results*.jsonl`
//! files in the sweep directory (one per shard), read back by every shard and by `report`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a run (or a phase of one) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Trained to the end.
    Ok,
    /// The training process failed (the record has its error).
    Failed,
    /// Stopped by successive halving at `stopped_at`.
    Stopped,
    /// Reached a successive-halving rung (the record has `rung`).
    Rung,
}

/// One line of `results*.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run's id (its directory under `runs/`).
    pub id: String,
    /// Its index in the expanded grid.
    pub index: usize,
    /// `axis=value` for each axis.
    pub label: String,
    /// The axis values, by config path.
    #[serde(default)]
    pub point: BTreeMap<String, Value>,
    /// How it ended.
    pub status: Status,
    /// The rung this record reports (part-way results of successive halving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rung: Option<u64>,
    /// The rung at which successive halving stopped the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u64>,
    /// Why the training failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Trainable parameters.
    #[serde(default)]
    pub params: Option<u64>,
    /// Full train-split loss.
    #[serde(default)]
    pub train_loss: Option<f64>,
    /// Full dev-split loss.
    #[serde(default)]
    pub dev_loss: Option<f64>,
    /// Steps done.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Seconds in training steps.
    #[serde(default)]
    pub train_secs: Option<f64>,
    /// Wall seconds of the run so far (all its phases).
    pub wall_secs: f64,
    /// Wall seconds of this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_secs: Option<f64>,
    /// The checkpoint directory.
    pub checkpoint: String,
    /// The corpus file (`None`: the built-in corpus).
    #[serde(default)]
    pub data: Option<String>,
    /// SHA-256 of the corpus's words, as `makemore` digests them (part of the run's id;
    /// absent in records from before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_sha256: Option<String>,
    /// With `keep_best`: the step of the checkpoint kept as best (`RUN/best/`), whose dev
    /// loss `dev_loss` then is; it ranks and is test-evaluated, not the last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_step: Option<u64>,
    /// With `keep_best`: the dev loss at the last step (`dev_loss` is the best one's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_dev_loss: Option<f64>,
    /// The run's full config.
    pub config: Value,
    /// The machine that trained this phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Record {
    /// A record of the run's end (not of a rung).
    pub fn is_final(&self) -> bool {
        self.rung.is_none()
    }

    /// Dev loss, infinite where there is none (a failed run ranks last).
    pub fn dev_or_inf(&self) -> f64 {
        self.dev_loss.unwrap_or(f64::INFINITY)
    }

    /// The checkpoint that ranks and is evaluated: `RUN/best` with `keep_best`, else the
    /// run directory.
    pub fn ranked_checkpoint(&self) -> PathBuf {
        let dir = PathBuf::from(&self.checkpoint);
        match self.best_step {
            Some(_) => dir.join("best"),
            None => dir,
        }
    }
}

#[cfg(test)]
impl Record {
    /// A record with only these fields set.
    pub fn for_test(id: &str, status: Status, rung: Option<u64>, dev: Option<f64>) -> Record {
        Record {
            id: id.into(),
            index: 0,
            label: String::new(),
            point: BTreeMap::new(),
            status,
            rung,
            stopped_at: None,
            error: None,
            params: None,
            train_loss: None,
            dev_loss: dev,
            steps: None,
            train_secs: None,
            wall_secs: 1.0,
            phase_secs: Some(1.0),
            checkpoint: String::new(),
            data: None,
            corpus_sha256: None,
            best_step: None,
            last_dev_loss: None,
            config: Value::Null,
            host: None,
        }
    }
}

/// Times a run is trained to a rung before its failure there counts as its result (it then
/// ranks last): a failure is retried at once by the process that trained it, and by any
/// process that finds it unsettled, so that every shard ranks the rung on the same records.
pub const RUNG_TRIES: usize = 2;

/// Every record of a sweep directory, in file order.
#[derive(Debug, Default)]
pub struct Records(pub Vec<Record>);

/// Which phase of a run: to a rung, or to the end.
pub type Phase = Option<u64>;

impl Records {
    /// Reads every `results*.jsonl` in `dir` (none yet: no records). A line that does not
    /// parse (one cut short by a crash) is reported and skipped: its run is then evaluated
    /// or resumed again from its checkpoint, never retrained from scratch.
    pub fn read(dir: &Path) -> Result<Self> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(Self(out));
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("results") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(line) {
                    Ok(r) => out.push(r),
                    Err(e) => eprintln!(
                        "warning: {}:{}: skipped, not a result record ({e})",
                        f.display(),
                        i + 1
                    ),
                }
            }
        }
        Ok(Self(out))
    }

    /// The last final record of each run, by id.
    pub fn finals(&self) -> BTreeMap<&str, &Record> {
        self.0
            .iter()
            .filter(|r| r.is_final())
            .map(|r| (r.id.as_str(), r))
            .collect()
    }

    /// The run's last final record.
    pub fn final_of(&self, id: &str) -> Option<&Record> {
        self.0.iter().rev().find(|r| r.id == id && r.is_final())
    }

    /// True when the run needs no more training: finished, or stopped by halving (a run
    /// stopped at a rung where it failed every try included).
    pub fn settled(&self, id: &str) -> bool {
        self.final_of(id).is_some_and(|r| {
            matches!(r.status, Status::Ok | Status::Stopped) || r.stopped_at.is_some()
        })
    }

    /// What a model-based search is told of a run: `None` while it has not ended (it is
    /// trained, or retried after a failure), `Some(loss)` once it has: its dev loss (at the
    /// rung where halving stopped it, or its kept best), or `None` for a run that failed
    /// [`RUNG_TRIES`] times (not told).
    pub fn search_outcome(&self, id: &str) -> Option<Option<f64>> {
        if self.settled(id) {
            return Some(self.final_of(id).and_then(|r| r.dev_loss));
        }
        (self.failures(id, None) >= RUNG_TRIES).then_some(None)
    }

    /// The run's last record of `phase` (a rung's, or a final one).
    pub fn of_phase(&self, id: &str, phase: Phase) -> Option<&Record> {
        self.0.iter().rev().find(|r| r.id == id && r.rung == phase)
    }

    /// Failures the run has recorded at `phase`.
    pub fn failures(&self, id: &str, phase: Phase) -> usize {
        self.0
            .iter()
            .filter(|r| r.id == id && r.rung == phase && r.status == Status::Failed)
            .count()
    }

    /// True when the run has a good result for `phase` (or is settled): a failure there is
    /// tried again.
    pub fn done(&self, id: &str, phase: Phase) -> bool {
        self.settled(id)
            || self
                .of_phase(id, phase)
                .is_some_and(|r| r.status != Status::Failed)
    }

    /// True when `rung`'s result of the run is known for good: a good result, the run
    /// settled, or [`RUNG_TRIES`] failures there. A run that failed fewer times has not
    /// reported: it is retried, and the rung waits for it.
    pub fn reported_at_rung(&self, id: &str, rung: u64) -> bool {
        self.done(id, Some(rung)) || self.failures(id, Some(rung)) >= RUNG_TRIES
    }

    /// The dev loss the run reported at `rung` (infinite when it failed there for good),
    /// if it reported.
    pub fn rung_loss(&self, id: &str, rung: u64) -> Option<f64> {
        if !self.reported_at_rung(id, rung) {
            return None;
        }
        self.0
            .iter()
            .rev()
            .find(|r| r.id == id && r.rung == Some(rung) && r.status != Status::Failed)
            .map_or(Some(f64::INFINITY), |r| Some(r.dev_or_inf()))
    }

    /// Wall seconds of the run's phases before `phase` (successive halving trains a run in
    /// phases; its wall time is theirs together).
    pub fn earlier_wall_secs(&self, id: &str, phase: Phase) -> f64 {
        self.0
            .iter()
            .filter(|r| r.id == id && r.status == Status::Rung)
            .filter(|r| match (r.rung, phase) {
                (Some(at), Some(p)) => at < p,
                (Some(_), None) => true,
                _ => false,
            })
            .map(|r| r.phase_secs.unwrap_or(r.wall_secs))
            .sum()
    }
}

/// Appends records to one results file, each line synced as it is written.
#[derive(Debug)]
pub struct Appender {
    file: Mutex<File>,
    path: PathBuf,
}

impl Appender {
    /// Opens (or creates) `path` for appending. A file whose last line was cut short (a
    /// crash, a full disk, a hand edit) gets a newline first, so that the next record starts
    /// a line of its own instead of being glued onto the torn one; the torn line is named
    /// once, here, and skipped by [`Records::read`] (its run is evaluated or resumed again).
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if let Some(line) =
            torn_tail(&mut file).with_context(|| format!("cannot read {}", path.display()))?
        {
            eprintln!(
                "warning: {}:{line}: the last line was cut short and is not a record; its run is evaluated or resumed again, and new records start on the next line",
                path.display()
            );
            writeln!(file)
                .and_then(|()| file.sync_data())
                .with_context(|| format!("cannot append to {}", path.display()))?;
        }
        Ok(Self {
            file: Mutex::new(file),
            path: path.to_path_buf(),
        })
    }

    /// Appends `record` as one line and syncs it.
    pub fn append(&self, record: &Record) -> Result<()> {
        let line = serde_json::to_string(record)?;
        let mut f = self.file.lock().map_err(|_| anyhow!("poisoned"))?;
        writeln!(f, "{line}")
            .and_then(|()| f.flush())
            .and_then(|()| f.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// The line number of `file`'s last line when it does not end with a newline.
fn torn_tail(file: &mut File) -> std::io::Result<Option<usize>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    Ok(Some(text.iter().filter(|&&b| b == b'\n').count() + 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    fn record(id: &str, status: Status, rung: Option<u64>, dev: Option<f64>) -> Record {
        Record::for_test(id, status, rung, dev)
    }

    #[test]
    fn phases_and_settlement() {
        let r = Records(vec![
            record("a", Status::Rung, Some(10), Some(2.0)),
            record("b", Status::Failed, Some(10), None),
            record("a", Status::Ok, None, Some(1.9)),
            record("c", Status::Failed, None, None),
        ]);
        assert!(r.settled("a") && !r.settled("b") && !r.settled("c"));
        // One failure at a rung is no result: the rung waits for the retry.
        assert!(!r.reported_at_rung("b", 10) && !r.done("b", Some(10)));
        assert_eq!(r.rung_loss("b", 10), None);
        assert_eq!(r.rung_loss("a", 10), Some(2.0));
        assert!(!r.done("c", None));
        assert_eq!(r.earlier_wall_secs("a", None), 1.0);
        assert_eq!(r.earlier_wall_secs("a", Some(10)), 0.0);
        assert_eq!(r.finals().len(), 2);
    }

    #[test]
    fn a_run_that_failed_then_succeeded_at_a_rung_ranks_by_its_result() {
        let mut r = Records(vec![record("b", Status::Failed, Some(10), None)]);
        r.0.push(record("b", Status::Rung, Some(10), Some(2.1)));
        assert!(r.reported_at_rung("b", 10));
        assert_eq!(r.rung_loss("b", 10), Some(2.1));
        // Failing every try is a result: the run ranks last.
        let r = Records(vec![
            record("c", Status::Failed, Some(10), None);
            RUNG_TRIES
        ]);
        assert!(r.reported_at_rung("c", 10));
        assert_eq!(r.rung_loss("c", 10), Some(f64::INFINITY));
    }

    #[test]
    fn a_torn_last_line_does_not_swallow_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let a = serde_json::to_string(&record("a", Status::Ok, None, Some(2.0))).unwrap();
        let b = serde_json::to_string(&record("b", Status::Ok, None, Some(2.1))).unwrap();
        // A finished record, then one cut short by a crash.
        std::fs::write(&path, format!("{a}\n{}", &b[..b.len() / 2])).unwrap();
        let appender = Appender::open(&path).unwrap();
        appender
            .append(&record("c", Status::Ok, None, Some(2.2)))
            .unwrap();
        drop(appender);
        let records = Records::read(dir.path()).unwrap();
        let ids: Vec<&str> = records.0.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["a", "c"],
            "the torn line is skipped, the next record kept"
        );
        // A file that ends with its newline is left as it is.
        let before = std::fs::read(&path).unwrap();
        drop(Appender::open(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn records_of_earlier_sweeps_still_read() {
        // A line of examples/sweeps/wavenet/results.jsonl, from before phase_secs.
        let line = r#"{"checkpoint":"runs/x","config":{"steps":1},"data":"../shared/data/names.txt","dev_loss":2.06,"id":"4360c3e17bcb","index":1,"label":"lr=0.08","params":339280,"point":{"schedule.lr":0.0828},"rung":40000,"status":"rung","steps":40000,"train_loss":1.95,"train_secs":248.9,"wall_secs":252.2}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(
            (r.status, r.rung, r.phase_secs),
            (Status::Rung, Some(40000), None)
        );
    }
}
