//! `cargo xtask sweep GRID.toml`: trains every configuration of a grid as its own
//! `makemore train` process, several at a time, and appends one JSON line per run (and per
//! successive-halving rung) to a results file.
//!
//! Restartable: a run with a result line is skipped, a run with a checkpoint is resumed
//! (`makemore train --resume`), so interrupting a sweep (Ctrl-C, SIGTERM, a killed job) and
//! starting it again loses at most the steps since each run's last checkpoint (none after a
//! signal: the runs save where they are). A run that fails is recorded with its error and
//! the sweep goes on; the next start tries it again. A run directory whose `state.json`
//! cannot be read is reported and left alone.
//!
//! Modules: `grid` (grid files, random search, halving settings), `plan` (the grid's runs,
//! shards, the sweep directory's layout), `records` (results lines), `pool` (the workers and
//! a run's process), `halving` (rungs, waiting, decisions), `slurm` (the sbatch script),
//! `status` (`--status`).

mod grid;
mod halving;
mod plan;
mod pool;
mod records;
mod slurm;
mod status;
mod tpe;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use makemore_io::{Lock, LockError, StopSignal};

pub use plan::tidy_path;
pub use records::{Record, Records, Status};

use grid::Grid;
use halving::{Ended, Phases};
use plan::{Plan, Shard};
use pool::{Pool, Tally};
use records::Appender;

/// `cargo xtask sweep`: train a grid of configurations, restartable and shardable.
///
/// Runs every configuration of the grid (see examples/grids/ and docs/sweeps.md) with
/// `makemore train`, N at a time, and appends one JSON line per run to DIR/results.jsonl
/// (sharded: results-I-of-N.jsonl). Runs already recorded are skipped; half-finished runs
/// resume from their checkpoints. SIGINT, SIGTERM and SIGUSR1 make every run save its
/// checkpoint and the sweep exit with 128 + the signal.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The grid file.
    #[arg(value_name = "GRID.toml")]
    pub grid: PathBuf,
    /// Runs at a time (default: the number of CPU cores). Each run gets cores / N threads.
    #[arg(long, value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Train only the runs whose index in the grid is I modulo N (0 <= I < N), recording
    /// them in results-I-of-N.jsonl. Default inside a Slurm job array: from
    /// SLURM_ARRAY_TASK_ID, _MIN, _STEP and _COUNT.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// After this shard's runs, take on runs of other shards that no process is training,
    /// so that throttled, pending or requeued shards cannot hold a successive-halving rung
    /// up. Needs a sweep directory that every shard shares (what Slurm tasks have).
    #[arg(long)]
    pub steal: bool,
    /// At a rung, give up after this many seconds during which no process trained any of
    /// the runs still missing there (others' runs in training keep a shard waiting).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub wait_limit: u64,
    /// Sweep directory (default: `runs/sweep/<grid file stem>`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// makemore binary to use (default: build target/release/makemore).
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Print where every run stands (done, running, pending, failed) and the state of the
    /// sweep's Slurm jobs, instead of training.
    #[arg(long, conflicts_with_all = ["slurm", "shard", "steal"])]
    pub status: bool,
    /// Write the grid's sbatch array script into DIR/slurm/ (with copies of the binaries in
    /// DIR/bin/, so nothing is built on compute nodes) and submit it with sbatch; prints
    /// the job id on its last line.
    #[arg(long)]
    pub slurm: bool,
    /// Array tasks for --slurm (default: one per run of the grid).
    #[arg(long, value_name = "N", requires = "slurm")]
    pub shards: Option<NonZeroUsize>,
    /// With --slurm: at most K array tasks at once (the array's %K).
    #[arg(long, value_name = "K", requires = "slurm")]
    pub throttle: Option<NonZeroUsize>,
    /// With --slurm: an argument for sbatch, such as --sbatch-arg=--time=04:00:00 or
    /// --sbatch-arg=--cpus-per-task=4 (repeatable).
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        requires = "slurm"
    )]
    pub sbatch_args: Vec<String>,
    /// With --slurm: write the script and print the sbatch command, without submitting.
    #[arg(long, requires = "slurm")]
    pub no_submit: bool,
}

/// Trains `runs` (the grid's, or one TPE generation) through every rung. A TPE generation is
/// told only once every run in it has ended: this process retries its own failures at once
/// (up to [`RUNG_TRIES`](records::RUNG_TRIES) tries), and waits for other shards' runs.
fn run_generation(phases: &Phases<'_>, plan: &Plan, runs: &[plan::Run]) -> Result<Ended> {
    let halving = plan.grid.halving.as_ref();
    let mut tally = Tally::default();
    for _ in 0..records::RUNG_TRIES {
        match phases.run(halving, runs)? {
            Ended::Stopped(t) => {
                tally += t;
                return Ok(Ended::Stopped(tally));
            }
            Ended::Done(t) => tally += t,
        }
        let records = Records::read(&plan.out)?;
        let retry = plan.is_tpe()
            && runs
                .iter()
                .any(|r| plan.owns(r) && records.search_outcome(r.id()).is_none());
        if !retry {
            break;
        }
    }
    if plan.is_tpe() {
        let alive: Vec<&plan::Run> = runs.iter().collect();
        if !phases.wait_for(&alive, None, &mut tally)? {
            return Ok(Ended::Stopped(tally));
        }
    }
    Ok(Ended::Done(tally))
}

/// Runs `cargo xtask sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    let grid = Grid::read(&args.grid)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .grid
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sweep");
        PathBuf::from("runs/sweep").join(stem)
    });
    let bin = crate::makemore::bin(args.bin.clone())?;
    let defaults = crate::makemore::default_config(&bin)?;
    if args.slurm {
        // The number of runs does not depend on the corpus; its digest is the tasks' to take.
        let runs = grid.run_count(&defaults)?;
        return slurm::submit(&slurm::Submission {
            grid: &args.grid,
            out: &out,
            bin: &bin,
            shards: args.shards.map_or(runs, NonZeroUsize::get).min(runs).max(1),
            throttle: args.throttle.map(NonZeroUsize::get),
            jobs: args.jobs.map(NonZeroUsize::get),
            sbatch_args: &args.sbatch_args,
            no_submit: args.no_submit,
        });
    }
    let shard = match args.shard {
        Some(s) => Some(s),
        None => Shard::from_slurm(|name| std::env::var(name).ok())?,
    };
    let plan = Plan::new(&args.grid, grid, &defaults, &out, shard, |data| {
        crate::makemore::corpus_sha256(&bin, data)
    })?;
    if args.status {
        return status::print(&plan);
    }
    slurm::announce_task();
    sweep(plan, &bin, &args)
}

fn sweep(mut plan: Plan, bin: &Path, args: &SweepArgs) -> Result<()> {
    plan.write_configs()?;
    let results_path = plan.results_path();
    // One process per results file (shards have their own).
    let lock_path = results_path.with_extension("jsonl.lock");
    let mut lock = Lock::try_exclusive(&lock_path).map_err(|e| match e {
        LockError::Held { holder, .. } => anyhow::anyhow!(
            "another sweep ({holder}) is writing {}; wait for it to finish, or use another --out. If no such process runs any more, remove {}",
            results_path.display(),
            lock_path.display()
        ),
        e => e.into(),
    })?;
    lock.claim()?;
    let records = Records::read(&plan.out)?;
    plan.explain_other_corpora(&records);
    let mine: Vec<_> = plan.mine().collect();
    let settled = mine.iter().filter(|r| records.settled(r.id())).count();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let jobs = args.jobs.map_or(cores, NonZeroUsize::get);
    let to_propose = plan.to_propose();
    eprintln!(
        "sweep {}: {} in the grid{}{}, {} already done, {} to run, {} at a time -> {}",
        plan.grid_path.display(),
        plan::runs(plan.runs.len() + to_propose),
        if to_propose > 0 {
            format!(" ({} still to be proposed by TPE)", to_propose)
        } else {
            String::new()
        },
        plan.shard
            .map(|s| format!(", shard {s}"))
            .unwrap_or_default(),
        settled,
        mine.len() - settled,
        jobs.min((mine.len() - settled).max(1)),
        results_path.display()
    );
    let everything_settled = plan.runs.iter().all(|r| records.settled(r.id()));
    if settled == mine.len() && (!args.steal || everything_settled) && to_propose == 0 {
        eprintln!(
            "nothing to do; `cargo xtask report {}` renders the results",
            plan.out.display()
        );
        return Ok(());
    }
    let stop = StopSignal::install().context("cannot install the signal handlers")?;
    let results = Appender::open(&results_path)?;
    let started = Instant::now();
    let mut tally = Tally::default();
    // The grid's runs at once; a TPE search's generation by generation, each proposed from
    // the records of every run before it.
    let mut from = 0;
    let ended = loop {
        let pool = Pool {
            plan: &plan,
            bin,
            jobs,
            stop: &stop,
            results: &results,
        };
        let phases = Phases {
            pool: &pool,
            steal: args.steal,
            wait_limit: Duration::from_secs(args.wait_limit),
        };
        let generation = &plan.runs[from..];
        match run_generation(&phases, &plan, generation)? {
            Ended::Stopped(t) => {
                tally += t;
                break Ended::Stopped(tally);
            }
            Ended::Done(t) => tally += t,
        }
        if !plan.is_tpe() {
            break Ended::Done(tally);
        }
        from = plan.runs.len();
        let added = plan.propose(&Records::read(&plan.out)?)?;
        if added == 0 {
            break Ended::Done(tally);
        }
        plan.write_configs()?;
        eprintln!(
            "TPE: {} proposed from the results of {}",
            plan::runs(added),
            plan::runs(from)
        );
    };
    match ended {
        Ended::Done(t) => {
            eprintln!(
                "sweep finished: {} trainings (rungs included), {} failed, in {:.0} s; `cargo xtask report {}` renders the results",
                t.trained,
                t.failed,
                started.elapsed().as_secs_f64(),
                plan.out.display()
            );
            Ok(())
        }
        Ended::Stopped(t) => {
            eprintln!(
                "interrupted by {} after {} trainings; the runs kept their checkpoints: run the same command again to continue",
                stop.name().unwrap_or_else(|| "a signal".into()),
                t.trained
            );
            slurm::requeue_after_warning(stop.signal())?;
            std::process::exit(i32::from(stop.exit_code().unwrap_or(130)));
        }
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;
    use plan::write_script;

    /// A stand-in for `makemore train` whose dev loss is the config's `lr`.
    fn fake_makemore(dir: &Path) -> PathBuf {
        let bin = dir.join("makemore");
        write_script(
            &bin,
            r#"#!/bin/sh
cfg=""; until=""
while [ $# -gt 0 ]; do case "$1" in --config) cfg="$2"; shift;; --until) until="$2"; shift;; esac; shift; done
lr=$(tr -d ' \n' < "$cfg" | sed 's/.*"lr":\([^,}]*\).*/\1/')
echo "{\"params\":7,\"steps\":${until:-200},\"interrupted\":false,\"train_loss\":1.0,\"dev_loss\":$lr,\"train_secs\":0.1}"
"#,
        );
        bin
    }

    const GRID: &str = "[search]\nmethod = \"tpe\"\nruns = 10\nseed = 3\nstartup = 4\nbatch = 3\nranges.lr = { log_uniform = [0.001, 1.0] }\n";

    /// A TPE sweep trains its generations one after the other, two at a time, and its
    /// proposals are a function of its records: a restart after a kill -9 (here: the last
    /// generation's records gone) proposes the same runs again.
    #[test]
    fn a_tpe_sweep_trains_every_generation_and_a_restart_proposes_the_same_runs() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_makemore(dir.path());
        let defaults = serde_json::json!({"steps": 200, "lr": 0});
        let plan = Plan::for_test(dir.path(), GRID, defaults.clone());
        assert_eq!((plan.runs.len(), plan.to_propose()), (4, 6));
        let out = plan.out.clone();
        let args = SweepArgs {
            grid: dir.path().join("g.toml"),
            jobs: NonZeroUsize::new(2),
            shard: None,
            steal: false,
            wait_limit: 5,
            out: Some(out.clone()),
            bin: None,
            status: false,
            slurm: false,
            shards: None,
            throttle: None,
            sbatch_args: Vec::new(),
            no_submit: false,
        };
        sweep(plan, &bin, &args).unwrap();
        let records = Records::read(&out).unwrap();
        let mut ids: Vec<(usize, String)> = records
            .finals()
            .values()
            .map(|r| {
                assert_eq!(r.status, Status::Ok);
                (r.index, r.id.clone())
            })
            .collect();
        ids.sort();
        assert_eq!(ids.len(), 10);
        // The proposals found better runs than the random start (the loss is lr itself).
        let lr = |r: &Record| r.config["lr"].as_f64().unwrap();
        let mut by_index: Vec<&Record> = records.finals().into_values().collect();
        by_index.sort_by_key(|r| r.index);
        let best = |rs: &[&Record]| rs.iter().map(|r| lr(r)).fold(f64::INFINITY, f64::min);
        assert!(
            best(&by_index[4..]) < best(&by_index[..4]),
            "{:?}",
            by_index.iter().map(|r| lr(r)).collect::<Vec<_>>()
        );
        // The same records give the same plan.
        let again = Plan::for_test(dir.path(), GRID, defaults.clone());
        let planned: Vec<(usize, String)> = again
            .runs
            .iter()
            .map(|r| (r.index, r.id().to_string()))
            .collect();
        assert_eq!(planned, ids);
        // Without the last generation's records, the same last generation is proposed.
        let results = out.join("results.jsonl");
        let text = std::fs::read_to_string(&results).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| serde_json::from_str::<Record>(l).unwrap().index < 7)
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&results, kept).unwrap();
        let restarted = Plan::for_test(dir.path(), GRID, defaults);
        let planned: Vec<(usize, String)> = restarted
            .runs
            .iter()
            .map(|r| (r.index, r.id().to_string()))
            .collect();
        assert_eq!(planned, ids);
    }
}
