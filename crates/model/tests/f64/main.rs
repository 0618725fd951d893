//! The integration tests of makemore-model in `f64`, as one test binary: burn keeps the
//! default float dtype per device for the whole process, so `f64` tensors on the ndarray CPU
//! device are `f64` only where no `f32` test ran first.

#![allow(clippy::unwrap_used)] // a test fails by panicking

#[path = "../common/mod.rs"]
mod common;
mod fused_generic;
mod sequence_gradients;
