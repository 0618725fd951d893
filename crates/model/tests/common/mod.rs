//! Shared by the fused-vs-plain tests.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use makemore_model::{DropoutStep, FusedOps, Kernels, Mlp, ModelConfig, NormKind};

/// Loss and every parameter's gradient (flattened, in parameter order) for one batch of
/// 64 contexts of `block` characters.
pub fn loss_and_grads<B: AutodiffBackend + FusedOps>(
    model: &Mlp<B>,
    block: usize,
    dropout: Option<DropoutStep>,
) -> (f64, Vec<Vec<f64>>) {
    batch_loss_and_grads(model, block, 64, dropout)
}

/// [`loss_and_grads`] for a batch of `rows` contexts.
pub fn batch_loss_and_grads<B: AutodiffBackend + FusedOps>(
    model: &Mlp<B>,
    block: usize,
    rows: usize,
    dropout: Option<DropoutStep>,
) -> (f64, Vec<Vec<f64>>) {
    let device = Default::default();
    let contexts: Vec<i64> = (0..rows * block)
        .map(|i| ((i * 7 + i / 5) % 27) as i64)
        .collect();
    let targets: Vec<i64> = (0..rows).map(|i| ((i * 11 + 3) % 27) as i64).collect();
    let contexts =
        Tensor::<B, 2, Int>::from_data(TensorData::new(contexts, [rows, block]), &device);
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [rows]), &device);
    let loss = model.loss(model.forward_train(contexts, dropout), targets);
    let value = loss.clone().into_scalar().elem::<f64>();
    let grads = loss.backward();
    let mut out = Vec::new();
    let mut collect = |t: Option<Tensor<B::InnerBackend, 2>>| {
        out.push(
            t.unwrap()
                .into_data()
                .convert::<f64>()
                .to_vec::<f64>()
                .unwrap(),
        );
    };
    collect(model.embedding.weight.grad(&grads));
    for layer in model.hidden.iter().chain([&model.output]) {
        collect(layer.weight.grad(&grads));
        if let Some(bias) = &layer.bias {
            collect(bias.grad(&grads).map(|b| b.unsqueeze()));
        }
    }
    if let Some(direct) = &model.direct {
        collect(direct.weight.grad(&grads));
    }
    for norm in &model.norm {
        collect(norm.gamma.grad(&grads).map(|g| g.unsqueeze()));
        collect(
            norm.beta
                .as_ref()
                .unwrap()
                .grad(&grads)
                .map(|b| b.unsqueeze()),
        );
    }
    for norm in &model.batch_norm {
        collect(norm.gamma.grad(&grads).map(|g| g.unsqueeze()));
        collect(norm.beta.grad(&grads).map(|b| b.unsqueeze()));
    }
    (value, out)
}

/// Largest difference between the two paths, relative to the largest gradient entry.
pub fn compare<B: AutodiffBackend + FusedOps>(
    config: ModelConfig,
    dropout: Option<DropoutStep>,
    tol: f64,
) {
    let device = Default::default();
    let block = config.block_size;
    let plain = config
        .clone()
        .with_kernels(Kernels::Plain)
        .init_mlp::<B>(&device);
    let fused = config.with_kernels(Kernels::Fused).init_mlp::<B>(&device);
    let (lp, gp) = loss_and_grads(&plain, block, dropout);
    let (lf, gf) = loss_and_grads(&fused, block, dropout);
    assert!(
        (lp - lf).abs() <= tol * lp.abs(),
        "loss: plain {lp}, fused {lf}"
    );
    assert_eq!(gp.len(), gf.len());
    for (i, (p, f)) in gp.iter().zip(&gf).enumerate() {
        let scale = p.iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "parameter {i} has no gradient");
        let diff = p.iter().zip(f).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= tol * scale,
            "parameter {i}: difference {diff} of gradients up to {scale}"
        );
    }
}

pub fn variants() -> Vec<(ModelConfig, Option<DropoutStep>)> {
    let base = ModelConfig::new(27, 3).with_n_hidden(64);
    vec![
        (base.clone(), None),
        (
            base.clone().with_init(makemore_model::InitScheme::Notebook),
            None,
        ),
        (base.clone().with_n_layers(2).with_direct(true), None),
        (base.clone().with_norm(NormKind::Layer), None),
        (
            base.clone().with_dropout(0.2),
            Some(DropoutStep { p: 0.2, seed: 9 }),
        ),
        (
            base.clone().with_n_layers(2).with_norm(NormKind::Batch),
            None,
        ),
        // makemore part 5's hierarchical model: context 4, two merging layers.
        (
            ModelConfig::new(27, 4)
                .with_n_hidden(64)
                .with_n_layers(2)
                .with_hierarchical(true)
                .with_norm(NormKind::Batch)
                .with_direct(true),
            None,
        ),
    ]
}

/// Says that a test skipped where the test runner shows it even for a passing test: straight
/// to the process's stderr, past libtest's output capture (a skip counts as a pass, so it
/// must not be silent).
#[allow(dead_code)] // not every test binary skips
pub fn skipped(why: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}
