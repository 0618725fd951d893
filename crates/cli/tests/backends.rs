//! The same run on every backend this build has gives the same losses (within float
//! tolerance): the model and trainer are written once, generic over the backend.
#![cfg(feature = "wgpu")]
#![allow(clippy::field_reassign_with_default)] // configs read better as edits of the default
#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::Path;
use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, NdArray, Wgpu};
use makemore_model::FusedAutodiff;
use makemore_train::{prepare, train, LrSchedule, TrainEvent, TrainingConfig};

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
    let words =
        makemore_data::parse_words(include_bytes!("../../../data/names.txt"), "names").unwrap();
    let c = config();
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
    .unwrap();
    (steps, summary.dev_loss.unwrap())
}

#[test]
fn ndarray_and_wgpu_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (cpu, cpu_dev) =
        losses::<Autodiff<NdArray<f32>>>(&dir.path().join("cpu"), Default::default());
    // wgpu panics when it finds no adapter; then say so and skip.
    let gpu_dir = dir.path().join("gpu");
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let gpu = std::panic::catch_unwind(|| losses::<Autodiff<Wgpu>>(&gpu_dir, Default::default()));
    std::panic::set_hook(previous_hook);
    let Ok((gpu, gpu_dev)) = gpu else {
        eprintln!(
            "skipping: no wgpu adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)"
        );
        return;
    };
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
}
