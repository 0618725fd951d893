//! Character vocabulary for makemore.
//!
//! A [`Vocab`] maps each character of a corpus to a small integer index. Index 0 is
//! always the boundary token `.` that marks both the start and the end of a word, exactly
//! as in Karpathy's makemore notebooks; the other characters follow in sorted order. The
//! vocabulary serialises to JSON so it can be stored next to every checkpoint. This crate
//! knows nothing about tensors or training.
//!
//! ```
//! use makemore_vocab::{Vocab, BOUNDARY};
//!
//! let vocab = Vocab::from_words(["emma", "olivia", "ava"]).unwrap();
//! assert_eq!(vocab.len(), 8); // '.' + a e i l m o v
//! assert_eq!(vocab.index_of(BOUNDARY), Some(0));
//! let ids = vocab.encode("ava").unwrap();
//! assert_eq!(ids, vec![1, 7, 1]);
//! assert_eq!(vocab.decode(&ids).unwrap(), "ava");
//! assert!(vocab.encode("bob").is_err()); // 'b' is not in the vocabulary
//! ```

mod error;
mod vocab;

pub use error::VocabError;
pub use vocab::{Vocab, BOUNDARY};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
