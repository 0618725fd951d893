//! Trains the wide model of the sweeps (LayerNorm, dropout, AdamW) for a few steps on burn's
//! fusion wgpu backend and on ndarray, and fails unless every minibatch loss agrees within
//! f32 tolerance; then samples on the GPU. Exits 2 when no wgpu adapter is found (CI, where
//! lavapipe is installed, treats that as a failure).

use std::marker::PhantomData;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use burn::backend::{Autodiff, NdArray, Wgpu};
use makemore_model::FusedAutodiff;
use makemore_train::{prepare, train, LrSchedule, OptimizerKind, TrainEvent, TrainingConfig};

/// Compiles only when `B` is a fusion backend: the check is about `Fusion<…>`.
fn is_fusion<B: burn_fusion::FusionBackend>(_: PhantomData<burn_fusion::Fusion<B>>) {}

/// Compiles only when `B` has what training needs.
fn trains<B: FusedAutodiff>() {}

fn config() -> TrainingConfig {
    let mut c = TrainingConfig::default();
    c.steps = 30;
    c.batch_size = 64;
    c.model.n_layers = 2;
    c.model.n_hidden = 128;
    c.model.norm = makemore_model::NormKind::Layer;
    c.model.dropout = 0.1;
    c.optimizer = OptimizerKind::adamw(0.01);
    c.schedule = LrSchedule::Constant { lr: 0.003 };
    c.eval_every = 0;
    c.checkpoint_every = 0;
    c
}

fn losses<B: FusedAutodiff>(dir: &Path) -> Result<(Vec<f32>, f64), String> {
    let words = makemore_data::parse_words(include_bytes!("../../../data/names.txt"), "names")
        .map_err(|e| e.to_string())?;
    let c = config();
    let data = prepare(words, &c).map_err(|e| e.to_string())?;
    let mut steps = Vec::new();
    let stop = AtomicBool::new(false);
    let trained = train::<B>(
        &data,
        &c,
        dir,
        None,
        &Default::default(),
        &stop,
        &mut |e: &TrainEvent| {
            if let TrainEvent::Step { loss, .. } = e {
                steps.push(*loss);
            }
        },
    )
    .map_err(|e| e.to_string())?;
    let dev = trained.summary.dev_loss.ok_or("no dev loss")?;
    Ok((steps, dev))
}

fn run() -> Result<(), String> {
    is_fusion(PhantomData::<Wgpu>);
    trains::<Autodiff<Wgpu>>();
    let name =
        makemore_model::device::wgpu_adapter().map_err(|e| format!("no wgpu adapter: {e}"))?;
    println!("wgpu adapter: {name}");
    let dir = std::env::temp_dir().join(format!("makemore-downstream-{}", std::process::id()));
    let (cpu, cpu_dev) = losses::<Autodiff<NdArray<f32>>>(&dir.join("cpu"))?;
    let (gpu, gpu_dev) = losses::<Autodiff<Wgpu>>(&dir.join("gpu"))?;
    let _ = std::fs::remove_dir_all(&dir);
    if cpu.len() != gpu.len() || cpu.is_empty() {
        return Err(format!(
            "{} steps on ndarray, {} on fusion wgpu",
            cpu.len(),
            gpu.len()
        ));
    }
    for (step, (a, b)) in cpu.iter().zip(&gpu).enumerate() {
        if (a - b).abs() >= 1e-3 * a.abs().max(1.0) {
            return Err(format!(
                "step {}: ndarray loss {a}, fusion wgpu loss {b}",
                step + 1
            ));
        }
    }
    if (cpu_dev - gpu_dev).abs() >= 1e-3 {
        return Err(format!(
            "dev loss: ndarray {cpu_dev}, fusion wgpu {gpu_dev}"
        ));
    }
    println!(
        "fusion wgpu agrees with ndarray: {} steps, last loss {:.5} / {:.5}, dev {cpu_dev:.5} / {gpu_dev:.5}",
        cpu.len(),
        cpu[cpu.len() - 1],
        gpu[gpu.len() - 1]
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.starts_with("no wgpu adapter") {
                2
            } else {
                1
            })
        }
    }
}
