//! Where the words come from: `--data PATH`, or the corpus built into the binary.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use makemore_train::Checkpoint;

/// The shipped `data/names.txt`, compiled in so the tool works from any directory.
const BUILTIN: &[u8] = include_bytes!("../../../data/names.txt");
/// How the built-in corpus is named in messages.
pub const BUILTIN_NAME: &str = "data/names.txt (built in)";

/// Reads `--data`, or the built-in corpus when it is not given.
pub fn load_words(data: Option<&PathBuf>) -> Result<Vec<String>> {
    match data {
        Some(path) => makemore_data::read_words(path).context("cannot load the corpus"),
        None => makemore_data::parse_words(BUILTIN, BUILTIN_NAME).context("cannot load the corpus"),
    }
}

/// The name of the corpus, for messages.
pub fn describe(data: Option<&PathBuf>) -> String {
    data.map_or_else(|| BUILTIN_NAME.to_string(), |p| p.display().to_string())
}

/// The corpus of a command on an existing run: `--data` when given (a resume checks it
/// against the run's fingerprint), else the file the run was trained on, else the built-in
/// corpus.
pub fn of_run(data: Option<&PathBuf>, ckpt: &Checkpoint) -> Result<Option<PathBuf>> {
    if let Some(path) = data {
        return Ok(Some(path.clone()));
    }
    match &ckpt.state.corpus_path {
        Some(path) if !path.exists() => bail!(
            "the run in {} was trained on {}, which no longer exists; pass --data",
            ckpt.dir.display(),
            path.display()
        ),
        path => Ok(path.clone()),
    }
}
