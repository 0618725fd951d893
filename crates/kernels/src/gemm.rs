//! The CPU kernels' matrix products: matrixmultiply's single-threaded `sgemm`, cut into one
//! piece of the output per rayon thread when a product is large.
//!
//! Every output element is computed by one thread in matrixmultiply's own order (its blocking
//! along the inner dimension does not depend on the output's size), so a product is the same
//! bit for bit for any thread count. [`product`] writes a new matrix without zero-filling it
//! first: with `beta = 0` matrixmultiply never reads the output.
//!
//! matrixmultiply was measured against the `gemm` crate on the models' shapes
//! (`xtask/bench/gemm`, docs/performance.md) and kept.

#![allow(unsafe_code)] // `sgemm` on a new matrix's uninitialised values (see `sgemm_uninit`)

use std::mem::MaybeUninit;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

/// Matrix products with fewer multiply-adds than this run on the calling thread.
const PARALLEL_MIN: usize = 1 << 20;

/// `c = a·b + beta·c`, split over rayon's threads when large (see the module docs).
pub(super) fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    let leaf = |a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, _: usize| {
        general_mat_mul(1.0, &a, &b, beta, &mut c)
    };
    pieces(a, b, c, 0, threads(&a, &b), &leaf);
}

/// `a·b` as a new `[a.nrows(), b.ncols()]` matrix, written once (no zero fill).
pub(super) fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::<f32>::uninit((a.nrows(), b.ncols()));
    let leaf = |a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<MaybeUninit<f32>>, _| {
        sgemm_uninit(a, b, c, 0.0)
    };
    pieces(a, b, c.view_mut(), 0, threads(&a, &b), &leaf);
    // SAFETY: `sgemm_uninit` with beta = 0 wrote every element of every piece, and the
    // pieces cover `c`.
    unsafe { c.assume_init() }
}

/// `a·b + bias` (the bias added to every row) as a new matrix: each thread writes the bias
/// into its own piece of the rows, then adds its product to them (beta = 1), so the output
/// is written once, in parallel, just before the product reads it. The same bits as
/// [`matmul`] into rows that start as the bias.
pub(super) fn affine(a: ArrayView2<f32>, b: ArrayView2<f32>, bias: &[f32]) -> Array2<f32> {
    let mut c = Array2::<f32>::uninit((a.nrows(), b.ncols()));
    debug_assert_eq!(bias.len(), b.ncols());
    let leaf = |a: ArrayView2<f32>,
                b: ArrayView2<f32>,
                mut c: ArrayViewMut2<MaybeUninit<f32>>,
                col: usize| {
        let bias = &bias[col..col + c.ncols()];
        for mut row in c.rows_mut() {
            for (o, &v) in row.iter_mut().zip(bias) {
                o.write(v);
            }
        }
        sgemm_uninit(a, b, c, 1.0);
    };
    pieces(a, b, c.view_mut(), 0, threads(&a, &b), &leaf);
    // SAFETY: every piece's values were written (the bias) before sgemm added to them, and
    // the pieces cover `c`.
    unsafe { c.assume_init() }
}

/// `c = a·b + beta·c` through matrixmultiply on values that are uninitialised when `beta`
/// is 0 (and written by the caller otherwise).
fn sgemm_uninit(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<MaybeUninit<f32>>,
    beta: f32,
) {
    let ((m, k), n) = (a.dim(), b.ncols());
    debug_assert_eq!(b.nrows(), k);
    debug_assert_eq!(c.dim(), (m, n));
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides are those of views of these shapes, so every element
    // sgemm touches lies in them; with beta = 0 sgemm writes each element of `c` without
    // reading it ("If β is zero, then C does not need to be initialized"), with beta ≠ 0 the
    // caller has written them, and `MaybeUninit<f32>` has the layout of `f32`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            a.strides()[0],
            a.strides()[1],
            b.as_ptr(),
            b.strides()[0],
            b.strides()[1],
            beta,
            c.as_mut_ptr().cast::<f32>(),
            rsc,
            csc,
        );
    }
}

/// One piece per rayon thread for a large product, else 1.
fn threads(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> usize {
    if a.nrows() * a.ncols() * b.ncols() < PARALLEL_MIN {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// `leaf(a, b, c, col)` cut into `pieces` products along the longer side of `c`, halving
/// recursively with `rayon::join`; `col` is the piece's first column in the whole output.
fn pieces<T: Send>(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: ArrayViewMut2<T>,
    col: usize,
    pieces: usize,
    leaf: &(impl Fn(ArrayView2<f32>, ArrayView2<f32>, ArrayViewMut2<T>, usize) + Sync),
) {
    // Cuts fall on multiples of 16 rows or columns (whole register tiles of the kernel).
    const ALIGN: usize = 16;
    let (rows, cols) = c.dim();
    let along_rows = rows >= cols;
    let len = if along_rows { rows } else { cols };
    if pieces < 2 || len < 2 * ALIGN {
        leaf(a, b, c, col);
        return;
    }
    let first = pieces / 2;
    let mid = (len * first / pieces).div_ceil(ALIGN) * ALIGN;
    if along_rows {
        let (a1, a2) = a.split_at(Axis(0), mid);
        let (c1, c2) = c.split_at(Axis(0), mid);
        rayon::join(
            || self::pieces(a1, b, c1, col, first, leaf),
            || self::pieces(a2, b, c2, col, pieces - first, leaf),
        );
    } else {
        let (b1, b2) = b.split_at(Axis(1), mid);
        let (c1, c2) = c.split_at(Axis(1), mid);
        rayon::join(
            || self::pieces(a, b1, c1, col, first, leaf),
            || self::pieces(a, b2, c2, col + mid, pieces - first, leaf),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `product` (uninitialised output) equals `matmul` into zeros, bit for bit, for
    /// transposed operands, shapes that are cut into pieces and empty inner dimensions.
    #[test]
    fn product_equals_matmul_into_zeros() {
        let pool = crate::test_pool(3);
        for &(m, k, n) in &[(3, 5, 7), (300, 70, 90), (64, 0, 20), (40, 300, 200)] {
            let a = Array2::from_shape_fn((k, m), |(i, j)| ((i * 31 + j * 7) % 13) as f32 - 6.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 11) % 17) as f32 * 0.1);
            let (a, b) = (a.t(), b.view());
            let mut zeros = Array2::zeros((m, n));
            pool.install(|| matmul(a, b, 0.0, zeros.view_mut()));
            let new = pool.install(|| product(a, b));
            assert_eq!(new, zeros, "{m}×{k}×{n}");
            // `affine` equals `matmul` into rows that start as the bias.
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 1.0).collect();
            let mut rows = Array2::from_shape_fn((m, n), |(_, j)| bias[j]);
            pool.install(|| matmul(a, b, 1.0, rows.view_mut()));
            for threads in [1, 3] {
                let pool = crate::test_pool(threads);
                let new = pool.install(|| affine(a, b, &bias));
                assert_eq!(new, rows, "{m}×{k}×{n} with a bias, {threads} thread(s)");
            }
            if k == 0 {
                assert!(new.iter().all(|&x| x == 0.0));
            }
        }
    }
}
