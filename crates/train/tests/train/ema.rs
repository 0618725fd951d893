//! The moving average of the weights (`ema`): what it holds, that it resumes exactly, that
//! `best/` can keep it, and that it is committed with the run's saves.

#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default

use std::fs;
use std::path::Path;

use burn::backend::NdArray;
use makemore_model::ModelKind;
use makemore_train::{
    evaluate, prepare, Checkpoint, EmaConfig, Trainer, TrainingConfig, BEST_DIR, EMA_DIR,
    JOURNAL_FILE, MODEL_FILE, STATE_FILE,
};

use crate::resume::{run_interrupted, run_straight, sequence_config, weights, words, Collect};

type B = burn::backend::Autodiff<NdArray<f32>>;

fn ema_config() -> TrainingConfig {
    let mut c = sequence_config(ModelKind::Transformer);
    c.eval_every = 10;
    c.keep_best = true;
    c.ema = Some(EmaConfig {
        decay: 0.9,
        best: true,
    });
    c
}

fn dev_loss_of(dir: &Path, c: &TrainingConfig) -> f64 {
    let data = prepare(words(), c).unwrap();
    let model = Checkpoint::open(dir)
        .unwrap()
        .load_model::<NdArray<f32>>(&Default::default())
        .unwrap();
    evaluate(&model, &data.dev, &Default::default()).unwrap()
}

#[test]
fn the_average_resumes_exactly_and_best_keeps_it() {
    let c = ema_config();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    run_interrupted(b.path(), &c, 23);
    for sub in ["", EMA_DIR, BEST_DIR] {
        assert_eq!(
            weights(&a.path().join(sub)),
            weights(&b.path().join(sub)),
            "{sub:?}"
        );
    }
    let (live, avg) = (weights(a.path()), weights(&a.path().join(EMA_DIR)));
    assert_ne!(live, avg, "the average is not the live weights");
    let ema = Checkpoint::open(a.path().join(EMA_DIR)).unwrap();
    assert_eq!(ema.state.step, c.steps);
    // ema/state.json's dev loss is its weights' (evaluated at the end).
    let dev = dev_loss_of(&a.path().join(EMA_DIR), &c);
    assert!((dev - ema.state.dev_loss.unwrap()).abs() < 1e-6);
    // best/ holds averaged weights: its dev loss is the one recorded, and at its step the
    // average (not the live model) was evaluated.
    let best = Checkpoint::open(a.path().join(BEST_DIR)).unwrap();
    let kept = dev_loss_of(&a.path().join(BEST_DIR), &c);
    assert!((kept - best.state.dev_loss.unwrap()).abs() < 1e-6);
    if best.state.step == c.steps {
        assert_eq!(weights(&a.path().join(BEST_DIR)), avg);
    }
    // metrics.csv has the average's dev loss beside the live one at every evaluation, the
    // interrupted run's file the same bytes as the straight one's.
    let rows = makemore_train::read_metrics(&a.path().join("metrics.csv")).unwrap();
    let evaluated: Vec<_> = rows.iter().filter(|r| r.dev_loss.is_some()).collect();
    assert_eq!(evaluated.len() as u64, c.steps / c.eval_every);
    assert!(evaluated.iter().all(|r| r.ema_dev_loss.is_some()));
    assert!(rows
        .iter()
        .all(|r| r.dev_loss.is_some() || r.ema_dev_loss.is_none()));
    let last = rows.last().unwrap().ema_dev_loss.unwrap();
    assert!((last - ema.state.dev_loss.unwrap()).abs() < 1e-6, "{last}");
    let metrics = |d: &Path| std::fs::read(d.join("metrics.csv")).unwrap();
    assert_eq!(metrics(a.path()), metrics(b.path()));
}

#[test]
fn after_one_step_the_average_blends_the_initial_and_the_trained_weights() {
    let mut c = TrainingConfig::default();
    c.steps = 1;
    c.batch_size = 8;
    c.model.n_hidden = 16;
    c.ema = Some(EmaConfig {
        decay: 0.75,
        best: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let data = prepare(words(), &c).unwrap();
    let trained = Trainer::new(&data, &c, dir.path())
        .fit::<B>(&Default::default())
        .unwrap();
    let ema = Checkpoint::open(dir.path().join(EMA_DIR)).unwrap();
    // The summary reports the average's dev loss.
    let dev = dev_loss_of(&dir.path().join(EMA_DIR), &c);
    assert_eq!(trained.summary.ema_dev_loss, ema.state.dev_loss);
    assert!((dev - ema.state.dev_loss.unwrap()).abs() < 1e-6);
    let mut model = c.model.clone();
    model.vocab_size = data.vocab.len();
    let initial = {
        use burn::module::Module;
        let mut out = Vec::new();
        model
            .init::<NdArray<f32>>(&Default::default())
            .visit(&mut Collect(&mut out));
        out
    };
    let live = weights(dir.path());
    let avg = weights(&dir.path().join(EMA_DIR));
    for ((w0, w1), e) in initial.iter().zip(&live).zip(&avg) {
        assert_ne!(w0, w1, "the step changed every tensor");
        for ((x, y), z) in w0.iter().zip(w1).zip(e) {
            let want = 0.75 * x + 0.25 * y;
            assert!(
                (z - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{z} vs {want}"
            );
        }
    }
}

/// A writer killed after the commit point of a save with an average: `RUN/ema` is read
/// through the run's journal (the save's average, not the one before), and the next writer
/// finishes the renames in both directories.
#[test]
fn the_average_is_committed_with_the_run() {
    let mut c = ema_config();
    c.steps = 40;
    let data = prepare(words(), &c).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    for (dir, until) in [(&old, 10), (&new, 20)] {
        Trainer::new(&data, &c, dir)
            .until(until)
            .fit::<B>(&Default::default())
            .unwrap();
    }
    let crashed = root.path().join("crashed");
    for sub in ["", EMA_DIR] {
        fs::create_dir_all(crashed.join(sub)).unwrap();
        for e in fs::read_dir(old.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                fs::copy(e.path(), crashed.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    // The writer appended the metrics before the commit point.
    fs::copy(new.join("metrics.csv"), crashed.join("metrics.csv")).unwrap();
    let ema_model = format!("{EMA_DIR}/{MODEL_FILE}");
    let ema_state = format!("{EMA_DIR}/{STATE_FILE}");
    let mut files = Vec::new();
    for name in [
        MODEL_FILE,
        "optimizer.mpk",
        &ema_model,
        &ema_state,
        STATE_FILE,
    ] {
        let path = Path::new(name);
        let temp = path.with_file_name(format!(
            ".{}.Ab12Cd.tmp",
            path.file_name().unwrap().to_str().unwrap()
        ));
        // The run's model was renamed before the crash; the rest were not.
        let target = if name == MODEL_FILE {
            path
        } else {
            temp.as_path()
        };
        fs::copy(new.join(name), crashed.join(target)).unwrap();
        files.push(serde_json::json!([name, temp.to_str().unwrap()]));
    }
    fs::write(
        crashed.join(JOURNAL_FILE),
        serde_json::json!({ "files": files }).to_string(),
    )
    .unwrap();
    let ema = Checkpoint::open(crashed.join(EMA_DIR)).unwrap();
    assert_eq!(ema.state.step, 20);
    assert_eq!(weights(&crashed.join(EMA_DIR)), weights(&new.join(EMA_DIR)));
    assert_ne!(weights(&old.join(EMA_DIR)), weights(&new.join(EMA_DIR)));
    let (ckpt, lock) = Checkpoint::open_to_resume(&crashed).unwrap();
    drop(lock);
    assert_eq!(ckpt.state.step, 20);
    for name in [MODEL_FILE, &ema_model, &ema_state, STATE_FILE] {
        assert_eq!(
            fs::read(crashed.join(name)).unwrap(),
            fs::read(new.join(name)).unwrap(),
            "{name}"
        );
    }
    let left: Vec<String> = fs::read_dir(crashed.join(EMA_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // And the run continues from it to the end as one never stopped.
    let straight = root.path().join("straight");
    Trainer::new(&data, &c, &straight)
        .fit::<B>(&Default::default())
        .unwrap();
    let ckpt = Checkpoint::open(&crashed).unwrap();
    Trainer::new(&data, &c, &crashed)
        .resume(ckpt)
        .fit::<B>(&Default::default())
        .unwrap();
    assert_eq!(
        weights(&crashed.join(EMA_DIR)),
        weights(&straight.join(EMA_DIR))
    );
}
