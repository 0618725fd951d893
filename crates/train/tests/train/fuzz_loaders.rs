//! Arbitrary bytes and JSON fed to the config, vocabulary and checkpoint loaders give errors,
//! never panics; a damaged checkpoint that still loads is a model with its config's shapes
//! and a finite loss, and a damaged one that still resumes leaves a consistent checkpoint.

#![allow(clippy::unwrap_used)] // a test fails by panicking
#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use burn::backend::{Autodiff, NdArray};
use makemore_train::{
    evaluate, prepare, prepare_with_vocab, read_metrics, train, Checkpoint, OptimizerKind,
    TrainEvent, TrainingConfig,
};
use makemore_vocab::Vocab;
use proptest::prelude::*;

type B = Autodiff<NdArray<f32>>;

fn words() -> Vec<String> {
    "emma olivia ava isabella sophia charlotte mia amelia harper evelyn"
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn config() -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.steps = 6;
    c.batch_size = 8;
    c.model.n_hidden = 8;
    c.eval_every = 0;
    c.checkpoint_every = 3;
    c.optimizer = OptimizerKind::adamw(0.01);
    c
}

/// A small unfinished checkpoint (stopped at step 3), made once and copied by each case.
fn template() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let c = config();
        let data = prepare(words(), &c).unwrap();
        let stop = AtomicBool::new(false);
        let mut on_event = |e: &TrainEvent| {
            if matches!(e, TrainEvent::Step { step: 3, .. }) {
                stop.store(true, Ordering::Relaxed);
            }
        };
        let s = train::<B>(
            &data,
            &c,
            dir.path(),
            None,
            &Default::default(),
            &stop,
            &mut on_event,
        )
        .unwrap()
        .summary;
        assert!(s.interrupted);
        dir
    })
    .path()
}

fn copy_template() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(template()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// Most optimizer steps a resumed case takes. A replaced `steps` field can ask for any
/// number (10^18 is a valid config), so the harness stops the run itself, as Ctrl-C would:
/// the loaders are under test here, not the length of training.
const MAX_RESUMED_STEPS: u64 = 4;

/// Opens, loads and resumes a checkpoint for a few steps. Any step may fail with an error;
/// none may panic, and what succeeds must be right: a loaded model has the shapes its config
/// describes and a finite loss, and a resumed run leaves a checkpoint that opens again with
/// one metrics row per step done.
fn exercise(dir: &Path) -> Result<(), String> {
    let ckpt = Checkpoint::open(dir).map_err(|e| e.to_string())?;
    let model = ckpt
        .load_model::<NdArray<f32>>(&Default::default())
        .map_err(|e| e.to_string())?;
    let m = &ckpt.config.model;
    use burn::module::Module;
    assert_eq!(
        model.num_params(),
        m.num_params(),
        "{dir:?}: parameters against the config"
    );
    let table = model.embedding_table().unwrap();
    assert_eq!((table.len(), table[0].len()), (m.vocab_size, m.n_embd));
    let data = prepare_with_vocab(words(), &ckpt.config, Some(ckpt.vocab.clone()))
        .map_err(|e| e.to_string())?;
    let loss = evaluate(&model, &data.train, &Default::default());
    assert!(
        loss.is_some_and(f64::is_finite),
        "{dir:?}: a loaded model gave loss {loss:?}"
    );
    let data = prepare(words(), &ckpt.config).map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let config = ckpt.config.clone();
    let mut taken = 0;
    let mut on_event = |e: &TrainEvent| {
        if matches!(e, TrainEvent::Step { .. }) {
            taken += 1;
            if taken >= MAX_RESUMED_STEPS {
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    train::<B>(
        &data,
        &config,
        dir,
        Some(ckpt),
        &Default::default(),
        &stop,
        &mut on_event,
    )
    .map_err(|e| e.to_string())?;
    let after = Checkpoint::open(dir).expect("a resumed run left a checkpoint that opens");
    let rows = read_metrics(&dir.join("metrics.csv")).expect("its metrics read");
    assert_eq!(
        rows.len() as u64,
        after.state.step,
        "one metrics row per step done"
    );
    assert!(rows.iter().enumerate().all(|(i, r)| r.step == i as u64 + 1));
    Ok(())
}

/// Arbitrary JSON values, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z_.]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of a JSON object, chosen by a path of indices, replaced by `value`.
fn replace_field(v: &mut serde_json::Value, path: &[usize], value: serde_json::Value) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            let key = m
                .keys()
                .nth(path.first().copied().unwrap_or(0) % m.len())
                .unwrap()
                .clone();
            let child = m.get_mut(&key).unwrap();
            if path.len() > 1 && child.is_object() {
                replace_field(child, &path[1..], value);
            } else {
                *child = value;
            }
        }
        _ => *v = value,
    }
}

/// 64 cases per property in the test suite; `PROPTEST_CASES=5000` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

fn base_json(file: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(template().join(file)).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_from_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(c) = TrainingConfig::from_json(&String::from_utf8_lossy(&bytes)) {
            let _ = c.validate();
        }
    }

    #[test]
    fn config_with_one_field_replaced(path in prop::collection::vec(0usize..32, 1..3), value in json()) {
        let mut v = base_json("config.json");
        replace_field(&mut v, &path, value);
        if let Ok(c) = TrainingConfig::from_json(&v.to_string()) {
            let _ = c.validate();
            // A config that validates describes a model small enough to build.
            if c.validate().is_ok() {
                prop_assert!(c.model.num_params() <= makemore_model::MAX_PARAMS);
            }
        }
    }

    #[test]
    fn vocab_from_arbitrary_json(v in json(), bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let _ = Vocab::from_json(&v.to_string());
        let _ = Vocab::from_json(&String::from_utf8_lossy(&bytes));
        let _ = Vocab::from_json(&serde_json::json!({ "chars": v }).to_string());
    }

    #[test]
    fn checkpoint_with_damaged_model_bytes(
        cut in 0usize..4000,
        flips in prop::collection::vec((0usize..4000, any::<u8>()), 0..4),
    ) {
        let (_keep, dir) = copy_template();
        let path = dir.join("model.safetensors");
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut.min(bytes.len()));
        std::fs::write(&path, &bytes).unwrap();
        // Flipped float bits may still load (they are just other weights), and must then
        // be a model of the config's shapes with a finite loss; a damaged header, size or
        // value (non-finite, absurd) is refused.
        if let Err(e) = exercise(&dir) {
            prop_assert!(!e.is_empty());
        }
    }

    #[test]
    fn checkpoint_with_a_metrics_line_damaged(
        line in 0usize..8,
        text in "[0-9a-z.,-]{0,16}",
    ) {
        let (_keep, dir) = copy_template();
        let path = dir.join("metrics.csv");
        let original = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
        let at = line % lines.len();
        lines[at] = text;
        let damaged = lines.join("\n") + "\n";
        std::fs::write(&path, &damaged).unwrap();
        // Refused with the file named, unless the new line is still the header or the row of
        // the same step (then exercise checks the resumed run as any other).
        match exercise(&dir) {
            Err(e) => prop_assert!(e.contains("metrics.csv"), "{e}"),
            Ok(()) => {
                let same_kind = if at == 0 {
                    lines[0] == "step,lr,loss,dev_loss"
                } else {
                    lines[at].split(',').next() == Some(at.to_string().as_str())
                };
                prop_assert!(same_kind, "accepted {damaged:?}");
            }
        }
    }

    #[test]
    fn checkpoint_with_arbitrary_files(
        file in prop::sample::select(vec!["config.json", "vocab.json", "state.json", "optimizer.mpk", "model.safetensors", "metrics.csv"]),
        bytes in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let (_keep, dir) = copy_template();
        std::fs::write(dir.join(file), &bytes).unwrap();
        prop_assert!(exercise(&dir).is_err(), "{file} of arbitrary bytes was accepted");
    }

    #[test]
    fn checkpoint_with_one_json_field_replaced(
        file in prop::sample::select(vec!["config.json", "state.json"]),
        path in prop::collection::vec(0usize..32, 1..3),
        value in json(),
    ) {
        let (_keep, dir) = copy_template();
        let mut v = base_json(file);
        replace_field(&mut v, &path, value);
        std::fs::write(dir.join(file), v.to_string()).unwrap();
        // An error, or (exercise checks it) a consistent model and checkpoint.
        if let Err(e) = exercise(&dir) {
            prop_assert!(!e.is_empty());
        }
    }
}

/// The harness is not vacuous: an undamaged copy opens, loads and resumes to the end.
#[test]
fn undamaged_copy_resumes() {
    let (_keep, dir) = copy_template();
    exercise(&dir).unwrap();
    let ckpt = Checkpoint::open(&dir).unwrap();
    assert!(ckpt.state.finished);
    assert_eq!(ckpt.state.step, config().steps);
}

/// The case that once hung CI for an hour: `steps` replaced by a huge number is a valid
/// config, and the resumed run goes on until it is stopped. The harness stops it.
#[test]
fn config_asking_for_endless_training_is_stopped_by_the_harness() {
    let (_keep, dir) = copy_template();
    let steps = serde_json::Value::from(1_000_000_000_000_000_000u64);
    let mut v = base_json("config.json");
    v["steps"] = steps.clone();
    std::fs::write(dir.join("config.json"), v.to_string()).unwrap();
    // A run that started with this config (state.json records it, and a resume refuses an
    // edited config.json).
    let mut state = base_json("state.json");
    state["config"]["steps"] = steps;
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
    exercise(&dir).unwrap();
    let ckpt = Checkpoint::open(&dir).unwrap();
    assert!(!ckpt.state.finished);
    assert_eq!(ckpt.state.step, 3 + MAX_RESUMED_STEPS);
}
