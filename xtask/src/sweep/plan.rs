//! What a sweep will train: the grid's runs in order, which of them a shard owns, and where
//! each run's files go in the sweep directory.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::grid::{Grid, RunSpec};

/// One of `count` shards of a grid: it owns the runs whose index is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// How many shards share the grid.
    pub count: usize,
}

impl Shard {
    /// Parses `I/N`.
    pub fn parse(s: &str) -> Result<Self> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("--shard must look like I/N, got {s:?}"))?;
        let (index, count): (usize, usize) = (
            i.trim().parse().with_context(|| format!("--shard {s:?}"))?,
            n.trim().parse().with_context(|| format!("--shard {s:?}"))?,
        );
        if count == 0 || index >= count {
            bail!("--shard I/N needs 0 <= I < N, got {s:?}");
        }
        Ok(Self { index, count })
    }

    /// The shard of a Slurm job array task, from `SLURM_ARRAY_TASK_ID`, `_MIN`, `_STEP` and
    /// `_COUNT` as `var` gives them (`None` outside an array). Task ids need not start at 0
    /// nor be consecutive: `--array=1-7:2` runs tasks 1, 3, 5 and 7, shards 0 to 3 of 4.
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
        else {
            return Ok(None);
        };
        let number = |name: &str, v: &str| -> Result<usize> {
            v.trim()
                .parse()
                .with_context(|| format!("{name}={v:?} is not a number"))
        };
        let id = number("SLURM_ARRAY_TASK_ID", &id)?;
        let count = number("SLURM_ARRAY_TASK_COUNT", &count)?;
        let min = match var("SLURM_ARRAY_TASK_MIN") {
            Some(v) => number("SLURM_ARRAY_TASK_MIN", &v)?,
            None => 0,
        };
        let step = match var("SLURM_ARRAY_TASK_STEP") {
            Some(v) => number("SLURM_ARRAY_TASK_STEP", &v)?.max(1),
            None => 1,
        };
        let offset = id
            .checked_sub(min)
            .filter(|o| o % step == 0 && o / step < count)
            .ok_or_else(|| {
                anyhow!("Slurm array task {id} is not one of {count} tasks from {min} in steps of {step}; an array with gaps (--array=1,4,9) cannot be split into shards: use a range such as --array=0-{}", count.saturating_sub(1))
            })?;
        Ok(Some(Self {
            index: offset / step,
            count,
        }))
    }

    /// True when this shard owns the run with grid index `index`.
    pub fn owns(&self, index: usize) -> bool {
        index % self.count == self.index
    }

    /// `results-I-of-N.jsonl`.
    pub fn results_file(&self) -> String {
        format!("results-{}-of-{}.jsonl", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A run of the grid with its place in it.
#[derive(Debug, Clone)]
pub struct Run {
    /// Index in the expanded grid (what shards split on).
    pub index: usize,
    /// Id, axis values and config.
    pub spec: RunSpec,
}

impl Run {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

/// A grid expanded into runs, for one shard (or all), with the sweep directory's layout.
#[derive(Debug)]
pub struct Plan {
    /// The grid file.
    pub grid_path: PathBuf,
    /// The parsed grid.
    pub grid: Grid,
    /// The sweep directory.
    pub out: PathBuf,
    /// Every run of the grid, in order.
    pub runs: Vec<Run>,
    /// This process's shard (`None`: the whole grid).
    pub shard: Option<Shard>,
    /// The grid's corpus, resolved (`None`: the built-in corpus).
    pub data: Option<PathBuf>,
    /// The SHA-256 of the corpus's words (part of every run's id).
    pub corpus_sha256: String,
    /// The binary's default config, which the grid is expanded over.
    defaults: Value,
}

impl Plan {
    /// Expands `grid` over the binary's default config `defaults`; `digest` gives the
    /// SHA-256 of the corpus (the grid's resolved `data`, or `None`: the built-in one).
    pub fn new(
        grid_path: &Path,
        grid: Grid,
        defaults: &Value,
        out: &Path,
        shard: Option<Shard>,
        digest: impl FnOnce(Option<&Path>) -> Result<String>,
    ) -> Result<Self> {
        let data = grid.data.as_ref().map(|d| resolve_data(d, grid_path));
        if let Some(d) = &data {
            if !d.exists() {
                bail!("grid data {} does not exist", d.display());
            }
        }
        let corpus_sha256 = digest(data.as_deref())?;
        let mut plan = Self {
            grid_path: grid_path.to_path_buf(),
            grid,
            out: out.to_path_buf(),
            runs: Vec::new(),
            shard,
            data,
            corpus_sha256,
            defaults: defaults.clone(),
        };
        let records = if plan.is_tpe() {
            super::records::Records::read(out)?
        } else {
            super::records::Records(Vec::new())
        };
        plan.propose(&records)?;
        Ok(plan)
    }

    /// True for a TPE search, whose runs are proposed generation by generation.
    pub fn is_tpe(&self) -> bool {
        self.grid
            .search
            .as_ref()
            .is_some_and(|s| s.method == super::grid::Method::Tpe)
    }

    /// Expands the grid: all its runs, or a TPE search's runs that `records` let it propose
    /// (each generation once every run before it has ended). Returns how many runs were
    /// added; the runs already planned stay as they are (the same records propose them).
    pub fn propose(&mut self, records: &super::records::Records) -> Result<usize> {
        let specs = if self.is_tpe() {
            self.grid
                .expand_tpe(&self.defaults, &self.corpus_sha256, &|id| {
                    records.search_outcome(id)
                })?
        } else {
            self.grid.expand(&self.defaults, &self.corpus_sha256)?
        };
        let before = self.runs.len();
        if specs.len() < before || specs.iter().zip(&self.runs).any(|(s, r)| s.id != r.id()) {
            bail!("the sweep's records changed under it: proposals already made are no longer the ones its records give (were results*.jsonl edited?)");
        }
        self.runs.extend(
            specs
                .into_iter()
                .enumerate()
                .skip(before)
                .map(|(index, spec)| Run { index, spec }),
        );
        Ok(self.runs.len() - before)
    }

    /// How many more runs a TPE search will propose (0 for other grids).
    pub fn to_propose(&self) -> usize {
        match &self.grid.search {
            Some(s) if self.is_tpe() => s.runs.saturating_sub(self.runs.len()),
            _ => 0,
        }
    }

    /// Says, once, when records in the sweep directory come from another corpus (or from
    /// before run ids covered the corpus): those runs are not this grid's, whose runs are
    /// trained anew under their own ids.
    pub fn explain_other_corpora(&self, records: &super::records::Records) {
        let mine: std::collections::BTreeSet<&str> = self.runs.iter().map(Run::id).collect();
        let mut other = std::collections::BTreeMap::<String, usize>::new();
        for (id, r) in records.finals() {
            if mine.contains(id) {
                continue;
            }
            match &r.corpus_sha256 {
                Some(d) if *d != self.corpus_sha256 => *other.entry(d.clone()).or_default() += 1,
                None => *other.entry("none recorded".into()).or_default() += 1,
                Some(_) => {}
            }
        }
        for (digest, n) in other {
            let short = digest.get(..12).unwrap_or(&digest);
            eprintln!(
                "note: {} in {} {} trained on another corpus (sha256 {short}); this grid's corpus (sha256 {}) gives its runs other ids: they are trained anew, and the old results stay as they are",
                runs(n),
                self.out.display(),
                if n == 1 { "was" } else { "were" },
                self.corpus_sha256.get(..12).unwrap_or(&self.corpus_sha256),
            );
        }
    }

    /// True when this process's shard owns `run`.
    pub fn owns(&self, run: &Run) -> bool {
        self.shard.is_none_or(|s| s.owns(run.index))
    }

    /// This shard's runs.
    pub fn mine(&self) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(|r| self.owns(r))
    }

    /// This process's results file.
    pub fn results_path(&self) -> PathBuf {
        self.out.join(match self.shard {
            Some(s) => s.results_file(),
            None => "results.jsonl".into(),
        })
    }

    /// A run's checkpoint directory.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.out.join("runs").join(id)
    }

    /// A run's config file.
    pub fn config_path(&self, id: &str) -> PathBuf {
        self.out.join("configs").join(format!("{id}.json"))
    }

    /// The lock a sweep process holds while it trains a run (so that two sweep processes
    /// never take on the same run).
    pub fn claim_path(&self, id: &str) -> PathBuf {
        self.out.join("claims").join(format!("{id}.lock"))
    }

    /// Writes every run's config (any shard may come to train any run), leaving files that
    /// already hold the same config alone.
    pub fn write_configs(&self) -> Result<()> {
        for dir in ["configs", "claims", "runs"] {
            let d = self.out.join(dir);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        for run in &self.runs {
            let path = self.config_path(run.id());
            let text = serde_json::to_string_pretty(&run.spec.config)?;
            if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
                continue;
            }
            makemore_io::write_atomic(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
impl Plan {
    /// For tests: the plan of `grid` (a grid file's text) over `defaults` in `dir/sweep`,
    /// with its configs written and a stand-in corpus digest.
    pub fn for_test(dir: &Path, grid: &str, defaults: Value) -> Self {
        let grid: Grid = toml::from_str(grid).expect("a test grid parses");
        let plan = Plan::new(
            &dir.join("g.toml"),
            grid,
            &defaults,
            &dir.join("sweep"),
            None,
            |_| Ok("corpus".into()),
        )
        .expect("a test grid expands");
        plan.write_configs().expect("the configs are written");
        plan
    }
}

/// For tests: writes an executable shell script at `path` (a stand-in for `makemore`).
#[cfg(all(test, unix))]
pub fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("the script is written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("the script is made executable");
}

/// `1 run`, `3 runs`.
pub fn runs(n: usize) -> String {
    format!("{n} run{}", if n == 1 { "" } else { "s" })
}

/// The grid's `data` path: as given when it exists from here, else relative to the grid file.
pub(super) fn resolve_data(data: &Path, grid: &Path) -> PathBuf {
    if data.is_absolute() || data.exists() {
        return data.to_path_buf();
    }
    grid.parent()
        .map(|p| tidy_path(&p.join(data)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| data.to_path_buf())
}

/// Removes `a/..` pairs from a path without touching the file system:
/// `examples/grids/../../../shared/x` becomes `../shared/x`.
pub fn tidy_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match (c, out.last()) {
            (Component::CurDir, _) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slurm<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_and_paths() {
        assert_eq!(Shard::parse("1/4").unwrap(), Shard { index: 1, count: 4 });
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("a/2").is_err());
        assert_eq!(
            tidy_path(Path::new("examples/grids/../../../shared/x.txt")),
            PathBuf::from("../shared/x.txt")
        );
        assert_eq!(tidy_path(Path::new("./a/./b")), PathBuf::from("a/b"));
    }

    #[test]
    fn slurm_arrays_with_offsets_and_steps_give_every_shard_once() {
        assert_eq!(Shard::from_slurm(slurm(&[])).unwrap(), None);
        let plain = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
        ];
        assert_eq!(
            Shard::from_slurm(slurm(&plain)).unwrap(),
            Some(Shard { index: 2, count: 4 })
        );
        // --array=1-7:2: Slurm sets COUNT=4 MIN=1 STEP=2, ids 1, 3, 5, 7.
        let shards: Vec<Shard> = ["1", "3", "5", "7"]
            .iter()
            .map(|id| {
                let vars = [
                    ("SLURM_ARRAY_TASK_ID", *id),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_STEP", "2"),
                ];
                Shard::from_slurm(slurm(&vars)).unwrap().unwrap()
            })
            .collect();
        assert_eq!(
            shards.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(shards.iter().all(|s| s.count == 4));
        // --array=1,4,9 (no step that fits): a clear error, not a shard that never runs.
        let gaps = [
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ];
        let e = Shard::from_slurm(slurm(&gaps)).unwrap_err().to_string();
        assert!(e.contains("cannot be split"), "{e}");
    }
}
