//! Grid files: a base config and axes, expanded into one config per run.
//!
//! ```toml
//! data = "../shared/data/names.txt"   # optional; default: the built-in corpus
//! seeds = [1, 2]                      # optional; each run once per seed
//!
//! [base]                              # overrides of `makemore train`'s defaults
//! steps = 3000
//! model = { n_hidden = 64 }
//!
//! [axes]                              # dotted config paths, a list of values each
//! "model.n_embd" = [2, 10]
//! "model.block_size" = [3, 5]
//! schedule = [{ kind = "cosine", lr = 0.003, final_lr = 0.0001, warmup = 100 }]
//! ```
//!
//! Field names are those of a run's `config.json` (`makemore train --print-config`). The
//! base is merged into the defaults field by field (a schedule or optimiser table, which
//! has a `kind`, replaces the default one whole; the model's `kind` is an ordinary field);
//! an axis value replaces the whole field at its path (so a schedule given as a table
//! replaces the schedule). A seed sets both
//! `model.init_seed` and `batch_seed`.
//!
//! **Random search.** A `[search]` table draws `runs` points from ranges instead of (or as
//! well as: each drawn point is crossed with the axes) listing values:
//!
//! ```toml
//! [search]
//! runs = 12                                        # the budget
//! seed = 1                                         # of the draws
//! ranges."schedule.lr" = { log_uniform = [0.001, 0.01] }
//! ranges."optimizer.weight_decay" = { log_uniform = [0.001, 0.1] }
//! ranges."model.dropout" = { uniform = [0.0, 0.3] }
//! ranges."model.n_hidden" = { int = [128, 384] }   # inclusive
//! ranges."model.n_embd" = { choice = [24, 32] }
//! ```
//!
//! Draw `i` of a range depends only on the seed, `i` and the range's path, so raising
//! `runs` keeps the runs already drawn (and their results). Drawn numbers are rounded to
//! three significant digits.
//!
//! **TPE.** With `method = "tpe"` in `[search]`, the first `startup` points (default 8) are
//! random search's and each further generation of `batch` points (default 4) is proposed by
//! Tree-structured Parzen Estimators told the dev losses of every run before it
//! ([`Grid::expand_tpe`], `tpe.rs`); the same records give the same proposals.
//!
//! **Successive halving.** A `[halving]` table stops hopeless runs early:
//!
//! ```toml
//! [halving]
//! rungs = [20000, 60000]   # steps at which the runs still going are compared
//! keep = 0.5               # the fraction that goes on at each rung (the rest stop)
//! ```
//!
//! Every run trains with its full config (its learning-rate schedule is the full run's) but
//! stops at each rung with a checkpoint; the best `keep` fraction by dev loss continues from
//! there, so nothing is recomputed.
//!
//! A run's id is a digest of the grid's base and the run's axis values (and seed), so adding
//! values to an axis keeps the ids, and the results, of the runs a sweep already has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A parsed grid file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Corpus for every run (relative to the grid file's directory or the current one).
    pub data: Option<PathBuf>,
    /// Seeds; every combination runs once per seed.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Overrides of the default config.
    #[serde(default)]
    pub base: toml::Table,
    /// Axis path → values.
    #[serde(default)]
    pub axes: BTreeMap<String, Vec<toml::Value>>,
    /// Random search: points drawn from ranges.
    pub search: Option<Search>,
    /// Successive halving: rungs at which the worst runs stop.
    pub halving: Option<Halving>,
}

/// The `[search]` table of a grid.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Points to draw.
    pub runs: usize,
    /// Seed of the draws.
    #[serde(default)]
    pub seed: u64,
    /// How points are chosen: independent random draws, or TPE proposals.
    #[serde(default)]
    pub method: Method,
    /// TPE: points drawn at random before the first proposal (the first generation).
    #[serde(default = "default_startup")]
    pub startup: usize,
    /// TPE: proposals asked together from the results of every earlier generation.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Config path → range.
    pub ranges: BTreeMap<String, Range>,
}

/// How a `[search]` chooses its points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Each point drawn independently (it depends only on the seed and its index).
    #[default]
    Random,
    /// Tree-structured Parzen Estimator proposals (the `tpe` crate), in generations: after
    /// `startup` random points, each generation of `batch` points is asked from the dev
    /// losses of all the runs before it, once they have all ended.
    Tpe,
}

fn default_startup() -> usize {
    8
}

fn default_batch() -> usize {
    4
}

/// Where a searched value is drawn from.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Range {
    /// Uniform in `[low, high]`.
    Uniform([f64; 2]),
    /// Log-uniform in `[low, high]` (both > 0): learning rates, weight decay.
    LogUniform([f64; 2]),
    /// A uniform integer in `low..=high`.
    Int([i64; 2]),
    /// One of the values, uniformly.
    Choice(Vec<toml::Value>),
}

/// The `[halving]` table of a grid.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Halving {
    /// Steps at which the runs still going are compared, increasing.
    pub rungs: Vec<u64>,
    /// Fraction of the runs compared at a rung that go on (at least one does).
    #[serde(default = "half")]
    pub keep: f64,
}

fn half() -> f64 {
    0.5
}

impl Halving {
    /// How many of `n` runs compared at a rung go on.
    pub fn survivors(&self, n: usize) -> usize {
        ((n as f64 * self.keep).ceil() as usize).clamp(1.min(n), n)
    }
}

impl Range {
    fn check(&self, path: &str) -> Result<()> {
        let ok = match self {
            Range::Uniform([a, b]) => a.is_finite() && b.is_finite() && a <= b,
            Range::LogUniform([a, b]) => a.is_finite() && b.is_finite() && *a > 0.0 && a <= b,
            Range::Int([a, b]) => a <= b,
            Range::Choice(v) => !v.is_empty(),
        };
        if !ok {
            bail!("[search] range {path:?}: {self:?} is empty or invalid");
        }
        Ok(())
    }

    /// The value of draw `u` in [0, 1).
    pub(super) fn value(&self, u: f64) -> Value {
        let round = |x: f64| -> Value {
            if x == 0.0 {
                return Value::from(0.0);
            }
            let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
            Value::from((x * scale).round() / scale)
        };
        match self {
            Range::Uniform([a, b]) => round(a + u * (b - a)),
            Range::LogUniform([a, b]) => round((a.ln() + u * (b.ln() - a.ln())).exp()),
            Range::Int([a, b]) => {
                let span = (b - a + 1) as f64;
                Value::from(a + ((u * span) as i64).min(b - a))
            }
            Range::Choice(v) => toml_to_json(&v[((u * v.len() as f64) as usize).min(v.len() - 1)]),
        }
    }
}

/// Random search's point `index`: each range's value at its own draw.
fn random_point(search: &Search, index: usize) -> BTreeMap<String, Value> {
    search
        .ranges
        .iter()
        .map(|(path, range)| (path.clone(), range.value(draw(search.seed, index, path))))
        .collect()
}

/// A uniform number in [0, 1) that depends only on `seed`, `index` and `path`
/// (SplitMix64 over their digest).
pub(super) fn draw(seed: u64, index: usize, path: &str) -> f64 {
    let digest = Sha256::digest(format!("{seed}/{index}/{path}").as_bytes());
    let mut z = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// One run of a grid.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Stable id: a digest of the full config (the run's directory name).
    pub id: String,
    /// The axis values of this run, by path (plus `seed`).
    pub point: BTreeMap<String, Value>,
    /// The full config.
    pub config: Value,
}

impl RunSpec {
    /// A short human label: `path=value` for each axis.
    pub fn label(&self) -> String {
        if self.point.is_empty() {
            return "base".into();
        }
        self.point
            .iter()
            .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), compact(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A value in a few characters: numbers and strings as is, tables as their `kind` or JSON.
pub fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) => match m.get("kind") {
            Some(Value::String(k)) => {
                let rest: Vec<String> = m
                    .iter()
                    .filter(|(key, _)| key.as_str() != "kind")
                    .map(|(key, val)| format!("{key}:{}", compact(val)))
                    .collect();
                format!("{k}({})", rest.join(","))
            }
            _ => v.to_string(),
        },
        _ => v.to_string(),
    }
}

impl Grid {
    /// Reads and parses a grid file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read grid {}", path.display()))?;
        let grid: Grid =
            toml::from_str(&text).with_context(|| format!("in grid {}", path.display()))?;
        grid.check()
            .with_context(|| format!("in grid {}", path.display()))?;
        Ok(grid)
    }

    fn check(&self) -> Result<()> {
        for (axis, values) in &self.axes {
            if values.is_empty() {
                bail!("axis {axis:?} has no values");
            }
        }
        if let Some(search) = &self.search {
            if search.runs == 0 {
                bail!("[search] runs must be at least 1");
            }
            if search.method == Method::Tpe {
                if search.startup == 0 || search.batch == 0 {
                    bail!("[search] startup and batch must be at least 1");
                }
                if !self.axes.is_empty() || !self.seeds.is_empty() {
                    bail!("[search] method = \"tpe\" proposes whole points: put every value to search in a range, with no [axes] or seeds (the search's own seed is [search] seed)");
                }
            }
            for (path, range) in &search.ranges {
                range.check(path)?;
                if self.axes.contains_key(path) {
                    bail!("{path:?} is both an axis and a [search] range");
                }
            }
        }
        if let Some(h) = &self.halving {
            if h.rungs.is_empty() || h.rungs.windows(2).any(|w| w[0] >= w[1]) || h.rungs[0] == 0 {
                bail!(
                    "[halving] rungs must be increasing step counts above 0, got {:?}",
                    h.rungs
                );
            }
            if !(h.keep > 0.0 && h.keep < 1.0) {
                bail!(
                    "[halving] keep must be a fraction in (0, 1), got {}",
                    h.keep
                );
            }
        }
        Ok(())
    }

    /// The grid's base merged into `defaults`.
    fn base_config(&self, defaults: &Value) -> Result<Value> {
        let mut base = defaults.clone();
        merge(
            &mut base,
            &toml_to_json(&toml::Value::Table(self.base.clone())),
            "",
        )?;
        Ok(base)
    }

    /// How many runs the grid has (a TPE search's proposals included before they are made).
    pub fn run_count(&self, defaults: &Value) -> Result<usize> {
        match &self.search {
            Some(s) if s.method == Method::Tpe => Ok(s.runs),
            _ => Ok(self.expand(defaults, "")?.len()),
        }
    }

    /// Expands the grid over `defaults` (a full config as JSON) in a stable order; the runs'
    /// ids cover `corpus_sha256`, the digest of the corpus they train on. A TPE search is
    /// expanded by [`Grid::expand_tpe`].
    pub fn expand(&self, defaults: &Value, corpus_sha256: &str) -> Result<Vec<RunSpec>> {
        let base = self.base_config(defaults)?;
        let mut points: Vec<BTreeMap<String, Value>> = vec![BTreeMap::new()];
        for (axis, values) in &self.axes {
            let mut next = Vec::with_capacity(points.len() * values.len());
            for p in &points {
                for v in values {
                    let mut q = p.clone();
                    q.insert(axis.clone(), toml_to_json(v));
                    next.push(q);
                }
            }
            points = next;
        }
        if let Some(search) = &self.search {
            let mut next = Vec::with_capacity(points.len() * search.runs);
            for p in &points {
                for i in 0..search.runs {
                    let mut q = p.clone();
                    q.extend(random_point(search, i));
                    next.push(q);
                }
            }
            points = next;
        }
        let seeds: Vec<Option<u64>> = if self.seeds.is_empty() {
            vec![None]
        } else {
            self.seeds.iter().copied().map(Some).collect()
        };
        let mut runs = Vec::new();
        for p in &points {
            for seed in &seeds {
                runs.push(self.spec(&base, p, *seed, corpus_sha256, None)?);
            }
        }
        Ok(runs)
    }

    /// The runs of a TPE search that can be proposed now: the `startup` random points, then
    /// each generation asked from the dev losses of every run before it, as long as
    /// `outcome` knows them all. `outcome(id)` is `None` while the run has not ended, and
    /// `Some(None)` for one that ended without a loss (failed for good: not told).
    /// The same outcomes give the same proposals, whoever asks and however often.
    pub fn expand_tpe(
        &self,
        defaults: &Value,
        corpus_sha256: &str,
        outcome: &dyn Fn(&str) -> Option<Option<f64>>,
    ) -> Result<Vec<RunSpec>> {
        let Some(search) = self.search.as_ref().filter(|s| s.method == Method::Tpe) else {
            bail!("not a TPE search");
        };
        let base = self.base_config(defaults)?;
        let mut runs: Vec<RunSpec> = Vec::new();
        while runs.len() < search.runs {
            let index = runs.len();
            let point = if index < search.startup {
                random_point(search, index)
            } else {
                // Every proposal of a generation is asked from the runs before it.
                let generation = index - (index - search.startup) % search.batch;
                let mut told = Vec::with_capacity(generation);
                for r in &runs[..generation] {
                    match outcome(&r.id) {
                        None => return Ok(runs),
                        Some(Some(loss)) if loss.is_finite() => told.push((&r.point, loss)),
                        Some(_) => {}
                    }
                }
                super::tpe::propose(search, &told, index)?
            };
            runs.push(self.spec(&base, &point, None, corpus_sha256, Some(index))?);
        }
        Ok(runs)
    }

    /// The run of `point` (and `seed`) over `base`. A TPE `proposal`'s index is part of its
    /// id: two proposals of the same values are two runs.
    fn spec(
        &self,
        base: &Value,
        p: &BTreeMap<String, Value>,
        seed: Option<u64>,
        corpus_sha256: &str,
        proposal: Option<usize>,
    ) -> Result<RunSpec> {
        let mut config = base.clone();
        for (path, v) in p {
            set_path(&mut config, path, v.clone())?;
        }
        let mut point = p.clone();
        if let Some(s) = seed {
            set_path(&mut config, "model.init_seed", Value::from(s))?;
            set_path(&mut config, "batch_seed", Value::from(s))?;
            point.insert("seed".into(), Value::from(s));
        }
        // The id hashes what the grid says (base and this point) and the corpus's content,
        // not the defaults it was merged into: a newer makemore with more config fields
        // keeps the ids of a sweep in progress, and another corpus (or an edited file at the
        // same path) gives other runs. The full config is recorded with each result.
        let mut spec = serde_json::json!({
            "base": toml_to_json(&toml::Value::Table(self.base.clone())),
            "point": point,
            "corpus_sha256": corpus_sha256,
        });
        if let Some(i) = proposal {
            spec["proposal"] = Value::from(i);
        }
        let digest = Sha256::digest(spec.to_string().as_bytes());
        let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        if let Some(h) = &self.halving {
            let steps = config["steps"].as_u64().unwrap_or(0);
            if h.rungs.last().is_some_and(|&r| r >= steps) {
                bail!(
                    "[halving] rungs {:?} must all be below the runs' steps ({steps})",
                    h.rungs
                );
            }
        }
        Ok(RunSpec { id, point, config })
    }
}

/// TOML to JSON (TOML dates become strings).
pub fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::from(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::from(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Merges `over` into `into` field by field; unknown fields are errors (typos show early).
fn merge(into: &mut Value, over: &Value, at: &str) -> Result<()> {
    merge_in(into, over, at, "[base]")
}

/// True when a table `v` at `path` merges into the table already there instead of replacing
/// it. A tagged table (with `kind`: a schedule, an optimiser) is replaced whole: its fields
/// depend on the kind. The model's `kind` is one field among the others, and the model table
/// merges field by field.
fn merges(slot: &Value, v: &Value, path: &str) -> bool {
    slot.is_object() && v.is_object() && (v.get("kind").is_none() || path == "model")
}

fn merge_in(into: &mut Value, over: &Value, at: &str, section: &str) -> Result<()> {
    match (into, over) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match a.get_mut(k) {
                    Some(slot) if merges(slot, v, &path) => merge_in(slot, v, &path, section)?,
                    Some(slot) => *slot = v.clone(),
                    None => bail!("{section}: unknown config field {path:?}"),
                }
            }
            Ok(())
        }
        (slot, v) => {
            *slot = v.clone();
            Ok(())
        }
    }
}

/// Sets the field at a dotted `path`, which must exist in the config. A table merges into
/// the one there as in `[base]` (so `model = [{ kind = "gru", n_hidden = 64 }, …]` keeps the
/// model's other fields), except a tagged schedule or optimiser, which replaces it.
fn set_path(config: &mut Value, path: &str, v: Value) -> Result<()> {
    let mut slot = config;
    for part in path.split('.') {
        slot = match slot.get_mut(part) {
            Some(s) => s,
            None => bail!("axis {path:?}: the config has no field {part:?} (see `makemore train --print-config`)"),
        };
    }
    if merges(slot, &v, path) {
        return merge_in(slot, &v, path, &format!("axis {path:?}"));
    }
    *slot = v;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Value {
        serde_json::json!({
            "model": {"n_embd": 10, "n_hidden": 200, "init_seed": 1},
            "steps": 100,
            "batch_seed": 1,
            "schedule": {"kind": "step", "lr": 0.1, "final_lr": 0.01, "decay_at": null}
        })
    }

    /// Every committed grid expands, and each of its runs is a config that `makemore train
    /// --config` trains as written: it parses, it is valid, and loading it changes nothing
    /// (a cosine warm-up was once reset to 0 this way, silently, in every sweep).
    #[test]
    fn every_committed_grid_expands_to_configs_trained_as_written() {
        use makemore_train::{TrainingConfig, TrainingOverrides};
        // As `makemore::default_config` builds them: the MLP's config and the Transformer's
        // model fields.
        let mut defaults: Value =
            serde_json::from_str(&TrainingConfig::default().to_json()).unwrap();
        defaults["model"]["n_head"] = 4.into();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/grids");
        let mut grids = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let runs = Grid::read(&path).unwrap().expand(&defaults, "c").unwrap();
            assert!(!runs.is_empty(), "{}", path.display());
            for run in runs {
                let what = format!("{} run {}", path.display(), run.label());
                let file = TrainingConfig::from_json(&run.config.to_string()).expect(&what);
                let mut config = file.clone();
                TrainingOverrides::default()
                    .apply(&mut config)
                    .expect(&what);
                assert_eq!(config, file, "{what}");
                // As `makemore train` checks it: positions of 0 are the corpus's, later.
                if config.model.block_size == 0 {
                    config.model.block_size = 16;
                }
                config.validate().expect(&what);
            }
            grids += 1;
        }
        assert!(grids >= 7, "found only {grids} grids in {}", dir.display());
    }

    #[test]
    fn expands_the_cartesian_product_times_seeds() {
        let grid: Grid = toml::from_str(
            r#"
            seeds = [1, 2]
            [base]
            steps = 7
            model = { n_hidden = 64 }
            [axes]
            "model.n_embd" = [2, 10, 24]
            schedule = [{ kind = "constant", lr = 0.05 }, { kind = "step", lr = 0.1, final_lr = 0.01 }]
            "#,
        )
        .unwrap();
        let runs = grid.expand(&defaults(), "c").unwrap();
        assert_eq!(runs.len(), 3 * 2 * 2);
        let ids: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), runs.len(), "ids are distinct");
        for r in &runs {
            assert_eq!(r.config["steps"], 7);
            assert_eq!(r.config["model"]["n_hidden"], 64);
            assert_eq!(r.config["model"]["n_embd"], r.point["model.n_embd"]);
            assert_eq!(r.config["batch_seed"], r.point["seed"]);
            // An axis table replaces the schedule whole: no stale fields.
            if r.config["schedule"]["kind"] == "constant" {
                assert!(r.config["schedule"].get("final_lr").is_none());
            }
        }
        // Stable: expanding again gives the same ids in the same order.
        let again: Vec<String> = grid
            .expand(&defaults(), "c")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(again, runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn a_model_kind_in_the_base_merges_with_the_model_fields() {
        let grid: Grid = toml::from_str(
            r#"
            [base]
            model = { kind = "transformer", n_hidden = 64 }
            "#,
        )
        .unwrap();
        let mut defaults = defaults();
        defaults["model"]["kind"] = "mlp".into();
        let runs = grid.expand(&defaults, "c").unwrap();
        let m = &runs[0].config["model"];
        assert_eq!(m["kind"], "transformer");
        assert_eq!(m["n_hidden"], 64);
        // The other model fields stay (a schedule or optimiser table would replace them).
        assert_eq!(m["n_embd"], defaults["model"]["n_embd"]);
    }

    #[test]
    fn a_table_on_an_axis_merges_like_the_base() {
        let grid: Grid = toml::from_str(
            r#"
            [axes]
            model = [{ kind = "gru", n_hidden = 64 }, { n_embd = 3 }]
            schedule = [{ kind = "constant", lr = 0.01 }]
            "#,
        )
        .unwrap();
        let mut defaults = defaults();
        defaults["model"]["kind"] = "mlp".into();
        let runs = grid.expand(&defaults, "c").unwrap();
        let [gru, mlp] = &runs[..] else {
            panic!("{runs:?}")
        };
        assert_eq!(gru.config["model"]["kind"], "gru");
        assert_eq!(gru.config["model"]["n_hidden"], 64);
        assert_eq!(gru.config["model"]["n_embd"], 10);
        assert_eq!(gru.config["model"]["init_seed"], 1);
        assert_eq!(mlp.config["model"]["kind"], "mlp");
        assert_eq!(mlp.config["model"]["n_embd"], 3);
        assert_eq!(mlp.config["model"]["n_hidden"], 200);
        // A tagged schedule replaces the default one whole.
        assert_eq!(
            gru.config["schedule"],
            serde_json::json!({"kind": "constant", "lr": 0.01})
        );
        let typo: Grid = toml::from_str("[axes]\nmodel = [{ n_embed = 3 }]").unwrap();
        let e = typo.expand(&defaults, "c").unwrap_err().to_string();
        assert!(e.contains("axis \"model\"") && e.contains("n_embed"), "{e}");
    }

    #[test]
    fn run_ids_cover_the_corpus() {
        let grid: Grid = toml::from_str("[axes]\nsteps = [1, 2]\n").unwrap();
        let ids = |corpus: &str| -> Vec<String> {
            grid.expand(&defaults(), corpus)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(ids("aaaa"), ids("aaaa"));
        let (a, b) = (ids("aaaa"), ids("bbbb"));
        assert!(a.iter().all(|id| !b.contains(id)), "{a:?} {b:?}");
    }

    #[test]
    fn unknown_fields_are_errors() {
        let grid: Grid = toml::from_str("[axes]\n\"model.n_hiden\" = [1]\n").unwrap();
        let e = grid.expand(&defaults(), "c").unwrap_err().to_string();
        assert!(e.contains("n_hiden"), "{e}");
        let grid: Grid = toml::from_str("[base]\nstep = 1\n").unwrap();
        assert!(grid
            .expand(&defaults(), "c")
            .unwrap_err()
            .to_string()
            .contains("step"));
    }

    #[test]
    fn random_search_draws_stable_points_in_range() {
        let text = r#"
            [search]
            runs = 20
            seed = 3
            ranges."schedule.lr" = { log_uniform = [0.001, 0.01] }
            ranges."model.n_hidden" = { int = [100, 102] }
            ranges."model.n_embd" = { choice = [8, 16] }
            [axes]
            steps = [50, 60]
            [halving]
            rungs = [10, 20]
        "#;
        let grid: Grid = toml::from_str(text).unwrap();
        grid.check().unwrap();
        let runs = grid.expand(&defaults(), "c").unwrap();
        assert_eq!(runs.len(), 40);
        let mut hidden = std::collections::BTreeSet::new();
        for r in &runs {
            let lr = r.config["schedule"]["lr"].as_f64().unwrap();
            assert!((0.001..=0.01).contains(&lr), "{lr}");
            // Three significant digits.
            assert_eq!(format!("{lr:.3e}").parse::<f64>().unwrap(), lr);
            hidden.insert(r.config["model"]["n_hidden"].as_i64().unwrap());
            assert!([8, 16].contains(&r.config["model"]["n_embd"].as_i64().unwrap()));
        }
        assert_eq!(hidden.into_iter().collect::<Vec<_>>(), [100, 101, 102]);
        // The learning rates spread over the decade (log-uniform), not bunched at the top.
        let low = runs
            .iter()
            .filter(|r| r.config["schedule"]["lr"].as_f64().unwrap() < 0.00316)
            .count();
        assert!(
            (8..=32).contains(&low),
            "{low} of 40 below the geometric middle"
        );
        // A bigger budget keeps the runs already drawn.
        let more: Grid = toml::from_str(&text.replace("runs = 20", "runs = 25")).unwrap();
        let more: Vec<String> = more
            .expand(&defaults(), "c")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        for r in &runs {
            assert!(more.contains(&r.id));
        }
        // Rungs must come before the end of every run.
        let late: Grid = toml::from_str(&text.replace("[10, 20]", "[10, 55]")).unwrap();
        assert!(late
            .expand(&defaults(), "c")
            .unwrap_err()
            .to_string()
            .contains("below the runs' steps"));
    }

    #[test]
    fn bad_search_and_halving_tables_are_errors() {
        for (text, needle) in [
            ("[search]\nruns = 0\nranges = {}\n", "runs"),
            (
                "[search]\nruns = 2\nranges.\"schedule.lr\" = { log_uniform = [0.0, 1.0] }\n",
                "schedule.lr",
            ),
            ("[search]\nruns = 2\nranges.x = { int = [3, 1] }\n", "\"x\""),
            ("[halving]\nrungs = [20, 10]\n", "increasing"),
            ("[halving]\nrungs = [10]\nkeep = 1.0\n", "keep"),
        ] {
            let grid: Grid = toml::from_str(text).unwrap();
            let e = grid.check().unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let h = Halving {
            rungs: vec![1],
            keep: 0.5,
        };
        assert_eq!(
            [
                h.survivors(0),
                h.survivors(1),
                h.survivors(5),
                h.survivors(8)
            ],
            [0, 1, 3, 4]
        );
    }
}
