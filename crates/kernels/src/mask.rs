//! Dropout masks drawn from a seeded ChaCha8 stream: on the host by the generator, and in
//! counter form ([`chacha8_block`], [`keep_bound`]) for a device that draws the same mask
//! itself ([`SamplingOps::fused_dropout_mask`](crate::SamplingOps::fused_dropout_mask)).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// The inverted-dropout mask of `n` units: unit `i` is kept (scaled by `1/keep`) when the
/// `i`-th `rng.random::<f64>()` is below `keep`, and zeroed otherwise.
///
/// The draws are taken from the stream in bulk (`fill_bytes`: the same little-endian `u64`s
/// that one `next_u64` after another gives, and `random::<f64>()` is `(u64 >> 11) · 2⁻⁵³`),
/// so the mask is exactly the one drawn a value at a time (tested), at a fraction of the cost.
pub fn dropout_mask(rng: &mut ChaCha8Rng, n: usize, keep: f64) -> Vec<f32> {
    // Masks this large are drawn in pieces on rayon's threads, each piece from its own
    // copy of the generator set to the piece's place in the stream.
    const PIECE: usize = 1 << 14;
    let scale = (1.0 / keep) as f32;
    // `(x >> 11)·2⁻⁵³ < keep` exactly when `x >> 11 < ⌈keep·2⁵³⌉`: both sides scaled by a
    // power of two (exact), and an integer is below a real number exactly when it is below
    // that number's ceiling. An integer comparison, which the compiler vectorises.
    let bound = keep_bound(keep);
    let start = rng.get_word_pos();
    let fill = |generator: &mut ChaCha8Rng, piece: &mut [f32]| {
        let mut draws = vec![0u64; piece.len()];
        generator.fill_bytes(bytemuck::cast_slice_mut(&mut draws));
        for (m, &x) in piece.iter_mut().zip(&draws) {
            // The stream's bytes are little-endian words.
            *m = if u64::from_le(x) >> 11 < bound {
                scale
            } else {
                0.0
            };
        }
    };
    let mut mask = vec![0f32; n];
    if n <= PIECE || rayon::current_num_threads() < 2 {
        fill(rng, &mut mask);
    } else {
        mask.par_chunks_mut(PIECE)
            .enumerate()
            .for_each(|(i, piece)| {
                let mut generator = rng.clone();
                // Two 32-bit words per draw.
                generator.set_word_pos(start + 2 * (i * PIECE) as u128);
                fill(&mut generator, piece);
            });
        rng.set_word_pos(start + 2 * n as u128);
    }
    mask
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
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    init[4..12].copy_from_slice(key);
    init[12] = block as u32;
    init[13] = (block >> 32) as u32;
    let mut x = init;
    fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    }
    for _ in 0..4 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    std::array::from_fn(|i| x[i].wrapping_add(init[i]))
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
