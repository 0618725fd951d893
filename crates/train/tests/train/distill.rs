//! Distillation (`distill`): the loss is the cross-entropy against the teacher's
//! distributions, an ensemble teacher is its members' mixture, a distilled run resumes
//! exactly, and a teacher that changed or saw other words is refused.

#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default

use std::path::Path;
use std::sync::atomic::AtomicBool;

use burn::backend::NdArray;
use makemore_model::ModelKind;
use makemore_train::{
    evaluate, prepare, score_ensemble, train, Checkpoint, DistillConfig, LrSchedule, OptimizerKind,
    TrainEvent, Trainer, TrainingConfig,
};

use crate::resume::{run_interrupted, run_straight, sequence_config, weights, words};

type B = burn::backend::Autodiff<NdArray<f32>>;

fn mlp_config() -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.steps = 40;
    c.batch_size = 16;
    c.model.n_hidden = 32;
    c.eval_every = 20;
    c.checkpoint_every = 10;
    c
}

/// Trains `c` into `dir`, stopping after `steps` steps in all (0: only the initial weights).
fn train_until(dir: &Path, c: &TrainingConfig, steps: u64) {
    let data = prepare(words(), c).unwrap();
    Trainer::new(&data, c, dir)
        .until(steps)
        .fit::<B>(&Default::default())
        .unwrap();
}

fn distilled(c: &TrainingConfig, teacher: &Path, weight: f64) -> TrainingConfig {
    let mut c = c.clone();
    c.distill = Some(DistillConfig {
        teacher: teacher.to_path_buf(),
        weight,
    });
    c
}

/// The teacher's loss on the training characters that the run reports, or its error.
fn teacher_loss(c: &TrainingConfig, dir: &Path) -> Result<f64, String> {
    let data = prepare(words(), c).unwrap();
    let mut loss = None;
    train::<B>(
        &data,
        c,
        dir,
        None,
        &Default::default(),
        &AtomicBool::new(false),
        &mut |e: &TrainEvent| {
            if let TrainEvent::Teacher { train_loss, .. } = e {
                loss = Some(*train_loss);
            }
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(loss.expect("a distilled run reports its teacher"))
}

fn largest_change(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A student whose teacher is itself (its initial weights), with the teacher's whole share
/// (weight 1), has nothing to learn: the gradient of the cross-entropy against its own
/// distributions is zero, so an SGD step leaves every weight where it was. Without the
/// teacher the same step moves them. This fails if a row's soft targets belonged to another
/// character (a misaligned table), or if the loss were not that cross-entropy.
#[test]
fn a_student_taught_by_itself_does_not_move() {
    let kinds = [ModelKind::Mlp, ModelKind::Transformer, ModelKind::Gru];
    for kind in kinds {
        let mut c = match kind {
            ModelKind::Mlp => mlp_config(),
            k => sequence_config(k),
        };
        c.optimizer = OptimizerKind::Sgd;
        c.model.dropout = 0.0;
        c.schedule = LrSchedule::Constant { lr: 1.0 };
        c.steps = 1;
        c.eval_every = 0;
        c.checkpoint_every = 0;
        c.keep_best = false;
        let (t, a, b) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        train_until(t.path(), &c, 0);
        run_straight(a.path(), &distilled(&c, t.path(), 1.0));
        run_straight(b.path(), &c);
        let start = weights(t.path());
        let taught = largest_change(&start, &weights(a.path()));
        let plain = largest_change(&start, &weights(b.path()));
        assert!(taught < 1e-5, "{kind:?}: moved by {taught}");
        assert!(
            plain > 1e-3,
            "{kind:?}: the plain step moved by only {plain}"
        );
    }
}

/// The table holds the teacher's distributions: its loss on the training characters is the
/// one `evaluate` gives a single teacher, and an ensemble's mixture loss for an ensemble
/// (members of different kinds, reading the words differently).
#[test]
fn the_teacher_is_its_checkpoint_or_its_ensembles_mixture() {
    let gru = sequence_config(ModelKind::Gru);
    let mut mlp = mlp_config();
    mlp.split = gru.split;
    let (t1, t2, s) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    train_until(t1.path(), &gru, 30);
    train_until(t2.path(), &mlp, 30);
    let device = Default::default();
    let open = |d: &Path| {
        let ckpt = Checkpoint::open(d).unwrap();
        let data = prepare(words(), &ckpt.config).unwrap();
        let model = ckpt.load_model::<NdArray<f32>>(&device).unwrap();
        (model, data)
    };
    let ((m1, d1), (m2, d2)) = (open(t1.path()), open(t2.path()));
    let mut student = sequence_config(ModelKind::Transformer);
    student.steps = 2;

    let one = teacher_loss(&distilled(&student, t1.path(), 0.5), s.path()).unwrap();
    let expected = evaluate(&m1, &d1.train, &device).unwrap();
    assert!((one - expected).abs() < 1e-5, "{one} vs {expected}");

    let file = t1.path().parent().unwrap().join("teachers.json");
    let spec = serde_json::json!({"members": [
        {"checkpoint": t1.path(), "weight": 1},
        {"checkpoint": t2.path(), "weight": 3},
    ]});
    std::fs::write(&file, spec.to_string()).unwrap();
    let mixed = teacher_loss(&distilled(&student, &file, 0.5), s.path()).unwrap();
    let members = [(&m1, 1.0, &d1.train), (&m2, 3.0, &d2.train)];
    let expected = score_ensemble(&members, &device).unwrap().unwrap().loss;
    assert!((mixed - expected).abs() < 1e-5, "{mixed} vs {expected}");
    assert!(
        (mixed - one).abs() > 1e-3,
        "the second member changed nothing"
    );
    std::fs::remove_file(file).unwrap();
}

/// A distilled run stopped part-way and resumed is the uninterrupted one, bit for bit, and
/// differs from the run without its teacher.
#[test]
fn a_distilled_run_resumes_exactly() {
    let c = sequence_config(ModelKind::Transformer);
    let t = tempfile::tempdir().unwrap();
    train_until(t.path(), &c, 20);
    let student = distilled(&c, t.path(), 0.6);
    let (a, b, plain) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    run_straight(a.path(), &student);
    run_interrupted(b.path(), &student, 23);
    assert_eq!(weights(a.path()), weights(b.path()));
    let metrics = |d: &Path| std::fs::read(d.join("metrics.csv")).unwrap();
    assert_eq!(metrics(a.path()), metrics(b.path()));
    run_straight(plain.path(), &c);
    assert_ne!(weights(a.path()), weights(plain.path()));
    let state = Checkpoint::open(a.path()).unwrap().state;
    assert_eq!(state.teacher_sha256.as_ref().map(String::len), Some(64));
}

/// A teacher that changed since the run began (here: trained further) is refused on resume,
/// and so is a teacher whose split differs from the student's (it may have trained on the
/// student's dev words).
#[test]
fn a_changed_or_foreign_teacher_is_refused() {
    let c = sequence_config(ModelKind::Gru);
    let (t, s) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    train_until(t.path(), &c, 10);
    let student = distilled(&c, t.path(), 0.5);
    train_until(s.path(), &student, 5);
    let data = prepare(words(), &c).unwrap();
    let teacher = Checkpoint::open(t.path()).unwrap();
    Trainer::new(&data, &c, t.path())
        .resume(teacher)
        .until(12)
        .fit::<B>(&Default::default())
        .unwrap();
    let ckpt = Checkpoint::open(s.path()).unwrap();
    let e = Trainer::new(&data, &student, s.path())
        .resume(ckpt)
        .fit::<B>(&Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("the teacher predicts differently"), "{e}");

    let mut other = student.clone();
    other.split_seed += 1;
    let fresh = tempfile::tempdir().unwrap();
    let e = teacher_loss(&other, fresh.path()).unwrap_err();
    assert!(e.contains("different split"), "{e}");
}
