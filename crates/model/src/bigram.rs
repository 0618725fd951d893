use rand::Rng;

/// The count-based bigram model: P(next | previous) from counts with add-`k` smoothing.
///
/// The baseline every other number is compared with (makemore part 1). Indices are
/// vocabulary indices; 0 is the boundary, so each word is scored from `.` to `.`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bigram {
    vocab_size: usize,
    /// Row-major `[vocab, vocab]` probabilities: row = previous, column = next.
    probs: Vec<f64>,
}

impl Bigram {
    /// Fits counts from encoded words (without boundaries), smoothing each count by `k`.
    pub fn fit(words: &[Vec<usize>], vocab_size: usize, k: f64) -> Self {
        let mut counts = vec![k; vocab_size * vocab_size];
        for w in words {
            let mut prev = 0;
            for &c in w.iter().chain(std::iter::once(&0)) {
                counts[prev * vocab_size + c] += 1.0;
                prev = c;
            }
        }
        for row in counts.chunks_mut(vocab_size) {
            let total: f64 = row.iter().sum();
            if total > 0.0 {
                row.iter_mut().for_each(|p| *p /= total);
            }
        }
        Self {
            vocab_size,
            probs: counts,
        }
    }

    /// P(next | prev).
    pub fn prob(&self, prev: usize, next: usize) -> f64 {
        self.probs[prev * self.vocab_size + next]
    }

    /// Mean negative log-likelihood per character (boundary included) of encoded words.
    pub fn nll(&self, words: &[Vec<usize>]) -> f64 {
        let (mut total, mut n) = (0.0, 0usize);
        for w in words {
            let mut prev = 0;
            for &c in w.iter().chain(std::iter::once(&0)) {
                total -= self.prob(prev, c).ln();
                n += 1;
                prev = c;
            }
        }
        total / n.max(1) as f64
    }

    /// The whole-corpus figure exactly as makemore part 1 computes it: counts + `k`, the
    /// probabilities as `float32` tensors, and `log_likelihood += log(prob)` summed one
    /// bigram at a time in `float32`. Returns (the negated sum, the mean, the bigrams). On
    /// the canonical names.txt with `k = 1` that is the lecture's `559951.5625` and `2.4544`;
    /// [`Bigram::nll`] sums in `f64` and gives the exact mean, 2.45458: the lecture's figure is
    /// off in its fourth place by its `float32` running sum.
    pub fn lecture_nll(words: &[Vec<usize>], vocab_size: usize, k: f64) -> (f32, f32, usize) {
        let mut counts = vec![0u64; vocab_size * vocab_size];
        for w in words {
            let mut prev = 0;
            for &c in w.iter().chain(std::iter::once(&0)) {
                counts[prev * vocab_size + c] += 1;
                prev = c;
            }
        }
        let k = k as f32;
        let probs: Vec<f32> = counts
            .chunks(vocab_size)
            .flat_map(|row| {
                let total: f32 = row.iter().map(|&c| c as f32 + k).sum();
                row.iter().map(move |&c| (c as f32 + k) / total)
            })
            .collect();
        let (mut log_likelihood, mut n) = (0f32, 0usize);
        for w in words {
            let mut prev = 0;
            for &c in w.iter().chain(std::iter::once(&0)) {
                // torch.log of a float32: the correctly rounded logarithm.
                log_likelihood += f64::from(probs[prev * vocab_size + c]).ln() as f32;
                n += 1;
                prev = c;
            }
        }
        (-log_likelihood, -log_likelihood / n.max(1) as f32, n)
    }

    /// Draws one word (indices, without boundaries), at most `max_len` characters.
    pub fn sample<R: Rng>(&self, rng: &mut R, max_len: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut prev = 0;
        while out.len() < max_len {
            let row = &self.probs[prev * self.vocab_size..(prev + 1) * self.vocab_size];
            let mut u: f64 = rng.random::<f64>();
            let mut next = self.vocab_size - 1;
            for (i, &p) in row.iter().enumerate() {
                if u < p {
                    next = i;
                    break;
                }
                u -= p;
            }
            if next == 0 {
                break;
            }
            out.push(next);
            prev = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_distributions_and_counts_are_right() {
        // words "ab", "a" over vocab {., a, b}
        let b = Bigram::fit(&[vec![1, 2], vec![1]], 3, 0.0);
        assert_eq!(b.prob(0, 1), 1.0); // every word starts with a
        assert_eq!(b.prob(1, 2), 0.5); // a -> b once, a -> . once
        assert_eq!(b.prob(2, 0), 1.0);
        let nll = b.nll(&[vec![1, 2], vec![1]]);
        // -(ln1 + ln.5 + ln1 + ln1 + ln.5) / 5
        assert!((nll - 2.0 * 2f64.ln() / 5.0).abs() < 1e-12);
        let smoothed = Bigram::fit(&[vec![1, 2]], 3, 1.0);
        for prev in 0..3 {
            let s: f64 = (0..3).map(|n| smoothed.prob(prev, n)).sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
    }
}
