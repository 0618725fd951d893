//! TPE proposals (`[search] method = "tpe"`): one Tree-structured Parzen Estimator per range
//! (the `tpe` crate, by Optuna's author), told the dev losses of the runs so far and asked
//! for the next point. A proposal depends only on the search's seed, its index and what it
//! is told, so every process that reads the same records proposes the same points.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use rand_tpe::SeedableRng;
use serde_json::Value;
use tpe::density_estimation::DefaultEstimatorBuilder;
use tpe::TpeOptimizer;

use super::grid::{draw, toml_to_json, Range, Search};

/// Where a range's estimator works: a value's coordinate there, and back.
enum Space {
    /// `[low, high)`: uniform values, logarithms of log-uniform ones, integers + ½.
    Line(f64, f64),
    /// The index of a choice among `n`.
    Choice(usize),
    /// A range of one value: nothing to learn.
    Fixed,
}

impl Space {
    fn of(range: &Range) -> Self {
        let line = |a: f64, b: f64| {
            if a < b {
                Space::Line(a, b)
            } else {
                Space::Fixed
            }
        };
        match range {
            Range::Uniform([a, b]) => line(*a, *b),
            Range::LogUniform([a, b]) => line(a.ln(), b.ln()),
            Range::Int([a, b]) => line(*a as f64, *b as f64 + 1.0),
            Range::Choice(v) if v.len() > 1 => Space::Choice(v.len()),
            Range::Choice(_) => Space::Fixed,
        }
    }

    fn optimizer(&self) -> Result<Option<TpeOptimizer<DefaultEstimatorBuilder>>> {
        let bad = |e: tpe::range::RangeError| anyhow!("[search] range: {e}");
        Ok(match *self {
            Space::Line(a, b) => Some(TpeOptimizer::new(
                tpe::parzen_estimator(),
                tpe::range(a, b).map_err(bad)?,
            )),
            Space::Choice(n) => Some(TpeOptimizer::new(
                tpe::histogram_estimator(),
                tpe::categorical_range(n).map_err(bad)?,
            )),
            Space::Fixed => None,
        })
    }

    /// The coordinate of a run's value (as recorded: drawn values are rounded), inside the
    /// estimator's range.
    fn coordinate(&self, range: &Range, v: &Value) -> Option<f64> {
        let x = match (range, self) {
            (Range::Choice(choices), _) => {
                return choices
                    .iter()
                    .position(|c| toml_to_json(c) == *v)
                    .map(|i| i as f64)
            }
            (Range::LogUniform(_), _) => v.as_f64().filter(|x| *x > 0.0)?.ln(),
            (Range::Int(_), _) => v.as_f64()? + 0.5,
            (Range::Uniform(_), _) => v.as_f64()?,
        };
        match *self {
            Space::Line(a, b) => Some(x.clamp(a, b - (b - a) * 1e-9)),
            _ => None,
        }
    }

    /// The draw in [0, 1) that gives the coordinate `x` ([`Range::value`] rounds it as random
    /// search's draws are rounded).
    fn unit(&self, x: f64) -> f64 {
        match *self {
            Space::Line(a, b) => ((x - a) / (b - a)).clamp(0.0, 1.0 - 1e-12),
            Space::Choice(n) => (x + 0.5) / n as f64,
            Space::Fixed => 0.0,
        }
    }
}

/// Point `index` of `search`, asked from `told`: the points of the runs before it with their
/// dev losses, in index order.
pub fn propose(
    search: &Search,
    told: &[(&BTreeMap<String, Value>, f64)],
    index: usize,
) -> Result<BTreeMap<String, Value>> {
    // One generator per proposal, from the search's seed and the index.
    let seed = (draw(search.seed, index, "tpe") * (1u64 << 53) as f64) as u64;
    let mut rng = rand_tpe::rngs::StdRng::seed_from_u64(seed);
    let mut point = BTreeMap::new();
    for (path, range) in &search.ranges {
        let space = Space::of(range);
        let u = match space.optimizer()? {
            Some(mut optim) => {
                for (p, loss) in told {
                    if let Some(x) = p.get(path).and_then(|v| space.coordinate(range, v)) {
                        optim
                            .tell(x, *loss)
                            .map_err(|e| anyhow!("[search] {path:?}: {e}"))?;
                    }
                }
                let x = optim
                    .ask(&mut rng)
                    .map_err(|e| anyhow!("[search] {path:?}: {e}"))?;
                space.unit(x)
            }
            None => 0.0,
        };
        point.insert(path.clone(), range.value(u));
    }
    Ok(point)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::super::grid::Grid;
    use super::*;
    use std::collections::HashMap;

    fn defaults() -> Value {
        serde_json::json!({"steps": 100, "lr": 0.1, "wd": 0.0, "width": 8, "act": "tanh"})
    }

    fn grid(method: &str, seed: u64) -> Grid {
        toml::from_str(&format!(
            r#"
[search]
method = "{method}"
runs = 40
seed = {seed}
startup = 8
batch = 4
ranges.lr = {{ log_uniform = [0.0001, 1.0] }}
ranges.wd = {{ uniform = [0.0, 1.0] }}
ranges.width = {{ int = [1, 64] }}
ranges.act = {{ choice = ["tanh", "relu", "gelu"] }}
"#
        ))
        .unwrap()
    }

    /// A smooth objective with its minimum at lr 0.01, wd 0.2, width 40, gelu.
    fn objective(config: &Value) -> f64 {
        let lr = config["lr"].as_f64().unwrap();
        let wd = config["wd"].as_f64().unwrap();
        let width = config["width"].as_f64().unwrap();
        let act = if config["act"] == "gelu" { 0.0 } else { 0.5 };
        (lr.log10() + 2.0).powi(2)
            + 4.0 * (wd - 0.2).powi(2)
            + ((width - 40.0) / 20.0).powi(2)
            + act
    }

    /// The whole search, each run's loss its objective: the runs in order.
    fn search(g: &Grid) -> Vec<(String, f64)> {
        let mut losses: HashMap<String, f64> = HashMap::new();
        loop {
            let runs = g
                .expand_tpe(&defaults(), "c", &|id| losses.get(id).map(|l| Some(*l)))
                .unwrap();
            let fresh: Vec<_> = runs
                .iter()
                .filter(|r| !losses.contains_key(&r.id))
                .collect();
            if fresh.is_empty() {
                return runs.iter().map(|r| (r.id.clone(), losses[&r.id])).collect();
            }
            for r in fresh {
                losses.insert(r.id.clone(), objective(&r.config));
            }
        }
    }

    #[test]
    fn proposals_come_in_generations_from_the_results_before_them() {
        let g = grid("tpe", 1);
        // Nothing known: the random start only.
        let start = g.expand_tpe(&defaults(), "c", &|_| None).unwrap();
        assert_eq!(start.len(), 8);
        // Random search's first points are the start's.
        let random = grid("random", 1).expand(&defaults(), "c").unwrap();
        for (a, b) in start.iter().zip(&random) {
            assert_eq!(a.point, b.point);
        }
        // All of the start known: one generation of 4 more, and no further (they are not).
        let known: HashMap<String, f64> = start
            .iter()
            .map(|r| (r.id.clone(), objective(&r.config)))
            .collect();
        let next = g
            .expand_tpe(&defaults(), "c", &|id| known.get(id).map(|l| Some(*l)))
            .unwrap();
        assert_eq!(next.len(), 12);
        // The same records, asked again (another shard, a restart after kill -9): the same
        // proposals, ids included.
        let again = g
            .expand_tpe(&defaults(), "c", &|id| known.get(id).map(|l| Some(*l)))
            .unwrap();
        let ids =
            |v: &[super::super::grid::RunSpec]| v.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&next), ids(&again));
        // A run that failed for good is not told, and the search goes on without it.
        let failed = g
            .expand_tpe(&defaults(), "c", &|id| {
                if id == start[0].id {
                    Some(None)
                } else {
                    known.get(id).map(|l| Some(*l))
                }
            })
            .unwrap();
        assert_eq!(failed.len(), 12);
        // Values stay in their ranges, rounded as random search's are.
        for r in &next[8..] {
            let lr = r.config["lr"].as_f64().unwrap();
            assert!((0.0001..=1.0).contains(&lr), "{lr}");
            let width = r.config["width"].as_i64().unwrap();
            assert!((1..=64).contains(&width));
            assert!(["tanh", "relu", "gelu"].contains(&r.config["act"].as_str().unwrap()));
        }
    }

    /// TPE learns where to look: on a smooth objective, with the same budget and seeds, its
    /// later proposals are better than random search's draws (median over the last 16 of
    /// 40, for each of three seeds).
    #[test]
    fn tpe_proposals_beat_random_draws_on_a_smooth_objective() {
        for seed in 1..=3 {
            let median_tail = |runs: Vec<(String, f64)>| {
                let mut tail: Vec<f64> = runs[24..].iter().map(|r| r.1).collect();
                tail.sort_by(f64::total_cmp);
                tail[tail.len() / 2]
            };
            let tpe = median_tail(search(&grid("tpe", seed)));
            let random: Vec<(String, f64)> = grid("random", seed)
                .expand(&defaults(), "c")
                .unwrap()
                .iter()
                .map(|r| (r.id.clone(), objective(&r.config)))
                .collect();
            let random = median_tail(random);
            assert!(tpe < random, "seed {seed}: TPE {tpe} vs random {random}");
        }
    }
}
