//! The trainer compiled once per backend, for the unoptimised builds of the programs above.
//!
//! Everything in this crate is generic over the backend, so every program that trains on
//! ndarray (the `makemore` binary, the integration tests, the examples) used to compile its
//! own copy of `Trainer::fit::<Autodiff<NdArray>>` and of everything below it, burn's
//! operations included. In an unoptimised build rustc shares generic code between crates
//! (`-Z share-generics`, on by default at opt-level 0 and 1): a crate that needs an instance
//! that a crate it depends on has already compiled links to that one. Naming the instances
//! here, one list per backend feature, makes this crate the one that compiles them. Debug
//! builds only (`debug_assertions`): optimised builds do not share generic code, and would
//! only compile a copy that nothing links to.
//!
//! Nothing calls these functions; they exist for what the compiler does with them.

use crate::{
    bench, evaluate, evaluate_split, lr_find, sample, sample_ensemble, score_ensemble,
    target_log_probs, train, Checkpoint, Trainer,
};
use makemore_model::FusedAutodiff;

/// The entry points of this crate for one autodiff backend `B`, as addresses (never called).
fn entry_points<B: FusedAutodiff>() -> Vec<*const ()> {
    vec![
        train::<B> as *const (),
        Trainer::fit::<B> as *const (),
        lr_find::<B> as *const (),
        bench::time_training::<B> as *const (),
        bench::time_evaluation::<B> as *const (),
        bench::time_sampling::<B> as *const (),
        evaluate::<B::InnerBackend> as *const (),
        evaluate_split::<B::InnerBackend> as *const (),
        target_log_probs::<B::InnerBackend> as *const (),
        sample::<B::InnerBackend> as *const (),
        sample_ensemble::<B::InnerBackend> as *const (),
        score_ensemble::<B::InnerBackend> as *const (),
        Checkpoint::load_model::<B::InnerBackend> as *const (),
        Checkpoint::load_model::<B> as *const (),
    ]
}

/// The entry points on burn's ndarray backend (the CPU; `makemore`'s default).
#[cfg(feature = "ndarray")]
#[doc(hidden)]
pub fn ndarray() -> Vec<*const ()> {
    entry_points::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>()
}

/// The entry points on burn's wgpu backend.
#[cfg(feature = "wgpu")]
#[doc(hidden)]
pub fn wgpu() -> Vec<*const ()> {
    entry_points::<burn::backend::Autodiff<burn::backend::Wgpu>>()
}

/// The entry points on burn's CUDA backend.
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub fn cuda() -> Vec<*const ()> {
    entry_points::<burn::backend::Autodiff<burn::backend::Cuda>>()
}
