//! Damaged checkpoints, bad sampling flags and unwritable outputs: each is a one-line error
//! from the real binary, and nothing already on disk changes.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{assert_clean_error, makemore, SMALL};

/// Trains a small run into `dir/name` and returns its path.
fn small_run(dir: &Path, name: &str) -> PathBuf {
    let run = dir.join(name);
    common::trained(&run, &[]);
    run
}

/// Every file of a directory, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Copies a checkpoint directory so that each case damages its own copy.
fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in snapshot(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

/// Rewrites one tensor's header entry (shape or dtype) in a safetensors file.
fn edit_header(path: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let mut text = serde_json::to_string(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

type Damage = fn(&Path);

#[test]
fn damaged_checkpoints_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = small_run(dir.path(), "good");
    let cases: &[(&str, Damage, &str)] = &[
        (
            "missing model",
            |d| std::fs::remove_file(d.join("model.safetensors")).unwrap(),
            "model.safetensors: file is missing",
        ),
        (
            "truncated model",
            |d| {
                let p = d.join("model.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            "model.safetensors: is not a valid safetensors file",
        ),
        (
            "empty model",
            |d| std::fs::write(d.join("model.safetensors"), b"").unwrap(),
            "model.safetensors: is not a valid safetensors file",
        ),
        (
            "wrong shape",
            |d| {
                edit_header(&d.join("model.safetensors"), |h| {
                    // Same byte count, different shape: only the shape check can catch it.
                    let shape = h["embedding.weight"]["shape"].clone();
                    let (a, b) = (shape[0].as_u64().unwrap(), shape[1].as_u64().unwrap());
                    h["embedding.weight"]["shape"] = serde_json::json!([b, a]);
                })
            },
            "tensor \"embedding.weight\" has shape",
        ),
        (
            "wrong dtype",
            |d| {
                edit_header(&d.join("model.safetensors"), |h| {
                    // I32 has the same width as F32, so the file stays self-consistent.
                    h["output.bias"]["dtype"] = serde_json::json!("I32");
                })
            },
            "tensor \"output.bias\" has dtype I32, expected F32",
        ),
        (
            "config does not parse",
            |d| std::fs::write(d.join("config.json"), b"{\"model\": ").unwrap(),
            "config.json",
        ),
        (
            "absurd sizes",
            |d| {
                let p = d.join("config.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                v["model"]["n_hidden"] = serde_json::json!(1_000_000_000u64);
                std::fs::write(&p, v.to_string()).unwrap();
            },
            "n_hidden = 1000000000 is larger than the limit",
        ),
        (
            "vocabulary disagrees with the model",
            |d| {
                std::fs::write(d.join("vocab.json"), br#"{"chars": ".abc"}"#).unwrap();
            },
            "vocab.json",
        ),
        (
            "missing vocabulary",
            |d| std::fs::remove_file(d.join("vocab.json")).unwrap(),
            "vocab.json: file is missing",
        ),
        (
            "state does not parse",
            |d| std::fs::write(d.join("state.json"), b"[1,2").unwrap(),
            "state.json: does not parse",
        ),
    ];
    for (i, (what, damage, needle)) in cases.iter().enumerate() {
        let run = dir.path().join(format!("case{i}"));
        copy_run(&good, &run);
        damage(&run);
        let before = snapshot(&run);
        for verb in [
            &["eval", "--checkpoint"][..],
            &["sample", "--checkpoint"],
            &["plot", "embeddings", "--checkpoint"],
        ] {
            let out = makemore().args(verb).arg(&run).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what}: {verb:?} accepted it");
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            assert_clean_error(&out, needle);
        }
        let out = makemore()
            .args(["train", "-q", "--resume"])
            .arg(&run)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{what}: resume accepted it");
        assert_eq!(before, snapshot(&run), "{what}: files changed");
    }
}

#[test]
fn resume_refuses_a_different_corpus_or_config() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "run");
    // An unfinished run to resume: start a long one and kill it after its first checkpoint.
    let unfinished = dir.path().join("unfinished");
    let mut child = common::long_run(&unfinished);
    // Wait until a checkpoint past step 0 exists, then stop the run hard.
    loop {
        let state = std::fs::read_to_string(unfinished.join("state.json")).unwrap_or_default();
        if state.contains("\"step\": ") && !state.contains("\"step\": 0,") {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended early: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The kill may have landed in the middle of a save. Readers leave that alone (eval reads
    // the committed save and changes nothing); the next writer, even one whose resume is
    // then refused, finishes it under the run's lock. Let one do that first.
    let listing = snapshot(&unfinished);
    common::run_ok(makemore().args(["eval", "--checkpoint"]).arg(&unfinished));
    assert_eq!(
        listing,
        snapshot(&unfinished),
        "eval changed the run directory"
    );
    let other = dir.path().join("other.txt");
    std::fs::write(&other, "anna\nbob\ncarl\n").unwrap();
    let refused_for_its_corpus = || {
        makemore()
            .args(["train", "-q", "--resume"])
            .arg(&unfinished)
            .arg("--data")
            .arg(&other)
            .output()
            .unwrap()
    };
    assert_clean_error(&refused_for_its_corpus(), "corpus");
    let before = snapshot(&unfinished);
    assert!(
        before
            .keys()
            .all(|n| !n.ends_with(".tmp") && n != "commit.json"),
        "the writer left an interrupted save: {:?}",
        before.keys()
    );
    assert_clean_error(&refused_for_its_corpus(), "corpus");
    assert_eq!(
        before,
        snapshot(&unfinished),
        "a refused resume changed the run"
    );

    // An edited config.json (here the step count) is refused, naming the field; clap
    // already refuses `--config` with `--resume`, so the run's own file is the way in.
    let cfg = unfinished.join("config.json");
    let original = std::fs::read(&cfg).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&original).unwrap();
    v["steps"] = serde_json::json!(100_001);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let before_edit = snapshot(&unfinished);
    let out = makemore()
        .args(["train", "-q", "--resume"])
        .arg(&unfinished)
        .output()
        .unwrap();
    assert_clean_error(
        &out,
        "config.json was edited after the run started (in: steps)",
    );
    assert_eq!(
        before_edit,
        snapshot(&unfinished),
        "a refused resume changes nothing"
    );
    std::fs::write(&cfg, &original).unwrap();
    assert_eq!(before, snapshot(&unfinished));

    // A finished run is not resumed, but not damaged either.
    let before = snapshot(&run);
    let _ = makemore()
        .args(["train", "-q", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(before, snapshot(&run));
}

#[test]
fn another_run_in_out_is_left_alone_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "run");
    let before = snapshot(&run);
    let out = makemore()
        .arg("train")
        .arg("--out")
        .arg(&run)
        .args(SMALL)
        .args(["--n-embd", "3"])
        .output()
        .unwrap();
    assert_clean_error(&out, "already holds a run");
    assert_eq!(before, snapshot(&run));
}

#[test]
fn unwritable_out_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = makemore()
        .arg("train")
        .arg("--out")
        .arg(common::unwritable(dir.path()))
        .args(SMALL)
        .output()
        .unwrap();
    assert_clean_error(&out, "a-file");

    // A read-only directory. Root ignores permission bits, so check that it really is
    // read-only for this user before relying on it.
    use std::os::unix::fs::PermissionsExt;
    let ro = dir.path().join("read-only");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), "x").is_ok() {
        // The parent-is-a-file case above covers root; this part needs an ordinary user.
        common::skipped(
            "the read-only-directory case: this user (root?) can write to a 0555 directory",
        );
        return;
    }
    let out = makemore()
        .arg("train")
        .arg("--out")
        .arg(ro.join("run"))
        .args(SMALL)
        .output()
        .unwrap();
    assert_clean_error(&out, "read-only");
}

#[test]
fn bad_sampling_flags_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "run");
    let cases: &[(&[&str], &str)] = &[
        (&["--top-k", "0"], "top-k must be at least 1"),
        (&["--temperature", "0"], "temperature must be"),
        (&["--temperature", "-1"], "temperature must be"),
        (&["--temperature", "inf"], "temperature must be"),
        (&["--prefix", "zoë"], "'ë'"),
        (&["--prefix", "a.b"], "'.'"),
        (&["--max-len", "0"], "max-len must be at least 1"),
    ];
    for (flags, needle) in cases {
        let out = makemore()
            .arg("sample")
            .arg("--checkpoint")
            .arg(&run)
            .args(*flags)
            .output()
            .unwrap();
        assert_clean_error(&out, needle);
    }
}

#[test]
fn bad_eval_and_data_flags_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = small_run(dir.path(), "run");
    let out = makemore()
        .args(["eval", "--split", "valid", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert_clean_error(&out, "invalid value 'valid'");
    let out = makemore()
        .args(["data", "stats", "--block-size", "0"])
        .output()
        .unwrap();
    assert_clean_error(&out, "block");
}

#[test]
fn a_run_directory_in_use_is_refused_to_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("busy");
    let mut child = common::long_run(&run);
    // The holder has written its pid once it trains.
    let pid = format!("pid {}", child.id());
    while !std::fs::read_to_string(run.join(".lock"))
        .unwrap_or_default()
        .contains(&pid)
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended early: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for extra in [&["--force"][..], &[]] {
        let out = makemore()
            .arg("train")
            .arg("--out")
            .arg(&run)
            .args(SMALL)
            .args(extra)
            .output()
            .unwrap();
        // The holder's pid and host, and how to clear a stale lock.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        assert_clean_error(
            &out,
            &format!(
                "is in use by another makemore process ({pid} on {} since ",
                host.trim()
            ),
        );
        assert_clean_error(&out, &format!("remove {}", run.join(".lock").display()));
    }
    let out = makemore()
        .args(["train", "-q", "--resume"])
        .arg(&run)
        .output()
        .unwrap();
    assert_clean_error(&out, &pid);
    assert!(child.try_wait().unwrap().is_none(), "the first run goes on");
    // The lock dies with its holder, however it ends: kill -9, then resume.
    child.kill().unwrap();
    child.wait().unwrap();
    common::run_ok(
        makemore()
            .args([
                "train",
                "-q",
                "--samples",
                "0",
                "--until",
                "120",
                "--resume",
            ])
            .arg(&run),
    );
}

/// A config whose tensors cannot fit is refused before anything is allocated or written,
/// with the size it would need (beyond any machine's memory: 898 GiB of context windows,
/// terabytes of activations).
#[test]
fn a_run_too_large_for_memory_is_refused_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("huge");
    let cases: [(&[&str], &str); 2] = [
        (
            &[
                "--block-size",
                "1048576",
                "--n-embd",
                "1",
                "--n-hidden",
                "1",
            ],
            "context windows of the splits 897.7 GiB",
        ),
        (
            &[
                "--n-hidden",
                "1048576",
                "--layers",
                "1",
                "--n-embd",
                "1",
                "--block-size",
                "1",
                "--batch-size",
                "180000",
            ],
            "a batch's activations",
        ),
    ];
    for (flags, needle) in cases {
        let o = makemore()
            .arg("train")
            .arg("--out")
            .arg(&out)
            .args(flags)
            .args(["-q", "--samples", "0"])
            .output()
            .unwrap();
        assert_clean_error(&o, "would need about");
        assert_clean_error(&o, needle);
        assert_clean_error(&o, "of memory are available");
        assert!(!out.exists(), "--out was created for a refused run");
    }
}

/// `makemore … | head` ends quietly when `head` closes the pipe: no panic, no backtrace, the
/// exit status of a process that SIGPIPE ended (141). 100,000 samples are far more than a pipe
/// holds, so the write that fails comes whatever the timing.
#[test]
fn a_closed_pipe_ends_the_process_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .env_remove("RUST_BACKTRACE")
        .args(["bigram", "-n", "100000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
