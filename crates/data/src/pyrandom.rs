use rand_mt::Mt;

/// The subset of CPython's `random.Random` needed to reproduce its shuffles bit for bit.
///
/// CPython seeds its Mersenne Twister from an integer with `init_by_array`, using the
/// integer's absolute value split into 32-bit words (least significant first), and
/// `shuffle` draws with rejection sampling on `getrandbits`. Both are reproduced here,
/// so `PyRandom::new(42).shuffle(&mut v)` permutes `v` exactly as
/// `random.seed(42); random.shuffle(v)` does in Python 3.
///
/// ```
/// use makemore_data::PyRandom;
/// let mut v: Vec<u32> = (0..10).collect();
/// PyRandom::new(42).shuffle(&mut v);
/// // python3 -c 'import random; random.seed(42); v=list(range(10)); random.shuffle(v); print(v)'
/// assert_eq!(v, [7, 3, 2, 8, 5, 6, 9, 4, 0, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Mt,
}

impl PyRandom {
    /// Seeds like `random.seed(seed)` for an integer seed.
    pub fn new(seed: u64) -> Self {
        let low = seed as u32;
        let high = (seed >> 32) as u32;
        let mt = if high == 0 {
            Mt::new_with_key([low])
        } else {
            Mt::new_with_key([low, high])
        };
        Self { mt }
    }

    /// `random.getrandbits(k)` for `1 <= k <= 64`.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!((1..=64).contains(&k), "getrandbits supports 1..=64 bits");
        if k <= 32 {
            return u64::from(self.mt.next_u32() >> (32 - k));
        }
        // CPython fills 32-bit words least significant first; the last word is truncated.
        let low = u64::from(self.mt.next_u32());
        let high = u64::from(self.mt.next_u32() >> (64 - k));
        (high << 32) | low
    }

    /// `random._randbelow(n)`: uniform in `0..n`, by rejection sampling.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(x)`: Fisher–Yates from the end, as CPython does it.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}
