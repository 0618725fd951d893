use serde::{Deserialize, Serialize};

use crate::{DataError, PyRandom};

/// Fractions of the words that go to train, dev and test.
///
/// The default is the notebook's 80/10/10. Cut points are computed as in the notebook:
/// `n1 = int(train * n)`, `n2 = int((1 - test) * n)` (for the default, `1 - 0.1 == 0.9`
/// exactly in floating point, so the sizes match Python's `int(0.9 * n)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitRatios {
    /// Fraction of words for training.
    pub train: f64,
    /// Fraction of words for development (model selection).
    pub dev: f64,
    /// Fraction of words held out for the final test.
    pub test: f64,
}

impl Default for SplitRatios {
    fn default() -> Self {
        Self {
            train: 0.8,
            dev: 0.1,
            test: 0.1,
        }
    }
}

impl SplitRatios {
    /// Checks that the ratios are finite, non-negative, give training a share, and add up to 1.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |reason: &str| DataError::BadRatios {
            train: self.train,
            dev: self.dev,
            test: self.test,
            reason: reason.to_string(),
        };
        let all = [self.train, self.dev, self.test];
        if all.iter().any(|r| !r.is_finite() || *r < 0.0) {
            return Err(bad("each ratio must be a finite number >= 0"));
        }
        if self.train <= 0.0 {
            return Err(bad("the train ratio must be > 0"));
        }
        let sum: f64 = all.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(bad(&format!("they add up to {sum}, not 1")));
        }
        Ok(())
    }

    /// The two cut points for `n` words: `(end of train, end of dev)`.
    pub fn cut_points(&self, n: usize) -> (usize, usize) {
        let n1 = (self.train * n as f64) as usize;
        let n2 = ((1.0 - self.test) * n as f64) as usize;
        let n2 = n2.clamp(n1, n);
        (n1.min(n), n2)
    }
}

/// Which part of a [`Split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    /// Training words.
    Train,
    /// Development words.
    Dev,
    /// Held-out test words.
    Test,
}

impl SplitName {
    /// All three, in order.
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Dev, SplitName::Test];

    /// `"train"`, `"dev"` or `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Dev => "dev",
            SplitName::Test => "test",
        }
    }
}

impl std::fmt::Display for SplitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Words shuffled with Python's generator and cut into train/dev/test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training words.
    pub train: Vec<String>,
    /// Development words.
    pub dev: Vec<String>,
    /// Test words.
    pub test: Vec<String>,
}

impl Split {
    /// Shuffles `words` as `random.seed(seed); random.shuffle(words)` and cuts them.
    pub fn new(mut words: Vec<String>, seed: u64, ratios: SplitRatios) -> Result<Self, DataError> {
        ratios.validate()?;
        PyRandom::new(seed).shuffle(&mut words);
        let (n1, n2) = ratios.cut_points(words.len());
        let test = words.split_off(n2);
        let dev = words.split_off(n1);
        Ok(Self {
            train: words,
            dev,
            test,
        })
    }

    /// The words of one part.
    pub fn part(&self, name: SplitName) -> &[String] {
        match name {
            SplitName::Train => &self.train,
            SplitName::Dev => &self.dev,
            SplitName::Test => &self.test,
        }
    }

    /// Which part a word belongs to, if any (first match in train, dev, test order).
    pub fn find(&self, word: &str) -> Option<SplitName> {
        SplitName::ALL
            .into_iter()
            .find(|&name| self.part(name).iter().any(|w| w == word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn numbered(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("w{i}")).collect()
    }

    #[test]
    fn matches_python_for_a_small_list() {
        // python3 -c 'import random; w=[f"w{i}" for i in range(20)]; random.seed(42);
        //   random.shuffle(w); n=len(w); print(w[:int(0.8*n)], w[int(0.8*n):int(0.9*n)], w[int(0.9*n):])'
        let s = Split::new(numbered(20), 42, SplitRatios::default()).unwrap();
        assert_eq!(s.dev, ["w7", "w8"]);
        assert_eq!(s.test, ["w0", "w3"]);
        assert_eq!(s.train.len(), 16);
        assert_eq!(&s.train[..4], ["w19", "w5", "w14", "w4"]);
    }

    #[test]
    fn canonical_sizes() {
        let r = SplitRatios::default();
        assert_eq!(r.cut_points(32033), (25626, 28829));
    }

    #[test]
    fn bad_ratios_are_refused() {
        let bad = |train, dev, test| SplitRatios { train, dev, test }.validate().is_err();
        assert!(bad(0.8, 0.1, 0.2));
        assert!(bad(0.0, 0.5, 0.5));
        assert!(bad(-0.1, 0.6, 0.5));
        assert!(bad(f64::NAN, 0.1, 0.1));
        assert!(!bad(1.0, 0.0, 0.0));
    }

    proptest! {
        #[test]
        fn split_partitions_the_words(n in 0usize..300, seed in any::<u64>(),
                                      train in 0.05f64..1.0, dev_share in 0.0f64..1.0) {
            let dev = (1.0 - train) * dev_share;
            let ratios = SplitRatios { train, dev, test: 1.0 - train - dev };
            let words = numbered(n);
            let s = Split::new(words.clone(), seed, ratios).unwrap();
            let mut all: Vec<String> = s.train.iter().chain(&s.dev).chain(&s.test).cloned().collect();
            all.sort();
            let mut expected = words;
            expected.sort();
            prop_assert_eq!(all, expected);
            prop_assert_eq!(s.train.len(), (train * n as f64) as usize);
        }
    }
}
