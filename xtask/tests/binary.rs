//! The `xtask` binary as `cargo xtask` runs it. (This test also makes `cargo test --workspace`
//! build `target/debug/xtask` with the workspace's features, which CI then runs for the
//! tutorial check, the sweeps and Slurm, instead of building xtask a second time for
//! `cargo xtask`'s own feature set.)

use std::process::Command;

/// `xtask data --check` accepts the shipped corpus: the line count and sha256 that
/// `cargo xtask data` regenerates it to (data/README.md).
#[test]
fn data_check_accepts_the_shipped_corpus() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["data", "--check"])
        .output()
        .expect("run xtask");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "xtask data --check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("32257 names") && stdout.contains("(as expected)"),
        "{stdout}"
    );
}

/// An unknown verb is one line of usage error and exit status 2, not a panic.
#[test]
fn an_unknown_verb_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("frobnicate")
        .output()
        .expect("run xtask");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unrecognized subcommand 'frobnicate'"),
        "{stderr}"
    );
}
