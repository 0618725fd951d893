//! `cargo xtask bench`: the benchmark suite. Runs `makemore bench` for training at batch
//! 32 and 4096, full-split evaluation and sampling, optionally the notebook's PyTorch code
//! on the same machine in the same run, and writes `docs/performance.md`.
//! Benchmarks measure; they never fail on a slow result.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use serde_json::Value;

use crate::makemore::{bin as makemore_bin, run_json};

/// `cargo xtask bench`: the benchmark suite, written into docs/performance.md.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A fiftieth of the steps (at least 5) and 2 warm-up steps, one try each: a smoke run of
    /// the whole suite, whose numbers are noise.
    #[arg(long)]
    quick: bool,
    /// Run every CPU case N times, makemore's and PyTorch's alike, and keep the fastest (a
    /// shared machine's neighbours slow single runs down).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
    /// Also time xtask/bench/pytorch_mlp.py with this Python (which must have torch
    /// installed), on 1, 2, 4, … threads up to the core count.
    #[arg(long = "pytorch", value_name = "PYTHON")]
    python: Option<String>,
    /// cpu, or cuda: the GPU suite instead (makemore on --backend wgpu and --backend cuda,
    /// whichever the binary was built with; PyTorch on CUDA), written as the GPU section.
    #[arg(long, value_name = "DEVICE", default_value = "cpu", value_parser = ["cpu", "cuda"])]
    device: String,
    /// Corpus for the PyTorch script (default: ../shared/data/names.txt if present, else
    /// data/names.txt); makemore uses its built-in corpus.
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Where to write the report (default: docs/performance.md).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// makemore binary to use (default: build target/release/makemore).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Stop any one case after this many seconds (coreutils' `timeout`); the case's row then
    /// says so. For machines lent for a few minutes (xtask/bench/gpu.sh).
    #[arg(long, value_name = "SECS")]
    case_timeout: Option<u64>,
}

impl BenchArgs {
    /// A command for `program`, under `timeout` when `--case-timeout` is given.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match self.case_timeout {
            Some(secs) => {
                let mut cmd = Command::new("timeout");
                cmd.args(["--kill-after=10", &secs.to_string()])
                    .arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// A case's `steps`, or under `--quick` a fiftieth of them (at least 5).
    fn steps(&self, steps: u64) -> u64 {
        if self.quick {
            (steps / 50).max(5)
        } else {
            steps
        }
    }

    /// A case's `warmup` steps, or under `--quick` at most 2.
    fn warmup(&self, warmup: u64) -> u64 {
        if self.quick {
            warmup.min(2)
        } else {
            warmup
        }
    }

    fn gpu(&self) -> bool {
        self.device == "cuda"
    }

    fn out(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| crate::workspace_root().join("docs/performance.md"))
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available, {mem} memory")
}

/// The flags of one `makemore bench` case: the task, its batch size (training), the step
/// count, the warm-up steps when not the default, and `--kernels plain` when asked.
fn bench_flags(
    task: &str,
    batch: Option<u64>,
    steps: u64,
    warmup: Option<u64>,
    plain: bool,
) -> Vec<String> {
    let mut flags = vec!["--task".to_string(), task.to_string()];
    if let Some(batch) = batch {
        flags.extend(["--batch-size".to_string(), batch.to_string()]);
    }
    flags.extend(["--steps".to_string(), steps.to_string()]);
    if let Some(warmup) = warmup {
        flags.extend(["--warmup".to_string(), warmup.to_string()]);
    }
    if plain {
        flags.extend(["--kernels".to_string(), "plain".to_string()]);
    }
    flags
}

/// The fastest of `tries` runs of `run` (by steps/s, else examples/s, else words/s).
fn fastest(tries: usize, mut run: impl FnMut() -> Result<Value>) -> Result<Value> {
    let speed = |v: &Value| {
        ["steps_per_s", "examples_per_s", "words_per_s"]
            .iter()
            .find_map(|k| v[*k].as_f64())
            .unwrap_or(0.0)
    };
    let mut best = run()?;
    for _ in 1..tries {
        let v = run()?;
        if speed(&v) > speed(&best) {
            best = v;
        }
    }
    Ok(best)
}

/// Environment variables of one bench case.
type Env = Vec<(String, String)>;

/// The names of the two rows measured on each thread count.
const BATCH_4096: &str = "train, batch 4096";
const WIDE: &str = "train, wide model, batch 128";

/// The name of row `base` on `n` of the machine's `all_cores` threads: `base` itself when
/// it uses all of them.
fn on_threads(base: &str, n: usize, all_cores: usize) -> String {
    match n {
        n if n == all_cores => base.to_string(),
        1 => format!("{base}, 1 thread"),
        n => format!("{base}, {n} threads"),
    }
}

/// The thread counts measured: powers of two below the machine's core count, then the
/// core count itself (1, 2 on a 2-core machine; 1, 2, 4, 8, 16 on a 16-core one).
fn thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |n| Some(n * 2))
        .take_while(|&n| n < cores)
        .collect();
    counts.push(cores);
    counts
}

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let bin = makemore_bin(args.bin.clone())?;
    if args.gpu() {
        return run_gpu(&args, &bin);
    }
    let tries = if args.quick { 1 } else { args.repeat as usize };
    let mut rows: Vec<(String, String, Value)> = Vec::new();
    let wide = crate::workspace_root().join("examples/configs/wide.json");
    let mut wide_flags = bench_flags(
        "train",
        Some(128),
        args.steps(1000),
        Some(args.warmup(20)),
        false,
    );
    wide_flags.extend(["--config".to_string(), wide.display().to_string()]);
    let counts = thread_counts();
    let all_cores = counts.last().copied().unwrap_or(1);
    let batch_4096 = bench_flags(
        "train",
        Some(4096),
        args.steps(300),
        Some(args.warmup(5)),
        false,
    );
    let mut cases: Vec<(String, Vec<String>, Env)> = vec![
        (
            "train, batch 32".into(),
            bench_flags("train", Some(32), args.steps(5000), None, false),
            Vec::new(),
        ),
        (BATCH_4096.into(), batch_4096.clone(), Vec::new()),
        (WIDE.into(), wide_flags.clone(), Vec::new()),
    ];
    // Fewer threads than the machine has (the rows above use all of them), for the
    // scaling table: RAYON_NUM_THREADS, as `--threads N` sets it.
    for &n in counts.iter().filter(|&&n| n < all_cores) {
        let env = vec![("RAYON_NUM_THREADS".to_string(), n.to_string())];
        cases.push((
            on_threads(BATCH_4096, n, all_cores),
            batch_4096.clone(),
            env.clone(),
        ));
        cases.push((on_threads(WIDE, n, all_cores), wide_flags.clone(), env));
    }
    // makemore.py's models with its defaults (examples/configs/makemore-py/), batch 32
    // words, and the record-sized Transformer, against xtask/bench/pytorch_seq.py below.
    let seq = seq_cases()?;
    for case in &seq {
        let mut flags = bench_flags(
            "train",
            Some(case.batch),
            args.steps(500),
            Some(args.warmup(20)),
            false,
        );
        flags.extend(["--config".to_string(), case.config.display().to_string()]);
        cases.push((case.row(), flags, Vec::new()));
    }
    cases.extend([
        (
            "evaluate the train split".into(),
            bench_flags("eval", None, args.steps(5), None, false),
            Vec::new(),
        ),
        (
            "sample words".into(),
            bench_flags("sample", None, args.steps(5000), None, false),
            Vec::new(),
        ),
        (
            "train, batch 32, plain kernels".into(),
            bench_flags("train", Some(32), args.steps(2000), None, true),
            Vec::new(),
        ),
        (
            "train, batch 4096, plain kernels".into(),
            bench_flags(
                "train",
                Some(4096),
                args.steps(30),
                Some(args.warmup(5)),
                true,
            ),
            Vec::new(),
        ),
    ]);
    for (name, flags, env) in &cases {
        let env_text: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        eprintln!("{env_text}makemore bench {}", flags.join(" "));
        let mut cmd = args.command(&bin);
        cmd.arg("bench").args(flags).arg("--json");
        for (k, v) in env.iter() {
            cmd.env(k, v);
        }
        let v = fastest(tries, || run_json(&mut cmd))?;
        let shown = flags
            .join(" ")
            .replace(&format!("{}/", crate::workspace_root().display()), "");
        rows.push((
            name.clone(),
            format!("{env_text}makemore bench {shown} --json"),
            v,
        ));
    }

    let mut torch_rows: Vec<(String, Value)> = Vec::new();
    if let Some(python) = &args.python {
        let root = crate::workspace_root();
        let data = torch_data(&args);
        let script = root.join("xtask/bench/pytorch_mlp.py");
        let torch_cases = [
            ("notebook", 32u64, args.steps(5000), args.warmup(100)),
            ("notebook", 4096, args.steps(300), args.warmup(5)),
            ("wide", 128, args.steps(1000), args.warmup(20)),
        ];
        for (model, batch, steps, warmup) in torch_cases {
            for &threads in &counts {
                let name = match model {
                    "wide" => format!("wide model, batch {batch}, {threads} thread(s)"),
                    _ => format!("batch {batch}, {threads} thread(s)"),
                };
                eprintln!("pytorch {name}");
                let v = fastest(tries, || {
                    run_json(
                        args.command(python)
                            .arg(&script)
                            .arg(&data)
                            .args(["--model", model])
                            .args(["--batch-size", &batch.to_string()])
                            .args(["--steps", &steps.to_string()])
                            .args([
                                "--threads",
                                &threads.to_string(),
                                "--warmup",
                                &warmup.to_string(),
                            ]),
                    )
                })?;
                torch_rows.push((name, v));
            }
        }
    }

    if let Some(python) = &args.python {
        let script = crate::workspace_root().join("xtask/bench/pytorch_seq.py");
        for case in &seq {
            for &threads in &counts {
                let name = format!("{}, {threads} thread(s)", case.label());
                eprintln!("pytorch {name}");
                let v = fastest(tries, || {
                    run_json(
                        args.command(python)
                            .arg(&script)
                            .arg(torch_data(&args))
                            .args(["--model", &case.kind])
                            .args(["--batch-size", &case.batch.to_string()])
                            .args(["--n-embd", &case.n_embd.to_string()])
                            .args(["--dropout", &case.dropout.to_string()])
                            .args(["--steps", &args.steps(500).to_string()])
                            .args(["--warmup", &args.warmup(20).to_string()])
                            .args(["--threads", &threads.to_string()]),
                    )
                })?;
                torch_rows.push((name, v));
            }
        }
    }

    let mut md = String::from("## Measurements\n\n");
    md.push_str("Written by `cargo xtask bench");
    if args.quick {
        md.push_str(" --quick");
    }
    if !args.quick && args.repeat != 3 {
        md.push_str(&format!(" --repeat {}", args.repeat));
    }
    if args.python.is_some() {
        md.push_str(" --pytorch PYTHON");
    }
    md.push_str("`; every number below comes from that one run.");
    if tries > 1 {
        md.push_str(&format!(
            " Each case, makemore's and PyTorch's alike, ran {tries} times; the table keeps the fastest."
        ));
    }
    md.push_str("\n\n");
    md.push_str(&format!("Machine: {}.\n\n", machine()));
    md.push_str(
        "Model: the notebook's default (block 3, embedding 10, hidden 200; 11,897 parameters), \
SGD, on the ndarray CPU backend (`Autodiff<NdArray<f32>>`), with the fused kernels (the \
default) unless a row says `plain kernels` (burn's generic operations, `--kernels plain`). \
The wide model (`examples/configs/wide.json`) is the kind the quality sweeps train: context \
8, 24-d embeddings, two 512-unit layers with LayerNorm and dropout 0.2, AdamW; 378,019 \
parameters. makemore.py's Transformer (4 layers, 4 heads, 64-d; 204,544 parameters), GRU \
(28,315), RNN (11,803) and BoW (12,827) are its defaults, `examples/configs/makemore-py/`; the \
record-sized Transformer is `examples/configs/transformer-best.json` (128-d, 4 layers, 4 \
heads; 802,304 parameters) at batch 64, with its dropout of 0.32 on both sides (makemore.py's \
model with minGPT's dropout at the same places as makemore's: the embeddings, the attention \
weights and each residual branch); makemore.py's Transformer at 128-d is the same model \
without dropout (`examples/configs/makemore-py/transformer-128.json`: makemore.py's own \
`--n-embd 128 --batch-size 64`).\n\n",
    );
    let shown_bin = bin
        .strip_prefix(crate::workspace_root())
        .unwrap_or(&bin)
        .display()
        .to_string();
    md.push_str(&format!("Binary: `{shown_bin}`.\n\n"));
    md.push_str("### makemore\n\n| what | steps/s | examples/s | words/s | peak memory | command |\n|---|---:|---:|---:|---:|---|\n");
    let num = |v: &Value, k: &str| v[k].as_f64().map_or("".to_string(), |x| format!("{x:.0}"));
    for (name, cmd, v) in &rows {
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | `{cmd}` |\n",
            num(v, "steps_per_s"),
            num(v, "examples_per_s"),
            num(v, "words_per_s"),
            v["peak_rss_bytes"]
                .as_f64()
                .map_or(String::new(), |b| format!("{:.0} MiB", b / 1048576.0)),
        ));
    }
    if !torch_rows.is_empty() {
        md.push_str("\n### PyTorch, same machine, same run\n\n");
        md.push_str(
            "The notebook's code (`xtask/bench/pytorch_mlp.py`: embedding lookup, `tanh`, \
`F.cross_entropy`, `backward`, manual SGD), eager mode on the CPU; the wide model as an \
`nn.Module` with LayerNorm, dropout and `torch.optim.AdamW` (`--model wide`); makemore.py's \
Transformer, GRU, RNN and BoW as its own modules (`xtask/bench/pytorch_seq.py`, `seq_models.py`) with its \
AdamW settings.\n\n",
        );
        md.push_str("| setting | steps/s | examples/s | torch |\n|---|---:|---:|---|\n");
        for (name, v) in &torch_rows {
            md.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                num(v, "steps_per_s"),
                num(v, "examples_per_s"),
                v["torch"].as_str().unwrap_or("")
            ));
        }
        let best = |batch: &str, key: &str| {
            torch_rows
                .iter()
                .filter(|(n, _)| n.starts_with(batch))
                .filter_map(|(_, v)| v[key].as_f64())
                .fold(0.0f64, f64::max)
        };
        let ours = |name: &str, key: &str| {
            rows.iter()
                .find(|(n, _, _)| n == name)
                .and_then(|(_, _, v)| v[key].as_f64())
                .unwrap_or(0.0)
        };
        md.push_str(&format!(
            "\nRatio makemore / best PyTorch setting: batch 32 steps/s **{:.2}×**, batch 4096 examples/s **{:.2}×**, wide model at batch 128 steps/s **{:.2}×**",
            ours("train, batch 32", "steps_per_s") / best("batch 32,", "steps_per_s").max(1e-9),
            ours(BATCH_4096, "examples_per_s") / best("batch 4096,", "examples_per_s").max(1e-9),
            ours(WIDE, "steps_per_s") / best("wide model", "steps_per_s").max(1e-9),
        ));
        for case in &seq {
            let theirs = best(&format!("{},", case.label()), "steps_per_s");
            md.push_str(&format!(
                ", {} steps/s **{:.2}×**",
                case.label(),
                ours(&case.row(), "steps_per_s") / theirs.max(1e-9)
            ));
        }
        md.push_str(".\n");
    }
    md.push_str(&scaling_table(&counts, &rows, &torch_rows));
    crate::report::write_section(&args.out(), "bench", "# Performance", &md)?;
    print!("{md}");
    eprintln!("wrote {}", args.out().display());
    Ok(())
}

/// A sequence model timed against the same model in PyTorch (`xtask/bench/pytorch_seq.py`),
/// with what both sides need read from makemore's config, so the two cannot disagree.
struct SeqCase {
    /// What the rows call it (the batch size follows).
    name: &'static str,
    /// makemore's config.
    config: PathBuf,
    /// The config's model kind: pytorch_seq.py's `--model`.
    kind: String,
    /// The config's `batch_size`: words per step, on both sides.
    batch: u64,
    /// The config's `n_embd`: pytorch_seq.py's `--n-embd`.
    n_embd: u64,
    /// The config's `model.dropout`: pytorch_seq.py's `--dropout` (its Transformer applies
    /// it where makemore's does).
    dropout: f64,
}

impl SeqCase {
    /// The case of `name` trained as the config `config` (from the workspace root) says.
    fn read(name: &'static str, config: &str) -> Result<Self> {
        let config = crate::workspace_root().join(config);
        let text = std::fs::read_to_string(&config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
        let field = |v: &Value, what: &str| {
            v.as_u64()
                .ok_or_else(|| anyhow::anyhow!("{}: no {what}", config.display()))
        };
        let kind = json["model"]["kind"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{}: no model.kind", config.display()))?
            .to_string();
        let batch = field(&json["batch_size"], "batch_size")?;
        let n_embd = field(&json["model"]["n_embd"], "model.n_embd")?;
        let dropout = json["model"]["dropout"].as_f64().unwrap_or(0.0);
        if dropout > 0.0 && kind != "transformer" {
            anyhow::bail!(
                "{}: pytorch_seq.py's {kind} has no dropout to match the config's",
                config.display()
            );
        }
        Ok(SeqCase {
            name,
            config,
            kind,
            batch,
            n_embd,
            dropout,
        })
    }

    /// What the rows call it.
    fn label(&self) -> String {
        format!("{}, batch {}", self.name, self.batch)
    }

    /// The makemore row.
    fn row(&self) -> String {
        format!("train, {}", self.label())
    }
}

/// makemore.py's four sequence models with its defaults, the record-sized Transformer
/// (`examples/configs/transformer-best.json`: 128-d, 4 layers, 4 heads, batch 64; its
/// dropout of 0.32 runs on both sides, `--dropout` of pytorch_seq.py), and makemore.py's
/// Transformer at that size without dropout.
fn seq_cases() -> Result<Vec<SeqCase>> {
    [
        (
            "makemore.py's transformer",
            "examples/configs/makemore-py/transformer.json",
        ),
        ("makemore.py's gru", "examples/configs/makemore-py/gru.json"),
        ("makemore.py's rnn", "examples/configs/makemore-py/rnn.json"),
        ("makemore.py's bow", "examples/configs/makemore-py/bow.json"),
        (
            "the record-sized transformer",
            "examples/configs/transformer-best.json",
        ),
        (
            "makemore.py's transformer at 128-d",
            "examples/configs/makemore-py/transformer-128.json",
        ),
    ]
    .into_iter()
    .map(|(name, config)| SeqCase::read(name, config))
    .collect()
}

/// How training speed grows with threads: makemore's batch 4096 and wide-model rows for
/// each thread count (all cores: the rows without a count), beside PyTorch's.
fn scaling_table(
    counts: &[usize],
    rows: &[(String, String, Value)],
    torch_rows: &[(String, Value)],
) -> String {
    let all_cores = counts.last().copied().unwrap_or(1);
    let cell = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v[key].as_f64())
            .map_or("".to_string(), |x| format!("{x:.0}"))
    };
    let ours = |base: &str, n: usize| {
        let name = on_threads(base, n, all_cores);
        rows.iter().find(|(r, _, _)| *r == name).map(|(_, _, v)| v)
    };
    let theirs = |base: &str, n: usize| {
        let name = format!("{base}, {n} thread(s)");
        torch_rows.iter().find(|(r, _)| *r == name).map(|(_, v)| v)
    };
    let mut md = String::from(
        "\n### Threads\n\nThe rows above by thread count (`RAYON_NUM_THREADS` for makemore, \
`torch.set_num_threads` for PyTorch).\n\n| threads | makemore batch 4096, examples/s | PyTorch \
batch 4096, examples/s | makemore wide model, steps/s | PyTorch wide model, steps/s |\n\
|---:|---:|---:|---:|---:|\n",
    );
    for &n in counts {
        md.push_str(&format!(
            "| {n} | {} | {} | {} | {} |\n",
            cell(ours(BATCH_4096, n), "examples_per_s"),
            cell(theirs("batch 4096", n), "examples_per_s"),
            cell(ours(WIDE, n), "steps_per_s"),
            cell(theirs("wide model, batch 128", n), "steps_per_s"),
        ));
    }
    md
}

/// One cell of the GPU table: the measurement `key` of a bench's JSON, or its error in
/// parentheses. The device it names (with the torch version, for PyTorch) joins `devices`.
fn gpu_cell(result: Result<Value>, key: &str, who: &str, devices: &mut Vec<String>) -> String {
    match result {
        Ok(v) => {
            if let Some(d) = v["device"].as_str() {
                let d = match v["torch"].as_str() {
                    Some(t) => format!("{who} {t}: {d}"),
                    None => format!("{who}: {d}"),
                };
                if !devices.contains(&d) {
                    devices.push(d);
                }
            }
            v[key].as_f64().map_or(String::new(), |x| format!("{x:.0}"))
        }
        Err(e) => {
            let e = e.root_cause().to_string();
            if e.ends_with(" timed out") {
                return "(timed out)".into();
            }
            format!("({})", e.lines().last().unwrap_or("failed"))
        }
    }
}

/// The corpus for the PyTorch script: `--data`, else the canonical corpus beside the clone,
/// else the shipped one.
fn torch_data(args: &BenchArgs) -> PathBuf {
    let root = crate::workspace_root();
    args.data.clone().unwrap_or_else(|| {
        let canonical = root.join("../shared/data/names.txt");
        if canonical.exists() {
            canonical
        } else {
            root.join("data/names.txt")
        }
    })
}

/// The GPU suite (`--device cuda`): each case on every GPU backend of the binary and, with
/// `--pytorch`, the notebook's code on CUDA, in one run on one card. A backend the binary
/// lacks, or that finds no device, gets its one-line error in the table instead of numbers.
fn run_gpu(args: &BenchArgs, bin: &std::path::Path) -> Result<()> {
    // (name, task, batch, steps, warm-up, config, PyTorch model)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<u64>,
        u64,
        Option<u64>,
        Option<&'a str>,
        &'a str,
    );
    let wide = Some("examples/configs/wide.json");
    let wavenet = Some("examples/configs/wavenet-lecture.json");
    let cases: Vec<Case> = vec![
        (
            "train, batch 32",
            "train",
            Some(32),
            args.steps(3000),
            Some(args.warmup(100)),
            None,
            "notebook",
        ),
        (
            "train, batch 4096",
            "train",
            Some(4096),
            args.steps(300),
            Some(args.warmup(20)),
            None,
            "notebook",
        ),
        (
            "train, batch 65536",
            "train",
            Some(65536),
            args.steps(100),
            Some(args.warmup(10)),
            None,
            "notebook",
        ),
        (
            "train, wide model, batch 128",
            "train",
            Some(128),
            args.steps(1000),
            Some(args.warmup(20)),
            wide,
            "wide",
        ),
        (
            "train, wide model, batch 4096",
            "train",
            Some(4096),
            args.steps(200),
            Some(args.warmup(10)),
            wide,
            "wide",
        ),
        (
            "train, WaveNet, batch 32",
            "train",
            Some(32),
            args.steps(2000),
            Some(args.warmup(50)),
            wavenet,
            "wavenet",
        ),
        (
            "evaluate the train split",
            "eval",
            None,
            args.steps(10),
            None,
            None,
            "notebook",
        ),
        (
            "sample 1,000 words",
            "sample",
            None,
            1000,
            None,
            None,
            "notebook",
        ),
    ];
    let mut md = String::from("## GPU measurements\n\n");
    md.push_str(&format!(
        "Written by `cargo xtask bench --device cuda{}{}`; every number below comes from that one run, on one card.\n\n",
        if args.quick { " --quick" } else { "" },
        if args.python.is_some() { " --pytorch PYTHON" } else { "" },
    ));
    md.push_str(&format!(
        "Host: {}.\n\nBinary: `{}`.\n\n",
        machine(),
        bin.display()
    ));
    md.push_str("| what | makemore wgpu | makemore cuda | PyTorch CUDA eager | unit |\n|---|---:|---:|---:|---|\n");
    let mut devices: Vec<String> = Vec::new();
    for (name, task, batch, steps, warmup, config, torch_model) in &cases {
        let mut flags = bench_flags(task, *batch, *steps, *warmup, false);
        if let Some(config) = config {
            let path = crate::workspace_root().join(config);
            flags.extend(["--config".to_string(), path.display().to_string()]);
        }
        let key = match *task {
            "train" if batch.unwrap_or(0) <= 128 => "steps_per_s",
            "sample" => "words_per_s",
            _ => "examples_per_s",
        };
        let mut cells = Vec::new();
        for backend in ["wgpu", "cuda"] {
            eprintln!("makemore bench --backend {backend} {}", flags.join(" "));
            let v = run_json(
                args.command(bin)
                    .arg("bench")
                    .args(["--backend", backend])
                    .args(&flags)
                    .arg("--json"),
            );
            cells.push(gpu_cell(
                v,
                key,
                &format!("makemore {backend}"),
                &mut devices,
            ));
        }
        let torch = match &args.python {
            Some(python) => {
                let script = crate::workspace_root().join("xtask/bench/pytorch_mlp.py");
                let mut cmd = args.command(python);
                cmd.arg(&script)
                    .arg(torch_data(args))
                    .args(["--device", "cuda", "--task", task, "--model", torch_model])
                    .args(["--steps", &steps.to_string()]);
                if let Some(b) = batch {
                    cmd.args(["--batch-size", &b.to_string()]);
                }
                if let Some(w) = warmup {
                    cmd.args(["--warmup", &w.to_string()]);
                }
                eprintln!("pytorch --device cuda --task {task} {batch:?}");
                gpu_cell(run_json(&mut cmd), key, "PyTorch", &mut devices)
            }
            None => "not run".into(),
        };
        let unit = key.replace("_per_s", "/s");
        md.push_str(&format!(
            "| {name} | {} | {} | {torch} | {unit} |\n",
            cells[0], cells[1]
        ));
    }
    md.push_str("\nDevices:\n\n");
    for d in &devices {
        md.push_str(&format!("- {d}\n"));
    }
    crate::report::write_section(&args.out(), "bench-gpu", "# Performance", &md)?;
    print!("{md}");
    eprintln!("wrote {}", args.out().display());
    Ok(())
}
