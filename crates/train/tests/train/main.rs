//! The integration tests of makemore-train, as one test binary (each file of this directory a
//! module): one link of burn instead of one per file keeps the test build short.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod commit_protocol;
mod distill;
mod ema;
mod fuzz_loaders;
mod resume;
