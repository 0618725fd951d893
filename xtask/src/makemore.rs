//! The `makemore` binary as the other commands use it: found or built once, run with
//! `--json`, its output parsed; and the one file of a run directory that xtask reads
//! itself (`state.json`, through a typed struct with the fields xtask needs).
//!
//! xtask does not link the training stack (it would compile burn a second time with other
//! features); everything else about a run comes from the binary's JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// The binary: `explicit` when given, else `target/release/makemore`, built first.
pub fn bin(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(b) = explicit {
        return Ok(b);
    }
    let root = crate::workspace_root();
    eprintln!("building makemore (release)...");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "-p", "makemore-cli"])
        .current_dir(&root)
        .status()
        .context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p makemore-cli failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join("makemore"))
}

/// Runs `cmd`, which must succeed and print one JSON value.
pub fn run_json(cmd: &mut Command) -> Result<Value> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `timeout`'s status when it stopped the command (xtask bench --case-timeout).
        if out.status.code() == Some(124) {
            bail!("{shown} timed out");
        }
        bail!("{shown} failed ({}): {}", out.status, stderr.trim());
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("unreadable output of {shown}"))
}

/// `makemore train --print-config`: the defaults, as a config, with every model field a
/// grid may set: a config leaves out the fields its model kind does not use, so the fields
/// only a Transformer reads (`n_head`) come from its config, at their defaults.
pub fn default_config(bin: &Path) -> Result<Value> {
    let mut config = run_json(Command::new(bin).args(["train", "--print-config"]))?;
    let transformer =
        run_json(Command::new(bin).args(["train", "--print-config", "--model", "transformer"]))?;
    if let (Some(model), Some(other)) = (
        config.get_mut("model").and_then(Value::as_object_mut),
        transformer.get("model").and_then(Value::as_object),
    ) {
        for (k, v) in other {
            model.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(config)
}

/// The SHA-256 of the corpus's words as `makemore` digests them (what a run's
/// `state.json` records): `makemore data stats --json`, of `data` or the built-in corpus.
pub fn corpus_sha256(bin: &Path, data: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(["data", "stats", "--json"]);
    if let Some(d) = data {
        cmd.arg("--data").arg(d);
    }
    let v = run_json(&mut cmd)?;
    v["corpus_sha256"]
        .as_str()
        .map(str::to_string)
        .context("`makemore data stats --json` printed no corpus_sha256")
}

/// `makemore eval --json` of a checkpoint on `splits` (with its corpus, or `data`):
/// `{"train": {"loss", ...}, "dev": ..., "params": N}`.
pub fn eval(bin: &Path, checkpoint: &Path, data: Option<&Path>, splits: &[&str]) -> Result<Value> {
    let mut cmd = Command::new(bin);
    cmd.args(["eval", "--json", "--checkpoint"]).arg(checkpoint);
    for s in splits {
        cmd.args(["--split", s]);
    }
    if let Some(d) = data {
        cmd.arg("--data").arg(d);
    }
    run_json(&mut cmd)
}

/// What xtask reads of a run's `state.json` (the full format is makemore-train's
/// `TrainingState`, docs/checkpoint-format.md).
#[derive(Debug, Clone, Deserialize)]
pub struct RunState {
    /// Steps done.
    pub step: u64,
    /// Seconds of training.
    pub elapsed_secs: f64,
    /// All steps done.
    pub finished: bool,
    /// With `keep_best`: the save kept in `best/`.
    #[serde(default)]
    pub best: Option<BestSoFar>,
}

/// `state.json`'s `best`: the step and dev loss of the weights in `best/`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BestSoFar {
    /// The step of the save.
    pub step: u64,
    /// Its dev loss.
    pub dev_loss: f64,
}

/// What a run directory holds, as far as a sweep needs to know.
#[derive(Debug, Clone)]
pub enum RunDir {
    /// Nothing to continue: no directory, or no checkpoint in it yet.
    Fresh,
    /// A checkpoint to continue (`None`: a save to finish first, which `--resume` does).
    Unfinished(Option<RunState>),
    /// A run that did all its steps.
    Finished(RunState),
    /// A `state.json` that cannot be read: the run is left alone, not started again.
    Damaged(String),
}

/// Looks at the run directory `dir` without changing it.
pub fn run_dir(dir: &Path) -> RunDir {
    let path = dir.join("state.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str::<RunState>(&text) {
            Ok(s) if s.finished => RunDir::Finished(s),
            Ok(s) => RunDir::Unfinished(Some(s)),
            Err(e) => RunDir::Damaged(format!("{} does not parse ({e})", path.display())),
        },
        // A crash between a save's commit point and its last rename: resuming finishes it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.join("commit.json").exists() => {
            RunDir::Unfinished(None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RunDir::Fresh,
        Err(e) => RunDir::Damaged(format!("cannot read {}: {e}", path.display())),
    }
}

/// The state of the run in `dir`, if it has one that parses.
pub fn run_state(dir: &Path) -> Option<RunState> {
    match run_dir(dir) {
        RunDir::Finished(s) | RunDir::Unfinished(Some(s)) => Some(s),
        _ => None,
    }
}
