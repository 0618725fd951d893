//! Fresh output buffers for the CPU kernels, and matrices made of them.
//!
//! A kernel's output starts as zeros that the kernel then overwrites. `vec![0.0; n]` is one
//! `memset` on the calling thread: in a profile of makemore.py's Transformer (batch 32) the
//! kernels' output buffers' zero fills were about 5% of a step, all of it on one thread while
//! the kernels themselves run on all of them. [`zeros`] writes the zeros in the pieces the
//! kernels use, on rayon's threads.

#![allow(unsafe_code)] // `set_len` after every value has been written (see `zeros`)

use std::mem::MaybeUninit;

use ndarray::Array2;
use rayon::prelude::*;

use crate::kernels::units_per_piece;

/// `n` zeros, written by rayon's threads in one piece each when `n` is large.
pub(crate) fn zeros(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    let piece = units_per_piece(n, 1);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(piece)
        .for_each(|piece| piece.fill(MaybeUninit::new(0.0)));
    // SAFETY: the first `n` values (within the capacity) were all written just above.
    unsafe { v.set_len(n) };
    v
}

/// `values` (row-major, `rows · cols` of them) as a matrix.
pub(crate) fn matrix(rows: usize, cols: usize, values: Vec<f32>) -> Array2<f32> {
    match Array2::from_shape_vec((rows, cols), values) {
        Ok(m) => m,
        // Every caller passes exactly `rows · cols` values.
        Err(e) => unreachable!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    /// Every value is a zero, for sizes below and above the split, on 1 and 3 threads.
    #[test]
    fn zeros_are_zeros() {
        for threads in [1, 3] {
            let pool = crate::test_pool(threads);
            for n in [0, 1, 17, (1 << 17) + 3, 1 << 19] {
                let v = pool.install(|| super::zeros(n));
                assert_eq!(v.len(), n);
                assert!(
                    v.iter().all(|&x| x.to_bits() == 0),
                    "{n} values, {threads} threads"
                );
            }
        }
    }
}
