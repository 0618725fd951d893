//! Dropout masks drawn from a seeded ChaCha8 stream: on the host by the generator, and in
//! counter form ([`chacha8_block`], [`keep_bound`]) for a device that draws the same mask
//! itself ([`SamplingOps::fused_dropout_mask`](crate::SamplingOps::fused_dropout_mask)).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The inverted-dropout mask of `n` units: unit `i` is kept (scaled by `1/keep`) when the
/// `i`-th `rng.random::<f64>()` is below `keep`, and zeroed otherwise.
///
/// `random::<f64>()` is `(x >> 11) · 2⁻⁵³` of the next `u64` `x`: two 32-bit words of the
/// stream, low word first. The mask takes the words in bulk and compares each `x` as an
/// integer, so it is exactly the mask drawn a value at a time (tested), at a fraction of the
/// cost. On a CPU with AVX-512 it computes the words itself, sixteen ChaCha8 blocks side by
/// side from the generator's key, stream and position; elsewhere it takes them from the
/// generator (`fill_bytes`). The generator then moves on past the `2n` words, as if it had
/// drawn them.
pub fn dropout_mask(rng: &mut ChaCha8Rng, n: usize, keep: f64) -> Vec<f32> {
    dropout_mask_by(Draws::for_cpu(), rng, n, keep)
}

/// How [`dropout_mask`] gets the stream's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Draws {
    /// From the generator, `fill_bytes` (rand_chacha's own vector code: AVX2 at best).
    Generator,
    /// Computed here with AVX-512, sixteen blocks at a time ([`wide`]).
    Wide,
}

impl Draws {
    fn for_cpu() -> Self {
        if crate::simd::has_avx512() {
            Self::Wide
        } else {
            Self::Generator
        }
    }
}

fn dropout_mask_by(draws: Draws, rng: &mut ChaCha8Rng, n: usize, keep: f64) -> Vec<f32> {
    // Masks this large are drawn in pieces on rayon's threads, each from its own place in
    // the stream.
    const PIECE: usize = 1 << 14;
    let keep = Keep::new(keep);
    let start = rng.get_word_pos();
    let generator = rng.clone();
    let stream = Stream {
        key: key_words(rng.get_seed()),
        nonce: rng.get_stream(),
    };
    // The units of the draws of `piece` from word `word` on.
    let fill = |word: u128, piece: &mut [f32]| match draws {
        Draws::Wide => stream.fill(word, keep, piece),
        Draws::Generator => {
            let mut generator = generator.clone();
            generator.set_word_pos(word);
            let mut words = vec![0u64; piece.len()];
            generator.fill_bytes(bytemuck::cast_slice_mut(&mut words));
            for (m, &x) in piece.iter_mut().zip(&words) {
                // The stream's bytes are little-endian words.
                let x = u64::from_le(x);
                *m = keep.unit(x as u32, (x >> 32) as u32);
            }
        }
    };
    let mut mask = vec![0f32; n];
    if n <= PIECE || rayon::current_num_threads() < 2 {
        fill(start, &mut mask);
    } else {
        mask.par_chunks_mut(PIECE)
            .enumerate()
            // Two 32-bit words per draw.
            .for_each(|(i, piece)| fill(start + 2 * (i * PIECE) as u128, piece));
    }
    rng.set_word_pos(start + 2 * n as u128);
    mask
}

/// Which draws keep their unit, and the kept units' value.
#[derive(Debug, Clone, Copy)]
struct Keep {
    /// A draw `x` keeps its unit when `x < limit`, or always when `limit` is `None`.
    limit: Option<u64>,
    scale: f32,
}

impl Keep {
    fn new(keep: f64) -> Self {
        // `(x >> 11)·2⁻⁵³ < keep` exactly when `x >> 11 < ⌈keep·2⁵³⌉ = bound` (both sides
        // scaled by a power of two, and an integer is below a real number exactly when it is
        // below that number's ceiling), that is when `x < bound·2¹¹`, which fits in 64 bits
        // unless every draw passes.
        let bound = keep_bound(keep);
        Self {
            limit: (bound < 1 << 53).then_some(bound << 11),
            scale: (1.0 / keep) as f32,
        }
    }

    /// The unit of the draw whose words are `lo` and `hi`.
    #[inline(always)]
    fn unit(&self, lo: u32, hi: u32) -> f32 {
        let x = u64::from(lo) | (u64::from(hi) << 32);
        if self.limit.is_none_or(|limit| x < limit) {
            self.scale
        } else {
            0.0
        }
    }
}

/// A ChaCha8 stream: its key and stream id, as rand_chacha lays them out.
struct Stream {
    key: [u32; 8],
    nonce: u64,
}

impl Stream {
    /// The units of `out.len()` draws from word `word` of the stream on: whole blocks
    /// sixteen at a time with AVX-512 ([`wide`]), the rest a block at a time.
    fn fill(&self, word: u128, keep: Keep, out: &mut [f32]) {
        if word % 2 == 1 {
            // Draws that straddle blocks: never the case for masks drawn one after another.
            return self.fill_words(word, keep, out);
        }
        // Up to the next block boundary; then sixteen blocks (128 draws) at a time; then
        // the rest.
        let head = (((16 - word % 16) % 16) / 2) as usize;
        let (head_out, rest) = out.split_at_mut(head.min(out.len()));
        self.fill_words(word, keep, head_out);
        let word = word + 2 * head_out.len() as u128;
        let (body, tail) = rest.split_at_mut(rest.len() / wide::DRAWS * wide::DRAWS);
        if !wide::fill(self, (word / 16) as u64, keep, body) {
            self.fill_words(word, keep, body);
        }
        self.fill_words(word + 2 * body.len() as u128, keep, tail);
    }

    /// The units of `out.len()` draws from word `word` on, a block at a time.
    fn fill_words(&self, word: u128, keep: Keep, out: &mut [f32]) {
        let mut cached: Option<(u128, [u32; 16])> = None;
        let mut at = |w: u128| {
            let block = w / 16;
            let words = match cached {
                Some((b, words)) if b == block => words,
                _ => {
                    let words = chacha8_block_of(&self.key, self.nonce, block as u64);
                    cached = Some((block, words));
                    words
                }
            };
            words[(w % 16) as usize]
        };
        for (i, o) in out.iter_mut().enumerate() {
            let w = word + 2 * i as u128;
            let lo = at(w);
            *o = keep.unit(lo, at(w + 1));
        }
    }
}

/// ChaCha8 with AVX-512: sixteen consecutive blocks at once, one per 32-bit lane, then
/// transposed so that each block's sixteen words (its eight draws) are one vector.
mod wide {
    use super::{Keep, Stream};

    /// Draws per group of sixteen blocks.
    pub(super) const DRAWS: usize = 16 * 8;

    /// The units of the draws of blocks `first ..` into `out` (a whole number of groups of
    /// sixteen blocks) when the CPU has AVX-512; `false`, and nothing written, when not.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub(super) fn fill(stream: &Stream, first: u64, keep: Keep, out: &mut [f32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if crate::simd::has_avx512() {
            // SAFETY: the CPU has AVX-512F (checked just above).
            #[allow(unsafe_code)]
            unsafe {
                x86::fill(stream, first, keep, out)
            };
            return true;
        }
        false
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)] // AVX-512 intrinsics; unaligned stores within `out`
    mod x86 {
        use std::arch::x86_64::*;

        use super::super::{block_input, Keep, Stream};
        use super::DRAWS;

        /// The units of the draws of blocks `first ..` into `out`, a whole number of groups
        /// of sixteen blocks.
        ///
        /// # Safety
        /// The CPU must have AVX-512F.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn fill(stream: &Stream, first: u64, keep: Keep, out: &mut [f32]) {
            debug_assert_eq!(out.len() % DRAWS, 0);
            let input = block_input(&stream.key, stream.nonce, 0);
            let splat = |w: u32| _mm512_set1_epi32(w as i32);
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let limit = _mm512_set1_epi64(keep.limit.unwrap_or(0) as i64);
            let scale = _mm512_set1_ps(keep.scale);
            for (g, group) in out.chunks_exact_mut(DRAWS).enumerate() {
                let block0 = first.wrapping_add(16 * g as u64);
                // The 64-bit block counters of the sixteen lanes, carried into the high word.
                let lo0 = splat(block0 as u32);
                let lo = _mm512_add_epi32(lo0, lanes);
                let carry = _mm512_cmplt_epu32_mask(lo, lo0);
                let hi0 = splat((block0 >> 32) as u32);
                let hi = _mm512_mask_add_epi32(hi0, carry, hi0, splat(1));
                let init: [__m512i; 16] = std::array::from_fn(|w| match w {
                    12 => lo,
                    13 => hi,
                    _ => splat(input[w]),
                });
                let mut x = init;
                super::super::rounds(&mut x, quarter);
                for (x, init) in x.iter_mut().zip(&init) {
                    *x = _mm512_add_epi32(*x, *init);
                }
                let blocks = transpose(&x);
                // Block `l`'s 64-bit lanes are its eight draws, in order (little-endian: the
                // low word first). Two blocks, sixteen units, per store.
                for (pair, out) in blocks.chunks_exact(2).zip(group.chunks_exact_mut(16)) {
                    let kept = |v: __m512i| match keep.limit {
                        Some(_) => _mm512_cmplt_epu64_mask(v, limit),
                        None => 0xff,
                    };
                    let bits = u16::from(kept(pair[0])) | (u16::from(kept(pair[1])) << 8);
                    // SAFETY: `out` is sixteen f32s.
                    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), _mm512_maskz_mov_ps(bits, scale)) };
                }
            }
        }

        /// One ChaCha quarter round on words `a`, `b`, `c`, `d` of every lane.
        #[inline(always)]
        fn quarter(x: &mut [__m512i; 16], a: usize, b: usize, c: usize, d: usize) {
            // SAFETY (all below): register arithmetic; `fill` has checked for AVX-512F.
            unsafe {
                x[a] = _mm512_add_epi32(x[a], x[b]);
                x[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[d], x[a]));
                x[c] = _mm512_add_epi32(x[c], x[d]);
                x[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[b], x[c]));
                x[a] = _mm512_add_epi32(x[a], x[b]);
                x[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[d], x[a]));
                x[c] = _mm512_add_epi32(x[c], x[d]);
                x[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[b], x[c]));
            }
        }

        /// The 16×16 transpose of 32-bit words: row `w` (word `w` of every block) in,
        /// column `l` (every word of block `l`) out.
        #[inline(always)]
        fn transpose(r: &[__m512i; 16]) -> [__m512i; 16] {
            // SAFETY: register shuffles; `fill` has checked for AVX-512F.
            unsafe {
                // Rows paired word by word: in 128-bit lane k, a[2i] holds rows 2i and 2i+1
                // at columns 4k and 4k+1, a[2i+1] at columns 4k+2 and 4k+3.
                let a: [__m512i; 16] = std::array::from_fn(|j| {
                    let (p, q) = (r[j & !1], r[j | 1]);
                    if j % 2 == 0 {
                        _mm512_unpacklo_epi32(p, q)
                    } else {
                        _mm512_unpackhi_epi32(p, q)
                    }
                });
                // In 128-bit lane k, b[4i+m] holds rows 4i .. 4i+4 of column 4k+m.
                let b: [__m512i; 16] = std::array::from_fn(|j| {
                    let (i, m) = (j / 4, j % 4);
                    let (p, q) = (a[4 * i + m / 2], a[4 * i + 2 + m / 2]);
                    if m % 2 == 0 {
                        _mm512_unpacklo_epi64(p, q)
                    } else {
                        _mm512_unpackhi_epi64(p, q)
                    }
                });
                // Column 4k+m is lane k of b[m], b[4+m], b[8+m], b[12+m].
                let mut out = [_mm512_setzero_si512(); 16];
                for m in 0..4 {
                    let (p, q, r, s) = (b[m], b[4 + m], b[8 + m], b[12 + m]);
                    let u0 = _mm512_shuffle_i32x4::<0x44>(p, q);
                    let u1 = _mm512_shuffle_i32x4::<0xee>(p, q);
                    let v0 = _mm512_shuffle_i32x4::<0x44>(r, s);
                    let v1 = _mm512_shuffle_i32x4::<0xee>(r, s);
                    out[m] = _mm512_shuffle_i32x4::<0x88>(u0, v0);
                    out[4 + m] = _mm512_shuffle_i32x4::<0xdd>(u0, v0);
                    out[8 + m] = _mm512_shuffle_i32x4::<0x88>(u1, v1);
                    out[12 + m] = _mm512_shuffle_i32x4::<0xdd>(u1, v1);
                }
                out
            }
        }
    }
}

/// The ChaCha8 key of `ChaCha8Rng::seed_from_u64(seed)`, as eight little-endian words: what a
/// device needs to draw the stream itself.
pub fn chacha8_key(seed: u64) -> [u32; 8] {
    key_words(ChaCha8Rng::seed_from_u64(seed).get_seed())
}

/// A ChaCha key's 32 bytes as its eight little-endian words.
pub fn key_words(bytes: [u8; 32]) -> [u32; 8] {
    std::array::from_fn(|i| {
        u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    })
}

/// Block `block` of the ChaCha8 stream 0 of `key` (rand_chacha's layout: the constants,
/// the key, a 64-bit block counter, a 64-bit stream id): 16 words, the ones `ChaCha8Rng`
/// yields from word `16 · block` on.
pub fn chacha8_block(key: &[u32; 8], block: u64) -> [u32; 16] {
    chacha8_block_of(key, 0, block)
}

/// The sixteen input words of block `block` of stream `nonce` of `key`.
fn block_input(key: &[u32; 8], nonce: u64, block: u64) -> [u32; 16] {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    init[4..12].copy_from_slice(key);
    init[12] = block as u32;
    init[13] = (block >> 32) as u32;
    init[14] = nonce as u32;
    init[15] = (nonce >> 32) as u32;
    init
}

/// [`chacha8_block`] of stream `nonce`.
fn chacha8_block_of(key: &[u32; 8], nonce: u64, block: u64) -> [u32; 16] {
    let init = block_input(key, nonce, block);
    let mut x = init;
    rounds(&mut x, |x, a, b, c, d| {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    });
    std::array::from_fn(|i| x[i].wrapping_add(init[i]))
}

/// ChaCha8's eight rounds, as four double rounds (the columns, then the diagonals) of
/// `quarter` (a quarter round on words `a`, `b`, `c`, `d` of the state `x`): one schedule
/// for the scalar block and for sixteen blocks in vectors ([`wide`]).
#[inline(always)]
fn rounds<T>(x: &mut [T; 16], quarter: impl Fn(&mut [T; 16], usize, usize, usize, usize)) {
    // Written out, not looped over a table: with constant indices the sixteen vectors of
    // the wide form stay in registers.
    for _ in 0..4 {
        quarter(x, 0, 4, 8, 12);
        quarter(x, 1, 5, 9, 13);
        quarter(x, 2, 6, 10, 14);
        quarter(x, 3, 7, 11, 15);
        quarter(x, 0, 5, 10, 15);
        quarter(x, 1, 6, 11, 12);
        quarter(x, 2, 7, 8, 13);
        quarter(x, 3, 4, 9, 14);
    }
}

/// `⌈keep · 2⁵³⌉`: a draw `x` keeps its unit when `x >> 11` is below it (the CPU's test).
pub fn keep_bound(keep: f64) -> u64 {
    (keep * (1u64 << 53) as f64).ceil() as u64
}

/// The mask the CPU draws for `n` units from the stream of `key` from word `start` on: its
/// generator, rebuilt from the key and moved to `start`, through its own mask code.
/// What a device's kernel must reproduce unit by unit from the counter
/// ([`chacha8_block`] and [`keep_bound`]).
pub fn dropout_mask_at(key: &[u32; 8], start: u64, n: usize, keep: f64) -> Vec<f32> {
    let mut seed = [0u8; 32];
    for (bytes, word) in seed.chunks_exact_mut(4).zip(key) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_word_pos(u128::from(start));
    dropout_mask(&mut rng, n, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The mask drawn a value at a time, as the module docs define it.
    fn one_at_a_time(rng: &mut ChaCha8Rng, n: usize, keep: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                if rng.random::<f64>() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    #[test]
    fn masks_are_the_value_at_a_time_masks_from_any_place_in_any_stream() {
        // Both ways of drawing the words; the computed one needs AVX-512.
        let mut ways = vec![Draws::Generator];
        if crate::simd::has_avx512() {
            ways.push(Draws::Wide);
        } else {
            eprintln!("no AVX-512 on this CPU: the masks computed with it are not tested here");
        }
        assert_eq!(Draws::for_cpu(), *ways.last().unwrap());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // Sizes around the sixteen-block groups (128 draws) and the pieces (2¹⁴ draws),
        // from an odd word, from the middle of a block and from a block boundary, on stream
        // 0 and others, for keeps including 1 (every unit kept) and one that keeps few; a
        // block counter that crosses 2³² inside a group.
        for draws in ways {
            for (nonce, skip, keep) in [
                (0u64, 0u128, 0.68),
                (0, 3, 0.5),
                (0, 10, 0.9),
                (5, 6, 0.68),
                (u64::MAX, 1, 0.1),
                (0, 16, 1.0),
                (0, 2, 1e-9),
                (9, 16 * ((1 << 32) - 5) + 4, 0.68),
            ] {
                let mut fast = ChaCha8Rng::seed_from_u64(2_147_483_647);
                fast.set_stream(nonce);
                fast.set_word_pos(skip);
                let mut slow = fast.clone();
                for n in [0usize, 1, 7, 127, 128, 129, 1000, 16_384, 40_000] {
                    let mask = pool.install(|| dropout_mask_by(draws, &mut fast, n, keep));
                    assert_eq!(
                        mask,
                        one_at_a_time(&mut slow, n, keep),
                        "{draws:?}: stream {nonce} from word {skip}, keep {keep}, {n} units"
                    );
                    // Two words, so that the next mask starts on a word of the same parity.
                    assert_eq!(fast.next_u64(), slow.next_u64(), "the generator moved on");
                }
            }
        }
    }

    #[test]
    fn the_counter_form_of_the_stream_is_rand_chachas() {
        for seed in [0u64, 7, 2_147_483_647] {
            let key = chacha8_key(seed);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for block in 0..9 {
                let words: Vec<u32> = (0..16).map(|_| rng.next_u32()).collect();
                assert_eq!(
                    words,
                    chacha8_block(&key, block),
                    "seed {seed} block {block}"
                );
            }
        }
        // The masks, from the start and from a place in the stream: the generator rebuilt
        // from the key, and the counter form unit by unit (what the device kernel computes).
        let counter_form = |key: &[u32; 8], start: u64, n: u64, keep: f64| -> Vec<f32> {
            let bound = keep_bound(keep);
            (0..n)
                .map(|i| {
                    let w = start + 2 * i;
                    let block = chacha8_block(key, w / 16);
                    let (lo, hi) = (block[(w % 16) as usize], block[(w % 16 + 1) as usize]);
                    let x = u64::from(lo) | (u64::from(hi) << 32);
                    if x >> 11 < bound {
                        (1.0 / keep) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let first = dropout_mask(&mut rng, 37, 0.8);
        let second = dropout_mask(&mut rng, 1000, 0.8);
        let key = chacha8_key(3);
        assert_eq!(first, dropout_mask_at(&key, 0, 37, 0.8));
        assert_eq!(second, dropout_mask_at(&key, 74, 1000, 0.8));
        assert_eq!(first, counter_form(&key, 0, 37, 0.8));
        assert_eq!(second, counter_form(&key, 74, 1000, 0.8));
    }
}
