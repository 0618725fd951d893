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
//! base is merged into the defaults field by field; an axis value replaces the whole field
//! at its path (so a schedule given as a table replaces the schedule). A seed sets both
//! `model.init_seed` and `batch_seed`.
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
        for (axis, values) in &grid.axes {
            if values.is_empty() {
                bail!("{}: axis {axis:?} has no values", path.display());
            }
        }
        Ok(grid)
    }

    /// Expands the grid over `defaults` (a full config as JSON) in a stable order.
    pub fn expand(&self, defaults: &Value) -> Result<Vec<RunSpec>> {
        let mut base = defaults.clone();
        merge(
            &mut base,
            &toml_to_json(&toml::Value::Table(self.base.clone())),
            "",
        )?;
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
        let seeds: Vec<Option<u64>> = if self.seeds.is_empty() {
            vec![None]
        } else {
            self.seeds.iter().copied().map(Some).collect()
        };
        let mut runs = Vec::new();
        for p in &points {
            for seed in &seeds {
                let mut config = base.clone();
                for (path, v) in p {
                    set_path(&mut config, path, v.clone())?;
                }
                let mut point = p.clone();
                if let Some(s) = seed {
                    set_path(&mut config, "model.init_seed", Value::from(*s))?;
                    set_path(&mut config, "batch_seed", Value::from(*s))?;
                    point.insert("seed".into(), Value::from(*s));
                }
                // The id hashes what the grid says (base and this point), not the defaults
                // it was merged into: a newer makemore with more config fields keeps the ids
                // of a sweep in progress. The full config is recorded with each result.
                let spec = serde_json::json!({
                    "base": toml_to_json(&toml::Value::Table(self.base.clone())),
                    "point": point,
                });
                let digest = Sha256::digest(spec.to_string().as_bytes());
                let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
                runs.push(RunSpec { id, point, config });
            }
        }
        Ok(runs)
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
    match (into, over) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match a.get_mut(k) {
                    // A tagged table (with `kind`) is replaced whole: its fields depend on the kind.
                    Some(slot) if slot.is_object() && v.get("kind").is_none() => {
                        merge(slot, v, &path)?
                    }
                    Some(slot) => *slot = v.clone(),
                    None => bail!("[base]: unknown config field {path:?}"),
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

/// Sets the field at a dotted `path`, which must exist in the config.
fn set_path(config: &mut Value, path: &str, v: Value) -> Result<()> {
    let mut slot = config;
    for part in path.split('.') {
        slot = match slot.get_mut(part) {
            Some(s) => s,
            None => bail!("axis {path:?}: the config has no field {part:?} (see `makemore train --print-config`)"),
        };
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
        let runs = grid.expand(&defaults()).unwrap();
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
            .expand(&defaults())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(again, runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn unknown_fields_are_errors() {
        let grid: Grid = toml::from_str("[axes]\n\"model.n_hiden\" = [1]\n").unwrap();
        let e = grid.expand(&defaults()).unwrap_err().to_string();
        assert!(e.contains("n_hiden"), "{e}");
        let grid: Grid = toml::from_str("[base]\nstep = 1\n").unwrap();
        assert!(grid
            .expand(&defaults())
            .unwrap_err()
            .to_string()
            .contains("step"));
    }
}
