//! Helpers shared by the CLI integration tests: run the real binary, check its errors.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The `makemore` binary under test.
pub fn makemore() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_makemore"));
    cmd.env_remove("RUST_BACKTRACE");
    cmd
}

/// The canonical 32,033-name corpus beside the repository, if present.
pub fn canonical_names() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/names.txt");
    if p.exists() {
        Some(p)
    } else {
        skipped(&format!("{} is absent", p.display()));
        None
    }
}

/// Every eighth word of the shipped corpus (about 4,000): for runs whose test needs words but
/// not the whole list (a finished run evaluates its whole train and dev splits, most of a
/// short run's time).
pub fn few_words() -> Vec<String> {
    makemore_data::parse_words(include_bytes!("../../../../../data/names.txt"), "names")
        .unwrap()
        .into_iter()
        .step_by(8)
        .collect()
}

/// [`few_words`], written to `dir/few.txt` for the binary's `--data`.
pub fn few_words_file(dir: &Path) -> PathBuf {
    let path = dir.join("few.txt");
    std::fs::write(&path, few_words().join("\n") + "\n").unwrap();
    path
}

/// Asserts a failed run printed exactly one `error:` line mentioning `needle`, and no panic.
pub fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "panic: {stderr}"
    );
    // clap's usage errors add its standard "Usage:" and "For more information" lines.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.starts_with("Usage:")
                && !l.starts_with("For more information")
                && !l.trim_start().starts_with("tip:")
                && !l.trim_start().starts_with("[possible values")
        })
        .collect();
    assert_eq!(lines.len(), 1, "expected a one-line error, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected {needle:?} in: {stderr}"
    );
}

/// Small training flags: a few seconds on two cores.
pub const SMALL: &[&str] = &[
    "--n-hidden",
    "32",
    "--steps",
    "300",
    "--batch-size",
    "32",
    "--eval-every",
    "100",
    "--checkpoint-every",
    "50",
    "-q",
];

/// A path that cannot be created: its parent is a regular file (works even as root,
/// which ignores permission bits).
pub fn unwritable(dir: &Path) -> PathBuf {
    let file = dir.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    file.join("out")
}

/// Trains a small run (`SMALL`, no samples, plus `extra`) into `out`.
pub fn train_small(out: &Path, extra: &[&str]) -> Output {
    makemore()
        .arg("train")
        .arg("--out")
        .arg(out)
        .args(SMALL)
        .args(["--samples", "0"])
        .args(extra)
        .output()
        .unwrap()
}

/// [`train_small`], which must succeed.
pub fn trained(out: &Path, extra: &[&str]) {
    let o = train_small(out, extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Reads every tensor of a safetensors file as f32 values, by name.
pub fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    out.sort();
    out
}

/// Says that a test skipped where the test runner shows it even for a passing test: straight
/// to the process's stderr, past libtest's output capture (a skip counts as a pass, so it
/// must not be silent).
pub fn skipped(why: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Runs `cmd`, which must succeed (its stderr is the failure message); returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts a run in `out` long enough to be interrupted (a tiny model, a million steps,
/// a checkpoint every 50), silent.
pub fn long_run(out: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args([
            "train",
            "-q",
            "--samples",
            "0",
            "--steps",
            "1000000",
            "--out",
        ])
        .arg(out)
        .args(["--n-hidden", "8", "--checkpoint-every", "50"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
