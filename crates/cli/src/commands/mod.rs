//! One module per verb.

pub mod data;
pub mod eval;
pub mod sample;
pub mod train;
