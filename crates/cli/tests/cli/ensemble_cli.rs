//! Ensembles (`eval`/`sample` with several checkpoints or an ensemble file) and the moving
//! average of the weights (`train --ema`), through the binary.

use std::path::Path;

use crate::common::{assert_clean_error, makemore, run_ok, trained};

/// `eval --json` of `args`, parsed.
fn eval_json(args: &[&str]) -> serde_json::Value {
    let out = run_ok(
        makemore()
            .arg("eval")
            .args(args)
            .args(["--split", "dev", "--json"]),
    );
    serde_json::from_str(&out).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_ensemble_of_models_of_two_kinds_scores_below_its_members_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (mlp, gru) = (dir.path().join("mlp"), dir.path().join("gru"));
    trained(&mlp, &[]);
    trained(&gru, &["--model", "gru", "--n-embd", "16"]);
    let alone = |d: &Path| {
        eval_json(&["--checkpoint", path(d)])["dev"]["loss"]
            .as_f64()
            .unwrap()
    };
    let (l_mlp, l_gru) = (alone(&mlp), alone(&gru));
    let both = eval_json(&["--checkpoint", path(&mlp), "--checkpoint", path(&gru)]);
    let members: Vec<f64> = both["dev"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // Each member's loss as `eval` gives it alone (from log-probabilities, not the fused loss).
    assert!((members[0] - l_mlp).abs() < 1e-5, "{members:?} vs {l_mlp}");
    assert!((members[1] - l_gru).abs() < 1e-5, "{members:?} vs {l_gru}");
    // Windows and words predict the same dev characters; the mixture's loss is below the
    // mean of the members' (ln is concave) and finite.
    let mixed = both["dev"]["loss"].as_f64().unwrap();
    assert!(mixed < (l_mlp + l_gru) / 2.0, "{mixed} vs {l_mlp}, {l_gru}");
    assert_eq!(both["members"][1]["kind"], "gru");

    // The same ensemble from a file, paths relative to it, weights normalised.
    let file = dir.path().join("pair.json");
    std::fs::write(
        &file,
        r#"{"members": [{"checkpoint": "mlp", "weight": 3}, {"checkpoint": "gru", "weight": 3}]}"#,
    )
    .unwrap();
    let from_file = eval_json(&["--ensemble", path(&file)]);
    assert_eq!(from_file["dev"]["loss"], both["dev"]["loss"]);
    assert_eq!(from_file["members"][0]["weight"], 0.5);

    // An ensemble of one is its member.
    let one = dir.path().join("one.json");
    std::fs::write(
        &one,
        r#"{"members": [{"checkpoint": "gru", "weight": 0.2}]}"#,
    )
    .unwrap();
    let single = eval_json(&["--ensemble", path(&one)]);
    assert!((single["dev"]["loss"].as_f64().unwrap() - l_gru).abs() < 1e-5);
    let draw = |args: &[&str]| run_ok(makemore().arg("sample").args(args).args(["-n", "8"]));
    assert_eq!(
        draw(&["--ensemble", path(&one)]),
        draw(&["--checkpoint", path(&gru)])
    );
    // Sampling from the pair gives words (of at most the GRU's length).
    let words = draw(&["--ensemble", path(&file)]);
    assert_eq!(words.lines().count(), 8, "{words}");
}

#[test]
fn an_ensemble_of_different_splits_or_bad_weights_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    trained(&a, &[]);
    trained(&b, &["--split-seed", "7"]);
    let out = makemore()
        .args(["eval", "--checkpoint", path(&a), "--checkpoint", path(&b)])
        .output()
        .unwrap();
    assert_clean_error(&out, "different split");
    let file = dir.path().join("bad.json");
    std::fs::write(&file, r#"{"members": [{"checkpoint": "a", "weight": -1}]}"#).unwrap();
    let out = makemore()
        .args(["sample", "--ensemble", path(&file)])
        .output()
        .unwrap();
    assert_clean_error(&out, "weight must be a finite number > 0");
    let out = makemore().args(["eval"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn train_with_ema_keeps_an_average_that_eval_reads() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = run_ok(
        makemore()
            .arg("train")
            .arg("--out")
            .arg(&run)
            .args(crate::common::SMALL)
            .args(["--samples", "0", "--ema", "0.99", "--keep-best", "true"])
            .args(["--ema-best", "true"]),
    );
    let ema_line = out
        .lines()
        .find(|l| l.starts_with("ema dev loss"))
        .unwrap_or_else(|| panic!("{out}"));
    let printed: f64 = ema_line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let ema = eval_json(&["--checkpoint", path(&run.join("ema"))]);
    assert!((ema["dev"]["loss"].as_f64().unwrap() - printed).abs() < 1e-4);
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(config.contains("\"decay\": 0.99"), "{config}");
    // --ema-best without an average is refused.
    let out = makemore()
        .arg("train")
        .arg("--out")
        .arg(dir.path().join("no"))
        .args(["--ema-best", "true", "--keep-best", "true"])
        .output()
        .unwrap();
    assert_clean_error(&out, "ema_best needs");
}

#[test]
fn train_distils_from_an_ensemble_file_and_resumes_from_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    trained(&dir.path().join("mlp"), &[]);
    trained(
        &dir.path().join("gru"),
        &["--model", "gru", "--n-embd", "16"],
    );
    std::fs::write(
        dir.path().join("teachers.json"),
        r#"{"members": [{"checkpoint": "mlp"}, {"checkpoint": "gru", "weight": 2}]}"#,
    )
    .unwrap();
    let teacher = eval_json(&["--ensemble", path(&dir.path().join("teachers.json"))]);
    assert!(teacher["dev"]["loss"].as_f64().unwrap().is_finite());
    // A relative teacher path, from the run's working directory.
    let student = |extra: &[&str]| {
        let mut cmd = makemore();
        cmd.current_dir(dir.path())
            .args([
                "train", "--out", "student", "--model", "gru", "--n-embd", "16",
            ])
            .args(["--steps", "40", "--batch-size", "16", "--samples", "0"])
            .args(extra);
        cmd
    };
    let out = student(&[
        "--distill",
        "teachers.json",
        "--distill-weight",
        "0.7",
        "--until",
        "20",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("distilling from"), "{stderr}");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("student/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["distill"]["weight"], 0.7);
    let recorded = Path::new(config["distill"]["teacher"].as_str().unwrap());
    assert!(recorded.is_absolute(), "{recorded:?}");
    // Resumed from another directory, the run finds its teacher by the recorded path.
    run_ok(
        makemore()
            .current_dir("/")
            .args(["train", "--samples", "0", "--resume"])
            .arg(dir.path().join("student")),
    );

    // A resume whose teacher is gone says so.
    run_ok(&mut student(&[
        "--distill",
        "teachers.json",
        "--until",
        "10",
        "--force",
    ]));
    std::fs::rename(
        dir.path().join("teachers.json"),
        dir.path().join("moved.json"),
    )
    .unwrap();
    let out = makemore()
        .args(["train", "--samples", "0", "--resume"])
        .arg(dir.path().join("student"))
        .output()
        .unwrap();
    assert_clean_error(&out, "a teacher that cannot be read");
    std::fs::rename(
        dir.path().join("moved.json"),
        dir.path().join("teachers.json"),
    )
    .unwrap();

    // A missing teacher, a weight without a teacher, and a weight outside (0, 1] are refused
    // before --out is made.
    let refused = |extra: &[&str], needle: &str| {
        let _ = std::fs::remove_dir_all(dir.path().join("student"));
        let out = student(extra).output().unwrap();
        assert_clean_error(&out, needle);
        assert!(!dir.path().join("student").exists(), "{needle}");
    };
    refused(
        &["--distill", "nowhere.json"],
        "cannot use the distillation teacher",
    );
    refused(
        &["--distill-weight", "0.5"],
        "distill_weight needs a teacher",
    );
    refused(
        &["--distill", "teachers.json", "--distill-weight", "1.5"],
        "distill weight must be in (0, 1]",
    );
}
