//! Checkpoint directories: what is in them, how they are written so that a crash at any
//! moment leaves a loadable checkpoint, and how they are read while a run writes them.
//!
//! Files: `config.json`, `vocab.json` (written once, atomically), `model.safetensors`
//! (PyTorch names and layouts), `optimizer.mpk` (burn record of the optimiser state),
//! `state.json` (step, metrics position, corpus digest), `metrics.csv`.
//!
//! A save is a small journal, written only by the run's writer (who holds [`RunLock`]):
//! the new `model.safetensors`, `optimizer.mpk` and `state.json` are written aside under
//! unique temp names and synced; then, holding `.commit.lock` exclusively, the writer
//! writes `commit.json` (the commit point: which temp file becomes which file), renames
//! each temp file over its final name, and removes the journal. Readers
//! ([`Checkpoint::open`]) never write: they hold `.commit.lock` shared while they read
//! config, vocabulary, state and weights, so they see one whole save; when a writer died
//! between the commit point and the last rename, they read the journal's temp files where
//! they still exist. Finishing such a save, and deleting temp files that no journal names,
//! is the writer's business ([`Checkpoint::open_to_resume`], [`Checkpoint::prepare_dir`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use makemore_io::{Lock, Pending};

use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use makemore_model::{Model, NormKind};
use makemore_vocab::Vocab;
use serde::{Deserialize, Serialize};

use crate::lock::lock_error;
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
/// The commit journal: present from a save's commit point until its last rename.
pub const JOURNAL_FILE: &str = "commit.json";
/// Held exclusively by a writer while it commits, shared by readers while they read.
pub const COMMIT_LOCK_FILE: &str = ".commit.lock";
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
    /// With `keep_best`: the step and dev loss of the weights in `best/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestSoFar>,
    /// With `distill`: the sha256 of the teacher's table (its distributions on the training
    /// characters, and the weight), so that a resume notices a teacher that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_sha256: Option<String>,
}

/// Where the weights with the lowest dev loss so far were saved (`best/`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BestSoFar {
    /// Steps done when they were evaluated.
    pub step: u64,
    /// Their dev loss.
    pub dev_loss: f64,
}

/// The subdirectory of a run that holds its best weights (`keep_best`).
pub const BEST_DIR: &str = "best";
/// The subdirectory of a run that holds the moving average of its weights (`ema`),
/// committed with each save of the run.
pub const EMA_DIR: &str = "ema";

impl TrainingState {
    /// The config the run started with, if the checkpoint recorded it.
    pub fn started_config(&self) -> Result<Option<TrainingConfig>, TrainError> {
        self.config
            .as_ref()
            .map(|v| TrainingConfig::from_checkpoint_json(&v.to_string()))
            .transpose()
    }
}

/// An opened checkpoint directory: one committed save, read whole (config, vocabulary,
/// state and weights) while no save was being committed.
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
    /// `model.safetensors` of the same save.
    weights: Weights,
}

/// The bytes of `model.safetensors` (shown by their length).
#[derive(Clone)]
struct Weights(std::sync::Arc<Vec<u8>>);

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weights({} bytes)", self.0.len())
    }
}

/// What `commit.json` records: each file of the save and the temp file that becomes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Journal {
    /// `(final name, temp name)`, both in the checkpoint directory.
    files: Vec<(String, String)>,
}

impl Journal {
    /// The journal of `dir`, if a save was interrupted after its commit point.
    fn read(dir: &Path) -> Result<Option<Self>, TrainError> {
        let path = dir.join(JOURNAL_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                TrainError::checkpoint(
                    &path,
                    format!("does not parse ({e}); the save it describes cannot be finished"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrainError::io(path, e)),
        }
    }

    /// The journal that names `dir`'s files: its own, or, for a subdirectory committed
    /// with its run (`RUN/ema`), the run's, with the paths made relative to `dir`.
    fn read_for(dir: &Path) -> Result<Option<Self>, TrainError> {
        if let Some(own) = Self::read(dir)? {
            return Ok(Some(own));
        }
        let (Some(parent), Some(sub)) = (dir.parent(), dir.file_name()) else {
            return Ok(None);
        };
        if parent.as_os_str().is_empty() || !parent.join(JOURNAL_FILE).exists() {
            return Ok(None);
        }
        Ok(Self::read(parent)?.map(|j| Self {
            files: j
                .files
                .into_iter()
                .filter_map(|(name, temp)| {
                    let name = Path::new(&name)
                        .strip_prefix(sub)
                        .ok()?
                        .to_str()?
                        .to_string();
                    let temp = Path::new(&temp)
                        .strip_prefix(sub)
                        .ok()?
                        .to_str()?
                        .to_string();
                    Some((name, temp))
                })
                .collect(),
        }))
    }

    /// Where the committed `name` is: its temp file while that still exists, else `name`.
    fn locate(this: Option<&Self>, dir: &Path, name: &str) -> PathBuf {
        this.and_then(|j| j.files.iter().find(|(f, _)| f == name))
            .map(|(_, temp)| dir.join(temp))
            .filter(|p| p.exists())
            .unwrap_or_else(|| dir.join(name))
    }
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

/// Takes `dir`'s commit lock exclusively (waiting for readers to finish reading).
fn commit_lock(dir: &Path) -> Result<Lock, TrainError> {
    Lock::exclusive(&dir.join(COMMIT_LOCK_FILE)).map_err(|e| lock_error(dir, e))
}

fn remove_if_there(path: &Path) -> Result<(), TrainError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(TrainError::io(path, e)),
    }
}

/// Finishes a save interrupted after its commit point, and deletes the temp files of saves
/// interrupted before it (see the module docs). Only the writer does this: `_writer` is
/// the run's lock, and the commit lock keeps readers out meanwhile.
pub(crate) fn recover(dir: &Path, _writer: &RunLock) -> Result<(), TrainError> {
    let _commit = commit_lock(dir)?;
    if let Some(journal) = Journal::read(dir)? {
        let subdirs = subdirectories(journal.files.iter().map(|(name, _)| name.as_str()));
        let _sub_commits = subdirs
            .iter()
            .map(|sub| commit_lock(&dir.join(sub)))
            .collect::<Result<Vec<_>, _>>()?;
        for (name, temp) in &journal.files {
            let temp = dir.join(temp);
            if temp.exists() {
                fs::rename(&temp, dir.join(name)).map_err(|e| TrainError::io(&temp, e))?;
            }
        }
        for sub in &subdirs {
            sync_dir(&dir.join(sub))?;
        }
        sync_dir(dir)?;
        remove_if_there(&dir.join(JOURNAL_FILE))?;
    }
    legacy_recover(dir)?;
    remove_temp_files(dir)?;
    sync_dir(dir)
}

/// Makemore before unique temp names saved through fixed `NAME.tmp` files with
/// `state.json.tmp` as the commit point: roll such a save forward, or discard it.
fn legacy_recover(dir: &Path) -> Result<(), TrainError> {
    let legacy = |name: &str| dir.join(format!("{name}.tmp"));
    remove_if_there(&legacy(&format!("{STATE_FILE}.tmp")))?;
    let committed = legacy(STATE_FILE).exists();
    for name in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        let tmp = legacy(name);
        if !tmp.exists() {
            continue;
        }
        if committed {
            fs::rename(&tmp, dir.join(name)).map_err(|e| TrainError::io(&tmp, e))?;
        } else {
            remove_if_there(&tmp)?;
        }
    }
    Ok(())
}

/// The files a run's writer saves through temp files: the only ones whose temps recovery
/// deletes (a `plot` or another tool writing beside them keeps its own).
const WRITER_FILES: [&str; 8] = [
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    CONFIG_FILE,
    VOCAB_FILE,
    METRICS_FILE,
    JOURNAL_FILE,
    WRITE_PROBE,
];

/// The name of the probe that checks a run directory is writable.
const WRITE_PROBE: &str = ".write-test";

/// Deletes the temp files of the writer's interrupted writes (no journal names them any
/// more), and no others.
fn remove_temp_files(dir: &Path) -> Result<(), TrainError> {
    let entries = fs::read_dir(dir).map_err(|e| TrainError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TrainError::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .and_then(makemore_io::temp_target)
            .is_some_and(|target| WRITER_FILES.contains(&target))
        {
            remove_if_there(&entry.path())?;
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Opens `dir` read-only: reads its config, vocabulary, state and weights as one
    /// committed save, changing nothing (a save being committed is waited for; one that a
    /// crash interrupted after its commit point is read through its journal). The weights
    /// are built into a model by [`Checkpoint::load_model`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, TrainError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(&dir, "no such checkpoint directory"));
        }
        let _reading =
            Lock::shared(&dir.join(COMMIT_LOCK_FILE)).map_err(|e| lock_error(&dir, e))?;
        let journal = Journal::read_for(&dir)?;
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
        let state_path = Journal::locate(journal.as_ref(), &dir, STATE_FILE);
        let state: TrainingState = serde_json::from_str(&read_text(&state_path)?)
            .map_err(|e| TrainError::checkpoint(&state_path, format!("does not parse: {e}")))?;
        let weights = read_model_bytes(&Journal::locate(journal.as_ref(), &dir, MODEL_FILE))?;
        Ok(Self {
            dir,
            config,
            vocab,
            state,
            weights: Weights(std::sync::Arc::new(weights)),
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
        {
            let _commit = commit_lock(dir)?;
            if replace {
                for name in [
                    STATE_FILE,
                    MODEL_FILE,
                    OPTIMIZER_FILE,
                    METRICS_FILE,
                    JOURNAL_FILE,
                ] {
                    remove_if_there(&dir.join(name))?;
                    remove_if_there(&dir.join(format!("{name}.tmp")))?;
                }
                for sub in [BEST_DIR, EMA_DIR] {
                    let sub = dir.join(sub);
                    match fs::remove_dir_all(&sub) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(TrainError::io(sub, e))
                        }
                        _ => {}
                    }
                }
            }
        }
        recover(dir, &lock)?;
        let probe = makemore_io::temp_beside(&dir.join(WRITE_PROBE), false)
            .map_err(|e| TrainError::io(dir, e))?;
        drop(probe);
        Ok(lock)
    }

    /// Opens an unfinished run to continue it, holding its lock ([`RunLock`], taken
    /// first: then a save that a crash interrupted is finished, or its temp files
    /// deleted). A finished run is refused.
    pub fn open_to_resume(dir: &Path) -> Result<(Self, RunLock), TrainError> {
        if !dir.is_dir() {
            return Err(TrainError::checkpoint(dir, "no such checkpoint directory"));
        }
        let lock = RunLock::acquire(dir)?;
        recover(dir, &lock)?;
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
        dir.join(STATE_FILE).exists()
            || dir.join(JOURNAL_FILE).exists()
            || dir.join(format!("{STATE_FILE}.tmp")).exists()
    }

    /// Builds the model from the config and loads `model.safetensors` into it, checking
    /// every tensor's name, shape and dtype first.
    pub fn load_model<B: Backend>(&self, device: &B::Device) -> Result<Model<B>, TrainError> {
        let path = self.dir.join(MODEL_FILE);
        let bytes = self.weights.0.as_ref().clone();
        let masks = causal_masks(&self.config.model);
        check_tensors(&path, &bytes, &expected_tensors(&self.config), &masks)?;
        let mut model = self.config.model.init::<B>(device);
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_from_adapter(PyTorchToBurnAdapter)
            .skip_enum_variants(true);
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

/// The tensors of a sequence model, by `makemore.py`'s names, with PyTorch's shapes.
fn sequence_tensors(m: &makemore_model::ModelConfig) -> BTreeMap<String, Vec<usize>> {
    use makemore_model::ModelKind;
    let (v, e, h, t) = (m.vocab_size, m.n_embd, m.n_hidden, m.block_size);
    let mut out = BTreeMap::new();
    let mut linear = |name: &str, d_in: usize, d_out: usize, bias: bool| {
        out.insert(format!("{name}.weight"), vec![d_out, d_in]);
        if bias {
            out.insert(format!("{name}.bias"), vec![d_out]);
        }
    };
    match m.kind {
        ModelKind::Rnn | ModelKind::Gru => {
            let gates: &[&str] = if m.kind == ModelKind::Gru {
                &["xh_to_z", "xh_to_r", "xh_to_hbar"]
            } else {
                &["xh_to_h"]
            };
            for g in gates {
                linear(&format!("cell.{g}"), e + h, h, true);
            }
            linear("lm_head", h, v, true);
            out.insert("start".into(), vec![1, h]);
            out.insert("wte.weight".into(), vec![v, e]);
        }
        ModelKind::Bow => {
            linear("context_block.mlp.c_fc", e, h, true);
            linear("context_block.mlp.c_proj", h, e, true);
            linear("lm_head", e, v, true);
            out.insert("wte.weight".into(), vec![v, e]);
            out.insert("wpe.weight".into(), vec![t, e]);
        }
        ModelKind::Transformer | ModelKind::Mlp => {
            for i in 0..m.n_layers {
                let b = format!("transformer.h.{i}");
                linear(&format!("{b}.attn.c_attn"), e, 3 * e, true);
                linear(&format!("{b}.attn.c_proj"), e, e, true);
                linear(&format!("{b}.mlp.c_fc"), e, 4 * e, true);
                linear(&format!("{b}.mlp.c_proj"), 4 * e, e, true);
            }
            linear("lm_head", e, v, false);
            for i in 0..m.n_layers {
                for ln in ["ln_1", "ln_2"] {
                    out.insert(format!("transformer.h.{i}.{ln}.weight"), vec![e]);
                    out.insert(format!("transformer.h.{i}.{ln}.bias"), vec![e]);
                }
            }
            out.insert("transformer.ln_f.weight".into(), vec![e]);
            out.insert("transformer.ln_f.bias".into(), vec![e]);
            out.insert("transformer.wte.weight".into(), vec![v, e]);
            out.insert("transformer.wpe.weight".into(), vec![t, e]);
        }
    }
    out
}

/// The tensors a config's model has, by PyTorch name, with PyTorch shapes.
pub fn expected_tensors(config: &TrainingConfig) -> BTreeMap<String, Vec<usize>> {
    let m = &config.model;
    if m.kind.is_sequence() {
        return sequence_tensors(m);
    }
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

/// Checks that `bytes` hold exactly the tensors `expected` (name → shape, `f32`, finite
/// values), and optionally the causal `masks`.
fn check_tensors(
    path: &Path,
    bytes: &[u8],
    expected: &BTreeMap<String, Vec<usize>>,
    masks: &BTreeMap<String, Vec<usize>>,
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
        check_values(path, name, view.data())?;
    }
    for (name, shape) in masks {
        let Ok(view) = st.tensor(name) else { continue };
        if view.dtype() != safetensors::Dtype::F32
            || view.shape() != shape.as_slice()
            || view.data() != causal_mask_bytes(shape).as_slice()
        {
            return Err(TrainError::checkpoint(
                path,
                format!(
                    "tensor {name:?} is not the causal mask of config.json (ones on and below \
                     the diagonal of shape {shape:?}): the file is damaged"
                ),
            ));
        }
    }
    let known = |n: &str| expected.contains_key(n) || masks.contains_key(n);
    if let Some(extra) = st.names().into_iter().find(|n| !known(n)) {
        return Err(TrainError::checkpoint(
            path,
            format!("has an unexpected tensor {extra:?}"),
        ));
    }
    Ok(())
}

/// Largest weight magnitude accepted. Training never gets near it (a run whose loss
/// becomes non-finite stops without saving); a value beyond it is a damaged file, and below
/// it every model computes a finite loss in `f32`.
const MAX_WEIGHT: f32 = 1e12;

/// Refuses non-finite and absurd values, and negative running variances, naming the tensor
/// and the first bad value: a damaged file must not load as a model that cannot compute.
fn check_values(path: &Path, name: &str, data: &[u8]) -> Result<(), TrainError> {
    let variance = name.ends_with("running_var");
    for (i, b) in data.chunks_exact(4).enumerate() {
        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let bad = if !v.is_finite() {
            Some("is not finite".to_string())
        } else if v.abs() > MAX_WEIGHT {
            Some(format!(
                "is beyond {MAX_WEIGHT:e}, far outside what training gives"
            ))
        } else if variance && v < 0.0 {
            Some("is a negative variance".to_string())
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(TrainError::checkpoint(
                path,
                format!("tensor {name:?} holds {v} at index {i}, which {why}: the file is damaged"),
            ));
        }
    }
    Ok(())
}

/// The kind of a model, as configs name it (`mlp`, `rnn`, …).
fn kind_name<B: Backend>(model: &Model<B>) -> &'static str {
    match model {
        Model::Mlp(_) => "mlp",
        Model::Rnn(r) => match r.cell {
            makemore_model::Cell::Rnn(_) => "rnn",
            makemore_model::Cell::Gru(_) => "gru",
        },
        Model::Bow(_) => "bow",
        Model::Transformer(_) => "transformer",
    }
}

/// Serialises model weights to safetensors bytes with PyTorch names and layouts, with
/// `makemore.py`'s causal-mask buffers ([`causal_masks`]) beside them, so that PyTorch loads
/// the file strictly into `makemore.py`'s own classes.
pub fn model_bytes<B: Backend>(
    model: &Model<B>,
    config: &makemore_model::ModelConfig,
    step: u64,
) -> Result<Vec<u8>, TrainError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .metadata("format", format!("makemore-{}", kind_name(model)))
        .metadata("step", step.to_string());
    model.sync_running_stats();
    model
        .save_into(&mut store)
        .map_err(|e| TrainError::checkpoint(MODEL_FILE, format!("cannot serialise: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| TrainError::checkpoint(MODEL_FILE, format!("cannot serialise: {e}")))?;
    let bytes = with_causal_masks(bytes, &causal_masks(config))?;
    Ok(canonical_safetensors(bytes))
}

/// `makemore.py`'s causal masks, registered as buffers named `bias`: `[1, 1, T, T]` in each
/// Transformer block's attention (`transformer.h.{i}.attn.bias`), `[1, T, T]` in the bag of
/// words (`context_block.cbow.bias`); ones on and below the diagonal, zeros above. makemore
/// computes the mask instead of holding it: these are written for PyTorch, and when read
/// (they are optional: checkpoints of earlier versions lack them) only checked.
pub fn causal_masks(m: &makemore_model::ModelConfig) -> BTreeMap<String, Vec<usize>> {
    use makemore_model::ModelKind;
    let t = m.block_size;
    match m.kind {
        ModelKind::Transformer => (0..m.n_layers)
            .map(|i| (format!("transformer.h.{i}.attn.bias"), vec![1, 1, t, t]))
            .collect(),
        ModelKind::Bow => [("context_block.cbow.bias".to_string(), vec![1, t, t])].into(),
        ModelKind::Mlp | ModelKind::Rnn | ModelKind::Gru => BTreeMap::new(),
    }
}

/// The lower-triangular `t × t` matrix of ones (the last two dimensions of `shape`), as the
/// little-endian `f32` bytes of a tensor of `shape`.
fn causal_mask_bytes(shape: &[usize]) -> Vec<u8> {
    let t = shape.last().copied().unwrap_or(0);
    // No value (and no division) when t = 0: the shape then holds no element.
    let n: usize = shape.iter().product();
    (0..n)
        .flat_map(|k| {
            let (i, j) = ((k / t) % t, k % t);
            f32::to_le_bytes(if j <= i { 1.0 } else { 0.0 })
        })
        .collect()
}

/// The safetensors file `bytes` with the tensors `masks` (name → shape) added as causal
/// masks; its metadata kept.
fn with_causal_masks(
    bytes: Vec<u8>,
    masks: &BTreeMap<String, Vec<usize>>,
) -> Result<Vec<u8>, TrainError> {
    if masks.is_empty() {
        return Ok(bytes);
    }
    let fail = |e: safetensors::SafeTensorError| {
        TrainError::checkpoint(MODEL_FILE, format!("cannot serialise: {e}"))
    };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(fail)?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(fail)?;
    let data: Vec<Vec<u8>> = masks.values().map(|s| causal_mask_bytes(s)).collect();
    let mut tensors = st.tensors();
    for ((name, shape), data) in masks.iter().zip(&data) {
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map_err(fail)?;
        tensors.push((name.clone(), view));
    }
    safetensors::serialize(tensors, header.metadata().clone()).map_err(fail)
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

/// Writes `config.json` and `vocab.json` (once per run, by its writer).
pub(crate) fn write_run_files(
    dir: &Path,
    config: &TrainingConfig,
    vocab: &Vocab,
) -> Result<(), TrainError> {
    fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let config_json = config.try_to_json().map_err(|e| {
        TrainError::checkpoint(dir.join(CONFIG_FILE), format!("cannot serialise: {e}"))
    })?;
    let _commit = commit_lock(dir)?;
    write_atomic(&dir.join(CONFIG_FILE), config_json.as_bytes())?;
    write_atomic(&dir.join(VOCAB_FILE), vocab.to_json().as_bytes())
}

/// The JSON of `state` for `state.json` in `dir`.
pub(crate) fn state_json(dir: &Path, state: &TrainingState) -> Result<String, TrainError> {
    serde_json::to_string_pretty(state)
        .map_err(|e| TrainError::checkpoint(dir.join(STATE_FILE), format!("cannot serialise: {e}")))
}

/// Saves `files` (`(path relative to dir, bytes)`: the weights, the optimiser state, the
/// training state, and those of a subdirectory such as [`EMA_DIR`]) as one commit (see the
/// module docs). Only the run's writer calls it.
pub(crate) fn save_commit(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), TrainError> {
    // Written and synced aside, before readers are kept out.
    let mut pending = Vec::with_capacity(files.len());
    for &(name, bytes) in files {
        let path = dir.join(name);
        pending.push(Pending::write(&path, bytes).map_err(|e| TrainError::io(path, e))?);
    }
    let subdirs = subdirectories(files.iter().map(|&(name, _)| name));
    let _commit = commit_lock(dir)?;
    // Readers of a subdirectory (`RUN/ema`) hold its own lock: kept out too.
    let _sub_commits = subdirs
        .iter()
        .map(|sub| commit_lock(&dir.join(sub)))
        .collect::<Result<Vec<_>, _>>()?;
    let journal = Journal {
        files: pending
            .iter()
            .zip(files)
            .map(|(p, &(name, _))| {
                let temp = Path::new(name).with_file_name(p.temp_name());
                (name.to_string(), temp.to_string_lossy().into_owned())
            })
            .collect(),
    };
    let journal_json = serde_json::to_string(&journal).map_err(|e| {
        TrainError::checkpoint(dir.join(JOURNAL_FILE), format!("cannot serialise: {e}"))
    })?;
    // From here on the journal names the temp files, so they must outlive any error.
    let mut kept = Vec::with_capacity(pending.len());
    for p in pending {
        kept.push(p.keep().map_err(|e| TrainError::io(dir, e))?);
    }
    // The commit point.
    write_atomic(&dir.join(JOURNAL_FILE), journal_json.as_bytes())?;
    for (temp, target) in kept {
        fs::rename(&temp, &target).map_err(|e| TrainError::io(&temp, e))?;
    }
    for sub in &subdirs {
        sync_dir(&dir.join(sub))?;
    }
    sync_dir(dir)?;
    remove_if_there(&dir.join(JOURNAL_FILE))?;
    sync_dir(dir)
}

/// The distinct subdirectories that the relative paths `names` are in.
fn subdirectories<'a>(names: impl Iterator<Item = &'a str>) -> Vec<PathBuf> {
    let mut subs: Vec<PathBuf> = names
        .filter_map(|name| Path::new(name).parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    subs.sort();
    subs.dedup();
    subs
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
