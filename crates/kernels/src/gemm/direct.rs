//! Matrix products with AVX-512 that read their operands where they lie, without packing.
//!
//! matrixmultiply copies ("packs") both operands into its own layout before every product.
//! The models' products are short along the inner dimension (128 to 1,024) and their
//! operands come straight from the previous operation, so in a record-sized Transformer step
//! on two threads the packing took about a quarter of the products' time. Here each
//! 12 × 32 block of the output is summed in 24 vector registers straight from `a` (any
//! strides: each value is broadcast from where it lies) and `b` (rows of contiguous values),
//! and a block of `b`'s rows (at most 256 × 32 values) is reused from the L1 cache by every
//! block of rows.
//!
//! The sums are matrixmultiply's, in its order, so the results are the same bit for bit:
//! along the inner dimension in blocks of [`KC`] = 256 (its `kc` for `f32`), each block a
//! chain of fused multiply-adds from zero, value after value; the first block's sum is the
//! output (or is added to it, when the output already holds a bias), and every later
//! block's sum is added to the output. matrixmultiply's AVX-512 and AVX2 kernels both sum
//! that way; this path runs only where the CPU has AVX-512.

#![allow(unsafe_code)] // AVX-512 intrinsics on raw pointers into the operands' views

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// matrixmultiply's block along the inner dimension for `f32` (`S_KC`).
const KC: usize = 256;
/// Rows of a block of the output.
const MR: usize = 12;
/// Columns of a block of the output: two vectors of 16.
const NR: usize = 32;

/// The operands of one product `c = a·b (+ c)`, as raw parts of ndarray views.
#[derive(Clone, Copy)]
pub(super) struct Operands {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) n: usize,
    pub(super) a: *const f32,
    pub(super) rsa: isize,
    pub(super) csa: isize,
    /// `b`'s rows; its values along a row are contiguous.
    pub(super) b: *const f32,
    pub(super) rsb: isize,
    /// `c`'s rows; its values along a row are contiguous.
    pub(super) c: *mut f32,
    pub(super) rsc: isize,
    /// Whether `c` holds values to add the product to (else it is written without being read).
    pub(super) accumulate: bool,
}

/// `c = a·b` (or `c += a·b` when `accumulate`), see the module docs.
///
/// # Safety
/// The CPU has AVX-512F; `a`, `b` and `c` address `m × k`, `k × n` and `m × n` values with
/// the given strides, `c` aliases neither, and `c`'s values are initialised when
/// `accumulate`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn product(o: Operands) {
    if o.m == 0 || o.n == 0 {
        return;
    }
    if o.k == 0 {
        if !o.accumulate {
            for i in 0..o.m {
                std::ptr::write_bytes(o.c.wrapping_offset(i as isize * o.rsc), 0, o.n);
            }
        }
        return;
    }
    let mut p0 = 0;
    while p0 < o.k {
        let kc = KC.min(o.k - p0);
        let add = o.accumulate || p0 > 0;
        let mut j0 = 0;
        while j0 < o.n {
            let cols = NR.min(o.n - j0);
            let mut i0 = 0;
            while i0 < o.m {
                let rows = MR.min(o.m - i0);
                let a =
                    o.a.wrapping_offset(i0 as isize * o.rsa + p0 as isize * o.csa);
                let b = o.b.wrapping_offset(p0 as isize * o.rsb + j0 as isize);
                let c = o.c.wrapping_offset(i0 as isize * o.rsc + j0 as isize);
                let t = Tile {
                    kc,
                    a,
                    rsa: o.rsa,
                    csa: o.csa,
                    b,
                    rsb: o.rsb,
                    c,
                    rsc: o.rsc,
                    cols,
                    add,
                };
                match rows {
                    12 => tile::<12>(t),
                    11 => tile::<11>(t),
                    10 => tile::<10>(t),
                    9 => tile::<9>(t),
                    8 => tile::<8>(t),
                    7 => tile::<7>(t),
                    6 => tile::<6>(t),
                    5 => tile::<5>(t),
                    4 => tile::<4>(t),
                    3 => tile::<3>(t),
                    2 => tile::<2>(t),
                    _ => tile::<1>(t),
                }
                i0 += rows;
            }
            j0 += cols;
        }
        p0 += kc;
    }
}

/// One block of the output: `R` rows, `cols` ≤ 32 columns, `kc` values along the inner
/// dimension.
#[derive(Clone, Copy)]
struct Tile {
    kc: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    c: *mut f32,
    rsc: isize,
    cols: usize,
    add: bool,
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile<const R: usize>(t: Tile) {
    let lo: __mmask16 = if t.cols >= 16 {
        0xffff
    } else {
        (1u32 << t.cols) as u16 - 1
    };
    let hi: __mmask16 = if t.cols >= 32 {
        0xffff
    } else if t.cols > 16 {
        (1u32 << (t.cols - 16)) as u16 - 1
    } else {
        0
    };
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        let b0 = _mm512_maskz_loadu_ps(lo, b);
        let b1 = _mm512_maskz_loadu_ps(hi, b.wrapping_add(16));
        for (i, acc) in acc.iter_mut().enumerate() {
            let ai = _mm512_set1_ps(*a.wrapping_offset(i as isize * t.rsa));
            acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
        }
        a = a.wrapping_offset(t.csa);
        b = b.wrapping_offset(t.rsb);
    }
    for (i, acc) in acc.iter().enumerate() {
        let c = t.c.wrapping_offset(i as isize * t.rsc);
        let (mut v0, mut v1) = (acc[0], acc[1]);
        if t.add {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(lo, c), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(hi, c.wrapping_add(16)), v1);
        }
        _mm512_mask_storeu_ps(c, lo, v0);
        _mm512_mask_storeu_ps(c.wrapping_add(16), hi, v1);
    }
}

/// The `cols × rows` transpose of the `rows × cols` row-major values at `src`, written
/// row-major to `out`: blocks of 16 × 16 values transposed in registers ([`block16`]), the
/// values at the edges one at a time.
///
/// # Safety
/// The CPU has AVX-512F; `src` holds `rows × cols` values and `out` room for as many.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose(src: *const f32, rows: usize, cols: usize, out: *mut f32) {
    let (full_rows, full_cols) = (rows / 16 * 16, cols / 16 * 16);
    for r0 in (0..full_rows).step_by(16) {
        for c0 in (0..full_cols).step_by(16) {
            block16(src.add(r0 * cols + c0), cols, out.add(c0 * rows + r0), rows);
        }
    }
    for r in 0..rows {
        let first = if r < full_rows { full_cols } else { 0 };
        for c in first..cols {
            *out.add(c * rows + r) = *src.add(r * cols + c);
        }
    }
}

/// `_mm512_permutex2var_ps` indices of one step of [`block16`]: registers `i` and `i + h`
/// swap their off-diagonal `h`-wide halves (`hi` false: the new register `i`; true: the
/// new register `i + h`). Indices from 16 on take from the second register.
const fn swap_indices(h: usize, hi: bool) -> [i32; 16] {
    let mut idx = [0; 16];
    let mut j = 0;
    while j < 16 {
        let from_first = j & h == 0;
        idx[j] = match (hi, from_first) {
            (false, true) => j,
            (false, false) => j - h + 16,
            (true, true) => j + h,
            (true, false) => j + 16,
        } as i32;
        j += 1;
    }
    idx
}

const SWAPS: [(usize, [i32; 16], [i32; 16]); 4] = [
    (8, swap_indices(8, false), swap_indices(8, true)),
    (4, swap_indices(4, false), swap_indices(4, true)),
    (2, swap_indices(2, false), swap_indices(2, true)),
    (1, swap_indices(1, false), swap_indices(1, true)),
];

/// Transposes the 16 × 16 values at `src` (rows `lds` apart) into `dst` (rows `ldd` apart):
/// four steps that swap the off-diagonal blocks of 8, 4, 2 and 1 values between rows.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block16(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    let mut r = [_mm512_setzero_ps(); 16];
    for (i, r) in r.iter_mut().enumerate() {
        *r = _mm512_loadu_ps(src.add(i * lds));
    }
    for (h, lo, hi) in SWAPS {
        let lo = _mm512_loadu_si512(lo.as_ptr().cast());
        let hi = _mm512_loadu_si512(hi.as_ptr().cast());
        for i in 0..16 {
            if i & h == 0 {
                let (a, b) = (r[i], r[i + h]);
                r[i] = _mm512_permutex2var_ps(a, lo, b);
                r[i + h] = _mm512_permutex2var_ps(a, hi, b);
            }
        }
    }
    for (i, r) in r.iter().enumerate() {
        _mm512_storeu_ps(dst.add(i * ldd), *r);
    }
}
