//! Checkpoint directories: what is in them, and how they are written so that a crash at
//! any moment leaves a loadable checkpoint.
//!
//! Files: `config.json`, `vocab.json` (written once, atomically), `model.safetensors`
//! (PyTorch names and layouts), `optimizer.mpk` (burn record of the optimiser state),
//! `state.json` (step, metrics position, corpus digest), `metrics.csv`.
//!
//! A save is a small journal: every new file is written as `*.tmp` and synced, then
//! `state.json.tmp` is written (the commit point), then each `*.tmp` is renamed over its
//! final name. [`Checkpoint::open`] finishes an interrupted commit (rolls forward) when
//! `state.json.tmp` exists and discards uncommitted `*.tmp` files when it does not.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use makemore_io::tmp_path;

use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use makemore_model::{Mlp, NormKind};
use makemore_vocab::Vocab;
use serde::{Deserialize, Serialize};

use crate::{RunLock, TrainError, TrainingConfig};

/// Name of the weights file.
pub const MODEL_FILE: &str = "model.safetensors";
/// Name of the optimiser state file.
pub const OPTIMIZER_FILE: &str = "optimizer.mpk";
/// Name of the training state file (the commit record).
pub const STATE_FILE: &str = "state.json";
/// Name of the config file.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the vocabulary file.
pub const VOCAB_FILE: &str = "vocab.json";
/// Name of the metrics file.
pub const METRICS_FILE: &str = "metrics.csv";
/// Largest `model.safetensors` accepted (refuse before reading an absurd file).
const MAX_MODEL_BYTES: u64 = 4 << 30;

/// Where a run stands; saved as `state.json` with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingState {
    /// Steps completed; the next step to run.
    pub step: u64,
    /// Bytes of `metrics.csv` that belong to this checkpoint; a resume truncates there.
    pub metrics_bytes: u64,
    /// sha256 of the corpus words, to refuse a resume on different data.
    pub corpus_sha256: String,
    /// Training seconds so far (not counting evaluation pauses before a resume).
    pub elapsed_secs: f64,
    /// Full-split train loss at the end of the run, if finished.
    pub train_loss: Option<f64>,
    /// Full-split dev loss at the end of the run, if finished.
    pub dev_loss: Option<f64>,
    /// True once all configured steps ran.
    pub finished: bool,
    /// The corpus file the run trains on (absolute), when it is not the built-in one: a
    /// resume without `--data` reads it again (and its sha256 must still match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_path: Option<PathBuf>,
    /// The config the run started with, so that a resume notices an edited `config.json`
    /// (absent in checkpoints from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

impl TrainingState {
    /// The config the run started with, if the checkpoint recorded it.
    pub fn started_config(&self) -> Result<Option<TrainingConfig>, TrainError> {
        self.config
            .as_ref()
            .map(|v| TrainingConfig::from_checkpoint_json(&v.to_string()))
            .transpose()
    }
}

/// An opened checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory.
    pub dir: PathBuf,
    /// The run's config.
    pub config: TrainingConfig,
    /// The run's vocabulary.
    pub vocab: Vocab,
    /// Where the run stands.
    pub state: TrainingState,
}

fn read_text(path: &Path) -> Result<String, TrainError> {
    fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TrainError::checkpoint(path, "file is missing"),
        _ => TrainError::io(path, e),
    })
}

/// Writes `bytes` to `path` whole or not at all ([`makemore_io::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    makemore_io::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    makemore_io::write_synced(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Finishes or discards an interrupted save (see the module docs).
fn recover(dir: &Path) -> Result<(), TrainError> {
    let half_written = tmp_path(&tmp_path(&dir.join(STATE_FILE)));
    if half_written.exists() {
        fs::remove_file(&half_written).map_err(|e| TrainError::io(&half_written, e))?;
    }
    let committed = tmp_path(&dir.join(STATE_FILE)).exists();
    for name in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        let tmp = tmp_path(&dir.join(name));
        if !tmp.exists() {
            continue;
        }
        if committed {
            fs::rename(&tmp, dir.join(name)).map_err(|e| TrainError::io(&tmp, e))?;
        } else {
            fs::remove_file(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Opens `dir`, finishing an interrupted save, and reads and checks its config,
    /// vocabulary and state. The weights are loaded separately by [`Checkpoint::load_model`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, TrainError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(&dir, "no such checkpoint directory"));
        }
        // Read-only checkpoints (say, a shared one) are still readable without recovery.
        if let Err(e) = recover(&dir) {
            if !matches!(&e, TrainError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
            {
                return Err(e);
            }
        }
        let config_path = dir.join(CONFIG_FILE);
        let config = TrainingConfig::from_checkpoint_json(&read_text(&config_path)?)
            .map_err(|e| TrainError::checkpoint(&config_path, e.to_string()))?;
        config
            .validate()
            .map_err(|e| TrainError::checkpoint(&config_path, e.to_string()))?;
        let vocab_path = dir.join(VOCAB_FILE);
        let vocab = Vocab::from_json(&read_text(&vocab_path)?)
            .map_err(|e| TrainError::checkpoint(&vocab_path, e.to_string()))?;
        if vocab.len() != config.model.vocab_size {
            return Err(TrainError::checkpoint(
                &vocab_path,
                format!(
                    "has {} tokens but config.json says vocab_size = {}",
                    vocab.len(),
                    config.model.vocab_size
                ),
            ));
        }
        let state_path = dir.join(STATE_FILE);
        let state: TrainingState = serde_json::from_str(&read_text(&state_path)?)
            .map_err(|e| TrainError::checkpoint(&state_path, format!("does not parse: {e}")))?;
        Ok(Self {
            dir,
            config,
            vocab,
            state,
        })
    }

    /// Makes `dir` ready for a fresh run and takes its lock ([`RunLock`]), before anything
    /// in it changes: refuses a directory that another process trains in, or one that holds
    /// a run unless `replace`; with `replace`, removes the old run's files, so that nothing
    /// of it can be mistaken for the new one. Checks that the directory is writable.
    pub fn prepare_dir(dir: &Path, replace: bool) -> Result<RunLock, TrainError> {
        if dir.exists() && !dir.is_dir() {
            return Err(TrainError::checkpoint(dir, "exists and is not a directory"));
        }
        let held = dir.is_dir().then(|| RunLock::acquire(dir)).transpose()?;
        if Self::exists(dir) && !replace {
            return Err(TrainError::RunExists {
                dir: dir.to_path_buf(),
            });
        }
        fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let lock = match held {
            Some(lock) => lock,
            None => RunLock::acquire(dir)?,
        };
        if replace {
            for name in [STATE_FILE, MODEL_FILE, OPTIMIZER_FILE, METRICS_FILE] {
                for path in [dir.join(name), tmp_path(&dir.join(name))] {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(TrainError::io(path, e)),
                    }
                }
            }
        }
        let probe = dir.join(".write-test");
        fs::write(&probe, b"").map_err(|e| TrainError::io(dir, e))?;
        let _ = fs::remove_file(probe);
        Ok(lock)
    }

    /// Opens an unfinished run to continue it, holding its lock ([`RunLock`], taken before
    /// opening: opening may finish an interrupted save). A finished run is refused.
    pub fn open_to_resume(dir: &Path) -> Result<(Self, RunLock), TrainError> {
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(dir, "no such checkpoint directory"));
        }
        let lock = RunLock::acquire(dir)?;
        let ckpt = Self::open(dir)?;
        if ckpt.state.finished {
            return Err(TrainError::Resume {
                path: dir.to_path_buf(),
                reason: format!("the run already finished all {} steps", ckpt.config.steps),
            });
        }
        Ok((ckpt, lock))
    }

    /// True when `dir` looks like a checkpoint directory (has a state file).
    pub fn exists(dir: &Path) -> bool {
        dir.join(STATE_FILE).exists() || tmp_path(&dir.join(STATE_FILE)).exists()
    }

    /// Builds the model from the config and loads `model.safetensors` into it, checking
    /// every tensor's name, shape and dtype first.
    pub fn load_model<B: Backend>(&self, device: &B::Device) -> Result<Mlp<B>, TrainError> {
        let path = self.dir.join(MODEL_FILE);
        let bytes = read_model_bytes(&path)?;
        check_tensors(&path, &bytes, &expected_tensors(&self.config))?;
        let mut model = self.config.model.init::<B>(device);
        let mut store =
            SafetensorsStore::from_bytes(Some(bytes)).with_from_adapter(PyTorchToBurnAdapter);
        let result = model
            .load_from(&mut store)
            .map_err(|e| TrainError::checkpoint(&path, format!("cannot load: {e}")))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(TrainError::checkpoint(
                &path,
                format!(
                    "cannot load: errors {:?}, missing {:?}",
                    result.errors, result.missing
                ),
            ));
        }
        Ok(model)
    }

    /// Reads the optimiser state bytes, if the run saved any.
    pub(crate) fn optimizer_bytes(&self) -> Result<Option<Vec<u8>>, TrainError> {
        let path = self.dir.join(OPTIMIZER_FILE);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io(path, e)),
        }
    }
}

fn read_model_bytes(path: &Path) -> Result<Vec<u8>, TrainError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TrainError::checkpoint(path, "file is missing"),
        _ => TrainError::io(path, e),
    })?;
    if meta.len() > MAX_MODEL_BYTES {
        return Err(TrainError::checkpoint(
            path,
            format!("is {} bytes, larger than any makemore model", meta.len()),
        ));
    }
    fs::read(path).map_err(|e| TrainError::io(path, e))
}

/// The tensors a config's model has, by PyTorch name, with PyTorch shapes.
pub fn expected_tensors(config: &TrainingConfig) -> BTreeMap<String, Vec<usize>> {
    let m = &config.model;
    let input = m.block_size * m.n_embd;
    let mut out = BTreeMap::new();
    out.insert("embedding.weight".to_string(), vec![m.vocab_size, m.n_embd]);
    for i in 0..m.n_layers {
        out.insert(format!("hidden.{i}.weight"), vec![m.n_hidden, m.fan_in(i)]);
        if m.hidden_bias() {
            out.insert(format!("hidden.{i}.bias"), vec![m.n_hidden]);
        }
    }
    out.insert(
        "output.weight".to_string(),
        vec![m.vocab_size, m.output_fan_in()],
    );
    out.insert("output.bias".to_string(), vec![m.vocab_size]);
    if m.direct {
        out.insert("direct.weight".to_string(), vec![m.vocab_size, input]);
    }
    let norm = match m.norm {
        NormKind::None => return out,
        NormKind::Layer => ("norm", &["weight", "bias"][..]),
        NormKind::Batch => (
            "batch_norm",
            &["weight", "bias", "running_mean", "running_var"][..],
        ),
    };
    for i in 0..m.n_layers {
        for tensor in norm.1 {
            out.insert(format!("{}.{i}.{tensor}", norm.0), vec![m.n_hidden]);
        }
    }
    out
}

fn check_tensors(
    path: &Path,
    bytes: &[u8],
    expected: &BTreeMap<String, Vec<usize>>,
) -> Result<(), TrainError> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        TrainError::checkpoint(path, format!("is not a valid safetensors file: {e}"))
    })?;
    for (name, shape) in expected {
        let view = st
            .tensor(name)
            .map_err(|_| TrainError::checkpoint(path, format!("has no tensor {name:?}")))?;
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(TrainError::checkpoint(
                path,
                format!("tensor {name:?} has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        if view.shape() != shape.as_slice() {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "tensor {name:?} has shape {:?}, expected {shape:?} from config.json",
                    view.shape()
                ),
            ));
        }
    }
    if let Some(extra) = st.names().into_iter().find(|n| !expected.contains_key(*n)) {
        return Err(TrainError::checkpoint(
            path,
            format!("has an unexpected tensor {extra:?}"),
        ));
    }
    Ok(())
}

/// Serialises model weights to safetensors bytes with PyTorch names and layouts.
pub fn model_bytes<B: Backend>(model: &Mlp<B>, step: u64) -> Result<Vec<u8>, TrainError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("format", "makemore-mlp")
        .metadata("step", step.to_string());
    model.sync_running_stats();
    model
        .save_into(&mut store)
        .map_err(|e| TrainError::checkpoint(MODEL_FILE, format!("cannot serialise: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| TrainError::checkpoint(MODEL_FILE, format!("cannot serialise: {e}")))?;
    Ok(canonical_safetensors(bytes))
}

/// The same safetensors file with its JSON header's keys in sorted order (burn-store writes
/// its metadata map in a random order), so that equal weights give equal bytes and a
/// checkpoint's hash identifies its weights. Tensor offsets are relative to the end of the
/// header, so only the header changes. Bytes that do not parse are returned as they are.
fn canonical_safetensors(bytes: Vec<u8>) -> Vec<u8> {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut entries: Vec<(String, serde_json::Value)> =
                    m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(entries.into_iter().collect())
            }
            other => other,
        }
    }
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .and_then(|n| usize::try_from(n).ok())
    else {
        return bytes;
    };
    let Some(header) = bytes
        .get(8..8 + len)
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
    else {
        return bytes;
    };
    let mut text = sorted(header).to_string().into_bytes();
    // The format pads the header with spaces to a multiple of 8 bytes.
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

/// Writes `config.json` and `vocab.json` (once per run).
pub(crate) fn write_run_files(
    dir: &Path,
    config: &TrainingConfig,
    vocab: &Vocab,
) -> Result<(), TrainError> {
    fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_json().as_bytes())?;
    write_atomic(&dir.join(VOCAB_FILE), vocab.to_json().as_bytes())
}

/// Saves weights, optimiser state and training state as one commit (see the module docs).
pub(crate) fn save_commit(
    dir: &Path,
    model: &[u8],
    optimizer: Option<&[u8]>,
    state: &TrainingState,
) -> Result<(), TrainError> {
    let mut files: Vec<(&str, &[u8])> = vec![(MODEL_FILE, model)];
    if let Some(opt) = optimizer {
        files.push((OPTIMIZER_FILE, opt));
    }
    for (name, bytes) in &files {
        write_synced(&tmp_path(&dir.join(name)), bytes)?;
    }
    let state_json = serde_json::to_string_pretty(state).unwrap_or_default();
    // The commit point: state.json.tmp appears complete (written aside, then renamed).
    let state_tmp = tmp_path(&dir.join(STATE_FILE));
    write_atomic(&state_tmp, state_json.as_bytes())?;
    recover(dir)?;
    sync_dir(dir)
}

/// Makes the renames in `dir` durable. A file system that cannot sync a directory says so
/// with `InvalidInput` (nothing to do there); any other failure is reported.
fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    makemore_io::sync_dir(dir).map_err(|e| TrainError::io(dir, e))
}

/// Optimiser state as bytes (burn's named MessagePack record, full precision).
pub(crate) fn record_bytes<B: Backend, R: burn::record::Record<B>>(
    record: R,
) -> Result<Vec<u8>, TrainError> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .record(record, ())
        .map_err(|e| TrainError::checkpoint(OPTIMIZER_FILE, format!("cannot serialise: {e}")))
}

/// Optimiser state from bytes.
pub(crate) fn record_from_bytes<B: Backend, R: burn::record::Record<B>>(
    bytes: Vec<u8>,
    device: &B::Device,
    dir: &Path,
) -> Result<R, TrainError> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .load(bytes, device)
        .map_err(|e| TrainError::checkpoint(dir.join(OPTIMIZER_FILE), format!("cannot load: {e}")))
}
