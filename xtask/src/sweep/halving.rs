//! Phases of a sweep: train to a rung (or to the end), help other shards, wait for every
//! run of the grid to report at a rung, and decide which runs go on (successive halving).
//!
//! Every shard computes the same decisions from the same records. A shard that has trained
//! its own runs to a rung takes on, with `--steal`, the runs of other shards that no process
//! is training (so a throttled, pending or requeued shard cannot hold a rung up), and
//! otherwise waits for them, as long as some process is training one; when none is for
//! `wait_limit`, it gives up with a message that says what is missing.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use makemore_io::Lock;

use super::grid::Halving;
use super::plan::{runs, Run};
use super::pool::{Pool, Tally};
use super::records::{Phase, Record, Records, Status};

/// How a sweep process ends.
pub enum Ended {
    /// Everything this process could do is done.
    Done(Tally),
    /// A signal asked it to stop; the runs saved their checkpoints.
    Stopped(Tally),
}

/// Options of the phases.
pub struct Phases<'a> {
    /// The worker pool.
    pub pool: &'a Pool<'a>,
    /// Take on other shards' idle runs.
    pub steal: bool,
    /// How long to wait at a rung while nobody trains the runs still missing there.
    pub wait_limit: Duration,
}

impl Phases<'_> {
    /// The whole sweep of `runs` (the grid's, or a generation of a TPE search): every rung
    /// of `halving` (if any), then the runs that go on, to the end.
    pub fn run(&self, halving: Option<&Halving>, runs: &[Run]) -> Result<Ended> {
        let mut alive: Vec<&Run> = runs.iter().collect();
        let mut tally = Tally::default();
        for &rung in halving.map_or(&[][..], |h| &h.rungs) {
            tally += self.phase(&alive, Some(rung))?;
            if self.pool.stop.requested() {
                return Ok(Ended::Stopped(tally));
            }
            if !self.wait_for(&alive, Some(rung), &mut tally)? {
                return Ok(Ended::Stopped(tally));
            }
            let keep = halving.map_or(alive.len(), |h| h.survivors(alive.len()));
            alive = self.decide(alive, rung, keep)?;
        }
        tally += self.phase(&alive, None)?;
        if self.pool.stop.requested() {
            return Ok(Ended::Stopped(tally));
        }
        Ok(Ended::Done(tally))
    }

    /// Trains this shard's runs of `alive` to `phase`, then (with `--steal`) any run of
    /// `alive` that has not reported and that no process trains. At a rung, a run that
    /// failed is retried at once, up to [`RUNG_TRIES`](super::records::RUNG_TRIES) times:
    /// its rung has not reported until then, so every shard ranks the rung on the same
    /// records.
    fn phase(&self, alive: &[&Run], phase: Phase) -> Result<Tally> {
        let plan = self.pool.plan;
        let mut tally = Tally::default();
        loop {
            let records = Records::read(&plan.out)?;
            // A run that failed here before is tried again.
            let mine: Vec<&Run> = alive
                .iter()
                .copied()
                .filter(|r| plan.owns(r))
                .filter(|r| match phase {
                    Some(rung) => !records.reported_at_rung(r.id(), rung),
                    None => !records.done(r.id(), None),
                })
                .collect();
            let t = self.pool.train(mine, phase)?;
            tally += t;
            // The final phase's failures wait for the next start; a rung's are retried now.
            if phase.is_none() || t.failed == 0 || self.pool.stop.requested() {
                break;
            }
        }
        while self.steal && !self.pool.stop.requested() {
            let records = Records::read(&plan.out)?;
            let idle: Vec<&Run> = alive
                .iter()
                .copied()
                .filter(|r| pending(&records, r.id(), phase) && self.idle(r))
                .collect();
            if idle.is_empty() {
                break;
            }
            eprintln!(
                "{}: taking on {} of other shards",
                phase_name(phase),
                runs(idle.len())
            );
            let t = self.pool.train(idle, phase)?;
            tally += t;
            if t.trained == 0 {
                break;
            }
        }
        Ok(tally)
    }

    /// True when no process holds the run: neither a sweep's claim nor a training's lock.
    fn idle(&self, run: &Run) -> bool {
        let plan = self.pool.plan;
        let held = |p: std::path::PathBuf| matches!(Lock::holder(&p), Ok(Some(_)));
        !held(plan.claim_path(run.id())) && !held(plan.run_dir(run.id()).join(".lock"))
    }

    /// Waits until every run of `alive` has reported at `phase`: at a rung, its result
    /// there; at the end (a TPE generation), its end ([`Records::search_outcome`]). Takes on
    /// idle ones with `--steal`; false when a stop came first.
    pub fn wait_for(&self, alive: &[&Run], phase: Phase, tally: &mut Tally) -> Result<bool> {
        let plan = self.pool.plan;
        let mut last_activity = Instant::now();
        let mut said = None;
        let name = match phase {
            Some(rung) => format!("rung {rung}"),
            None => "this TPE generation".into(),
        };
        loop {
            let records = Records::read(&plan.out)?;
            let missing: Vec<&Run> = alive
                .iter()
                .copied()
                .filter(|r| match phase {
                    Some(rung) => !records.reported_at_rung(r.id(), rung),
                    None => records.search_outcome(r.id()).is_none(),
                })
                .collect();
            if missing.is_empty() {
                return Ok(true);
            }
            let (busy, idle): (Vec<&Run>, Vec<&Run>) =
                missing.iter().copied().partition(|r| !self.idle(r));
            if self.steal && !idle.is_empty() {
                let t = self.phase(alive, phase)?;
                *tally += t;
                if t.trained > 0 {
                    continue;
                }
            }
            if !busy.is_empty() {
                last_activity = Instant::now();
            }
            let news = (missing.len(), busy.len());
            if said != Some(news) {
                eprintln!(
                    "{name}: waiting for {} of other shards to report ({} being trained, {} not started)",
                    runs(missing.len()),
                    busy.len(),
                    idle.len()
                );
                said = Some(news);
            }
            if last_activity.elapsed() > self.wait_limit {
                let ids: Vec<String> = idle
                    .iter()
                    .map(|r| format!("{} (index {})", r.id(), r.index))
                    .collect();
                bail!(
                    "{name}: no process has trained {} for {} s: {}. Start the shards that own them, or run every shard with --steal over a shared sweep directory (a throttled Slurm array needs it). This shard's runs are checkpointed; the same command continues",
                    if idle.len() == 1 { "this run" } else { "these runs" },
                    self.wait_limit.as_secs(),
                    ids.join(", ")
                );
            }
            for _ in 0..10 {
                if self.pool.stop.requested() {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Ranks `alive` by dev loss at `rung`, records the runs that stop there (once, whichever
    /// process gets there first), and returns the `keep` best.
    fn decide<'r>(&self, alive: Vec<&'r Run>, rung: u64, keep: usize) -> Result<Vec<&'r Run>> {
        let plan = self.pool.plan;
        let records = Records::read(&plan.out)?;
        let mut ranked: Vec<(&Run, f64)> = alive
            .into_iter()
            .map(|r| (r, records.rung_loss(r.id(), rung).unwrap_or(f64::INFINITY)))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.id().cmp(b.0.id())));
        {
            let _deciding = Lock::exclusive(&plan.out.join(".decisions.lock"))?;
            let records = Records::read(&plan.out)?;
            for (run, _) in &ranked[keep..] {
                if records.final_of(run.id()).is_some() {
                    continue;
                }
                if let Some(at) = records.of_phase(run.id(), Some(rung)) {
                    self.pool.results.append(&stopped(at, run, rung))?;
                }
            }
        }
        eprintln!(
            "rung {rung}: {keep} of {} go on (best dev {:.4})",
            runs(ranked.len()),
            ranked.first().map_or(f64::NAN, |r| r.1)
        );
        Ok(ranked.into_iter().take(keep).map(|(r, _)| r).collect())
    }
}

/// The record of a run stopped at `rung`, from its record there (a failure stays one).
fn stopped(at: &Record, run: &Run, rung: u64) -> Record {
    let mut r = at.clone();
    r.rung = None;
    r.index = run.index;
    r.stopped_at = Some(rung);
    if r.status == Status::Rung {
        r.status = Status::Stopped;
    }
    r
}

/// True when the run still owes `phase` a result: at a rung, until it has one or has failed
/// there [`RUNG_TRIES`](super::records::RUNG_TRIES) times; at the end, until any record of
/// its end.
fn pending(records: &Records, id: &str, phase: Phase) -> bool {
    match phase {
        Some(rung) => !records.reported_at_rung(id, rung),
        None => !records.settled(id) && records.of_phase(id, None).is_none(),
    }
}

fn phase_name(phase: Phase) -> String {
    match phase {
        Some(rung) => format!("rung {rung}"),
        None => "final phase".into(),
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;
    use crate::sweep::plan::{write_script, Plan};
    use crate::sweep::records::Appender;
    use makemore_io::StopSignal;
    use std::path::Path;

    /// A stand-in for `makemore train` that reports the dev loss in `loss-ID` and fails once
    /// for each `fail-ID` file (deleting it).
    fn fake_makemore(dir: &Path) -> std::path::PathBuf {
        let bin = dir.join("makemore");
        let d = dir.display();
        write_script(
            &bin,
            &format!(
                r#"#!/bin/sh
cfg=""; until=""
while [ $# -gt 0 ]; do case "$1" in --config) cfg="$2"; shift;; --until) until="$2"; shift;; esac; shift; done
id=$(basename "$cfg" .json)
echo "$id $until" >> {d}/calls.txt
if [ -e {d}/fail-$id ]; then rm {d}/fail-$id; echo "error: boom" >&2; exit 1; fi
echo "{{\"params\":7,\"steps\":${{until:-200}},\"interrupted\":false,\"train_loss\":1.0,\"dev_loss\":$(cat {d}/loss-$id),\"train_secs\":0.1}}"
"#
            ),
        );
        bin
    }

    /// The issue's case: a 4-run grid with rungs [50, 100] whose best run fails once at the
    /// first rung ends as if undisturbed (1 finished, 3 stopped), the best run finished.
    #[test]
    fn a_run_that_failed_once_at_a_rung_is_retried_before_the_rung_is_ranked() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_makemore(dir.path());
        let plan = Plan::for_test(
            dir.path(),
            "[axes]\nlr = [1, 2, 3, 4]\n[halving]\nrungs = [50, 100]\nkeep = 0.5\n",
            serde_json::json!({"steps": 200, "lr": 0}),
        );
        let out = plan.out.clone();
        let losses = [2.0, 2.1, 1.9, 2.2];
        for (run, loss) in plan.runs.iter().zip(losses) {
            std::fs::write(
                dir.path().join(format!("loss-{}", run.id())),
                loss.to_string(),
            )
            .unwrap();
        }
        let best = &plan.runs[2];
        std::fs::write(dir.path().join(format!("fail-{}", best.id())), "").unwrap();
        let stop = StopSignal::install().unwrap();
        let results = Appender::open(&plan.results_path()).unwrap();
        let pool = Pool {
            plan: &plan,
            bin: &bin,
            jobs: 2,
            stop: &stop,
            results: &results,
        };
        let phases = Phases {
            pool: &pool,
            steal: false,
            wait_limit: Duration::from_secs(5),
        };
        let Ended::Done(tally) = phases.run(plan.grid.halving.as_ref(), &plan.runs).unwrap() else {
            panic!("stopped");
        };
        assert_eq!(tally.failed, 1);
        let records = Records::read(&out).unwrap();
        let finals = records.finals();
        let count = |s: Status| finals.values().filter(|r| r.status == s).count();
        assert_eq!((count(Status::Ok), count(Status::Stopped)), (1, 3));
        assert_eq!(records.final_of(best.id()).unwrap().status, Status::Ok);
        // The same records give every later start (or another shard) the same decision.
        let again = phases.run(plan.grid.halving.as_ref(), &plan.runs).unwrap();
        assert!(matches!(again, Ended::Done(t) if t.trained == 0));
    }
}
