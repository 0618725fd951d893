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
