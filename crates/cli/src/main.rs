//! `makemore`: train character-level MLP language models on a list of words, and make more.
//!
//! A thin shell over the library crates: it parses arguments, picks a backend, and calls
//! library functions. Errors are printed as one line (with their causes) and exit non-zero.

mod backend;
mod commands;
mod config_flags;
mod corpus;
mod progress;
mod shared_args;

use std::process::ExitCode;

/// mimalloc keeps freed blocks for reuse; with the system allocator every large tensor of a
/// training step is a fresh `mmap` and its pages are faulted in again (about a tenth of the
/// time at batch 4096). See [`allocator`] for the one option makemore sets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options, through its C API (the `mimalloc` crate does not expose them).
mod allocator {
    use std::ffi::{c_int, c_long};

    /// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (the version the `mimalloc`
    /// crate builds by default): how long, in milliseconds, freed memory stays committed
    /// before it goes back to the system (1,000 by default in this version, `options.c`;
    /// -1: never).
    const PURGE_DELAY: c_int = 15;

    #[allow(unsafe_code)]
    unsafe extern "C" {
        fn mi_option_set(option: c_int, value: c_long);
        #[cfg(test)]
        fn mi_option_get(option: c_int) -> c_long;
    }

    /// Keeps freed memory for reuse instead of returning it to the system. A training step
    /// frees its large tensors and allocates them again in the next, and with the default
    /// delay part of that memory still went back to the system and came back as fresh
    /// pages, faulted in and zeroed by the kernel again: 10,693 page faults in 105 steps of
    /// the record-sized Transformer on one thread, against 314 with this setting (another
    /// pair of runs: 7,370 and 317; docs/performance.md), and a tenth of its profile in
    /// `do_huge_pmd_anonymous_page`. The process's peak memory is unchanged.
    ///
    /// Called first thing in `main` (mimalloc's options are not thread safe).
    pub(crate) fn keep_freed_memory() {
        #[allow(unsafe_code)]
        // SAFETY: a plain setter of mimalloc's option table; no other thread is running yet.
        unsafe {
            mi_option_set(PURGE_DELAY, -1)
        }
    }

    /// The purge delay mimalloc uses now.
    #[cfg(test)]
    fn purge_delay() -> c_long {
        #[allow(unsafe_code)]
        // SAFETY: a plain getter of mimalloc's option table.
        unsafe {
            mi_option_get(PURGE_DELAY)
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_option_is_mimallocs_purge_delay() {
            // Its default (mimalloc v3's `options.c`), unless the environment set it: the
            // index is the purge delay's.
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(super::purge_delay(), 1000);
            }
            super::keep_freed_memory();
            assert_eq!(super::purge_delay(), -1);
        }
    }
}

use clap::{Parser, Subcommand};

/// A run stopped by a signal after saving its checkpoint (what it printed says so); the
/// process exits with `exit_code` (128 + the signal) and no `error:` line.
#[derive(Debug)]
pub struct Interrupted {
    /// 130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1.
    pub exit_code: u8,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted (exit status {})", self.exit_code)
    }
}

impl std::error::Error for Interrupted {}

/// Train character-level language models (an MLP over the previous characters, as in
/// Bengio et al. 2003 and Karpathy's makemore) on a list of words, and make more words
/// like them. With no --data, the built-in corpus of 32,257 US baby names is used.
#[derive(Debug, Parser)]
#[command(name = "makemore", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for the large matrix products, element-wise kernels and dropout masks
    /// (default: RAYON_NUM_THREADS, else all cores). Results are the same bit for bit
    /// whatever the number.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<std::num::NonZeroUsize>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect a corpus: sizes of the vocabulary and splits, and the training examples.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Train a model (defaults: the notebook's final recipe) and save checkpoints.
    Train(Box<commands::train::TrainArgs>),
    /// Loss (negative log-likelihood per character) and perplexity of a checkpoint.
    Eval(commands::eval::EvalArgs),
    /// Make more words: sample from a checkpoint.
    Sample(commands::sample::SampleArgs),
    /// The notebook's learning-rate finder: loss against log10(lr), and a suggestion.
    LrFind(commands::lr_find::LrFindArgs),
    /// Pictures of a run: the loss curve, or the learned character embeddings.
    #[command(subcommand)]
    Plot(commands::plot::PlotCommand),
    /// The count-based bigram baseline: its train/dev loss and samples.
    Bigram(commands::bigram::BigramArgs),
    /// Time the training step, evaluation or sampling (steps/s, examples/s, peak memory).
    Bench(commands::bench::BenchArgs),
}

/// A closed pipe (`makemore sample -n 1000 | head`) ends the process quietly, as it ends
/// other Unix tools, instead of with a panic and a backtrace: Rust ignores SIGPIPE, so the next
/// print to the pipe panics. The exit status is 141, as a shell reports a process that SIGPIPE
/// ended. A training run piped this way keeps its last checkpoint, which is always whole.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    // For `cargo xtask tutorial --check`: the documented commands still parse.
    if std::env::var_os("MAKEMORE_PARSE_ONLY").is_some() {
        return ExitCode::SUCCESS;
    }
    // Nothing has used rayon yet, so the pool can start here, with this thread in it.
    if let Err(e) = makemore_model::threads::join_thread_pool(cli.threads) {
        eprintln!("error: --threads: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Data(cmd) => commands::data::run(cmd),
        Command::Train(args) => commands::train::run(*args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Sample(args) => commands::sample::run(args),
        Command::LrFind(args) => commands::lr_find::run(args),
        Command::Plot(cmd) => commands::plot::run(cmd),
        Command::Bigram(args) => commands::bigram::run(args),
        Command::Bench(args) => commands::bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Already reported (checkpoint saved): exit as a process stopped by the signal.
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            ExitCode::from(e.downcast_ref::<Interrupted>().map_or(1, |i| i.exit_code))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
