//! One module per verb.

pub mod bench;
pub mod bigram;
pub mod data;
pub mod eval;
pub mod lr_find;
pub mod plot;
pub mod sample;
pub mod train;
