//! `makemore data stats|show`.

use anyhow::Result;
use clap::{Args, Subcommand};
use makemore_data::{Examples, Split, SplitRatios};
use makemore_vocab::Vocab;
use serde::Serialize;

use crate::corpus;

/// `makemore data ...`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Words, vocabulary, split sizes (words and examples) and the longest word.
    Stats(StatsArgs),
    /// The training examples as the notebook prints them: `... ---> e`.
    Show(ShowArgs),
}

/// Corpus and context options shared by the data verbs.
#[derive(Debug, Args)]
pub struct CorpusArgs {
    #[command(flatten)]
    pub input: crate::shared_args::DataArg,
    /// Characters of context per example.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub block_size: u32,
    /// Seed of the shuffle before the split (as Python's random.seed).
    #[arg(long, default_value_t = 42)]
    pub split_seed: u64,
}

/// `makemore data stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `makemore data show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Words to show, from the start of the file (unshuffled, as in the notebook).
    #[arg(long, default_value_t = 5)]
    limit: usize,
}

#[derive(Debug, Serialize)]
struct Stats {
    source: String,
    words: usize,
    vocab_size: usize,
    vocab: String,
    block_size: usize,
    train_words: usize,
    dev_words: usize,
    test_words: usize,
    train_examples: usize,
    dev_examples: usize,
    test_examples: usize,
    longest_word: String,
    longest_word_len: usize,
    /// What a checkpoint's state.json records of this corpus (and what sweep ids cover).
    corpus_sha256: String,
}

/// Runs a `data` verb.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Stats(args) => stats(args),
        DataCommand::Show(args) => show(args),
    }
}

fn stats(args: StatsArgs) -> Result<()> {
    let words = corpus::load_words(args.corpus.input.data.as_ref())?;
    let vocab = Vocab::from_words(&words)?;
    let block = args.corpus.block_size as usize;
    let longest = words
        .iter()
        .max_by_key(|w| w.chars().count())
        .cloned()
        .unwrap_or_default();
    let n_words = words.len();
    let corpus_sha256 = makemore_train::corpus_digest(&words);
    let split = Split::new(words, args.corpus.split_seed, SplitRatios::default())?;
    let count = |w: &[String]| Examples::from_words(w, &vocab, block).map(|e| e.len());
    let stats = Stats {
        source: corpus::describe(args.corpus.input.data.as_ref()),
        words: n_words,
        vocab_size: vocab.len(),
        vocab: vocab.chars().iter().collect(),
        block_size: block,
        train_words: split.train.len(),
        dev_words: split.dev.len(),
        test_words: split.test.len(),
        train_examples: count(&split.train)?,
        dev_examples: count(&split.dev)?,
        test_examples: count(&split.test)?,
        longest_word_len: longest.chars().count(),
        longest_word: longest,
        corpus_sha256,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    println!("corpus       {}", stats.source);
    println!("words        {}", stats.words);
    println!("sha256       {}", stats.corpus_sha256);
    println!(
        "vocabulary   {} tokens: {:?}",
        stats.vocab_size, stats.vocab
    );
    println!(
        "longest word {} ({} characters)",
        stats.longest_word, stats.longest_word_len
    );
    println!(
        "split        80/10/10, seed {}, block size {block}",
        args.corpus.split_seed
    );
    println!(
        "  train      {:>6} words  {:>7} examples",
        stats.train_words, stats.train_examples
    );
    println!(
        "  dev        {:>6} words  {:>7} examples",
        stats.dev_words, stats.dev_examples
    );
    println!(
        "  test       {:>6} words  {:>7} examples",
        stats.test_words, stats.test_examples
    );
    Ok(())
}

fn show(args: ShowArgs) -> Result<()> {
    let words = corpus::load_words(args.corpus.input.data.as_ref())?;
    let vocab = Vocab::from_words(&words)?;
    let block = args.corpus.block_size as usize;
    for word in words.iter().take(args.limit) {
        println!("{word}");
        let ex = Examples::from_words(std::slice::from_ref(word), &vocab, block)?;
        for i in 0..ex.len() {
            let ctx: Vec<usize> = ex.context(i).iter().map(|&c| c as usize).collect();
            println!(
                "{} ---> {}",
                vocab.decode(&ctx)?,
                vocab.char_at(ex.target(i) as usize)?
            );
        }
    }
    Ok(())
}
