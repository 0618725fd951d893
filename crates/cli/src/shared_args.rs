//! The arguments that every verb reading a corpus or running a model takes, defined once
//! and flattened into each verb's arguments.

use std::path::PathBuf;

use clap::Args;

use crate::backend::BackendChoice;

/// `--data`: the word list.
#[derive(Debug, Args)]
pub struct DataArg {
    /// Word list, one UTF-8 word per line (default: the built-in data/names.txt; for a
    /// command on an existing run, the corpus that run was trained on).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
}

/// `--backend`: where the model runs.
#[derive(Debug, Args)]
pub struct BackendArg {
    /// Backend: ndarray (the CPU, the default), or wgpu / cuda in builds with those features.
    #[arg(long, value_enum, default_value_t = BackendChoice::default())]
    pub backend: BackendChoice,
}
