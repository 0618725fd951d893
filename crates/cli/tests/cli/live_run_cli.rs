//! A run directory under the conditions of a cluster: read while it is written, stopped by
//! the signals that schedulers send.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use crate::common;

use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::Duration;

use common::makemore;

/// Flags of a small run that checkpoints every 3 steps: thousands of commits.
const RACE: &[&str] = &[
    "--n-hidden",
    "16",
    "--n-embd",
    "4",
    "--steps",
    "6000",
    "--checkpoint-every",
    "3",
    "--eval-every",
    "1000",
    "--samples",
    "0",
    "-q",
];

/// A read either succeeded or failed with one clean `error:` line.
fn clean(out: &Output) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: ") && !stderr.contains("panicked"),
        "a read failed without a clean message: {stderr}"
    );
    Err(stderr)
}

#[test]
fn readers_of_a_live_run_change_nothing_and_see_whole_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let (live, quiet) = (dir.path().join("live"), dir.path().join("quiet"));
    common::run_ok(makemore().arg("train").arg("--out").arg(&quiet).args(RACE));

    let mut writer = StdCommand::new(env!("CARGO_BIN_EXE_makemore"))
        .arg("train")
        .arg("--out")
        .arg(&live)
        .args(RACE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let plot = dir.path().join("loss.png");
    let (mut ok, mut failed, mut rounds_while_writing) = (0, Vec::new(), 0);
    loop {
        let writing = writer.try_wait().unwrap().is_none();
        let reads = [
            makemore()
                .args(["eval", "--split", "dev", "--checkpoint"])
                .arg(&live)
                .output(),
            makemore()
                .args(["sample", "-n", "3", "--checkpoint"])
                .arg(&live)
                .output(),
            makemore()
                .args(["plot", "loss", "--checkpoint"])
                .arg(&live)
                .arg("--out")
                .arg(&plot)
                .output(),
        ];
        for read in reads {
            match clean(&read.unwrap()) {
                Ok(()) => ok += 1,
                // Before the first checkpoint there is nothing to read yet; after one, every
                // read must succeed.
                Err(e) if ok == 0 => failed.push(e),
                Err(e) => panic!("a read after a successful one failed: {e}"),
            }
        }
        if !writing {
            break;
        }
        rounds_while_writing += 1;
    }
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rounds_while_writing >= 3,
        "the run ended before the readers could race it ({rounds_while_writing} rounds); make it longer"
    );
    assert!(ok >= 9, "{ok} reads succeeded; failures: {failed:?}");
    for file in ["model.safetensors", "metrics.csv"] {
        let read = |d: &Path| std::fs::read(d.join(file)).unwrap();
        assert!(
            read(&live) == read(&quiet),
            "{file} differs from the undisturbed run's"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(&live)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n == "commit.json")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Sends `signal` (`TERM`, `USR1`) to `pid` with kill(1).
fn kill(signal: &str, pid: u32) {
    let status = StdCommand::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
}

#[test]
fn sigterm_and_sigusr1_save_the_current_step_and_the_resumed_run_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (run, straight) = (dir.path().join("run"), dir.path().join("straight"));
    // No periodic checkpoint: only the one the signal asks for saves the work.
    let flags = [
        "--n-hidden",
        "16",
        // Long enough that neither signal can come after the end: each comes once its
        // process has written another 40,000 bytes of metrics rows (about 2,000 steps), so
        // the second near step 4,000, with about 20,000 steps to go.
        "--steps",
        "24000",
        "--checkpoint-every",
        "0",
        "--eval-every",
        "0",
        "--samples",
        "0",
        "-q",
        "--json",
        "--optimizer",
        "adamw",
    ];
    common::run_ok(
        makemore()
            .arg("train")
            .arg("--out")
            .arg(&straight)
            .args(flags),
    );
    for (i, (signal, code)) in [("TERM", 143), ("USR1", 138)].into_iter().enumerate() {
        let mut cmd = StdCommand::new(env!("CARGO_BIN_EXE_makemore"));
        cmd.arg("train");
        if i == 0 {
            cmd.arg("--out").arg(&run).args(flags);
        } else {
            cmd.arg("--resume")
                .arg(&run)
                .args(["-q", "--json", "--samples", "0"]);
        }
        let before = if i == 0 {
            0
        } else {
            state(&run)["step"].as_u64().unwrap()
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Progress, not a clock: wait until this process has written metrics rows (the
        // writer's buffer reaches the file every 8 KiB or so).
        let metrics = run.join("metrics.csv");
        let start_len = std::fs::metadata(&metrics).map_or(0, |m| m.len());
        while std::fs::metadata(&metrics).map_or(0, |m| m.len()) < start_len + 40_000 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before the {signal}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        kill(signal, child.id());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "SIG{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["interrupted"], true);
        let s = state(&run);
        let step = s["step"].as_u64().unwrap();
        assert!(step > before && step < 24_000, "saved at step {step}");
        assert_eq!(summary["steps"], step);
        // The metrics end exactly at the checkpoint: nothing runs ahead of it.
        let text = std::fs::read_to_string(&metrics).unwrap();
        assert_eq!(text.len() as u64, s["metrics_bytes"].as_u64().unwrap());
        let last = text.lines().last().unwrap();
        assert!(last.starts_with(&format!("{step},")), "{last}");
    }
    common::run_ok(
        makemore()
            .args(["train", "-q", "--samples", "0", "--resume"])
            .arg(&run),
    );
    // (optimizer.mpk is a map written in no fixed order: equal moments, other bytes.)
    for file in ["model.safetensors", "metrics.csv"] {
        let read = |d: &Path| std::fs::read(d.join(file)).unwrap();
        assert!(
            read(&run) == read(&straight),
            "{file} differs from the straight run's"
        );
    }
}
