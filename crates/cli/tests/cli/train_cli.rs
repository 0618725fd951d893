//! `makemore train|eval|sample` on the real binary.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use crate::common;

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use common::{assert_clean_error, makemore, tensors, train_small, SMALL};

#[test]
fn train_eval_sample_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = makemore()
        .arg("train")
        .arg("--out")
        .arg(&run)
        .args(SMALL)
        .args(["--json", "--samples", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["steps"], 300);
    let dev = summary["dev_loss"].as_f64().unwrap();
    assert!(
        dev < 3.0,
        "a few hundred steps should beat the uniform 3.30: {dev}"
    );
    assert_eq!(summary["samples"].as_array().unwrap().len(), 5);
    for f in [
        "model.safetensors",
        "config.json",
        "vocab.json",
        "state.json",
        "metrics.csv",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }

    let out = makemore()
        .args(["eval", "--json", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["dev"]["loss"].as_f64().unwrap() - dev).abs() < 1e-4);
    assert!((v["dev"]["perplexity"].as_f64().unwrap() - dev.exp()).abs() < 1e-3);
    // SMALL's model: 27·10 embeddings, 30→32 hidden, 32→27 output (what sweeps report).
    assert_eq!(v["params"], 270 + 30 * 32 + 32 + 32 * 27 + 27);
    assert!(
        v.get("test").is_none(),
        "test is evaluated only when asked for"
    );
    let out = makemore()
        .args(["eval", "--json", "--split", "test", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["test"]["loss"].as_f64().is_some() && v.get("train").is_none());

    let out = makemore()
        .args(["sample", "-n", "7", "--prefix", "ka", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 7);
    for line in text.lines() {
        assert!(line.starts_with("ka"), "{line}");
        assert!(
            ["in train", "in dev", "in test", "new"]
                .iter()
                .any(|m| line.contains(m)),
            "{line}"
        );
    }
    // Same seed, same words.
    let again = makemore()
        .args(["sample", "-n", "7", "--prefix", "ka", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);

    let out = makemore()
        .args(["sample", "--prefix", "k9", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert_clean_error(&out, "'9'");
    let out = makemore()
        .args(["sample", "--top-k", "0", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert_clean_error(&out, "top-k");
    let out = makemore()
        .args(["sample", "--temperature", "0", "--checkpoint"])
        .arg(&run)
        .output()
        .unwrap();
    assert_clean_error(&out, "temperature");

    // An existing run is never silently replaced.
    let out = train_small(&run, &[]);
    assert_clean_error(&out, "already holds a run");
    assert!(train_small(&run, &["--force"]).status.success());
}

/// A GPU backend with no device (or not built in) is one line naming the backend, no panic.
#[test]
fn gpu_backend_without_a_device_is_a_clean_error() {
    // This machine kind has no NVIDIA driver; where one exists, there is nothing to check.
    if std::path::Path::new("/proc/driver/nvidia").exists() {
        common::skipped("this machine has an NVIDIA driver");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = makemore()
        .args(["bench", "--backend", "cuda", "--steps", "1"])
        .output()
        .unwrap();
    let expected = if cfg!(feature = "cuda") {
        "--backend cuda: no CUDA driver"
    } else {
        "built without the cuda backend"
    };
    assert_clean_error(&out, expected);
    let out = makemore()
        .args(["train", "--backend", "cuda", "--steps", "1", "--out"])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert_clean_error(&out, expected);
}

#[test]
fn bad_training_flags_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let cases: &[(&[&str], &str)] = &[
        (&["--block-size", "0"], "block_size"),
        (&["--n-embd", "0"], "n_embd"),
        (&["--n-hidden", "0"], "n_hidden"),
        (&["--batch-size", "0"], "batch_size"),
        (&["--steps", "0"], "steps"),
        (&["--lr", "-0.1"], "lr"),
        (&["--lr", "NaN"], "lr"),
        (&["--split", "0.8,0.1,0.2"], "add up to"),
        (
            &["--batch-size", "1000000"],
            "larger than the training split",
        ),
        (&["--backend", "tpu"], "invalid value 'tpu' for '--backend"),
    ];
    for (flags, needle) in cases {
        let o = makemore()
            .arg("train")
            .arg("--out")
            .arg(&out)
            .args(*flags)
            .arg("-q")
            .output()
            .unwrap();
        assert_clean_error(&o, needle);
        assert!(
            !out.join("state.json").exists(),
            "{flags:?} must not start a run"
        );
    }
}

#[test]
fn missing_checkpoint_is_a_clean_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for verb in ["eval", "sample"] {
        let o = makemore()
            .arg(verb)
            .arg("--checkpoint")
            .arg(&missing)
            .output()
            .unwrap();
        assert_clean_error(&o, "no such checkpoint directory");
    }
}

/// kill -9 at many moments, resume each time: the run completes, every checkpoint on disk
/// loads, and the final weights equal an uninterrupted run's.
#[test]
fn sigkill_and_resume_give_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let flags = [
        "--n-hidden",
        "32",
        // Long enough that every kill below lands before the run ends: each waits for one
        // new checkpoint and then at most 33 ms, a few hundred steps of this debug build,
        // so the eight kills use a few thousand (a run that finishes first fails).
        "--steps",
        "8000",
        "--checkpoint-every",
        "40",
        "--eval-every",
        "500",
        "--samples",
        "0",
        "-q",
        "--optimizer",
        "adamw",
    ];
    let o = makemore()
        .arg("train")
        .arg("--out")
        .arg(&reference)
        .args(flags)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let run = dir.path().join("killed");
    // After a new checkpoint, how long to wait before the kill: different moments of a step
    // and of a save.
    let delays_ms = [15u64, 4, 26, 9, 1, 33, 6, 20];
    let mut kills = 0;
    for attempt in 0.. {
        assert!(attempt < 200, "the run never finished");
        let state = run.join("state.json");
        let mut cmd = StdCommand::new(env!("CARGO_BIN_EXE_makemore"));
        cmd.arg("train").stdout(Stdio::null()).stderr(Stdio::null());
        if state.exists() {
            let text = std::fs::read_to_string(&state).unwrap();
            if text.contains("\"finished\": true") {
                break;
            }
            // Every committed checkpoint must load.
            common::run_ok(
                makemore()
                    .args(["eval", "--split", "dev", "--checkpoint"])
                    .arg(&run),
            );
            cmd.arg("--resume").arg(&run);
        } else {
            cmd.arg("--out").arg(&run).arg("--force").args(flags);
        }
        let step_now = |path: &Path| -> u64 {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["step"].as_u64())
                .unwrap_or(0)
        };
        let before = step_now(&state);
        let mut child = cmd.spawn().unwrap();
        if kills < delays_ms.len() {
            // Progress, not a clock: wait for this process's first new checkpoint.
            while step_now(&state) <= before && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(delays_ms[kills]));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
        }
        child.wait().unwrap();
    }
    assert_eq!(
        kills,
        delays_ms.len(),
        "every kill point should land during the run"
    );
    assert_eq!(
        tensors(&reference.join("model.safetensors")),
        tensors(&run.join("model.safetensors"))
    );
    let metrics = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
    assert_eq!(metrics(&reference), metrics(&run));
}

#[test]
fn until_then_resume_is_the_straight_run_and_finds_its_own_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let words = dir.path().join("words.txt");
    let list: Vec<String> = ["an", "bel", "cor", "dan", "eli", "fay", "gus", "hal"]
        .iter()
        .flat_map(|a| ["a", "ie", "o", "ette", "us"].map(|b| format!("{a}{b}")))
        .collect();
    std::fs::write(&words, list.join("\n")).unwrap();
    let (straight, halves) = (dir.path().join("straight"), dir.path().join("halves"));
    let data = ["--data", words.to_str().unwrap()];
    let out = train_small(&straight, &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Stopped at step 100 with a checkpoint, unfinished.
    let out = train_small(&halves, &[&data[..], &["--until", "100"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(halves.join("state.json")).unwrap()).unwrap();
    assert_eq!(
        (state["step"].as_u64(), state["finished"].as_bool()),
        (Some(100), Some(false))
    );
    // Resumed without --data: the run's corpus is read again (the built-in one would be
    // refused as a different corpus).
    common::run_ok(
        makemore()
            .args(["train", "-q", "--samples", "0", "--resume"])
            .arg(&halves),
    );
    assert_eq!(
        std::fs::read(straight.join("model.safetensors")).unwrap(),
        std::fs::read(halves.join("model.safetensors")).unwrap(),
        "stopping and resuming gives the straight run's weights"
    );

    // eval without --data uses the run's corpus too.
    let eval = |extra: &[&str]| {
        let out = common::run_ok(
            makemore()
                .args(["eval", "--json", "--checkpoint"])
                .arg(&halves)
                .args(extra),
        );
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["dev"]["loss"].clone()
    };
    assert_eq!(eval(&[]), eval(&data));
    // When the file is gone, the error says so and asks for --data.
    std::fs::rename(&words, dir.path().join("moved.txt")).unwrap();
    let out = makemore()
        .args(["eval", "--checkpoint"])
        .arg(&halves)
        .output()
        .unwrap();
    assert_clean_error(&out, "which no longer exists; pass --data");
}

#[test]
fn print_config_resolves_dependent_defaults() {
    let config = |flags: &[&str]| -> serde_json::Value {
        let out = common::run_ok(makemore().args(["train", "--print-config"]).args(flags));
        serde_json::from_str(&out).unwrap()
    };
    // The final rate follows the peak: a cosine schedule never ends above where it starts.
    let c = config(&["--lr-schedule", "cosine", "--lr", "0.002"]);
    assert_eq!(c["schedule"]["kind"], "cosine");
    assert!((c["schedule"]["final_lr"].as_f64().unwrap() - 0.0002).abs() < 1e-12);
    // The defaults stay the notebook's: 0.1, then 0.01 from half the steps.
    let c = config(&[]);
    assert_eq!(c["schedule"]["decayed_lr"], 0.01);
    assert_eq!(c["schedule"]["decay_at"], 100_000);
    let c = config(&["--steps", "3000"]);
    assert_eq!(c["schedule"]["decay_at"], 1500);
    // The hierarchical model takes its layers from the block size.
    let c = config(&[
        "--block-size",
        "8",
        "--hierarchical",
        "true",
        "--norm",
        "batch",
    ]);
    assert_eq!(c["model"]["n_layers"], 3);
    assert_eq!(c["model"]["norm"], "Batch");
}

/// An option that a model kind does not use is refused with one line naming it and the
/// kind, before --out is touched; a config leaves such fields out.
#[test]
fn options_a_model_does_not_use_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--model", "gru", "--init", "notebook"],
            "init is not an option of the gru model",
        ),
        (
            &["--model", "gru", "--kernels", "plain"],
            "kernels is not an option of the gru model",
        ),
        (
            &["--model", "gru", "--layers", "3"],
            "n_layers is not an option of the gru model",
        ),
        (
            &["--model", "rnn", "--heads", "7"],
            "n_head is not an option of the rnn model",
        ),
        (
            &["--model", "transformer", "--n-hidden", "128"],
            "n_hidden is not an option of the transformer model",
        ),
        (
            &["--model", "bow", "--norm", "layer"],
            "norm is not an option of the bow model",
        ),
        (
            &["--heads", "2"],
            "n_head is not an option of the mlp model",
        ),
    ];
    for (flags, needle) in cases {
        let o = makemore()
            .arg("train")
            .arg("--out")
            .arg(&out)
            .args(*flags)
            .arg("-q")
            .output()
            .unwrap();
        assert_clean_error(&o, needle);
        assert!(!out.exists(), "{flags:?} must not touch --out");
    }
    let config = |flags: &[&str]| -> serde_json::Value {
        let out = common::run_ok(makemore().args(["train", "--print-config"]).args(flags));
        serde_json::from_str(&out).unwrap()
    };
    let gru = config(&["--model", "gru"]);
    for field in [
        "n_layers",
        "n_head",
        "init",
        "kernels",
        "norm",
        "hierarchical",
        "direct",
    ] {
        assert!(gru["model"].get(field).is_none(), "{field}: {gru}");
    }
    assert_eq!(gru["model"]["n_hidden"], 64);
    let transformer = config(&["--model", "transformer"]);
    assert!(
        transformer["model"].get("n_hidden").is_none(),
        "{transformer}"
    );
    assert_eq!(transformer["model"]["n_head"], 4);
}

/// makemore.py's models through the CLI: train (with the kind's defaults), stop and resume,
/// evaluate, sample with every option, plot, and the learning-rate finder from the run's config.
#[test]
fn sequence_models_train_resume_evaluate_sample_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["rnn", "gru", "bow", "transformer"] {
        let run = dir.path().join(model);
        // Each kind takes only the sizes it uses.
        let sizes: &[&str] = if model == "transformer" {
            &["--layers", "1", "--heads", "2"]
        } else {
            &["--n-hidden", "24"]
        };
        let small = [
            "--model",
            model,
            "--n-embd",
            "16",
            "--steps",
            "60",
            "--lr",
            "0.01",
            "--eval-every",
            "20",
            "--checkpoint-every",
            "20",
            "--samples",
            "3",
            "-q",
        ];
        common::run_ok(
            makemore()
                .arg("train")
                .arg("--out")
                .arg(&run)
                .args(small)
                .args(sizes)
                .args(["--until", "30"]),
        );
        let out = common::run_ok(
            makemore()
                .args(["train", "-q", "--json", "--samples", "3", "--resume"])
                .arg(&run),
        );
        let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(summary["steps"], 60, "{model}: {out}");
        assert_eq!(summary["samples"].as_array().unwrap().len(), 3);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["model"]["kind"], model);
        // makemore.py's optimiser; the positions from the shipped corpus's longest name + 1.
        assert_eq!(config["optimizer"]["beta_2"], 0.99);
        assert!(config["model"]["block_size"].as_u64().unwrap() > 10);
        // The dev split only: `train_eval_sample_round_trip` evaluates both splits.
        let eval = common::run_ok(
            makemore()
                .args(["eval", "--json", "--split", "dev", "--checkpoint"])
                .arg(&run),
        );
        let eval: serde_json::Value = serde_json::from_str(&eval).unwrap();
        assert!(
            eval["dev"]["loss"].as_f64().unwrap() < 3.0,
            "{model}: {eval}"
        );
        // Every character of every dev word and its end, as for the MLP.
        assert_eq!(eval["dev"]["examples"], 22_949);
        assert!(
            run.join("best").join("model.safetensors").exists(),
            "{model}: best/ kept"
        );
        common::run_ok(
            makemore()
                .args(["eval", "--split", "dev", "--checkpoint"])
                .arg(run.join("best")),
        );
        let sampled = common::run_ok(
            makemore()
                .args([
                    "sample",
                    "-n",
                    "6",
                    "--prefix",
                    "ka",
                    "--top-k",
                    "5",
                    "--only-new",
                    "--temperature",
                    "0.8",
                    "--checkpoint",
                ])
                .arg(&run),
        );
        let words: Vec<&str> = sampled.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(words.len(), 6, "{model}: {sampled}");
        assert!(
            words
                .iter()
                .all(|l| l.starts_with("ka") && l.ends_with("new")),
            "{model}: {sampled}"
        );
        common::run_ok(makemore().args(["plot", "loss", "--checkpoint"]).arg(&run));
        assert!(run.join("loss.png").exists());
        common::run_ok(
            makemore()
                .args(["lr-find", "--steps", "20", "--config"])
                .arg(run.join("config.json"))
                .arg("--out")
                .arg(dir.path().join(format!("lr-{model}"))),
        );
    }
}

/// The CPU kernels run compiled for AVX-512, AVX2 or the baseline, whichever the CPU has
/// (`MAKEMORE_SIMD` forces a narrower one); each path computes the same operations in the
/// same order, so a run gives the same weights on all of them.
#[test]
fn every_vector_width_trains_the_same_bits() {
    let dir = tempfile::tempdir().unwrap();
    let words = common::few_words_file(dir.path());
    let mut weights = Vec::new();
    for simd in ["", "avx2", "none"] {
        let run = dir.path().join(format!("run-{simd}"));
        let mut cmd = makemore();
        cmd.env("MAKEMORE_SIMD", simd)
            .arg("train")
            .arg("--data")
            .arg(&words)
            .arg("--out")
            .arg(&run);
        cmd.args(["--model", "transformer", "--n-embd", "16", "--layers", "2"])
            .args(["--steps", "6", "--batch-size", "8", "--samples", "0"])
            .args(["--dropout", "0.1"]);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        weights.push(tensors(&run.join("model.safetensors")));
    }
    assert!(!weights[0].is_empty());
    assert_eq!(weights[0], weights[1], "AVX2 and the widest path differ");
    assert_eq!(
        weights[0], weights[2],
        "the baseline and the widest path differ"
    );
}
