//! The models compiled once per backend, for the unoptimised builds of the crates above.
//!
//! The models are generic over the backend, so every crate and test program that runs them
//! on ndarray compiled its own copy of their forward and backward passes and of burn's
//! operations below them. In an unoptimised build rustc shares generic code between crates
//! (`-Z share-generics`, on by default at opt-level 0 and 1): a crate that needs an instance
//! that a crate it depends on has already compiled links to that one. Naming the instances
//! here, one list per backend feature, makes this crate the one that compiles them
//! (makemore-train does the same for the trainer). Debug builds only (`debug_assertions`):
//! optimised builds do not share generic code, and would only compile a copy that nothing
//! links to.
//!
//! Nothing calls these functions; they exist for what the compiler does with them.

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::{FusedAutodiff, FusedOps, Model, ModelConfig};

/// A model's entry points on backend `B`, as addresses (never called).
fn model_entry_points<B: FusedOps>() -> [*const (); 5] {
    [
        ModelConfig::init::<B> as *const (),
        Model::<B>::forward_train as *const (),
        Model::<B>::forward as *const (),
        Model::<B>::next_logits as *const (),
        Model::<B>::loss as *const (),
    ]
}

/// The entry points on `B` and on `Autodiff<B>`, the backward pass included.
fn entry_points<B: FusedOps + Backend>() -> Vec<*const ()>
where
    Autodiff<B>: FusedAutodiff,
{
    let mut all = model_entry_points::<B>().to_vec();
    all.extend(model_entry_points::<Autodiff<B>>());
    all.push(Tensor::<Autodiff<B>, 1>::backward as *const ());
    all
}

/// The entry points on burn's ndarray backend (the CPU).
#[cfg(feature = "ndarray")]
#[doc(hidden)]
pub fn ndarray() -> Vec<*const ()> {
    entry_points::<burn::backend::NdArray<f32>>()
}

/// The entry points on burn's wgpu backend.
#[cfg(feature = "wgpu")]
#[doc(hidden)]
pub fn wgpu() -> Vec<*const ()> {
    entry_points::<burn::backend::Wgpu>()
}

/// The entry points on burn's CUDA backend.
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub fn cuda() -> Vec<*const ()> {
    entry_points::<burn::backend::Cuda>()
}
