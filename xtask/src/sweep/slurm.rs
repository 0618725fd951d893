//! Slurm: the sbatch array script of a sweep, written into the sweep directory and
//! submitted; and what a task does when Slurm warns it of its time limit.
//!
//! Nothing is built on a compute node: the script runs copies of the `makemore` and `xtask`
//! binaries that submission put in `DIR/bin/` (so every task of a sweep, requeued ones
//! included, runs the same code), by absolute path, from the directory it was submitted in.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What `--slurm` needs to write and submit the script.
pub struct Submission<'a> {
    /// The grid file.
    pub grid: &'a Path,
    /// The sweep directory.
    pub out: &'a Path,
    /// The `makemore` binary to copy.
    pub bin: &'a Path,
    /// Array tasks (shards).
    pub shards: usize,
    /// At most this many tasks at once (`%K`).
    pub throttle: Option<usize>,
    /// Runs at a time in each task (default: the task's CPUs).
    pub jobs: Option<usize>,
    /// Extra arguments for `sbatch` (`--time=…`, `--partition=…`, `--cpus-per-task=…`).
    pub sbatch_args: &'a [String],
    /// Write the script but do not submit it.
    pub no_submit: bool,
}

/// Writes `DIR/slurm/sweep.sbatch`, submits it and prints the job id on the last line.
pub fn submit(s: &Submission<'_>) -> Result<()> {
    let abs = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))
    };
    let out = abs(s.out)?;
    let grid = abs(s.grid)?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let logs = out.join("slurm");
    let bins = out.join("bin");
    for d in [&logs, &bins] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let makemore = install(s.bin, &bins.join("makemore"))?;
    let me = std::env::current_exe().context("cannot find the xtask binary")?;
    let xtask = install(&me, &bins.join("xtask"))?;
    // The tasks run a copy of the grid, as they run copies of the binaries: editing the
    // grid file while the array runs (or before a requeued task starts again) must not
    // change their runs' indices or which shard owns which.
    let grid_copy = bins.join("grid.toml");
    install_bytes(&frozen_grid(&grid)?, &grid, &grid_copy, false)?;
    let script = script(&ScriptParts {
        original: &grid,
        grid: &grid_copy,
        out: &out,
        cwd: &cwd,
        makemore: &makemore,
        xtask: &xtask,
        shards: s.shards,
        throttle: s.throttle,
        jobs: s.jobs,
    });
    let path = logs.join("sweep.sbatch");
    makemore_io::write_atomic(&path, script.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {} ({} array tasks{})",
        path.display(),
        s.shards,
        s.throttle
            .map(|k| format!(", at most {k} at a time"))
            .unwrap_or_default()
    );
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").args(s.sbatch_args).arg(&path);
    if s.no_submit {
        eprintln!("not submitted; to submit: {}", shown(&cmd));
        return Ok(());
    }
    let o = cmd.output().with_context(|| {
        format!(
            "cannot run {} (is Slurm's sbatch on the PATH?)",
            shown(&cmd)
        )
    })?;
    if !o.status.success() {
        bail!(
            "{} failed: {}",
            shown(&cmd),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let job = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if job.is_empty() {
        bail!("sbatch printed no job id");
    }
    let mut jobs = std::fs::read_to_string(logs.join("jobs")).unwrap_or_default();
    jobs.push_str(&format!("{job}\n"));
    makemore_io::write_atomic(&logs.join("jobs"), jobs.as_bytes())?;
    eprintln!("submitted: {}", shown(&cmd));
    eprintln!("logs: {}/{job}_<task>.out", logs.display());
    eprintln!(
        "progress: cargo xtask sweep {} --out {} --status",
        s.grid.display(),
        s.out.display()
    );
    println!("{job}");
    Ok(())
}

/// The grid file's text for the tasks' copy: as written, with its `data` made an absolute
/// path (a relative one is found beside the grid, which the copy is not).
fn frozen_grid(grid: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(grid)
        .with_context(|| format!("cannot read grid {}", grid.display()))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("in grid {}", grid.display()))?;
    let Some(data) = table.get("data").and_then(|d| d.as_str()) else {
        return Ok(text.into_bytes());
    };
    let resolved = super::plan::resolve_data(Path::new(data), grid);
    let abs = std::path::absolute(&resolved)
        .with_context(|| format!("cannot resolve {}", resolved.display()))?;
    table.insert(
        "data".into(),
        toml::Value::String(abs.display().to_string()),
    );
    let body = toml::to_string(&table).context("cannot write the grid's copy")?;
    Ok(format!(
        "# A copy of {} made by `cargo xtask sweep --slurm` (data made absolute): the array's\n# tasks run this file, so editing the original changes nothing here.\n{body}",
        grid.display()
    )
    .into_bytes())
}

/// Copies `from` to `to` unless `to` already holds the same bytes; a different binary
/// already there is refused (the sweep's earlier runs came from it).
fn install(from: &Path, to: &Path) -> Result<PathBuf> {
    let new = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    install_bytes(&new, from, to, true)
}

/// Writes `new` (the contents of `from`) to `to` unless `to` already holds them; different
/// contents already there are refused.
fn install_bytes(new: &[u8], from: &Path, to: &Path, executable: bool) -> Result<PathBuf> {
    match std::fs::read(to) {
        Ok(old) if old == new => return Ok(to.to_path_buf()),
        Ok(_) => bail!(
            "{} differs from {}: this sweep's runs so far come from the {} there, and one sweep must not mix them; use another --out, or remove {} to continue with the new one",
            to.display(),
            from.display(),
            if executable { "binary" } else { "grid" },
            to.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", to.display())),
    }
    makemore_io::write_atomic(to, new).with_context(|| format!("cannot write {}", to.display()))?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", to.display()))?;
    }
    Ok(to.to_path_buf())
}

struct ScriptParts<'a> {
    /// The grid file as given (its name names the job).
    original: &'a Path,
    /// The copy the tasks run.
    grid: &'a Path,
    out: &'a Path,
    cwd: &'a Path,
    makemore: &'a Path,
    xtask: &'a Path,
    shards: usize,
    throttle: Option<usize>,
    jobs: Option<usize>,
}

/// Quotes `s` for bash.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn script(p: &ScriptParts<'_>) -> String {
    let q = |p: &Path| quote(&p.display().to_string());
    let name: String = p
        .original
        .file_stem()
        .map_or("sweep".into(), |s| s.to_string_lossy().into_owned())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let array = match p.throttle {
        Some(k) => format!("0-{}%{k}", p.shards - 1),
        None => format!("0-{}", p.shards - 1),
    };
    let jobs = p
        .jobs
        .map_or("\"${SLURM_CPUS_PER_TASK:-1}\"".to_string(), |j| {
            j.to_string()
        });
    format!(
        r#"#!/bin/bash
# The sweep of {original} as a Slurm job array, written by `cargo xtask sweep --slurm`.
# Its tasks run the copy {grid} made at submission.
# Each task trains its shard's runs, then (--steal) any run of another shard that no task is
# training, so throttled, pending or requeued tasks never hold a successive-halving rung up.
# Submitting this script again continues an unfinished sweep: recorded runs are skipped, the
# others resume from their checkpoints.
#SBATCH --job-name=makemore-{name}
#SBATCH --array={array}
#SBATCH --output={logs}/%A_%a.out
#SBATCH --open-mode=append
#SBATCH --chdir={cwd}
# Preempted or requeued tasks start again (SLURM_RESTART_COUNT says how often).
#SBATCH --requeue
# Two minutes before the time limit Slurm sends SIGUSR1 to this script, which is the sweep
# (exec): its runs save their checkpoints, and the task requeues itself to continue.
#SBATCH --signal=B:USR1@120
exec {xtask} sweep {grid} --out {out} --bin {makemore} --steal --jobs {jobs}
"#,
        grid = q(p.grid),
        original = q(p.original),
        logs = q(&p.out.join("slurm")),
        cwd = q(p.cwd),
        xtask = q(p.xtask),
        out = q(p.out),
        makemore = q(p.makemore),
    )
}

/// Inside a Slurm job, after a SIGUSR1 (the time-limit warning of the script's `--signal`)
/// stopped the sweep: puts this task back in the queue to continue. Outside Slurm, or after
/// another signal, nothing.
pub fn requeue_after_warning(signal: Option<i32>) -> Result<()> {
    #[cfg(unix)]
    let warned = signal == Some(signal_usr1());
    #[cfg(not(unix))]
    let warned = false;
    let Ok(job) = std::env::var("SLURM_JOB_ID") else {
        return Ok(());
    };
    if !warned {
        return Ok(());
    }
    let mut cmd = Command::new("scontrol");
    cmd.args(["requeue", &job]);
    eprintln!(
        "Slurm's time limit is near: requeueing this task ({})",
        shown(&cmd)
    );
    let o = cmd
        .output()
        .with_context(|| format!("cannot run {}", shown(&cmd)))?;
    if !o.status.success() {
        bail!(
            "{} failed: {}; submit the sweep's script again to continue",
            shown(&cmd),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(unix)]
fn signal_usr1() -> i32 {
    nix::sys::signal::Signal::SIGUSR1 as i32
}

/// Says which task this is, and that it is a restart when Slurm restarted it.
pub fn announce_task() {
    let (Ok(job), Ok(task)) = (
        std::env::var("SLURM_ARRAY_JOB_ID"),
        std::env::var("SLURM_ARRAY_TASK_ID"),
    ) else {
        return;
    };
    let restarts = std::env::var("SLURM_RESTART_COUNT").unwrap_or_default();
    match restarts.trim() {
        "" | "0" => eprintln!("Slurm job {job}, array task {task}"),
        n => eprintln!(
            "Slurm job {job}, array task {task}, restart {n}: recorded runs are skipped, the others resume from their checkpoints"
        ),
    }
}

fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_uses_absolute_paths_a_throttle_and_the_warning_signal() {
        let s = script(&ScriptParts {
            original: Path::new("/h/me/grids/quick-halving.toml"),
            grid: Path::new("/h/me/grids/quick halving.toml"),
            out: Path::new("/scratch/sweep"),
            cwd: Path::new("/h/me"),
            makemore: Path::new("/scratch/sweep/bin/makemore"),
            xtask: Path::new("/scratch/sweep/bin/xtask"),
            shards: 4,
            throttle: Some(2),
            jobs: None,
        });
        assert!(s.contains("#SBATCH --array=0-3%2\n"), "{s}");
        assert!(
            s.contains("#SBATCH --output=/scratch/sweep/slurm/%A_%a.out\n"),
            "{s}"
        );
        assert!(s.contains("#SBATCH --signal=B:USR1@120\n") && s.contains("#SBATCH --requeue\n"));
        assert!(s.contains("exec /scratch/sweep/bin/xtask sweep '/h/me/grids/quick halving.toml' --out /scratch/sweep --bin /scratch/sweep/bin/makemore --steal --jobs \"${SLURM_CPUS_PER_TASK:-1}\"\n"), "{s}");
        assert!(
            s.contains("#SBATCH --job-name=makemore-quick-halving\n"),
            "{s}"
        );
        let commands: Vec<&str> = s.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(commands.len(), 1, "{s}");
        assert!(
            !commands[0].contains("cargo"),
            "nothing is built on a compute node: {s}"
        );
    }

    #[test]
    fn a_different_binary_is_not_mixed_into_a_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, to) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("bin"),
        );
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        install(&a, &to).unwrap();
        install(&a, &to).unwrap();
        let e = install(&b, &to).unwrap_err().to_string();
        assert!(e.contains("must not mix them"), "{e}");
    }

    #[test]
    fn the_tasks_run_a_copy_of_the_grid_that_later_edits_do_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let grids = dir.path().join("grids");
        std::fs::create_dir_all(&grids).unwrap();
        std::fs::write(dir.path().join("words.txt"), "ab\ncd\n").unwrap();
        let grid = grids.join("g.toml");
        std::fs::write(&grid, "data = \"../words.txt\"\n[axes]\nsteps = [1, 2]\n").unwrap();
        let copy = dir.path().join("bin/grid.toml");
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        install_bytes(&frozen_grid(&grid).unwrap(), &grid, &copy, false).unwrap();
        let frozen: toml::Table = toml::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
        let data = PathBuf::from(frozen["data"].as_str().unwrap());
        assert!(data.is_absolute() && data.exists(), "{}", data.display());
        assert_eq!(frozen["axes"]["steps"].as_array().unwrap().len(), 2);
        // The same grid again is fine; an edited one is refused, the copy kept.
        install_bytes(&frozen_grid(&grid).unwrap(), &grid, &copy, false).unwrap();
        let before = std::fs::read(&copy).unwrap();
        std::fs::write(
            &grid,
            "data = \"../words.txt\"\n[axes]\nsteps = [1, 2, 3]\n",
        )
        .unwrap();
        let e = install_bytes(&frozen_grid(&grid).unwrap(), &grid, &copy, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must not mix them"), "{e}");
        assert_eq!(std::fs::read(&copy).unwrap(), before);
    }
}
