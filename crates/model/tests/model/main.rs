//! The integration tests of makemore-model in `f32`, as one test binary (each file of this
//! directory a module): one link of burn instead of one per file keeps the test build short.
//! The `f64` tests are the binary `f64`: burn keeps the default float dtype per device for
//! the whole process, so they cannot share a process with `f32` tests.

#![allow(clippy::unwrap_used)] // a test fails by panicking

#[path = "../common/mod.rs"]
mod common;
mod fused;
mod fused_wgpu;
