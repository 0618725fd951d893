//! Word lists, splits, context windows and minibatches for makemore.
//!
//! This crate turns a text file of words (one per line) into what a character-level
//! language model trains on. It reads the file strictly ([`read_words`]: UTF-8, CRLF,
//! trimmed, blank lines skipped, errors name file and line), splits the words 80/10/10
//! with a shuffle that is bit-identical to Python's `random.seed(42); random.shuffle(words)`
//! ([`Split`]) so results compare directly with the published makemore numbers, builds
//! context windows of `block_size` characters ([`Examples`]) or whole words as input and
//! target sequences for sequence models ([`Sequences`]), and draws seeded minibatches
//! whose order depends only on the seed and the step ([`MinibatchSampler`]).
//!
//! It depends on no tensor library by default; the `burn` feature adds a burn `Batcher`.
//!
//! ```
//! use makemore_data::{Examples, Split, SplitRatios, parse_words};
//! use makemore_vocab::Vocab;
//!
//! let words = parse_words(b"emma\r\nolivia\n\n ava \n", "inline").unwrap();
//! assert_eq!(words, ["emma", "olivia", "ava"]);
//! let vocab = Vocab::from_words(&words).unwrap();
//!
//! // The notebook's view: "..." -> e, "..e" -> m, ...
//! let ex = Examples::from_words(&words[..1], &vocab, 3).unwrap();
//! assert_eq!(ex.len(), 5); // "emma" + end token
//! assert_eq!(ex.context(0), &[0, 0, 0]);
//!
//! let split = Split::new(words, 42, SplitRatios::default()).unwrap();
//! assert_eq!(split.train.len() + split.dev.len() + split.test.len(), 3);
//! ```

mod batch;
#[cfg(feature = "burn")]
mod batcher;
mod context;
mod corpus;
mod error;
mod pyrandom;
mod sequences;
mod split;

pub use batch::MinibatchSampler;
#[cfg(feature = "burn")]
pub use batcher::{ContextBatch, ContextBatcher, ContextItem};
pub use context::Examples;
pub use corpus::{parse_words, read_words};
pub use error::DataError;
pub use pyrandom::PyRandom;
pub use sequences::{Sequences, Tokens, MASKED};
pub use split::{Split, SplitName, SplitRatios};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
