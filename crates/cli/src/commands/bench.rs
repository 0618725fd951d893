//! `makemore bench`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use makemore_data::SplitName;
use makemore_model::FusedAutodiff;
use makemore_train::bench::{time_evaluation, time_sampling, time_training, Timing};
use makemore_train::{prepare, TrainingConfig};
use serde::Serialize;

use crate::backend::{dispatch, WithBackend};
use crate::corpus;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchTask {
    /// Training steps: forward, backward and SGD update on a minibatch.
    Train,
    /// No-grad evaluation of the whole training split.
    Eval,
    /// Sampling words one character at a time.
    Sample,
}

/// `makemore bench`: times the default model (block 3, embedding 10, hidden 200) on the
/// built-in corpus after a warm-up, and prints steps/s and examples/s (train), examples/s
/// (eval) or words/s (sample), with the process's peak memory. A measurement, not a test.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to time.
    #[arg(long, value_enum, default_value_t = BenchTask::Train)]
    pub task: BenchTask,
    #[command(flatten)]
    pub device: crate::shared_args::BackendArg,
    /// Examples per training step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Timed steps (train), passes over the split (eval) or words (sample).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Untimed warm-up steps before timing (train).
    #[arg(long, default_value_t = 100)]
    pub warmup: u64,
    #[command(flatten)]
    pub corpus: crate::shared_args::DataArg,
    /// Model and training settings as JSON (default: the notebook's recipe).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// tanh and loss kernels (default: the config's, `fused` unless it says otherwise).
    #[arg(long, value_enum)]
    pub kernels: Option<crate::config_flags::KernelsArg>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    task: BenchTask,
    backend: String,
    /// The device it ran on (GPU adapter, CUDA device, or CPU).
    device: String,
    batch_size: usize,
    count: u64,
    secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    examples_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    words_per_s: Option<f64>,
    params: usize,
    /// Threads that split the CPU work (rayon's pool; `--threads`, RAYON_NUM_THREADS).
    threads: usize,
    peak_rss_bytes: Option<u64>,
}

struct BenchJob {
    args: BenchArgs,
    config: TrainingConfig,
    words: Vec<String>,
}

/// Runs `makemore bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let mut config = crate::config_flags::load_config(args.config.as_deref())?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    config.batch_size = args.batch_size;
    if let Some(kernels) = args.kernels {
        config.model.kernels = kernels.into();
    }
    let words = corpus::load_words(args.corpus.data.as_ref())?;
    dispatch(
        args.device.backend,
        BenchJob {
            args,
            config,
            words,
        },
    )
}

/// The process's peak resident memory (Linux: VmHWM), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl WithBackend for BenchJob {
    type Output = ();

    fn run<B: FusedAutodiff>(self, device: B::Device, device_name: &str) -> Result<()> {
        let BenchJob {
            args,
            mut config,
            words,
        } = self;
        let data = prepare(words, &config)?;
        config = makemore_train::sized_config(&config, &data)?;
        let batch = args.batch_size as f64;
        let (timing, steps_per_s, examples_per_s, words_per_s): (Timing, _, _, _) = match args.task
        {
            BenchTask::Train => {
                let steps = args
                    .steps
                    .unwrap_or(if args.batch_size >= 1024 { 100 } else { 3000 });
                let t = time_training::<B>(&data, &config, args.warmup, steps, &device)?;
                (t, Some(t.per_sec()), Some(t.per_sec() * batch), None)
            }
            BenchTask::Eval => {
                let t = time_evaluation::<B>(
                    &data,
                    &config,
                    SplitName::Train,
                    args.steps.unwrap_or(3),
                    &device,
                )?;
                (t, None, Some(t.per_sec()), None)
            }
            BenchTask::Sample => {
                let n = usize::try_from(args.steps.unwrap_or(2000))?;
                let t = time_sampling::<B>(&data, &config, n, &device)?;
                (t, None, None, Some(t.per_sec()))
            }
        };
        let report = Report {
            task: args.task,
            backend: args.device.backend.name().to_string(),
            device: device_name.to_string(),
            batch_size: args.batch_size,
            count: timing.count,
            secs: timing.secs,
            steps_per_s,
            examples_per_s,
            words_per_s,
            params: config.model.num_params(),
            threads: makemore_model::threads::count(),
            peak_rss_bytes: peak_rss_bytes(),
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
            return Ok(());
        }
        println!(
            "{} on {}, {} ({} parameters)",
            format!("{:?}", args.task).to_lowercase(),
            report.backend,
            report.device,
            report.params,
        );
        if let Some(v) = steps_per_s {
            println!(
                "steps/s      {v:.0}  (batch {}, {} timed steps after {} warm-up)",
                args.batch_size, timing.count, args.warmup
            );
        }
        if let Some(v) = examples_per_s {
            println!("examples/s   {v:.0}");
        }
        if let Some(v) = words_per_s {
            println!("words/s      {v:.0}  ({} words)", timing.count);
        }
        if let Some(b) = report.peak_rss_bytes {
            println!("peak memory  {:.1} MiB", b as f64 / (1 << 20) as f64);
        }
        Ok(())
    }
}
