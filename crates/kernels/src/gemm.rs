//! The CPU kernels' matrix products, cut into one piece of the output per rayon thread when
//! a product is large.
//!
//! Each piece is summed by [`direct`] on a CPU with AVX-512 (from the operands where they
//! lie, no packing) and by matrixmultiply's single-threaded `sgemm` elsewhere. Both add the
//! same products in the same order (matrixmultiply's: blocks of 256 along the inner
//! dimension, see [`direct`]), so a product is the same bit for bit on either path and for
//! any thread count: every output element is computed by one thread, in an order that does
//! not depend on the output's size. [`product`] writes a new matrix without zero-filling it
//! first (neither path reads the output when it is not added to).
//!
//! matrixmultiply was measured against the `gemm` crate on the models' shapes
//! (`xtask/bench/matmul`, docs/performance.md) and kept; [`direct`] against matrixmultiply by
//! `cargo run --release -p makemore-kernels --features ndarray --example kernel_times`.

#![allow(unsafe_code)] // products on raw parts of views, into uninitialised values (see `sgemm`)

use std::mem::MaybeUninit;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, CowArray};

#[cfg(target_arch = "x86_64")]
mod direct;

/// Matrix products with fewer multiply-adds than this run on the calling thread.
const PARALLEL_MIN: usize = 1 << 20;

/// `c = a·b + beta·c` for `beta` 0 or 1, split over rayon's threads when large (see the
/// module docs).
pub(super) fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
    assert!(beta == 0.0 || beta == 1.0, "beta {beta}: only 0 or 1");
    let b = rows_of(b, a.nrows());
    let b = b.view();
    let leaf = |a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, _: usize| {
        let (rsc, csc) = (c.strides()[0], c.strides()[1]);
        // SAFETY: `c` is a view of `a.nrows() × b.ncols()` initialised values that aliases
        // neither operand.
        unsafe { sgemm(a, b, c.as_mut_ptr(), rsc, csc, beta) }
    };
    pieces(a, b, c, 0, threads(&a, &b), &leaf);
}

/// `a·b` as a new `[a.nrows(), b.ncols()]` matrix, written once (no zero fill).
pub(super) fn product(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let b = rows_of(b, a.nrows());
    let b = b.view();
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
    let b = rows_of(b, a.nrows());
    let b = b.view();
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

/// `c = a·b + beta·c` on values that are uninitialised when `beta` is 0 (and written by the
/// caller otherwise).
fn sgemm_uninit(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<MaybeUninit<f32>>,
    beta: f32,
) {
    debug_assert_eq!(c.dim(), (a.nrows(), b.ncols()));
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: `c` is a view of `a.nrows() × b.ncols()` values that aliases neither operand,
    // `MaybeUninit<f32>` has the layout of `f32`, and the caller has written them when
    // `beta` is not 0.
    unsafe { sgemm(a, b, c.as_mut_ptr().cast::<f32>(), rsc, csc, beta) }
}

/// `c = a·b + beta·c` for `beta` 0 or 1: [`direct`] where it applies (AVX-512, rows of `b`
/// and of `c` contiguous), matrixmultiply's `sgemm` otherwise; the same bits either way
/// (see the module docs). With beta = 0 neither reads `c` ("If β is zero, then C does not
/// need to be initialized").
///
/// # Safety
/// `c` addresses `a.nrows() × b.ncols()` values with strides `rsc` and `csc`, aliases
/// neither operand, and its values are initialised when `beta` is 1.
unsafe fn sgemm(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    beta: f32,
) {
    let ((m, k), n) = (a.dim(), b.ncols());
    debug_assert_eq!(b.nrows(), k);
    debug_assert!(beta == 0.0 || beta == 1.0);
    #[cfg(target_arch = "x86_64")]
    if csc == 1 && rows_contiguous(&b) && crate::simd::has_avx512() {
        // SAFETY: the CPU has AVX-512F, the views address these shapes, `c` is as the
        // caller promised, and rows of `b` and `c` are contiguous.
        unsafe {
            direct::product(direct::Operands {
                m,
                k,
                n,
                a: a.as_ptr(),
                rsa: a.strides()[0],
                csa: a.strides()[1],
                b: b.as_ptr(),
                rsb: b.strides()[0],
                c,
                rsc,
                accumulate: beta != 0.0,
            });
        }
        return;
    }
    // SAFETY: as the caller promised.
    unsafe { packed(a, b, c, rsc, csc, beta) }
}

/// `c = a·b + beta·c` by matrixmultiply's `sgemm` (which packs both operands first).
///
/// # Safety
/// As for [`sgemm`].
unsafe fn packed(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    beta: f32,
) {
    // SAFETY: the pointers and strides are those of views of these shapes (and `c` as the
    // caller promised), so every element sgemm touches lies in them.
    unsafe {
        matrixmultiply::sgemm(
            a.nrows(),
            a.ncols(),
            b.ncols(),
            1.0,
            a.as_ptr(),
            a.strides()[0],
            a.strides()[1],
            b.as_ptr(),
            b.strides()[0],
            b.strides()[1],
            beta,
            c,
            rsc,
            csc,
        );
    }
}

/// `b` with contiguous rows, for [`direct`]: a transposed `b` (a layer's weight in the
/// backward pass) is copied once, before the product is cut into pieces, when there are
/// enough rows of `a` (`m`) to repay the copy; otherwise `b` as it is. A caller that uses
/// the same transposed `b` in many products (the recurrence, at every position) calls it
/// once and passes the rows to each.
pub(super) fn rows_of(b: ArrayView2<'_, f32>, m: usize) -> CowArray<'_, f32, ndarray::Ix2> {
    if rows_contiguous(&b) || m < COPY_B_MIN_ROWS || !crate::simd::has_avx512() {
        return CowArray::from(b);
    }
    let (k, n) = b.dim();
    #[cfg(target_arch = "x86_64")]
    if let Some(bt) = b.t().as_slice() {
        let mut copy = Vec::with_capacity(k * n);
        // SAFETY: the CPU has AVX-512F (checked above), `bt` holds the `n × k` values of
        // `b`'s transpose, and `copy` has room for `k × n`, all of which `transpose` writes.
        unsafe {
            direct::transpose(bt.as_ptr(), n, k, copy.as_mut_ptr());
            copy.set_len(k * n);
        }
        return CowArray::from(crate::buffer::matrix(k, n, copy));
    }
    CowArray::from(b.as_standard_layout().into_owned())
}

/// Whether the values along each row of `b` are contiguous, as [`direct`] reads them.
fn rows_contiguous(b: &ArrayView2<f32>) -> bool {
    b.strides()[1] == 1 || b.ncols() < 2
}

/// Products with fewer rows than this read a transposed `b` through matrixmultiply (which
/// packs it anyway) rather than copy it for [`direct`].
const COPY_B_MIN_ROWS: usize = 16;

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
    use ndarray::s;

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

    /// Products summed from the operands in place (`direct`, on a CPU with AVX-512) are
    /// matrixmultiply's bit for bit: inner dimensions across its blocks of 256, rows and
    /// columns that leave partial blocks of the output, transposed `a` and `b`, outputs
    /// that are written or added to, and pieces of an output (rows longer than the piece).
    #[test]
    fn products_are_matrixmultiplys_bit_for_bit() {
        if !crate::simd::has_avx512() {
            eprintln!("no AVX-512 on this CPU: the products summed in place are not tested here");
            return;
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut value = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        let shapes = [
            (1, 1, 1),
            (3, 5, 7),
            (13, 257, 33),
            (12, 256, 32),
            (25, 600, 100),
            (7, 513, 17),
            (1024, 128, 27),
            (70, 1030, 48),
            (64, 0, 20),
        ];
        for (m, k, n) in shapes {
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Array2::from_shape_fn(if a_t { (k, m) } else { (m, k) }, |_| value());
                let b = Array2::from_shape_fn(if b_t { (n, k) } else { (k, n) }, |_| value());
                let a = if a_t { a.t() } else { a.view() };
                let b = if b_t { b.t() } else { b.view() };
                for beta in [0.0, 1.0] {
                    // An output with 5 more columns than the product: its rows are longer.
                    let start = Array2::from_shape_fn((m, n + 5), |_| value());
                    let mut expected = start.clone();
                    let mut got = start.clone();
                    let (mut e, mut g) = (
                        expected.slice_mut(s![.., 2..n + 2]),
                        got.slice_mut(s![.., 2..n + 2]),
                    );
                    let (rsc, csc) = (e.strides()[0], e.strides()[1]);
                    // SAFETY: a view of `m × n` values, aliasing neither operand.
                    unsafe { packed(a, b, e.as_mut_ptr(), rsc, csc, beta) };
                    matmul(a, b, beta, g.view_mut());
                    let same = expected
                        .iter()
                        .zip(&got)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(
                        same,
                        "{m}×{k}×{n}, a transposed {a_t}, b transposed {b_t}, beta {beta}"
                    );
                }
            }
        }
    }
}
