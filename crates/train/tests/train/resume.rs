//! A run interrupted and resumed ends with exactly the weights of an uninterrupted run.

#![allow(clippy::unwrap_used)] // a test fails by panicking
#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::{Autodiff, NdArray};
use makemore_train::{
    prepare, train, Checkpoint, OptimizerKind, PreparedData, TrainError, TrainEvent, TrainSummary,
    TrainingConfig,
};

type B = Autodiff<NdArray<f32>>;

pub(crate) fn words() -> Vec<String> {
    let text = "emma olivia ava isabella sophia charlotte mia amelia harper evelyn abigail emily \
                elizabeth mila ella avery sofia camila aria scarlett victoria madison luna grace chloe";
    text.split_whitespace().map(str::to_string).collect()
}

fn config(optimizer: OptimizerKind) -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.steps = 60;
    c.batch_size = 16;
    c.model.n_hidden = 32;
    c.eval_every = 25;
    c.checkpoint_every = 10;
    c.optimizer = optimizer;
    c
}

pub(crate) fn weights(dir: &Path) -> Vec<Vec<f32>> {
    let ckpt = Checkpoint::open(dir).unwrap();
    let model = ckpt
        .load_model::<NdArray<f32>>(&Default::default())
        .unwrap();
    use burn::module::Module;
    let mut out = Vec::new();
    model.visit(&mut Collect(&mut out));
    out
}

/// Collects every float tensor of a module, flattened, in visiting order.
pub(crate) struct Collect<'a>(pub(crate) &'a mut Vec<Vec<f32>>);
impl<B2: burn::prelude::Backend> burn::module::ModuleVisitor<B2> for Collect<'_> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::prelude::Tensor<B2, D>>,
    ) {
        self.0
            .push(param.val().into_data().convert::<f32>().to_vec().unwrap());
    }
}

/// Guards against a vacuous comparison: training must have moved every parameter.
fn assert_trained(dir: &Path, c: &TrainingConfig) {
    use burn::module::Module;
    let mut model_config = c.model.clone();
    model_config.vocab_size = Checkpoint::open(dir).unwrap().vocab.len();
    let mut initial = Vec::new();
    model_config
        .init::<NdArray<f32>>(&Default::default())
        .visit(&mut Collect(&mut initial));
    for (before, after) in initial.iter().zip(weights(dir)) {
        assert_ne!(before, &after);
    }
}

pub(crate) fn run_straight(dir: &Path, c: &TrainingConfig) {
    let data = prepare(words(), c).unwrap();
    let stop = AtomicBool::new(false);
    let s = train::<B>(
        &data,
        c,
        dir,
        None,
        &Default::default(),
        &stop,
        &mut |_: &TrainEvent| {},
    )
    .unwrap()
    .summary;
    assert_eq!(s.steps_done, c.steps);
    assert!(!s.interrupted);
}

pub(crate) fn run_interrupted(dir: &Path, c: &TrainingConfig, stop_after: u64) {
    run_interrupted_and_edited(dir, c, stop_after, &|_| {});
}

/// Trains from scratch and stops after `stop_after` steps, as Ctrl-C would.
fn run_until(dir: &Path, c: &TrainingConfig, data: &PreparedData, stop_after: u64) {
    let stop = AtomicBool::new(false);
    let mut on_event = |e: &TrainEvent| {
        if let TrainEvent::Step { step, .. } = e {
            if *step == stop_after {
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    let s = train::<B>(
        data,
        c,
        dir,
        None,
        &Default::default(),
        &stop,
        &mut on_event,
    )
    .unwrap()
    .summary;
    assert!(s.interrupted);
    assert_eq!(s.steps_done, stop_after);
}

/// Resumes the run in `dir` with its own config, to the end.
fn resume(dir: &Path, data: &PreparedData) -> Result<TrainSummary, TrainError> {
    let ckpt = Checkpoint::open(dir).unwrap();
    let config = ckpt.config.clone();
    train::<B>(
        data,
        &config,
        dir,
        Some(ckpt),
        &Default::default(),
        &AtomicBool::new(false),
        &mut |_: &TrainEvent| {},
    )
    .map(|trained| trained.summary)
}

/// Stops after `stop_after` steps, lets `edit` change the checkpoint, and resumes.
fn run_interrupted_and_edited(
    dir: &Path,
    c: &TrainingConfig,
    stop_after: u64,
    edit: &dyn Fn(&Path),
) {
    let data = prepare(words(), c).unwrap();
    run_until(dir, c, &data, stop_after);
    edit(dir);
    assert_eq!(Checkpoint::open(dir).unwrap().state.step, stop_after);
    let s = resume(dir, &data).unwrap();
    assert_eq!(s.steps_done, c.steps);
}

#[test]
fn sgd_resume_is_exact() {
    let c = config(OptimizerKind::Sgd);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    run_interrupted(b.path(), &c, 23);
    assert_eq!(weights(a.path()), weights(b.path()));
    assert_trained(a.path(), &c);
    let metrics_a = std::fs::read_to_string(a.path().join("metrics.csv")).unwrap();
    let metrics_b = std::fs::read_to_string(b.path().join("metrics.csv")).unwrap();
    assert_eq!(metrics_a, metrics_b);
    // Every eval_every-th row has its dev loss, and so does the last step's (the final
    // evaluation's), equal to the state's.
    let rows = makemore_train::read_metrics(&a.path().join("metrics.csv")).unwrap();
    let with_dev: Vec<u64> = rows
        .iter()
        .filter(|r| r.dev_loss.is_some())
        .map(|r| r.step)
        .collect();
    assert_eq!(with_dev, [25, 50, 60]);
    let (last, state) = (
        rows.last().unwrap().dev_loss.unwrap(),
        Checkpoint::open(a.path()).unwrap().state.dev_loss.unwrap(),
    );
    // metrics.csv keeps six significant digits.
    assert!((last - state).abs() < 1e-5, "{last} vs {state}");
}

#[test]
fn adamw_resume_is_exact() {
    let c = config(OptimizerKind::adamw(0.01));
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    run_interrupted(b.path(), &c, 37);
    assert_eq!(weights(a.path()), weights(b.path()));
    assert_trained(a.path(), &c);
}

#[test]
fn resume_refuses_other_corpus() {
    let c = config(OptimizerKind::Sgd);
    let dir = tempfile::tempdir().unwrap();
    run_interrupted(dir.path(), &c, 5);
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    let mut other = words();
    other.push("zoe".into());
    let data = prepare(other, &c).unwrap();
    let err = train::<B>(
        &data,
        &c,
        dir.path(),
        Some(ckpt),
        &Default::default(),
        &AtomicBool::new(false),
        &mut |_: &TrainEvent| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("corpus differs"), "{err}");
}

#[test]
fn divergence_stops_with_a_message_and_keeps_a_checkpoint() {
    let mut c = config(OptimizerKind::Sgd);
    c.model.init = makemore_model::InitScheme::Notebook;
    c.schedule = makemore_train::LrSchedule::Constant { lr: 1e300 };
    let dir = tempfile::tempdir().unwrap();
    let data = prepare(words(), &c).unwrap();
    let err = train::<B>(
        &data,
        &c,
        dir.path(),
        None,
        &Default::default(),
        &AtomicBool::new(false),
        &mut |_: &TrainEvent| {},
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("smaller learning rate") && msg.contains("step"),
        "{msg}"
    );
    let ckpt = Checkpoint::open(dir.path()).unwrap();
    assert!(ckpt.load_model::<NdArray<f32>>(&Default::default()).is_ok());
}

#[test]
fn layernorm_dropout_deep_direct_resume_is_exact() {
    let mut c = config(OptimizerKind::adamw(0.1));
    c.model.norm = makemore_model::NormKind::Layer;
    c.model.dropout = 0.2;
    c.model.n_layers = 2;
    c.model.direct = true;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    run_interrupted(b.path(), &c, 29);
    assert_eq!(weights(a.path()), weights(b.path()));
    assert_trained(a.path(), &c);
    let names: Vec<String> = {
        let bytes = std::fs::read(a.path().join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut n: Vec<String> = st.names().into_iter().map(str::to_string).collect();
        n.sort();
        n
    };
    assert!(names.contains(&"norm.1.weight".to_string()), "{names:?}");
}

/// A checkpoint written before fused kernels existed has no `model.kernels`; it resumes with
/// the plain kernels it was trained with and ends exactly where an uninterrupted plain run does.
#[test]
fn checkpoint_from_before_fused_kernels_resumes_with_plain_kernels() {
    let mut c = config(OptimizerKind::Sgd);
    c.model.kernels = makemore_model::Kernels::Plain;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    let strip = |dir: &Path| {
        let path = dir.join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(v["model"]
            .as_object_mut()
            .unwrap()
            .remove("kernels")
            .is_some());
        std::fs::write(&path, v.to_string()).unwrap();
    };
    run_interrupted_and_edited(b.path(), &c, 23, &strip);
    assert_eq!(weights(a.path()), weights(b.path()));
    assert_trained(a.path(), &c);

    // The same run with fused kernels ends close to it, but not bit for bit.
    let fused = tempfile::tempdir().unwrap();
    c.model.kernels = makemore_model::Kernels::Fused;
    run_straight(fused.path(), &c);
    let (p, f) = (weights(a.path()), weights(fused.path()));
    assert_ne!(p, f);
    for (p, f) in p.iter().flatten().zip(f.iter().flatten()) {
        assert!((p - f).abs() < 1e-3, "{p} vs {f}");
    }
}

/// An AdamW checkpoint without its optimiser state is refused: resuming would restart the
/// moment estimates from zero, which is not the uninterrupted run.
#[test]
fn adamw_resume_without_optimizer_state_is_refused() {
    let c = config(OptimizerKind::adamw(0.01));
    let dir = tempfile::tempdir().unwrap();
    let data = prepare(words(), &c).unwrap();
    run_until(dir.path(), &c, &data, 20);
    std::fs::remove_file(dir.path().join("optimizer.mpk")).unwrap();
    let err = resume(dir.path(), &data).unwrap_err().to_string();
    assert!(err.contains("optimizer.mpk is missing"), "{err}");
}

/// Two identical runs write byte-identical weights files, so a checkpoint's hash
/// identifies its weights.
#[test]
fn identical_runs_write_identical_weight_files() {
    let c = config(OptimizerKind::Sgd);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    run_straight(b.path(), &c);
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(read(a.path()), read(b.path()));
}

#[test]
fn hierarchical_batch_norm_run_resumes_exactly() {
    // The running statistics are part of the checkpoint: a resumed run normalises with
    // the same estimates, and ends with the same weights and statistics.
    let mut c = config(OptimizerKind::Sgd);
    c.model.block_size = 4;
    c.model.n_layers = 2;
    c.model.hierarchical = true;
    c.model.norm = makemore_model::NormKind::Batch;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_straight(a.path(), &c);
    run_interrupted(b.path(), &c, 23);
    assert_eq!(weights(a.path()), weights(b.path()));
    assert_trained(a.path(), &c);

    // As after kill -9: resume from a periodic checkpoint (step 20), taken mid-run.
    let killed = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    };
    let data = prepare(words(), &c).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut on_event = |e: &TrainEvent| {
        if let TrainEvent::Checkpoint { step: 20 } = e {
            copy(scratch.path(), killed.path());
        }
    };
    train::<B>(
        &data,
        &c,
        scratch.path(),
        None,
        &Default::default(),
        &AtomicBool::new(false),
        &mut on_event,
    )
    .unwrap();
    assert_eq!(Checkpoint::open(killed.path()).unwrap().state.step, 20);
    resume(killed.path(), &data).unwrap();
    assert_eq!(weights(a.path()), weights(killed.path()));
}

#[test]
fn resume_refuses_a_different_config_naming_the_fields() {
    let c = config(OptimizerKind::Sgd);
    let dir = tempfile::tempdir().unwrap();
    run_interrupted(dir.path(), &c, 5);
    let mut other = c.clone();
    other.batch_size = 8;
    other.model.n_hidden = 16;
    let data = prepare(words(), &other).unwrap();
    let err = train::<B>(
        &data,
        &other,
        dir.path(),
        Some(Checkpoint::open(dir.path()).unwrap()),
        &Default::default(),
        &AtomicBool::new(false),
        &mut |_: &TrainEvent| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "the config differs from the run's config.json in: batch_size, model.n_hidden"
        ),
        "{err}"
    );
}

/// makemore.py's models at small sizes (dropout on, AdamW with makemore.py's betas).
pub(crate) fn sequence_config(kind: makemore_model::ModelKind) -> TrainingConfig {
    let mut c = config(OptimizerKind::Adamw {
        weight_decay: 0.01,
        beta_2: 0.99,
        epsilon: 1e-8,
    });
    c.model.kind = kind;
    c.model.block_size = 0;
    c.model.n_embd = 16;
    c.model.n_hidden = 24;
    c.model.n_layers = if kind == makemore_model::ModelKind::Transformer {
        2
    } else {
        1
    };
    c.model.n_head = 2;
    c.model.dropout = 0.1;
    // The sizes above that the kind does not use go back to their defaults.
    c.model.clear_unused();
    c.schedule = makemore_train::LrSchedule::Constant { lr: 0.003 };
    c.batch_size = 8;
    c
}

const SEQUENCE_KINDS: [makemore_model::ModelKind; 4] = [
    makemore_model::ModelKind::Rnn,
    makemore_model::ModelKind::Gru,
    makemore_model::ModelKind::Bow,
    makemore_model::ModelKind::Transformer,
];

#[test]
fn sequence_models_resume_exactly() {
    for kind in SEQUENCE_KINDS {
        let c = sequence_config(kind);
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run_straight(a.path(), &c);
        run_interrupted(b.path(), &c, 23);
        assert_eq!(weights(a.path()), weights(b.path()), "{kind:?}");
        let metrics = |d: &Path| std::fs::read_to_string(d.join("metrics.csv")).unwrap();
        assert_eq!(metrics(a.path()), metrics(b.path()), "{kind:?}");
        // The positions came from the corpus: its longest word ("elizabeth") + 1.
        assert_eq!(
            Checkpoint::open(a.path()).unwrap().config.model.block_size,
            10
        );
    }
}

/// The Transformer's and the bag of words' `model.safetensors` hold makemore.py's causal-mask
/// buffers (ones on and below the diagonal), so that PyTorch loads them strictly into
/// makemore.py's classes; a file without them (as earlier versions wrote) still loads with
/// the same weights, and a damaged mask is refused.
#[test]
fn sequence_checkpoints_hold_makemore_py_causal_masks() {
    use safetensors::tensor::TensorView;
    use safetensors::{Dtype, SafeTensors};
    for kind in SEQUENCE_KINDS {
        let mut c = sequence_config(kind);
        c.steps = 5;
        let dir = tempfile::tempdir().unwrap();
        run_straight(dir.path(), &c);
        let path = dir.path().join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let t = 10; // "elizabeth" + 1
        let masks: Vec<(String, Vec<usize>)> = match kind {
            makemore_model::ModelKind::Transformer => (0..2)
                .map(|i| (format!("transformer.h.{i}.attn.bias"), vec![1, 1, t, t]))
                .collect(),
            makemore_model::ModelKind::Bow => {
                vec![("context_block.cbow.bias".into(), vec![1, t, t])]
            }
            _ => vec![],
        };
        for (name, shape) in &masks {
            let view = st.tensor(name).unwrap();
            assert_eq!(view.shape(), shape.as_slice(), "{name}");
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            for (k, v) in values.iter().enumerate() {
                let (i, j) = ((k / t) % t, k % t);
                assert_eq!(*v, if j <= i { 1.0 } else { 0.0 }, "{name}[{i}, {j}]");
            }
        }
        if masks.is_empty() {
            let is_mask = |n: &str| n.ends_with("attn.bias") || n.ends_with("cbow.bias");
            assert!(!st.names().into_iter().any(is_mask), "{kind:?}");
            continue;
        }
        let metadata = SafeTensors::read_metadata(&bytes).unwrap().1;
        type Edit<'a> = &'a dyn Fn(&str, &[u8]) -> Option<Vec<u8>>;
        let rewrite = |edit: Edit| {
            let kept: Vec<(String, Vec<usize>, Vec<u8>)> = st
                .tensors()
                .into_iter()
                .filter_map(|(n, v)| Some((n.clone(), v.shape().to_vec(), edit(&n, v.data())?)))
                .collect();
            let views = kept.iter().map(|(n, shape, data)| {
                (n, TensorView::new(Dtype::F32, shape.clone(), data).unwrap())
            });
            std::fs::write(
                &path,
                safetensors::serialize(views, metadata.metadata().clone()).unwrap(),
            )
            .unwrap();
        };
        let before = weights(dir.path());
        // Without the masks: an earlier version's file.
        rewrite(&|n, d| (!masks.iter().any(|(m, _)| m == n)).then(|| d.to_vec()));
        assert_eq!(weights(dir.path()), before, "{kind:?}");
        // A mask with a one above the diagonal.
        rewrite(&|n, d| {
            let mut d = d.to_vec();
            if masks.iter().any(|(m, _)| m == n) {
                d[4..8].copy_from_slice(&1f32.to_le_bytes());
            }
            Some(d)
        });
        let err = Checkpoint::open(dir.path())
            .unwrap()
            .load_model::<NdArray<f32>>(&Default::default())
            .unwrap_err();
        assert!(err.to_string().contains("is not the causal mask"), "{err}");
    }
}

#[test]
fn sequence_models_fit_a_tiny_corpus() {
    let few: Vec<String> = ["ava", "emma", "mia", "zoe"].map(str::to_string).to_vec();
    for kind in SEQUENCE_KINDS {
        let mut c = sequence_config(kind);
        c.model.dropout = 0.0;
        c.steps = 400;
        c.batch_size = 3;
        c.eval_every = 0;
        c.split = makemore_data::SplitRatios {
            train: 1.0,
            dev: 0.0,
            test: 0.0,
        };
        let data = prepare(few.clone(), &c).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = train::<B>(
            &data,
            &c,
            dir.path(),
            None,
            &Default::default(),
            &AtomicBool::new(false),
            &mut |_: &TrainEvent| {},
        )
        .unwrap()
        .summary;
        // ln(27) = 3.3 at the start; four words learnt by heart are nearly certain, but the
        // bag of words, which only sees averages, and the first letter (1 of 4) keep some.
        let bound = if kind == makemore_model::ModelKind::Bow {
            0.9
        } else {
            0.45
        };
        assert!(
            s.train_loss < bound,
            "{kind:?}: train loss {}",
            s.train_loss
        );
    }
}

#[test]
fn keep_best_keeps_the_lowest_dev_loss_and_it_evaluates_so() {
    let mut c = sequence_config(makemore_model::ModelKind::Gru);
    c.keep_best = true;
    c.eval_every = 10;
    c.steps = 60;
    let data = prepare(words(), &c).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut evals = Vec::new();
    train::<B>(
        &data,
        &c,
        dir.path(),
        None,
        &Default::default(),
        &AtomicBool::new(false),
        &mut |e: &TrainEvent| {
            if let TrainEvent::Eval { step, dev_loss, .. } = e {
                evals.push((*step, *dev_loss));
            }
        },
    )
    .unwrap();
    let last = Checkpoint::open(dir.path()).unwrap();
    evals.push((last.state.step, last.state.dev_loss.unwrap()));
    let best = evals
        .iter()
        .copied()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    let kept = Checkpoint::open(dir.path().join(makemore_train::BEST_DIR)).unwrap();
    assert_eq!(kept.state.step, best.0, "{evals:?}");
    assert_eq!(last.state.best.unwrap().step, best.0);
    let model = kept
        .load_model::<NdArray<f32>>(&Default::default())
        .unwrap();
    let dev = makemore_train::evaluate(&model, &data.dev, &Default::default()).unwrap();
    assert!((dev - best.1).abs() < 1e-6, "{dev} vs {}", best.1);
}

/// The canonical split's dev words as sequences predict exactly the characters the MLP's
/// windows predict: 22,655, so `makemore eval` numbers of every model compare directly.
#[test]
fn sequences_count_the_characters_windows_count_on_the_canonical_split() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/names.txt");
    if !path.exists() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED sequences_count_the_characters_windows_count_on_the_canonical_split: {} is absent", path.display());
        return;
    }
    let words = makemore_data::read_words(&path).unwrap();
    let mlp = prepare(words.clone(), &TrainingConfig::default()).unwrap();
    let seq = prepare(
        words,
        &sequence_config(makemore_model::ModelKind::Transformer),
    )
    .unwrap();
    assert_eq!(seq.dev.characters(), 22_655);
    assert_eq!(mlp.dev.characters(), 22_655);
    assert_eq!(seq.dev.len(), 3_203, "a row is a word");
    assert_eq!(seq.train.characters(), mlp.train.characters());
    assert_eq!(seq.test.characters(), mlp.test.characters());
    // makemore.py's block: the longest name (15 characters) + 1.
    assert_eq!(seq.train.row_len(), 16);
}
