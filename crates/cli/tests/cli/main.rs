//! The integration tests of makemore-cli, as one test binary (each file of this directory a
//! module): one link of burn instead of one per file keeps the test build short.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod backends;
mod common;
mod data_cli;
mod ensemble_cli;
mod experiments_cli;
mod live_run_cli;
mod reliability_cli;
mod train_cli;
