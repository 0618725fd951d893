//! The generic implementation of [`FusedOps`] (the trait's default bodies, which wgpu
//! uses) under the hand-written autodiff backward passes matches the plain path, in `f64`.
//!
//! In the `f64` test binary: burn keeps the default float dtype per device for the whole process,
//! so `f64` tensors on the ndarray CPU device are `f64` only where no `f32` test ran first.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use burn::backend::{Autodiff, NdArray};

use crate::common;
use common::{compare, variants};

#[test]
fn generic_implementation_matches_the_plain_path() {
    for (config, dropout) in variants() {
        // f64 through the trait's default bodies and the autodiff backward passes.
        compare::<Autodiff<NdArray<f64>>>(config, dropout, 1e-10);
    }
}
