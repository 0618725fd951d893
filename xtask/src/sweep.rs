//! `cargo xtask sweep GRID.toml [--jobs N] [--shard i/n] [--out DIR]`: runs every
//! configuration of a grid as a separate `makemore train` process, several at a time,
//! and appends one JSON line per run to a results file.
//!
//! Restartable: a run with a result line is skipped, a run with a checkpoint is resumed
//! (`makemore train --resume`), so interrupting a sweep (Ctrl-C, a killed job) and starting
//! it again loses at most the steps since each run's last checkpoint. A run that fails is
//! recorded with its error and the sweep goes on; it is retried on the next start.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::grid::{Grid, RunSpec};

/// Options of `cargo xtask sweep`.
struct SweepArgs {
    grid: PathBuf,
    jobs: usize,
    shard: Option<(usize, usize)>,
    out: Option<PathBuf>,
    bin: Option<PathBuf>,
}

const HELP: &str = "\
usage: cargo xtask sweep GRID.toml [--jobs N] [--shard I/N] [--out DIR] [--bin PATH]

Runs every configuration of the grid (see examples/grids/) with `makemore train`, N at a
time, and appends one JSON line per run to DIR/results.jsonl (sharded: results-I-of-N.jsonl).
Runs already recorded are skipped; half-finished runs are resumed from their checkpoints.

  --jobs N      runs at a time (default: the number of CPU cores)
  --shard I/N   run only the runs with index % N == I (0 <= I < N); default from
                SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT inside a Slurm job array
  --out DIR     sweep directory (default: runs/sweep/<grid file stem>)
  --bin PATH    makemore binary to use (default: build target/release/makemore)
";

fn parse(args: &[String]) -> Result<SweepArgs> {
    let mut grid = None;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut out = SweepArgs {
        grid: PathBuf::new(),
        jobs: cores,
        shard: None,
        out: None,
        bin: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| crate::option_value(&mut it, name, HELP);
        match a.as_str() {
            "--jobs" => {
                out.jobs = value("--jobs")?
                    .parse()
                    .context("--jobs must be a positive integer")?;
                if out.jobs == 0 {
                    bail!("--jobs must be at least 1");
                }
            }
            "--shard" => out.shard = Some(parse_shard(&value("--shard")?)?),
            "--out" => out.out = Some(value("--out")?.into()),
            "--bin" => out.bin = Some(value("--bin")?.into()),
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            s if s.starts_with('-') => bail!("unknown option {s:?}\n\n{HELP}"),
            s if grid.is_none() => grid = Some(PathBuf::from(s)),
            s => bail!("unexpected argument {s:?}\n\n{HELP}"),
        }
    }
    out.grid = grid.ok_or_else(|| anyhow!("which grid file?\n\n{HELP}"))?;
    if out.shard.is_none() {
        out.shard = slurm_shard()?;
    }
    Ok(out)
}

/// Parses `I/N`.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("--shard must look like I/N, got {s:?}"))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().with_context(|| format!("--shard {s:?}"))?,
        n.trim().parse().with_context(|| format!("--shard {s:?}"))?,
    );
    if n == 0 || i >= n {
        bail!("--shard I/N needs 0 <= I < N, got {s:?}");
    }
    Ok((i, n))
}

/// The shard of a Slurm job array task, if running in one.
fn slurm_shard() -> Result<Option<(usize, usize)>> {
    let (Ok(id), Ok(count)) = (
        std::env::var("SLURM_ARRAY_TASK_ID"),
        std::env::var("SLURM_ARRAY_TASK_COUNT"),
    ) else {
        return Ok(None);
    };
    let min = std::env::var("SLURM_ARRAY_TASK_MIN").unwrap_or_else(|_| "0".into());
    let parse = |name: &str, v: &str| -> Result<usize> {
        v.parse()
            .with_context(|| format!("{name}={v:?} is not a number"))
    };
    let (id, count, min) = (
        parse("SLURM_ARRAY_TASK_ID", &id)?,
        parse("SLURM_ARRAY_TASK_COUNT", &count)?,
        parse("SLURM_ARRAY_TASK_MIN", &min)?,
    );
    let shard = parse_shard(&format!("{}/{count}", id.saturating_sub(min)))?;
    eprintln!("Slurm job array: shard {}/{}", shard.0, shard.1);
    Ok(Some(shard))
}

/// Every record in `dir`'s `results*.jsonl` files, in file order: rung records (successive
/// halving's part-way results, with a `rung` field) and final ones.
pub fn read_records(dir: &Path) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
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
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            // A line cut short by a crash is skipped, not fatal: its run simply reruns.
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v["id"].is_string() => out.push(v),
                Ok(_) => eprintln!("warning: {}:{}: skipped (no id)", f.display(), i + 1),
                Err(e) => eprintln!("warning: {}:{}: skipped ({e})", f.display(), i + 1),
            }
        }
    }
    Ok(out)
}

/// The last final record of each run in `dir` (`ok`, `stopped` by successive halving, or
/// `failed`), by run id.
pub fn read_results(dir: &Path) -> Result<BTreeMap<String, Value>> {
    Ok(final_records(&read_records(dir)?))
}

/// The last final record of each run among `records` (see [`read_results`]).
pub fn final_records(records: &[Value]) -> BTreeMap<String, Value> {
    records
        .iter()
        .filter(|r| r.get("rung").is_none())
        .filter_map(|r| Some((r["id"].as_str()?.to_string(), r.clone())))
        .collect()
}

/// A run that needs no more training: finished, or stopped by successive halving.
fn settled(record: Option<&Value>) -> bool {
    record.is_some_and(|r| r["status"] == "ok" || r["status"] == "stopped")
}

/// Runs `cargo xtask sweep`.
pub fn run(args: &[String]) -> Result<()> {
    let args = parse(args)?;
    let grid = Grid::read(&args.grid)?;
    let stem = args
        .grid
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("sweep")
        .to_string();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/sweep").join(&stem));
    let bin = crate::makemore::bin(args.bin.clone())?;
    let data = grid.data.as_ref().map(|d| resolve_data(d, &args.grid));
    if let Some(d) = &data {
        if !d.exists() {
            bail!("grid data {} does not exist", d.display());
        }
    }

    let defaults = crate::makemore::default_config(&bin)?;
    let all = grid.expand(&defaults)?;
    let total_in_grid = all.len();
    let mine: Vec<(usize, RunSpec)> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| args.shard.is_none_or(|(s, n)| i % n == s))
        .collect();

    std::fs::create_dir_all(out.join("configs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let results_path = match args.shard {
        Some((i, n)) => out.join(format!("results-{i}-of-{n}.jsonl")),
        None => out.join("results.jsonl"),
    };
    let done = read_results(&out)?;
    let mut skipped = 0;
    for (_, spec) in &mine {
        if settled(done.get(&spec.id)) {
            skipped += 1;
            continue;
        }
        let cfg_path = out.join("configs").join(format!("{}.json", spec.id));
        std::fs::write(&cfg_path, serde_json::to_string_pretty(&spec.config)?)
            .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    }
    eprintln!(
        "sweep {}: {} runs in the grid{}, {} already done, {} to run, {} at a time -> {}",
        args.grid.display(),
        total_in_grid,
        args.shard
            .map(|(i, n)| format!(", shard {i}/{n}"))
            .unwrap_or_default(),
        skipped,
        mine.len() - skipped,
        args.jobs.min((mine.len() - skipped).max(1)),
        results_path.display()
    );
    if skipped == mine.len() {
        eprintln!(
            "nothing to do; `cargo xtask report {}` renders the results",
            out.display()
        );
        return Ok(());
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Ctrl-C reaches the runs too; they save a checkpoint and exit. We stop starting new ones.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let started = Instant::now();
    let results = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results_path)
        .with_context(|| format!("cannot open {}", results_path.display()))?;
    // One sweep per results file (shards have their own): a second one would train the same
    // runs in the same directories.
    match results.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another sweep is writing {}; wait for it to finish, or use another --out",
            results_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", results_path.display()))
        }
    }
    let phases = Phases {
        bin,
        data,
        out: out.clone(),
        results: Arc::new(Mutex::new(results)),
        jobs: args.jobs,
        stop: stop.clone(),
    };
    let mut mine: Vec<(usize, RunSpec)> = mine;
    let (mut done_runs, mut failed) = (0, 0);
    if let Some(halving) = &grid.halving {
        // Every shard computes the same decisions from everyone's rung records.
        let mut alive: Vec<(usize, RunSpec)> =
            grid.expand(&defaults)?.into_iter().enumerate().collect();
        for &rung in &halving.rungs {
            let records = read_records(&out)?;
            let final_ = final_records(&records);
            let todo: Vec<(usize, RunSpec)> = mine
                .iter()
                .filter(|(_, spec)| {
                    // A run that failed at this rung before is tried again.
                    !settled(final_.get(&spec.id))
                        && !rung_loss(&records, &spec.id, rung).is_some_and(f64::is_finite)
                })
                .cloned()
                .collect();
            let (d, f) = phases.run(todo, Some(rung))?;
            done_runs += d;
            failed += f;
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let losses = wait_for_rung(&out, &alive, rung, &stop)?;
            let Some(losses) = losses else { break };
            let mut ranked: Vec<((usize, RunSpec), f64)> = alive.into_iter().zip(losses).collect();
            ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0 .1.id.cmp(&b.0 .1.id)));
            let keep = halving.survivors(ranked.len());
            let records = read_records(&out)?;
            let final_ = final_records(&records);
            for ((index, spec), _) in &ranked[keep..] {
                let mine_too = mine.iter().any(|(_, m)| m.id == spec.id);
                if mine_too && !settled(final_.get(&spec.id)) {
                    if let Some(at) = rung_record(&records, &spec.id, rung) {
                        phases.stopped(*index, at, rung)?;
                    }
                }
            }
            eprintln!(
                "rung {rung}: {} of {} runs go on (best dev {:.4})",
                keep,
                ranked.len(),
                ranked.first().map_or(f64::NAN, |r| r.1)
            );
            alive = ranked.into_iter().take(keep).map(|(run, _)| run).collect();
            mine.retain(|(_, spec)| alive.iter().any(|(_, a)| a.id == spec.id));
        }
    }
    if !stop.load(Ordering::SeqCst) {
        let final_ = read_results(&out)?;
        let todo: Vec<(usize, RunSpec)> = mine
            .into_iter()
            .filter(|(_, spec)| !settled(final_.get(&spec.id)))
            .collect();
        let (d, f) = phases.run(todo, None)?;
        done_runs += d;
        failed += f;
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!("interrupted after {done_runs} runs; run the same command again to continue");
        std::process::exit(130);
    }
    eprintln!(
        "sweep finished: {done_runs} trainings (rungs included), {failed} failed, in {:.0} s; `cargo xtask report {}` renders the results",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// The dev loss a run reported at `rung` (infinite when it failed there), if it did.
fn rung_loss(records: &[Value], id: &str, rung: u64) -> Option<f64> {
    rung_record(records, id, rung).map(|r| r["dev_loss"].as_f64().unwrap_or(f64::INFINITY))
}

/// The last record a run wrote at `rung` (its result there, or its failure).
fn rung_record<'a>(records: &'a [Value], id: &str, rung: u64) -> Option<&'a Value> {
    records
        .iter()
        .rev()
        .find(|r| r["id"] == id && r["rung"] == rung)
}

/// Waits until every run in `alive` (of every shard) has reported at `rung`, and returns
/// their dev losses in order; `None` when interrupted while waiting.
fn wait_for_rung(
    out: &Path,
    alive: &[(usize, RunSpec)],
    rung: u64,
    stop: &AtomicBool,
) -> Result<Option<Vec<f64>>> {
    let mut said = false;
    loop {
        let records = read_records(out)?;
        let losses: Vec<Option<f64>> = alive
            .iter()
            .map(|(_, spec)| rung_loss(&records, &spec.id, rung))
            .collect();
        let missing = losses.iter().filter(|l| l.is_none()).count();
        if missing == 0 {
            return Ok(Some(losses.into_iter().flatten().collect()));
        }
        if !said {
            eprintln!("rung {rung}: waiting for {missing} runs of other shards to report");
            said = true;
        }
        for _ in 0..20 {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}

/// What every phase of a sweep shares.
struct Phases {
    bin: PathBuf,
    data: Option<PathBuf>,
    out: PathBuf,
    results: Arc<Mutex<std::fs::File>>,
    jobs: usize,
    stop: Arc<AtomicBool>,
}

impl Phases {
    /// Trains `todo` to `until` (a rung) or to the end, `jobs` at a time; returns how many
    /// runs reported and how many of them failed.
    fn run(&self, todo: Vec<(usize, RunSpec)>, until: Option<u64>) -> Result<(usize, usize)> {
        if todo.is_empty() {
            return Ok((0, 0));
        }
        let n = todo.len();
        let jobs = self.jobs.min(n);
        if let Some(rung) = until {
            eprintln!("rung {rung}: training {n} runs to step {rung}");
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let ctx = Arc::new(Ctx {
            bin: self.bin.clone(),
            data: self.data.clone(),
            out: self.out.clone(),
            results: self.results.clone(),
            threads_per_run: (cores / jobs).max(1),
            until,
            queue: Mutex::new(todo.into_iter().collect()),
            progress: Mutex::new(Progress {
                done: 0,
                failed: 0,
                todo: n,
                started: Instant::now(),
            }),
            stop: self.stop.clone(),
        });
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                let ctx = ctx.clone();
                std::thread::spawn(move || worker(&ctx))
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow!("a sweep worker panicked"))??;
        }
        let p = ctx.progress.lock().map_err(|_| anyhow!("poisoned"))?;
        Ok((p.done, p.failed))
    }

    /// Records that successive halving stopped a run at `rung`, from its record `at` there.
    fn stopped(&self, index: usize, at: &Value, rung: u64) -> Result<()> {
        let mut line = at.clone();
        if let Some(m) = line.as_object_mut() {
            m.remove("rung");
            m.insert("index".into(), json!(index));
            m.insert("stopped_at".into(), json!(rung));
            if at["status"] == "rung" {
                m.insert("status".into(), json!("stopped"));
            }
        }
        append(&self.results, &line)
    }
}

fn append(results: &Mutex<std::fs::File>, line: &Value) -> Result<()> {
    let mut f = results.lock().map_err(|_| anyhow!("poisoned"))?;
    writeln!(f, "{line}")?;
    f.flush()?;
    f.sync_data()?;
    Ok(())
}

fn resolve_data(data: &Path, grid: &Path) -> PathBuf {
    if data.is_absolute() || data.exists() {
        return data.to_path_buf();
    }
    grid.parent()
        .map(|p| tidy_path(&p.join(data)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| data.to_path_buf())
}

/// Removes `a/..` pairs from a path without touching the file system:
/// `examples/grids/../../../shared/x` becomes `../shared/x`.
pub fn tidy_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match (c, out.last()) {
            (Component::CurDir, _) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

struct Progress {
    done: usize,
    failed: usize,
    todo: usize,
    started: Instant,
}

struct Ctx {
    bin: PathBuf,
    data: Option<PathBuf>,
    out: PathBuf,
    results: Arc<Mutex<std::fs::File>>,
    threads_per_run: usize,
    /// The rung to stop at (successive halving), or `None`: to the end.
    until: Option<u64>,
    queue: Mutex<VecDeque<(usize, RunSpec)>>,
    progress: Mutex<Progress>,
    stop: Arc<AtomicBool>,
}

fn worker(ctx: &Ctx) -> Result<()> {
    loop {
        if ctx.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let next = ctx
            .queue
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .pop_front();
        let Some((index, spec)) = next else {
            return Ok(());
        };
        let started = Instant::now();
        let outcome = run_one(ctx, &spec);
        // With successive halving a run trains in phases: its wall time is theirs together.
        let earlier: f64 = read_records(&ctx.out)?
            .iter()
            .filter(|r| r["id"] == spec.id.as_str() && r["status"] == "rung")
            .filter(|r| {
                ctx.until
                    .is_none_or(|u| r["rung"].as_u64().is_some_and(|at| at < u))
            })
            .filter_map(|r| r["phase_secs"].as_f64().or(r["wall_secs"].as_f64()))
            .sum();
        let phase = started.elapsed().as_secs_f64();
        let wall = earlier + phase;
        let dir = ctx.out.join("runs").join(&spec.id);
        let mut record = json!({
            "id": spec.id,
            "index": index,
            "label": spec.label(),
            "point": spec.point,
            "checkpoint": dir.display().to_string(),
            "wall_secs": wall,
            "phase_secs": phase,
            "data": ctx.data.as_ref().map(|d| d.display().to_string()),
            "config": spec.config,
        });
        let line = match outcome {
            Outcome::Interrupted => {
                eprintln!(
                    "  {} {}: interrupted, checkpoint kept",
                    spec.id,
                    spec.label()
                );
                continue;
            }
            Outcome::Done(summary) => {
                for key in ["params", "train_loss", "dev_loss", "steps", "train_secs"] {
                    record[key] = summary[key].clone();
                }
                record["status"] = json!(if ctx.until.is_some() { "rung" } else { "ok" });
                record
            }
            Outcome::Failed(error) => {
                record["status"] = json!("failed");
                record["error"] = json!(error);
                record
            }
        };
        let mut line = line;
        if let Some(rung) = ctx.until {
            line["rung"] = json!(rung);
        }
        append(&ctx.results, &line)?;
        let mut p = ctx.progress.lock().map_err(|_| anyhow!("poisoned"))?;
        p.done += 1;
        let status = if line["status"] != "failed" {
            format!(
                "{}dev {:.4}  train {:.4}  {} params",
                ctx.until
                    .map(|r| format!("at step {r}: "))
                    .unwrap_or_default(),
                line["dev_loss"].as_f64().unwrap_or(f64::NAN),
                line["train_loss"].as_f64().unwrap_or(f64::NAN),
                line["params"]
            )
        } else {
            p.failed += 1;
            format!("FAILED: {}", line["error"].as_str().unwrap_or("?"))
        };
        let elapsed = p.started.elapsed().as_secs_f64();
        let eta = elapsed / p.done as f64 * (p.todo - p.done) as f64;
        eprintln!(
            "[{}/{}] {} {}: {status} ({wall:.0} s; ETA {eta:.0} s)",
            p.done,
            p.todo,
            spec.id,
            spec.label()
        );
    }
}

enum Outcome {
    Done(Value),
    Failed(String),
    Interrupted,
}

fn run_one(ctx: &Ctx, spec: &RunSpec) -> Outcome {
    let until = ctx.until.map(|r| r.to_string());
    let dir = ctx.out.join("runs").join(&spec.id);
    let cfg = ctx.out.join("configs").join(format!("{}.json", spec.id));
    let mut cmd = Command::new(&ctx.bin);
    cmd.arg("train");
    let state = crate::makemore::run_state(&dir);
    match &state {
        Some(s) if s.finished => {
            // Finished before its result line was written: evaluate instead of retraining.
            return finished_summary(ctx, &dir, s);
        }
        Some(_) => {
            cmd.arg("--resume").arg(&dir);
        }
        None => {
            cmd.arg("--config")
                .arg(&cfg)
                .arg("--out")
                .arg(&dir)
                .arg("--force");
        }
    }
    if let Some(d) = &ctx.data {
        cmd.arg("--data").arg(d);
    }
    if let Some(step) = &until {
        cmd.args(["--until", step]);
    }
    cmd.args(["--json", "-q", "--samples", "0"])
        .arg("--threads")
        .arg(ctx.threads_per_run.to_string())
        .stdin(Stdio::null());
    match cmd.output() {
        Err(e) => Outcome::Failed(format!("cannot start {}: {e}", ctx.bin.display())),
        Ok(o) if o.status.success() => match serde_json::from_slice::<Value>(&o.stdout) {
            Ok(v) if v["interrupted"] == true => Outcome::Interrupted,
            Ok(v) => Outcome::Done(v),
            Err(e) => Outcome::Failed(format!("unreadable summary: {e}")),
        },
        Ok(o) => {
            if ctx.stop.load(Ordering::SeqCst) {
                return Outcome::Interrupted;
            }
            let stderr = String::from_utf8_lossy(&o.stderr);
            let last = stderr
                .lines()
                .rfind(|l| l.starts_with("error:"))
                .or_else(|| stderr.lines().last())
                .unwrap_or("no error message")
                .trim_start_matches("error: ")
                .to_string();
            let code = o
                .status
                .code()
                .map_or("killed by a signal".to_string(), |c| {
                    format!("exit code {c}")
                });
            Outcome::Failed(format!("{last} ({code})"))
        }
    }
}

fn finished_summary(ctx: &Ctx, dir: &Path, state: &crate::makemore::RunState) -> Outcome {
    let eval = match crate::makemore::eval(&ctx.bin, dir, ctx.data.as_deref(), &["train", "dev"]) {
        Ok(v) => v,
        Err(e) => return Outcome::Failed(format!("{e:#}")),
    };
    Outcome::Done(json!({
        "params": eval["params"],
        "train_loss": eval["train"]["loss"],
        "dev_loss": eval["dev"]["loss"],
        "steps": state.step,
        "train_secs": state.elapsed_secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_and_paths() {
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
        assert!(parse_shard("4/4").is_err());
        assert!(parse_shard("1").is_err());
        assert!(parse_shard("a/2").is_err());
        assert_eq!(
            tidy_path(Path::new("examples/grids/../../../shared/x.txt")),
            PathBuf::from("../shared/x.txt")
        );
        assert_eq!(tidy_path(Path::new("./a/./b")), PathBuf::from("a/b"));
    }
}
