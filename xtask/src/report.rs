//! `cargo xtask report [DIR]`: renders a sweep's results into a section of
//! `docs/results.md` (leaderboard, failures, the best run's command, loss curve and samples)
//! and pictures under `docs/img/` (dev loss against parameter count and against each axis).
//!
//! The section sits between `<!-- sweep NAME begin -->` and `<!-- sweep NAME end -->`
//! markers, so hand-written text around it and other sweeps' sections are kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use makemore_plot::{labelled_scatter, line_chart, Chart, ImageFormat, Line};

use crate::makemore::bin as makemore_bin;
use crate::sweep::{tidy_path, Record, Records, Status};

/// `cargo xtask report [DIR]`: a sweep's results as a section of docs/results.md.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The sweep directory (default: the newest directory under runs/sweep/).
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The markdown file whose section to write (default: docs/results.md).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Where the pictures go (default: docs/img).
    #[arg(long, value_name = "DIR")]
    img: Option<PathBuf>,
    /// Also evaluate the test split, for the best run only (choose on dev first).
    #[arg(long)]
    test: bool,
    /// makemore binary to use (default: build target/release/makemore).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
}

struct Resolved {
    dir: PathBuf,
    out: PathBuf,
    img: PathBuf,
    test: bool,
    bin: Option<PathBuf>,
}

fn resolve(args: ReportArgs) -> Result<Resolved> {
    let root = crate::workspace_root();
    Ok(Resolved {
        dir: match args.dir {
            Some(d) => d,
            None => newest_sweep()?,
        },
        out: args.out.unwrap_or_else(|| root.join("docs/results.md")),
        img: args.img.unwrap_or_else(|| root.join("docs/img")),
        test: args.test,
        bin: args.bin,
    })
}

fn newest_sweep() -> Result<PathBuf> {
    let base = Path::new("runs/sweep");
    let newest = std::fs::read_dir(base)
        .with_context(|| format!("no sweep directory given and {} is missing", base.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .ok_or_else(|| anyhow!("no sweeps under {}", base.display()))?;
    Ok(newest.path())
}

/// Runs `cargo xtask report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let args = resolve(args)?;
    let all_records = Records::read(&args.dir)?;
    let records = all_records.finals();
    // Wall time of a run over all its phases (successive halving trains a run in several);
    // records from before `phase_secs` existed hold one phase's time each.
    let wall = |r: &Record| -> f64 {
        if r.phase_secs.is_some() {
            return r.wall_secs;
        }
        r.wall_secs
            + all_records
                .0
                .iter()
                .filter(|x| x.id == r.id && x.status == Status::Rung)
                .map(|x| x.wall_secs)
                .sum::<f64>()
    };
    if all_records.0.is_empty() {
        bail!(
            "{} has no results yet; run `cargo xtask sweep GRID.toml --out {}` first",
            args.dir.display(),
            args.dir.display()
        );
    }
    let name = args
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sweep")
        .to_string();
    let of = |status: Status| -> Vec<&Record> {
        records
            .values()
            .copied()
            .filter(|r| r.status == status)
            .collect()
    };
    let (mut ok, mut stopped, failed) = (of(Status::Ok), of(Status::Stopped), of(Status::Failed));
    ok.sort_by(|a, b| a.dev_or_inf().total_cmp(&b.dev_or_inf()));
    // Runs of an unfinished sweep that passed a rung and have no final record yet: the last
    // rung each reached.
    let mut going: Vec<&Record> = Vec::new();
    for r in all_records.0.iter().rev() {
        if r.status == Status::Rung
            && !records.contains_key(r.id.as_str())
            && !going.iter().any(|g| g.id == r.id)
        {
            going.push(r);
        }
    }
    going.sort_by(|a, b| a.dev_or_inf().total_cmp(&b.dev_or_inf()));
    std::fs::create_dir_all(&args.img)
        .with_context(|| format!("cannot create {}", args.img.display()))?;
    let img_ref = |file: &str| -> String {
        let full = args.img.join(file);
        let base = args.out.parent().unwrap_or(Path::new("."));
        full.strip_prefix(base)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| full.display().to_string())
    };

    let mut md = String::new();
    md.push_str(&format!("## Sweep `{name}`\n\n"));
    md.push_str(&format!(
        "Rendered by `cargo xtask report {}` from {} finished, {} stopped early (successive \
         halving) and {} failed runs{}.\n\n",
        args.dir.display(),
        ok.len(),
        stopped.len(),
        failed.len(),
        if going.is_empty() {
            String::new()
        } else {
            format!(
                "; the sweep is unfinished: {} run{} part-way (below)",
                going.len(),
                if going.len() == 1 { " is" } else { "s are" }
            )
        }
    ));
    let reported: Vec<&Record> = ok.iter().chain(&stopped).chain(&going).copied().collect();
    // Every record names its corpus (none: the built-in one), finished or not.
    let corpus = match all_records.0.first().and_then(|r| r.data.as_deref()) {
        Some(data) => format!("`{}`", tidy_path(Path::new(data)).display()),
        None => "the built-in `data/names.txt`".to_string(),
    };
    md.push_str(&format!("Corpus: {corpus}, {}.\n\n", splits(&reported)));

    // Leaderboard (none yet: no run has finished).
    if !ok.is_empty() {
        md.push_str(
            "| rank | dev loss | train loss | parameters | steps | wall time | steps/s | settings | run |\n",
        );
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    }
    for (i, r) in ok.iter().enumerate() {
        let steps = r.steps.unwrap_or(0);
        md.push_str(&format!(
            "| {} | {:.4} | {:.4} | {} | {} | {:.0} s | {:.0} | {} | `{}` |\n",
            i + 1,
            r.dev_loss.unwrap_or(f64::NAN),
            r.train_loss.unwrap_or(f64::NAN),
            r.params.unwrap_or(0),
            steps,
            wall(r),
            steps as f64 / r.train_secs.unwrap_or(f64::INFINITY),
            r.label,
            r.id
        ));
    }
    if !ok.is_empty() {
        md.push('\n');
    }
    if !stopped.is_empty() {
        stopped.sort_by(|a, b| a.dev_or_inf().total_cmp(&b.dev_or_inf()));
        md.push_str(
            "Stopped early by successive halving (dev loss at the step where it was compared):\n\n\
             | dev loss | at step | parameters | settings | run |\n|---:|---:|---:|---|---|\n",
        );
        for r in &stopped {
            md.push_str(&format!(
                "| {:.4} | {} | {} | {} | `{}` |\n",
                r.dev_loss.unwrap_or(f64::NAN),
                r.stopped_at.unwrap_or(0),
                r.params.unwrap_or(0),
                r.label,
                r.id
            ));
        }
        md.push('\n');
    }
    if !going.is_empty() {
        md.push_str(
            "Part-way (dev loss at the last rung each reached; the same `cargo xtask sweep` \
             command continues them):\n\n\
             | dev loss | train loss | at step | parameters | settings | run |\n\
             |---:|---:|---:|---:|---|---|\n",
        );
        for r in &going {
            md.push_str(&format!(
                "| {:.4} | {:.4} | {} | {} | {} | `{}` |\n",
                r.dev_loss.unwrap_or(f64::NAN),
                r.train_loss.unwrap_or(f64::NAN),
                r.rung.or(r.steps).unwrap_or(0),
                r.params.unwrap_or(0),
                r.label,
                r.id
            ));
        }
        md.push('\n');
    }
    if !failed.is_empty() {
        md.push_str("Failed runs:\n\n");
        for r in &failed {
            md.push_str(&format!(
                "- `{}` {}: {}\n",
                r.id,
                r.label,
                r.error.as_deref().unwrap_or("?")
            ));
        }
        md.push('\n');
    }

    if !ok.is_empty() {
        // Dev loss against parameter count, labelled by rank.
        let points: Vec<(f64, f64, String)> = ok
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((r.params? as f64, r.dev_loss?, (i + 1).to_string())))
            .collect();
        let file = format!("sweep-{name}-dev-vs-params.png");
        labelled_scatter(
            &format!("sweep {name}: dev loss against size (labels: rank)"),
            "parameters",
            "dev loss",
            &points,
            &args.img.join(&file),
            ImageFormat::Png,
        )?;
        md.push_str(&format!(
            "![dev loss against parameter count]({})\n\n",
            img_ref(&file)
        ));

        // Dev loss against each numeric axis: every run as a dot, the best per value as a line.
        let mut axes: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for r in &ok {
            for (axis, v) in &r.point {
                if let (Some(x), Some(y)) = (v.as_f64(), r.dev_loss) {
                    axes.entry(axis.clone()).or_default().push((x, y));
                }
            }
        }
        for (axis, pts) in axes {
            let mut best: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
            for &(x, y) in &pts {
                let e = best.entry(x.to_bits()).or_insert((x, y));
                if y < e.1 {
                    *e = (x, y);
                }
            }
            let mut best: Vec<(f64, f64)> = best.into_values().collect();
            if best.len() < 2 {
                continue;
            }
            best.sort_by(|a, b| a.0.total_cmp(&b.0));
            let chart = Chart {
                title: &format!("sweep {name}: dev loss against {axis}"),
                x_label: &axis,
                y_label: "dev loss",
                lines: vec![
                    Line {
                        label: "best run at this value".into(),
                        points: best,
                        dots: false,
                    },
                    Line {
                        label: "every run".into(),
                        points: pts,
                        dots: true,
                    },
                ],
            };
            let file = format!("sweep-{name}-dev-vs-{}.png", axis.replace('.', "-"));
            line_chart(&chart, &args.img.join(&file), ImageFormat::Png)?;
            md.push_str(&format!(
                "![dev loss against {axis}]({})\n\n",
                img_ref(&file)
            ));
        }

        // The best run.
        let best = ok[0];
        md.push_str(&best_run_section(&args, &name, best, &img_ref)?);
    }

    write_section(&args.out, &format!("sweep {name}"), "# Results", &md)?;
    eprintln!(
        "wrote the {name} section of {} and its pictures in {}",
        args.out.display(),
        args.img.display()
    );
    Ok(())
}

fn best_run_section(
    args: &Resolved,
    name: &str,
    best: &Record,
    img_ref: &dyn Fn(&str) -> String,
) -> Result<String> {
    let bin = makemore_bin(args.bin.clone())?;
    let run_dir = PathBuf::from(&best.checkpoint);
    // With keep_best the run ranked by the save it kept: that one is sampled and tested.
    let ckpt = best.ranked_checkpoint();
    let data_args: Vec<String> = best
        .data
        .as_deref()
        .map(|d| {
            let d = tidy_path(Path::new(d));
            vec!["--data".to_string(), d.display().to_string()]
        })
        .unwrap_or_default();
    let id = &best.id;
    let mut md = format!(
        "### Best run: `{id}` ({})\n\ndev loss **{:.4}**, train loss {:.4}, {} parameters, {} steps.\n\n",
        best.label,
        best.dev_loss.unwrap_or(f64::NAN),
        best.train_loss.unwrap_or(f64::NAN),
        best.params.unwrap_or(0),
        best.steps.unwrap_or(0),
    );
    if let Some(step) = best.best_step {
        md.push_str(&format!(
            "With `keep_best`, runs rank by the checkpoint each keeps as best: this one's is `best/`, saved at step {step} (dev {:.4}; dev at the last step {:.4}). Its samples and test loss below are `best/`'s.\n\n",
            best.dev_loss.unwrap_or(f64::NAN),
            best.last_dev_loss.unwrap_or(f64::NAN),
        ));
    }
    md.push_str(&format!(
        "Reproduce it: save the config below as `best.json` (it is also in `{}`), then\n\n```console\n$ makemore train --config best.json {}--out runs/best\n```\n\n",
        args.dir.join("configs").join(format!("{id}.json")).display(),
        data_args
            .iter()
            .map(|a| format!("{a} "))
            .collect::<String>()
    ));
    md.push_str(&format!(
        "<details><summary>config.json</summary>\n\n```json\n{}\n```\n\n</details>\n\n",
        serde_json::to_string_pretty(&best.config)?
    ));

    if ckpt.join("state.json").exists() {
        let file = format!("sweep-{name}-best-loss.png");
        let out = Command::new(&bin)
            .args(["plot", "loss", "--checkpoint"])
            .arg(&run_dir)
            .arg("--out")
            .arg(args.img.join(&file))
            .output()?;
        if out.status.success() {
            md.push_str(&format!(
                "![loss curve of the best run]({})\n\n",
                img_ref(&file)
            ));
        } else {
            eprintln!(
                "warning: cannot plot the best run: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let out = Command::new(&bin)
            .args(["sample", "-n", "12", "--checkpoint"])
            .arg(&ckpt)
            .args(&data_args)
            .output()?;
        if out.status.success() {
            md.push_str("Samples (`makemore sample -n 12 --checkpoint runs/best`):\n\n```text\n");
            md.push_str(&String::from_utf8_lossy(&out.stdout));
            md.push_str("```\n\n");
        }
        if args.test {
            let data = data_args.get(1).map(PathBuf::from);
            let v = crate::makemore::eval(&bin, &ckpt, data.as_deref(), &["test"])
                .context("test evaluation failed")?;
            md.push_str(&format!(
                "Test loss of this run, evaluated once after choosing it on dev: **{:.4}** (`makemore eval --split test --checkpoint …`).\n\n",
                v["test"]["loss"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    } else {
        md.push_str(&format!(
            "(checkpoint {} is not on this machine: no curve or samples)\n\n",
            ckpt.display()
        ));
    }
    Ok(md)
}

/// Replaces (or appends) the section of `path` marked `<!-- {marker} begin/end -->`; a
/// missing file starts as `heading`.
pub fn write_section(path: &Path, marker: &str, heading: &str, body: &str) -> Result<()> {
    let begin = format!("<!-- {marker} begin -->");
    let end = format!("<!-- {marker} end -->");
    // Only a missing file starts afresh: one that cannot be read (permissions, invalid
    // UTF-8) is an error, not a document to replace with a heading.
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("{heading}\n"),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let section = format!("{begin}\n{body}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{}\n\n{section}\n", old.trim_end()),
    };
    makemore_io::write_atomic(path, new.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// How the finished runs split their corpus: "split seed 42, 80/10/10" when they agree,
/// else each recipe with its number of runs.
fn splits(runs: &[&Record]) -> String {
    let mut recipes: BTreeMap<String, usize> = BTreeMap::new();
    for r in runs {
        let c = &r.config;
        let pct = |k: &str| {
            c["split"][k]
                .as_f64()
                .map_or("?".into(), |f| format!("{:.0}", f * 100.0))
        };
        let recipe = format!(
            "split seed {}, {}/{}/{}",
            c["split_seed"],
            pct("train"),
            pct("dev"),
            pct("test")
        );
        *recipes.entry(recipe).or_default() += 1;
    }
    match recipes.len() {
        0 => "no finished runs".into(),
        1 => recipes.into_keys().next().unwrap_or_default(),
        _ => recipes
            .into_iter()
            .map(|(k, n)| format!("{k} ({n} run{})", if n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_text_comes_from_the_runs_configs() {
        let run = |seed: u64, train: f64| -> Record {
            serde_json::from_value(serde_json::json!({"id": "x", "index": 0, "label": "",
                "status": "ok", "wall_secs": 1.0, "checkpoint": "",
                "config": {"split_seed": seed,
                "split": {"train": train, "dev": 0.1, "test": 0.9 - train}}}))
            .unwrap()
        };
        let (a, b) = (run(42, 0.8), run(7, 0.7));
        assert_eq!(splits(&[&a, &a]), "split seed 42, 80/10/10");
        assert_eq!(
            splits(&[&a, &b]),
            "split seed 42, 80/10/10 (1 run); split seed 7, 70/10/20 (1 run)"
        );
    }

    /// A sweep stopped part-way: its corpus is the one its runs name (not the built-in one,
    /// which a report with no finished run used to print), and its runs still going are listed.
    #[test]
    fn an_unfinished_sweep_names_its_corpus_and_its_runs_still_going() {
        let dir = tempfile::tempdir().unwrap();
        let record = |id: &str, status: &str, step: u64, dev: f64| {
            let mut r = serde_json::json!({"id": id, "index": 0, "label": format!("x={id}"),
                "status": status, "wall_secs": 1.0, "checkpoint": "",
                "data": "../shared/data/names.txt", "dev_loss": dev, "train_loss": 1.5,
                "steps": step, "params": 10,
                "config": {"split_seed": 42, "split": {"train": 0.8, "dev": 0.1, "test": 0.1}}});
            if status == "stopped" {
                r["stopped_at"] = step.into();
            } else {
                r["rung"] = step.into();
            }
            r.to_string()
        };
        let lines = [
            record("a", "rung", 100, 2.1),
            record("b", "rung", 100, 2.3),
            record("b", "stopped", 100, 2.3),
            record("a", "rung", 200, 2.0),
        ];
        std::fs::write(dir.path().join("results.jsonl"), lines.join("\n") + "\n").unwrap();
        let out = dir.path().join("report.md");
        run(ReportArgs {
            dir: Some(dir.path().to_path_buf()),
            out: Some(out.clone()),
            img: Some(dir.path().join("img")),
            test: false,
            bin: None,
        })
        .unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.contains("Corpus: `../shared/data/names.txt`, split seed 42, 80/10/10."),
            "{text}"
        );
        assert!(
            text.contains("the sweep is unfinished: 1 run is part-way"),
            "{text}"
        );
        assert!(
            text.contains("| 2.0000 | 1.5000 | 200 | 10 | x=a | `a` |"),
            "{text}"
        );
        assert!(text.contains("| 2.3000 | 100 | 10 | x=b | `b` |"), "{text}");
        assert!(!text.contains("| rank |"), "an empty leaderboard: {text}");
    }

    #[test]
    fn an_unreadable_document_is_an_error_and_stays_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("results.md");
        let bytes = b"# Results\n\nkept \xff text\n".to_vec();
        std::fs::write(&doc, &bytes).unwrap();
        let e = write_section(&doc, "sweep x", "# Results", "body\n").unwrap_err();
        assert!(format!("{e:#}").contains("cannot read"), "{e:#}");
        assert_eq!(std::fs::read(&doc).unwrap(), bytes);
        // A missing one starts with the heading; an existing section is replaced in place.
        let new = dir.path().join("new.md");
        write_section(&new, "sweep x", "# Results", "one\n").unwrap();
        std::fs::write(&new, std::fs::read_to_string(&new).unwrap() + "\nafter\n").unwrap();
        write_section(&new, "sweep x", "# Results", "two\n").unwrap();
        let text = std::fs::read_to_string(&new).unwrap();
        assert!(text.starts_with("# Results") && text.contains("two") && !text.contains("one"));
        assert!(text.trim_end().ends_with("after"), "{text}");
    }
}
