//! Running: a pool of workers, each training one run at a time as its own `makemore train`
//! process, and recording how it ended.
//!
//! A worker takes a run's claim (`claims/ID.lock`) before it trains it and holds it until
//! the run's record is written, so that two sweep processes over one directory (shards,
//! a requeued task, a second terminal) never train the same run, and a run whose record
//! appeared meanwhile is skipped.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use makemore_io::{Lock, LockError, StopSignal};
use serde::Deserialize;

use super::plan::{Plan, Run};
use super::records::{Appender, Phase, Record, Records, Status};
use crate::makemore::{self, RunDir, RunState};

/// What a worker pool shares.
pub struct Pool<'a> {
    /// Runs, shards and the sweep directory.
    pub plan: &'a Plan,
    /// The `makemore` binary.
    pub bin: &'a Path,
    /// Runs at a time.
    pub jobs: usize,
    /// Set by SIGINT, SIGTERM or SIGUSR1: no new runs start, running ones save and stop.
    pub stop: &'a StopSignal,
    /// This process's results file.
    pub results: &'a Appender,
}

/// How many runs a call of [`Pool::train`] trained, how many of them failed, and how many it
/// left to another process that had them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Runs that reported (failures included).
    pub trained: usize,
    /// Of those, the failed ones.
    pub failed: usize,
    /// Runs another process was training.
    pub busy: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.trained += o.trained;
        self.failed += o.failed;
        self.busy += o.busy;
    }
}

/// What `makemore train --json` prints.
#[derive(Debug, Clone, Deserialize)]
struct TrainSummary {
    params: u64,
    steps: u64,
    interrupted: bool,
    train_loss: Option<f64>,
    dev_loss: Option<f64>,
    train_secs: f64,
}

enum Outcome {
    Done(TrainSummary),
    Failed(String),
    /// Stopped by a signal, with its checkpoint: no record, the next start resumes it.
    Interrupted,
    /// Another process trains it.
    Busy(String),
}

struct Progress {
    reported: usize,
    tally: Tally,
    todo: usize,
    started: Instant,
}

impl Pool<'_> {
    /// Trains `todo` to the rung `phase` (or to the end), `jobs` at a time.
    pub fn train(&self, todo: Vec<&Run>, phase: Phase) -> Result<Tally> {
        if todo.is_empty() || self.stop.requested() {
            return Ok(Tally::default());
        }
        let n = todo.len();
        let jobs = self.jobs.min(n);
        if let Some(rung) = phase {
            eprintln!(
                "rung {rung}: training {} to step {rung}",
                super::plan::runs(n)
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = (cores / jobs).max(1);
        let queue = Mutex::new(todo.into_iter().collect::<VecDeque<_>>());
        let progress = Mutex::new(Progress {
            reported: 0,
            tally: Tally::default(),
            todo: n,
            started: Instant::now(),
        });
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..jobs)
                .map(|_| s.spawn(|| self.worker(&queue, &progress, phase, threads)))
                .collect();
            for w in workers {
                w.join().map_err(|_| anyhow!("a sweep worker panicked"))??;
            }
            Ok::<(), anyhow::Error>(())
        })?;
        let p = progress.lock().map_err(|_| anyhow!("poisoned"))?;
        Ok(p.tally)
    }

    fn worker(
        &self,
        queue: &Mutex<VecDeque<&Run>>,
        progress: &Mutex<Progress>,
        phase: Phase,
        threads: usize,
    ) -> Result<()> {
        let plan = self.plan;
        loop {
            if self.stop.requested() {
                return Ok(());
            }
            let Some(run) = queue.lock().map_err(|_| anyhow!("poisoned"))?.pop_front() else {
                return Ok(());
            };
            let mut claim = match Lock::try_exclusive(&plan.claim_path(run.id())) {
                Ok(claim) => claim,
                Err(LockError::Held { .. }) => {
                    progress.lock().map_err(|_| anyhow!("poisoned"))?.tally.busy += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            claim.claim()?;
            // Under the claim: another process may have finished this phase meanwhile.
            let records = Records::read(&plan.out)?;
            if records.done(run.id(), phase) {
                continue;
            }
            let started = Instant::now();
            let outcome = self.run_one(run, phase, threads);
            let phase_secs = started.elapsed().as_secs_f64();
            let (status, summary, error) = match outcome {
                Outcome::Interrupted => {
                    eprintln!(
                        "  {} {}: interrupted, checkpoint kept",
                        run.id(),
                        run.spec.label()
                    );
                    continue;
                }
                Outcome::Busy(who) => {
                    eprintln!("  {} {}: {who}; left to it", run.id(), run.spec.label());
                    progress.lock().map_err(|_| anyhow!("poisoned"))?.tally.busy += 1;
                    continue;
                }
                Outcome::Done(s) => (
                    if phase.is_some() {
                        Status::Rung
                    } else {
                        Status::Ok
                    },
                    Some(s),
                    None,
                ),
                Outcome::Failed(e) => (Status::Failed, None, Some(e)),
            };
            let wall = records.earlier_wall_secs(run.id(), phase) + phase_secs;
            // With keep_best the run ranks by the save it keeps, not by its last step.
            let best = summary
                .as_ref()
                .and_then(|_| makemore::run_state(&plan.run_dir(run.id())))
                .and_then(|s| s.best);
            let last_dev = summary.as_ref().and_then(|s| s.dev_loss);
            let record = Record {
                id: run.id().to_string(),
                index: run.index,
                label: run.spec.label(),
                point: run.spec.point.clone(),
                status,
                rung: phase,
                stopped_at: None,
                error,
                params: summary.as_ref().map(|s| s.params),
                train_loss: summary.as_ref().and_then(|s| s.train_loss),
                dev_loss: best.map(|b| b.dev_loss).or(last_dev),
                steps: summary.as_ref().map(|s| s.steps),
                train_secs: summary.as_ref().map(|s| s.train_secs),
                wall_secs: wall,
                phase_secs: Some(phase_secs),
                checkpoint: plan.run_dir(run.id()).display().to_string(),
                data: plan.data.as_ref().map(|d| d.display().to_string()),
                corpus_sha256: Some(plan.corpus_sha256.clone()),
                best_step: best.map(|b| b.step),
                last_dev_loss: best.and(last_dev),
                config: run.spec.config.clone(),
                host: Some(makemore_io::hostname()),
            };
            self.results.append(&record)?;
            drop(claim);
            let mut p = progress.lock().map_err(|_| anyhow!("poisoned"))?;
            p.reported += 1;
            p.tally.trained += 1;
            let line = match &record.error {
                None => format!(
                    "{}dev {:.4}{}  train {:.4}  {} params",
                    phase.map(|r| format!("at step {r}: ")).unwrap_or_default(),
                    record.dev_loss.unwrap_or(f64::NAN),
                    record
                        .best_step
                        .map(|s| format!(" (best, step {s})"))
                        .unwrap_or_default(),
                    record.train_loss.unwrap_or(f64::NAN),
                    record.params.unwrap_or(0)
                ),
                Some(e) => {
                    p.tally.failed += 1;
                    format!("FAILED: {e}")
                }
            };
            let elapsed = p.started.elapsed().as_secs_f64();
            let eta = elapsed / p.reported as f64 * p.todo.saturating_sub(p.reported) as f64;
            eprintln!(
                "[{}/{}] {} {}: {line} ({wall:.0} s; ETA {eta:.0} s)",
                p.reported,
                p.todo,
                run.id(),
                run.spec.label()
            );
        }
    }

    /// Trains (or resumes, or evaluates a finished) run to `phase` in its own process.
    fn run_one(&self, run: &Run, phase: Phase, threads: usize) -> Outcome {
        let plan = self.plan;
        let dir = plan.run_dir(run.id());
        let mut cmd = Command::new(self.bin);
        cmd.arg("train");
        match makemore::run_dir(&dir) {
            RunDir::Damaged(why) => {
                return Outcome::Failed(format!(
                    "{why}; the run is left alone: repair its state.json, or remove {} to train it again",
                    dir.display()
                ))
            }
            // Finished before its record was written: evaluate instead of retraining.
            RunDir::Finished(state) => return self.finished_summary(&dir, &state),
            RunDir::Unfinished(_) => {
                cmd.arg("--resume").arg(&dir);
            }
            // Never --force: a directory without a checkpoint has nothing to lose, and one
            // with a checkpoint is resumed, so no run's work is ever deleted.
            RunDir::Fresh => {
                cmd.arg("--config")
                    .arg(plan.config_path(run.id()))
                    .arg("--out")
                    .arg(&dir);
            }
        }
        if let Some(d) = &plan.data {
            cmd.arg("--data").arg(d);
        }
        if let Some(step) = phase {
            cmd.args(["--until", &step.to_string()]);
        }
        cmd.args([
            "--json",
            "-q",
            "--samples",
            "0",
            "--threads",
            &threads.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let output = match cmd.spawn() {
            Ok(child) => wait_passing_on_stop(child, self.stop),
            Err(e) => return Outcome::Failed(format!("cannot start {}: {e}", self.bin.display())),
        };
        let o = match output {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("lost the training process: {e}")),
        };
        let stderr = String::from_utf8_lossy(&o.stderr);
        if o.status.success() {
            return match serde_json::from_slice::<TrainSummary>(&o.stdout) {
                Ok(s) if s.interrupted => Outcome::Interrupted,
                Ok(s) => Outcome::Done(s),
                Err(e) => Outcome::Failed(format!("unreadable summary: {e}")),
            };
        }
        // 128 + SIGINT, SIGUSR1, SIGTERM: stopped by a signal after saving.
        if self.stop.requested() || matches!(o.status.code(), Some(130 | 138 | 143)) {
            return Outcome::Interrupted;
        }
        let last = stderr
            .lines()
            .rfind(|l| l.starts_with("error:"))
            .or_else(|| stderr.lines().last())
            .unwrap_or("no error message")
            .trim_start_matches("error: ")
            .to_string();
        if last.contains("is in use by another makemore process") {
            return Outcome::Busy(last);
        }
        let code = o
            .status
            .code()
            .map_or("killed by a signal".to_string(), |c| {
                format!("exit code {c}")
            });
        Outcome::Failed(format!("{last} ({code})"))
    }

    fn finished_summary(&self, dir: &Path, state: &RunState) -> Outcome {
        let eval = match makemore::eval(self.bin, dir, self.plan.data.as_deref(), &["train", "dev"])
        {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(format!("{e:#}")),
        };
        Outcome::Done(TrainSummary {
            params: eval["params"].as_u64().unwrap_or(0),
            steps: state.step,
            interrupted: false,
            train_loss: eval["train"]["loss"].as_f64(),
            dev_loss: eval["dev"]["loss"].as_f64(),
            train_secs: state.elapsed_secs,
        })
    }
}

/// Waits for a training process, passing a stop on to it as SIGTERM. A signal from a
/// terminal (Ctrl-C reaches the whole process group) or from `scancel` (every process of
/// the job) reaches the run too; one sent to the sweep alone (`kill PID`, Slurm's
/// `--signal=B:…`) would not, and the run would lose its steps since its last checkpoint.
fn wait_passing_on_stop(child: Child, stop: &StopSignal) -> std::io::Result<Output> {
    let pid = child.id();
    std::thread::scope(|s| {
        let waiter = s.spawn(move || child.wait_with_output());
        let mut passed_on = false;
        while !waiter.is_finished() {
            if !passed_on && stop.requested() {
                terminate(pid);
                passed_on = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        waiter
            .join()
            .map_err(|_| std::io::Error::other("the waiting thread panicked"))?
    })
}

/// Sends SIGTERM to `pid` (a child that has not been waited for, so the pid is still its).
fn terminate(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    #[cfg(not(unix))]
    let _ = pid;
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;
    use crate::sweep::plan::write_script;

    /// A stand-in for `makemore` that logs its arguments and reports a finished run.
    fn fake_makemore(dir: &Path) -> std::path::PathBuf {
        let bin = dir.join("makemore");
        let log = dir.join("calls.txt");
        write_script(
            &bin,
            &format!(
                "#!/bin/sh\necho \"$@\" >> {}\necho '{{\"params\":7,\"steps\":2,\"interrupted\":false,\"finished\":true,\"train_loss\":2.5,\"dev_loss\":2.6,\"train_secs\":0.1}}'\n",
                log.display()
            ),
        );
        bin
    }

    #[test]
    fn a_damaged_run_is_reported_and_left_alone_and_nothing_is_forced() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_makemore(dir.path());
        let plan = Plan::for_test(
            dir.path(),
            "[axes]\nsteps = [1, 2]\n",
            serde_json::json!({"steps": 1}),
        );
        let out = plan.out.clone();
        let (damaged, fresh) = (&plan.runs[0], &plan.runs[1]);
        let damaged_dir = plan.run_dir(damaged.id());
        std::fs::create_dir_all(&damaged_dir).unwrap();
        std::fs::write(damaged_dir.join("state.json"), b"{\"step\": 12, \"metr").unwrap();
        std::fs::write(damaged_dir.join("model.safetensors"), b"weights").unwrap();
        let stop = StopSignal::install().unwrap();
        let results = Appender::open(&plan.results_path()).unwrap();
        let pool = Pool {
            plan: &plan,
            bin: &bin,
            jobs: 2,
            stop: &stop,
            results: &results,
        };
        let tally = pool.train(plan.runs.iter().collect(), None).unwrap();
        assert_eq!((tally.trained, tally.failed), (2, 1));
        let records = Records::read(&out).unwrap();
        let bad = records.final_of(damaged.id()).unwrap();
        assert_eq!(bad.status, Status::Failed);
        let why = bad.error.as_deref().unwrap();
        assert!(
            why.contains("does not parse") && why.contains("left alone"),
            "{why}"
        );
        assert_eq!(records.final_of(fresh.id()).unwrap().status, Status::Ok);
        // The damaged run's files are as they were; the binary ran once, for the other run,
        // and was never asked to --force.
        assert_eq!(
            std::fs::read(damaged_dir.join("model.safetensors")).unwrap(),
            b"weights"
        );
        let calls = std::fs::read_to_string(dir.path().join("calls.txt")).unwrap();
        assert_eq!(calls.lines().count(), 1, "{calls}");
        assert!(
            calls.contains(fresh.id()) && !calls.contains("--force"),
            "{calls}"
        );
        // Recorded runs are not trained again.
        let again = pool.train(plan.runs.iter().collect(), None).unwrap();
        assert_eq!(again.trained, 1, "only the failed run is tried again");
    }

    /// With keep_best, a run's record ranks by the save in `best/` (what makemore's
    /// state.json says it kept), not by the last step's dev loss.
    #[test]
    fn a_run_that_keeps_its_best_ranks_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("makemore");
        write_script(
            &bin,
            r#"#!/bin/sh
out=""
while [ $# -gt 0 ]; do case "$1" in --out) out="$2"; shift;; esac; shift; done
mkdir -p "$out/best"
echo '{"step":20,"elapsed_secs":0.1,"finished":true,"best":{"step":12,"dev_loss":2.25}}' > "$out/state.json"
echo '{"params":7,"steps":20,"interrupted":false,"train_loss":2.0,"dev_loss":2.5,"train_secs":0.1}'
"#,
        );
        let plan = Plan::for_test(
            dir.path(),
            "[base]\nsteps = 20\n",
            serde_json::json!({"steps": 1}),
        );
        let out = plan.out.clone();
        let stop = StopSignal::install().unwrap();
        let results = Appender::open(&plan.results_path()).unwrap();
        let pool = Pool {
            plan: &plan,
            bin: &bin,
            jobs: 1,
            stop: &stop,
            results: &results,
        };
        pool.train(plan.runs.iter().collect(), None).unwrap();
        let records = Records::read(&out).unwrap();
        let r = records.final_of(plan.runs[0].id()).unwrap();
        assert_eq!(
            (r.dev_loss, r.best_step, r.last_dev_loss),
            (Some(2.25), Some(12), Some(2.5))
        );
        assert_eq!(r.corpus_sha256.as_deref(), Some("corpus"));
        assert!(r.ranked_checkpoint().ends_with("best"));
    }
}
