//! `cargo xtask tutorial [--check] [--bin PATH]`: reruns the commands of `docs/tutorial.md`
//! and rewrites their output blocks, so that every number and picture in the tutorial is
//! what its command prints today; `--check` only checks that each documented `makemore`
//! command still parses and that the generated sections of the docs are well-formed.
//!
//! In the tutorial, a ```` ```console ```` block holds commands (`$ ` lines, `\` continues a
//! line) each followed by its output. Commands that start with `makemore` are run with the
//! release binary in a fresh directory (`target/tutorial`, so `runs/...` starts empty, as
//! for a reader), through `sh`, stdout and stderr together; other commands (`cargo build`,
//! `alias`) keep their text. A comment `<!-- copy FROM TO -->` after a block copies a
//! picture a command wrote (FROM relative to that directory, TO to `docs/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::makemore::bin as makemore_bin;

/// `cargo xtask tutorial`: rerun docs/tutorial.md's commands and rewrite their output.
#[derive(Debug, clap::Args)]
pub struct TutorialArgs {
    /// Only check that the tutorial's commands parse and that the docs' generated sections
    /// are well-formed (what CI runs).
    #[arg(long)]
    check: bool,
    /// makemore binary to use (default: build target/release/makemore).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
}

/// One command of a console block and the output under it.
struct Step {
    /// The command as written (continuation lines included, without `$ `).
    command: String,
    /// The lines under it.
    output: Vec<String>,
}

/// Splits a console block's lines into commands and their outputs.
fn steps(lines: &[&str]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut continuing = false;
    for line in lines {
        if continuing {
            if let Some(last) = out.last_mut() {
                last.command.push('\n');
                last.command.push_str(line);
            }
            continuing = line.ends_with('\\');
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Step {
                command: cmd.to_string(),
                output: Vec::new(),
            });
            continuing = line.ends_with('\\');
        } else if let Some(last) = out.last_mut() {
            last.output.push(line.to_string());
        }
    }
    out
}

/// The command as `sh` should run it: `makemore` replaced by the binary's path.
fn shell_command(command: &str, bin: &Path) -> Option<String> {
    let rest = command.strip_prefix("makemore ")?;
    Some(format!("{} {rest}", bin.display()))
}

/// Every `makemore` and `cargo xtask` command a document shows: the `$ ` lines of its code
/// blocks, the lines of its `sh` blocks (comments dropped), and inline code that starts with
/// a command; `\` continues a line. `cargo run --release [--features F] --` counts as
/// `makemore`.
fn doc_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(lang.to_string()),
            };
            pending.clear();
            continue;
        }
        let command = match block.as_deref() {
            Some(lang) => {
                let body = if !pending.is_empty() {
                    Some(line.trim())
                } else if let Some(c) = trimmed.strip_prefix("$ ") {
                    Some(c)
                } else if lang == "sh" && !trimmed.starts_with('#') {
                    Some(trimmed)
                } else {
                    None
                };
                let Some(body) = body else { continue };
                // A comment after the command.
                let body = body.split(" # ").next().unwrap_or(body).trim_end();
                if let Some(cont) = body.strip_suffix('\\') {
                    pending.push_str(cont.trim_end());
                    pending.push(' ');
                    continue;
                }
                let whole = format!("{pending}{body}");
                pending.clear();
                whole
            }
            None => {
                // Prose names commands too (`cargo xtask sweep`): only spans with arguments
                // are invocations.
                for span in line.split('`').skip(1).step_by(2) {
                    if let Some(c) = normalise(span).filter(|c| c.split_whitespace().count() > 2) {
                        out.push(c);
                    }
                }
                continue;
            }
        };
        if let Some(c) = normalise(&command) {
            out.push(c);
        }
    }
    out
}

/// `makemore ARGS` or `xtask ARGS` for a documented command, `None` for anything else
/// (a usage synopsis with `[--option]` is not a command).
fn normalise(command: &str) -> Option<String> {
    let c = command.trim();
    if c.contains("[--") {
        return None;
    }
    if let Some(rest) = c.strip_prefix("cargo xtask ") {
        return Some(format!("xtask {rest}"));
    }
    if let Some(rest) = c.strip_prefix("cargo run --release") {
        let (_, args) = rest.split_once("-- ")?;
        return Some(format!("makemore {args}"));
    }
    c.starts_with("makemore ").then(|| c.to_string())
}

/// Checks that the commands `README.md`, `docs/results.md` and `docs/sweeps.md` show still
/// parse: each runs with `MAKEMORE_PARSE_ONLY` (or `XTASK_PARSE_ONLY`), which stops the
/// binary right after parsing its arguments.
fn check_doc_commands(root: &Path, bin: &Path) -> Result<usize> {
    let xtask = std::env::current_exe().context("cannot find the xtask binary")?;
    let mut n = 0;
    for doc in ["README.md", "docs/results.md", "docs/sweeps.md"] {
        let path = root.join(doc);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for command in doc_commands(&text) {
            let (program, rest) = match command.split_once(' ') {
                Some(("xtask", rest)) => (xtask.as_path(), rest),
                Some((_, rest)) => (bin, rest),
                None => continue,
            };
            let shell = format!("{} {rest}", program.display());
            let o = Command::new("sh")
                .args(["-c", &format!("{shell} 2>&1")])
                .current_dir(root)
                .env("MAKEMORE_PARSE_ONLY", "1")
                .env("XTASK_PARSE_ONLY", "1")
                .output()
                .with_context(|| format!("cannot run {shell}"))?;
            if !o.status.success() {
                bail!(
                    "{doc}: `{command}` does not parse: {}",
                    String::from_utf8_lossy(&o.stdout).trim()
                );
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Checks that every `<!-- NAME begin -->` in `text` has its `<!-- NAME end -->` after it.
fn check_sections(name: &str, text: &str) -> Result<()> {
    for (at, _) in text.match_indices("<!-- ") {
        let rest = &text[at + 5..];
        let Some(close) = rest.find(" -->") else {
            bail!("{name}: an unclosed comment");
        };
        let inner = &rest[..close];
        if let Some(marker) = inner.strip_suffix(" begin") {
            let end = format!("<!-- {marker} end -->");
            if !rest.contains(&end) {
                bail!("{name}: section {marker:?} begins but does not end");
            }
        }
    }
    Ok(())
}

/// Runs `cargo xtask tutorial`.
pub fn run(args: TutorialArgs) -> Result<()> {
    let TutorialArgs { check, bin } = args;
    let root = crate::workspace_root();
    let bin = makemore_bin(bin)?;
    let bin = std::path::absolute(&bin).unwrap_or(bin);
    let path = root.join("docs/tutorial.md");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if check {
        let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.push(root.join("README.md"));
        for doc in &docs {
            let t = std::fs::read_to_string(doc)?;
            check_sections(&doc.display().to_string(), &t)?;
        }
    }
    let work = root.join("target/tutorial");
    if !check {
        let _ = std::fs::remove_dir_all(&work);
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    let mut commands = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_string());
        i += 1;
        if line.trim() != "```console" {
            if let Some(copy) = line.trim().strip_prefix("<!-- copy ") {
                let parts: Vec<&str> = copy.trim_end_matches("-->").split_whitespace().collect();
                let [from, to] = parts[..] else {
                    bail!("tutorial.md: `<!-- copy FROM TO -->` expected, got {line:?}");
                };
                if !check {
                    std::fs::copy(work.join(from), root.join("docs").join(to))
                        .with_context(|| format!("cannot copy {from} to docs/{to}"))?;
                }
            }
            continue;
        }
        let end = lines[i..]
            .iter()
            .position(|l| l.trim() == "```")
            .map(|p| i + p)
            .context("tutorial.md: a console block does not end")?;
        for step in steps(&lines[i..end]) {
            out.push(format!("$ {}", step.command));
            let shell = shell_command(&step.command.replace("\\\n", " "), &bin);
            let Some(shell) = shell else {
                out.extend(step.output);
                continue;
            };
            commands += 1;
            let mut cmd = Command::new("sh");
            cmd.args(["-c", &format!("{shell} 2>&1")])
                .current_dir(&work);
            if check {
                cmd.env("MAKEMORE_PARSE_ONLY", "1");
            } else {
                eprintln!("$ {}", step.command.replace("\\\n", " "));
            }
            let result = cmd
                .output()
                .with_context(|| format!("cannot run {shell}"))?;
            if !result.status.success() {
                bail!(
                    "`{}` failed: {}",
                    step.command,
                    String::from_utf8_lossy(&result.stdout).trim()
                );
            }
            if check {
                out.extend(step.output);
                continue;
            }
            let printed = String::from_utf8_lossy(&result.stdout);
            out.extend(printed.lines().map(str::to_string));
            // Keep the blank line that separates one command from the next.
            if step.output.last().is_some_and(|l| l.is_empty()) {
                out.push(String::new());
            }
        }
        i = end;
    }
    if check {
        let others = check_doc_commands(&root, &bin)?;
        eprintln!("docs/tutorial.md: {commands} makemore commands parse; README.md, docs/results.md and docs/sweeps.md: {others} makemore and xtask commands parse; generated sections are well-formed");
        return Ok(());
    }
    let mut new = out.join("\n");
    new.push('\n');
    makemore_io::write_atomic(&path, new.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("reran {commands} commands; wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_blocks_split_into_commands_and_outputs() {
        let block = [
            "$ makemore train --steps 10 \\",
            "    --out runs/x",
            "steps 10",
            "",
            "$ makemore eval --checkpoint runs/x",
            "dev loss 2.5",
        ];
        let s = steps(&block);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].command,
            "makemore train --steps 10 \\\n    --out runs/x"
        );
        assert_eq!(s[0].output, ["steps 10", ""]);
        assert_eq!(s[1].output, ["dev loss 2.5"]);
        assert_eq!(
            shell_command("makemore eval -n 2", Path::new("/b/makemore")).as_deref(),
            Some("/b/makemore eval -n 2")
        );
        assert!(shell_command("cargo build --release", Path::new("/b")).is_none());
    }

    #[test]
    fn documented_commands_are_found_in_blocks_and_inline_code() {
        let doc = "Run `makemore eval --checkpoint x`, not `cargo xtask sweep`, or `ls`.\n\n```sh\n# a comment\nmakemore train --steps 1 \\\n    --out y   # trains\ncargo xtask sweep g.toml\n```\n\n```console\n$ cargo run --release --features wgpu -- train --backend wgpu\noutput line\n```\n";
        assert_eq!(
            doc_commands(doc),
            [
                "makemore eval --checkpoint x",
                "makemore train --steps 1 --out y",
                "xtask sweep g.toml",
                "makemore train --backend wgpu",
            ]
        );
    }

    #[test]
    fn generated_sections_must_end() {
        assert!(check_sections("a", "<!-- bench begin -->\nx\n<!-- bench end -->").is_ok());
        assert!(check_sections("a", "<!-- bench begin -->\nx\n").is_err());
    }
}
