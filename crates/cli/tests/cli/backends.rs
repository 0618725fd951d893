//! The same run on every backend this build has gives the same losses (within float
//! tolerance): the model and trainer are written once, generic over the backend. On a
//! machine without a GPU, wgpu runs on Mesa's lavapipe; the test skips, saying so, only when
//! adapter detection finds no adapter, and fails even then under `MAKEMORE_REQUIRE_WGPU`.
//! The CUDA tests run wherever a CUDA device is found, and print `SKIPPED` elsewhere
//! (`MAKEMORE_REQUIRE_CUDA` makes that a failure, as `xtask/bench/gpu.sh` sets it). Every
//! comparison is against ndarray, so a build without it (CI checks each GPU backend alone)
//! has none of these tests.
#![cfg(all(feature = "ndarray", any(feature = "wgpu", feature = "cuda")))]
#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default
#![allow(clippy::unwrap_used)] // a test fails by panicking

use crate::common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

#[cfg(feature = "wgpu")]
use burn::backend::Wgpu;
use burn::backend::{Autodiff, NdArray};
use makemore_model::FusedAutodiff;
use makemore_train::{prepare, train, LrSchedule, TrainEvent, TrainingConfig};

/// True when a wgpu adapter is here. Without one the test skips, saying so, unless
/// `MAKEMORE_REQUIRE_WGPU` is set (as CI sets it where lavapipe is installed): then it fails.
#[cfg(feature = "wgpu")]
fn wgpu_here() -> bool {
    match makemore_model::device::wgpu_adapter() {
        Ok(name) => {
            eprintln!("wgpu adapter: {name}");
            true
        }
        Err(e) => {
            assert!(
                std::env::var_os("MAKEMORE_REQUIRE_WGPU").is_none(),
                "MAKEMORE_REQUIRE_WGPU is set but {e}"
            );
            common::skipped(&e.to_string());
            false
        }
    }
}

fn config() -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.steps = 40;
    c.batch_size = 64;
    c.model.n_hidden = 64;
    c.schedule = LrSchedule::Constant { lr: 0.1 };
    c.eval_every = 0;
    c.checkpoint_every = 0;
    c
}

fn losses<B: FusedAutodiff>(dir: &Path, device: B::Device) -> (Vec<f32>, f64) {
    losses_of::<B>(&config(), dir, device)
}

fn losses_of<B: FusedAutodiff>(
    c: &TrainingConfig,
    dir: &Path,
    device: B::Device,
) -> (Vec<f32>, f64) {
    // Every run here ends by evaluating its whole train and dev splits on both backends (on
    // lavapipe, most of a test's time with the full list); the comparison needs only the
    // same words on both.
    let words = common::few_words();
    let c = c.clone();
    let data = prepare(words, &c).unwrap();
    let mut steps = Vec::new();
    let summary = train::<B>(
        &data,
        &c,
        dir,
        None,
        &device,
        &AtomicBool::new(false),
        &mut |e: &TrainEvent| {
            if let TrainEvent::Step { loss, .. } = e {
                steps.push(*loss);
            }
        },
    )
    .unwrap()
    .summary;
    (steps, summary.dev_loss.unwrap())
}

#[test]
#[cfg(feature = "wgpu")]
fn ndarray_and_wgpu_agree() {
    if !wgpu_here() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cpu, cpu_dev) =
        losses::<Autodiff<NdArray<f32>>>(&dir.path().join("cpu"), Default::default());
    // Any failure from here on is a failure of the wgpu path, not a missing adapter.
    let (gpu, gpu_dev) = losses::<Autodiff<Wgpu>>(&dir.path().join("gpu"), Default::default());
    assert_eq!(cpu.len(), gpu.len());
    for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        assert!(
            (a - b).abs() < 1e-3 * a.abs().max(1.0),
            "step {}: ndarray {a} vs wgpu {b}",
            step + 1
        );
    }
    assert!(
        (cpu_dev - gpu_dev).abs() < 1e-3,
        "dev: ndarray {cpu_dev} vs wgpu {gpu_dev}"
    );
    assert!(
        cpu.last().unwrap() < cpu.first().unwrap(),
        "the run should learn"
    );
    assert_eq!(makemore_model::fused::fallbacks(), 0);
}

#[test]
#[cfg(feature = "wgpu")]
fn wgpu_samples_and_evaluates_like_ndarray() {
    if !wgpu_here() {
        return;
    }
    let words = common::few_words();
    let c = config();
    let data = prepare(words, &c).unwrap();
    let mut c = c;
    c.model.vocab_size = data.vocab.len();
    let cpu_model = c.model.init::<NdArray<f32>>(&Default::default());
    let gpu_model = c.model.init::<Wgpu>(&Default::default());
    let options = makemore_train::SampleOptions {
        n: 50,
        ..Default::default()
    };
    let words = |s: Vec<makemore_train::Sample>| s.into_iter().map(|s| s.word).collect::<Vec<_>>();
    let cpu = makemore_train::sample(
        &cpu_model,
        &data.vocab,
        3,
        None,
        &options,
        &Default::default(),
    )
    .unwrap();
    let gpu = makemore_train::sample(
        &gpu_model,
        &data.vocab,
        3,
        None,
        &options,
        &Default::default(),
    )
    .unwrap();
    // The same uniform draws against probabilities equal to f32 rounding: the same words,
    // unless a draw lands within rounding of a boundary between two characters (then that
    // word, and maybe the ones after it, differ: docs/performance.md). On the same
    // probabilities the draws are exactly the host's (fused_wgpu.rs).
    let (cpu, gpu) = (words(cpu), words(gpu));
    let same = cpu.iter().zip(&gpu).filter(|(a, b)| a == b).count();
    assert!(
        same >= 45,
        "only {same} of 50 samples agree:\n{cpu:?}\n{gpu:?}"
    );
    let dev_cpu = makemore_train::evaluate(&cpu_model, &data.dev, &Default::default()).unwrap();
    let dev_gpu = makemore_train::evaluate(&gpu_model, &data.dev, &Default::default()).unwrap();
    assert!(
        (dev_cpu - dev_gpu).abs() < 1e-4,
        "dev: ndarray {dev_cpu} vs wgpu {dev_gpu}"
    );
}

/// The same run on both backends, step by step: every minibatch loss within f32 tolerance
/// (relative 1e-3; the two sum in different orders), and the final dev loss.
fn assert_same_curves<G: FusedAutodiff>(c: &TrainingConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (cpu, cpu_dev) =
        losses_of::<Autodiff<NdArray<f32>>>(c, &dir.path().join("cpu"), Default::default());
    let (gpu, gpu_dev) = losses_of::<G>(c, &dir.path().join("gpu"), Default::default());
    assert_eq!(cpu.len(), gpu.len());
    for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        assert!(
            (a - b).abs() < 1e-3 * a.abs().max(1.0),
            "step {}: ndarray {a} vs the GPU {b}",
            step + 1
        );
    }
    assert!(
        (cpu_dev - gpu_dev).abs() < 2e-3,
        "dev: ndarray {cpu_dev} vs the GPU {gpu_dev}"
    );
    assert!(
        cpu.last().unwrap() < cpu.first().unwrap(),
        "the run should learn"
    );
}

/// The wide model the sweeps train: two 128-unit layers with LayerNorm and dropout, AdamW.
fn wide_config() -> TrainingConfig {
    let mut c = config();
    c.model.n_layers = 2;
    c.model.n_hidden = 128;
    c.model.norm = makemore_model::NormKind::Layer;
    c.model.dropout = 0.1;
    c.optimizer = makemore_train::OptimizerKind::adamw(0.01);
    c.schedule = LrSchedule::Constant { lr: 0.003 };
    c
}

/// Makemore part 5's WaveNet: the hierarchical model with BatchNorm (running statistics for
/// the dev loss).
fn wavenet_config() -> TrainingConfig {
    let mut c = config();
    c.model.block_size = 8;
    c.model.n_embd = 10;
    c.model.n_hidden = 48;
    c.model.hierarchical = true;
    c.model.n_layers = 3;
    c.model.norm = makemore_model::NormKind::Batch;
    c
}

/// makemore.py's models (RNN, GRU, bag of words, Transformer).
#[cfg(feature = "cuda")]
const SEQUENCE_KINDS: [makemore_model::ModelKind; 4] = {
    use makemore_model::ModelKind;
    [
        ModelKind::Rnn,
        ModelKind::Gru,
        ModelKind::Bow,
        ModelKind::Transformer,
    ]
};

/// One of makemore.py's models, small, with dropout.
fn sequence_config(kind: makemore_model::ModelKind) -> TrainingConfig {
    let mut c = config();
    c.steps = 15;
    c.batch_size = 16;
    c.model.kind = kind;
    c.model.block_size = 0;
    c.model.n_embd = 16;
    c.model.n_hidden = 32;
    c.model.n_layers = if kind == makemore_model::ModelKind::Transformer {
        2
    } else {
        1
    };
    c.model.n_head = 2;
    c.model.dropout = 0.1;
    // The sizes above that the kind does not use go back to their defaults.
    c.model.clear_unused();
    c.optimizer = makemore_train::OptimizerKind::adamw(0.01);
    c.schedule = LrSchedule::Constant { lr: 0.003 };
    c
}

#[test]
#[cfg(feature = "wgpu")]
fn layernorm_dropout_adamw_train_alike_on_wgpu_and_ndarray() {
    if wgpu_here() {
        assert_same_curves::<Autodiff<Wgpu>>(&wide_config());
    }
}

#[test]
#[cfg(feature = "wgpu")]
fn batchnorm_wavenet_trains_alike_on_wgpu_and_ndarray() {
    if wgpu_here() {
        assert_same_curves::<Autodiff<Wgpu>>(&wavenet_config());
    }
}

/// A sequence model on wgpu (the trait's default bodies: burn's operations for the
/// attention, the causal softmax, GELU and LayerNorm) as on ndarray (the CPU kernels). One
/// test per kind, so that the test threads share them out: on lavapipe the four in one test
/// were the suite's longest (libtest's "running for over 60 seconds" in CI).
#[cfg(feature = "wgpu")]
fn sequence_model_trains_alike_on_wgpu_and_ndarray(kind: makemore_model::ModelKind) {
    if wgpu_here() {
        assert_same_curves::<Autodiff<Wgpu>>(&sequence_config(kind));
    }
}

#[test]
#[cfg(feature = "wgpu")]
fn rnn_trains_alike_on_wgpu_and_ndarray() {
    sequence_model_trains_alike_on_wgpu_and_ndarray(makemore_model::ModelKind::Rnn);
}

#[test]
#[cfg(feature = "wgpu")]
fn gru_trains_alike_on_wgpu_and_ndarray() {
    sequence_model_trains_alike_on_wgpu_and_ndarray(makemore_model::ModelKind::Gru);
}

#[test]
#[cfg(feature = "wgpu")]
fn bow_trains_alike_on_wgpu_and_ndarray() {
    sequence_model_trains_alike_on_wgpu_and_ndarray(makemore_model::ModelKind::Bow);
}

#[test]
#[cfg(feature = "wgpu")]
fn transformer_trains_alike_on_wgpu_and_ndarray() {
    sequence_model_trains_alike_on_wgpu_and_ndarray(makemore_model::ModelKind::Transformer);
}

/// True when a CUDA device is here; otherwise the test prints `SKIPPED` (and fails under
/// `MAKEMORE_REQUIRE_CUDA`).
#[cfg(feature = "cuda")]
fn cuda_here() -> bool {
    match makemore_model::device::cuda_device() {
        Ok(name) => {
            eprintln!("CUDA device: {name}");
            true
        }
        Err(e) => {
            assert!(
                std::env::var_os("MAKEMORE_REQUIRE_CUDA").is_none(),
                "MAKEMORE_REQUIRE_CUDA is set but {e}"
            );
            common::skipped(&e.to_string());
            false
        }
    }
}

/// Every model family on CUDA trains as on ndarray: the default model, the wide one, the
/// WaveNet and makemore.py's models, step by step within f32 tolerance.
#[test]
#[cfg(feature = "cuda")]
fn every_model_trains_alike_on_cuda_and_ndarray() {
    use burn::backend::Cuda;
    if !cuda_here() {
        return;
    }
    let mut configs = vec![config(), wide_config(), wavenet_config()];
    configs.extend(SEQUENCE_KINDS.map(sequence_config));
    for c in configs {
        eprintln!("{:?}", c.model);
        assert_same_curves::<Autodiff<Cuda>>(&c);
    }
}

/// With no Vulkan driver at all (the loader pointed at none), `--backend wgpu` is one line
/// that names the backend and what to install, not a panic.
#[test]
#[cfg(feature = "wgpu")]
fn wgpu_without_an_adapter_is_a_clean_error() {
    let out = common::makemore()
        .args(["bench", "--backend", "wgpu", "--steps", "1"])
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .unwrap();
    common::assert_clean_error(&out, "--backend wgpu: no Vulkan adapter found");
}

/// On a GPU the trainer reads losses in blocks, yet a run that diverges still stops with the
/// first non-finite step, the same step as on the CPU, and leaves the last good checkpoint.
#[test]
#[cfg(feature = "wgpu")]
fn wgpu_reports_the_first_non_finite_step_like_ndarray() {
    if !wgpu_here() {
        return;
    }
    fn diverge<B: FusedAutodiff>(dir: &Path) -> u64 {
        let words = common::few_words();
        let mut c = config();
        c.steps = 200;
        // Ordinary steps, then a rate that overflows the weights from step 21 on: the
        // first non-finite loss comes inside the GPU's first block of 64 losses.
        c.schedule = LrSchedule::Step {
            lr: 0.1,
            decayed_lr: 1e37,
            decay_at: 20,
        };
        let data = prepare(words, &c).unwrap();
        let err = train::<B>(
            &data,
            &c,
            dir,
            None,
            &Default::default(),
            &AtomicBool::new(false),
            &mut |_: &TrainEvent| {},
        )
        .unwrap_err();
        let makemore_train::TrainError::NonFinite {
            step,
            last_good_step,
            ..
        } = err
        else {
            panic!("expected a non-finite loss, got {err}");
        };
        assert_eq!(last_good_step, 0);
        let ckpt = makemore_train::Checkpoint::open(dir).unwrap();
        assert_eq!(ckpt.state.step, 0, "a poisoned checkpoint was saved");
        step
    }
    let dir = tempfile::tempdir().unwrap();
    let cpu = diverge::<Autodiff<NdArray<f32>>>(&dir.path().join("cpu"));
    let gpu = diverge::<Autodiff<Wgpu>>(&dir.path().join("gpu"));
    // Reported with its own step, not at the end of the block it was read in. Where exactly
    // inf turns into NaN depends on the order of float operations, so the two backends may
    // disagree by a step.
    for (name, step) in [("ndarray", cpu), ("wgpu", gpu)] {
        assert!(
            (22..30).contains(&step),
            "{name}: first non-finite step {step}"
        );
    }
    assert!(
        cpu.abs_diff(gpu) <= 1,
        "first non-finite step: ndarray {cpu}, wgpu {gpu}"
    );
}
