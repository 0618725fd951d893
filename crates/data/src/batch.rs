use serde::{Deserialize, Serialize};

/// Seeded minibatch sampling with replacement, like the notebook's
/// `torch.randint(0, n, (batch_size,))`.
///
/// The indices of step `s` depend only on `(seed, s)`: they come from a SplitMix64 stream
/// keyed by both. A run resumed at step `s` therefore draws exactly the batches an
/// uninterrupted run would, and the sampler's whole state is its seed.
///
/// ```
/// use makemore_data::MinibatchSampler;
/// let sampler = MinibatchSampler::new(7);
/// let mut a = Vec::new();
/// let mut b = Vec::new();
/// sampler.fill(12, 32, 1000, &mut a);
/// sampler.fill(12, 32, 1000, &mut b);
/// assert_eq!(a, b);
/// assert!(a.iter().all(|&i| i < 1000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinibatchSampler {
    seed: u64,
}

impl MinibatchSampler {
    /// A sampler with the given seed.
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Fills `out` with `batch_size` indices in `0..n` for training step `step`.
    ///
    /// When `batch_size >= n` the batch is the whole set in order (full-batch training).
    pub fn fill(&self, step: u64, batch_size: usize, n: usize, out: &mut Vec<usize>) {
        out.clear();
        if batch_size >= n {
            out.extend(0..n);
            return;
        }
        let mut state = splitmix(self.seed ^ splitmix(step.wrapping_add(0x5851_F42D_4C95_7F2D)));
        for _ in 0..batch_size {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            // Lemire's multiply-shift: bias below n / 2^64, far under anything measurable here.
            let r = ((u128::from(splitmix(state)) * n as u128) >> 64) as usize;
            out.push(r);
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_steps_differ_and_cover_the_range() {
        let s = MinibatchSampler::new(1);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        s.fill(0, 64, 100, &mut a);
        s.fill(1, 64, 100, &mut b);
        assert_ne!(a, b);
        let mut seen = [false; 10];
        for step in 0..50 {
            s.fill(step, 32, 10, &mut a);
            a.iter().for_each(|&i| seen[i] = true);
        }
        assert!(seen.iter().all(|&x| x));
    }

    #[test]
    fn full_batch_is_everything_in_order() {
        let mut a = Vec::new();
        MinibatchSampler::new(3).fill(5, 10, 4, &mut a);
        assert_eq!(a, [0, 1, 2, 3]);
    }
}
