//! Times matrixmultiply and `gemm` on every matrix product of a training step, single-
//! threaded and on all cores, and prints a Markdown table (microseconds per product and
//! GFLOP/s). Operands are stored as makemore's kernels read them: a transposed operand is
//! the other matrix read in place through its strides, never a copy.

use std::time::Instant;

/// One product `c[m,n] = a[m,k] · b[k,n]`; `a_t`/`b_t`: the operand is stored transposed.
struct Shape {
    what: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
}

const fn shape(what: &'static str, m: usize, k: usize, n: usize, a_t: bool, b_t: bool) -> Shape {
    Shape {
        what,
        m,
        k,
        n,
        a_t,
        b_t,
    }
}

/// The products of one step: forward `x·W`, backward `g·Wᵀ` and `xᵀ·g`, per layer.
const SHAPES: &[Shape] = &[
    shape("batch 4096: x·W1", 4096, 30, 200, false, false),
    shape("batch 4096: h·W2", 4096, 200, 27, false, false),
    shape("batch 4096: g·W2ᵀ", 4096, 27, 200, false, true),
    shape("batch 4096: hᵀ·g", 200, 4096, 27, true, false),
    shape("batch 4096: g·W1ᵀ", 4096, 200, 30, false, true),
    shape("batch 4096: xᵀ·g", 30, 4096, 200, true, false),
    shape("wide, batch 128: x·W1", 128, 192, 512, false, false),
    shape("wide, batch 128: h·W2", 128, 512, 512, false, false),
    shape("wide, batch 128: h·W3", 128, 512, 27, false, false),
    shape("wide, batch 128: g·W2ᵀ", 128, 512, 512, false, true),
    shape("wide, batch 128: hᵀ·g (W2)", 512, 128, 512, true, false),
    shape("wide, batch 128: xᵀ·g (W1)", 192, 128, 512, true, false),
    shape("batch 32: x·W1", 32, 30, 200, false, false),
    shape("batch 32: hᵀ·g", 200, 32, 27, true, false),
    // makemore.py's Transformer (64 channels), batch 32 words of 16 positions.
    shape("py Transformer: x·W (q, k, v)", 512, 64, 192, false, false),
    shape("py Transformer: h·W (MLP out)", 512, 256, 64, false, false),
    shape("py Transformer: g·Wᵀ (MLP in)", 512, 256, 64, false, true),
    shape("py Transformer: xᵀ·g (MLP in)", 64, 512, 256, true, false),
    // transformer-best.json (128 channels), batch 64 words of 16 positions.
    shape("record Transformer: x·W (q, k, v)", 1024, 128, 384, false, false),
    shape("record Transformer: h·W (MLP out)", 1024, 512, 128, false, false),
    shape("record Transformer: g·Wᵀ (MLP in)", 1024, 512, 128, false, true),
    shape("record Transformer: xᵀ·g (MLP in)", 128, 1024, 512, true, false),
];

/// Row and column strides of an `rows × cols` operand stored row-major, or as its
/// transpose.
fn strides(rows: usize, cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// Seconds per call of `f`, over enough calls for about 2·10⁹ floating-point operations.
fn time(flops: f64, mut f: impl FnMut()) -> f64 {
    let reps = ((2e9 / flops) as usize).max(20);
    f();
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() / reps as f64
}

/// `c = a·b` with matrixmultiply, on `threads` cuts of the output.
fn mm_product(s: &Shape, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    let (ars, acs) = strides(s.m, s.k, s.a_t);
    let (brs, bcs) = strides(s.k, s.n, s.b_t);
    // makemore keeps products of fewer than 2²⁰ multiply-adds on one thread.
    let threads = if s.m * s.k * s.n < 1 << 20 {
        1
    } else {
        threads
    };
    let by_rows = s.m >= s.n;
    let len = if by_rows { s.m } else { s.n };
    let per = len.div_ceil(threads).div_ceil(16) * 16;
    // Raw pointers cross to the pool's threads as addresses; the cuts do not overlap.
    let (a, b, c) = (
        a.as_ptr() as usize,
        b.as_ptr() as usize,
        c.as_mut_ptr() as usize,
    );
    // One cut of the output: `count` rows (or columns) from `start`.
    let run = move |start: usize, count: usize| unsafe {
        let (a, b, c) = (a as *const f32, b as *const f32, c as *mut f32);
        let (m, n) = if by_rows { (count, s.n) } else { (s.m, count) };
        let (a, b, c) = if by_rows {
            (a.offset(start as isize * ars), b, c.add(start * s.n))
        } else {
            (a, b.offset(start as isize * bcs), c.add(start))
        };
        matrixmultiply::sgemm(
            m,
            s.k,
            n,
            1.0,
            a,
            ars,
            acs,
            b,
            brs,
            bcs,
            0.0,
            c,
            s.n as isize,
            1,
        );
    };
    if threads == 1 {
        return run(0, len);
    }
    rayon::scope(|scope| {
        for start in (0..len).step_by(per.max(1)) {
            let count = per.min(len - start);
            scope.spawn(move |_| run(start, count));
        }
    });
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    // As in makemore: this thread is one of the pool's.
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .expect("the pool starts before anything uses it");
    println!("| product | m×k×n | threads | matrixmultiply µs | GFLOP/s | gemm µs | GFLOP/s | matrixmultiply / gemm time |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    // gemm runs its own parallel loops on rayon (`Parallelism::Rayon`); matrixmultiply gets
    // makemore's cuts (products under 2²⁰ multiply-adds stay on one thread).
    for s in SHAPES {
        let a: Vec<f32> = (0..s.m * s.k)
            .map(|i| (i * 7919 % 1000) as f32 * 1e-3)
            .collect();
        let b: Vec<f32> = (0..s.k * s.n)
            .map(|i| (i * 104729 % 1000) as f32 * 1e-3)
            .collect();
        let (ars, acs) = strides(s.m, s.k, s.a_t);
        let (brs, bcs) = strides(s.k, s.n, s.b_t);
        let mut c = vec![0f32; s.m * s.n];
        let flops = 2.0 * (s.m * s.k * s.n) as f64;
        for threads in [1, cores] {
            // matrixmultiply's own `threading` feature is off, as in makemore; on more
            // threads the output is cut by rows (or by columns, when it has more of those)
            // into one single-threaded product per thread on rayon's pool, as makemore's
            // `matmul` does.
            let mm = time(flops, || mm_product(s, &a, &b, &mut c, threads));
            let par = if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            let gm = time(flops, || unsafe {
                gemm::gemm(
                    s.m,
                    s.n,
                    s.k,
                    c.as_mut_ptr(),
                    1,
                    s.n as isize,
                    false,
                    a.as_ptr(),
                    acs,
                    ars,
                    b.as_ptr(),
                    bcs,
                    brs,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                )
            });
            println!(
                "| {} | {}×{}×{} | {threads} | {:.1} | {:.0} | {:.1} | {:.0} | {:.2} |",
                s.what,
                s.m,
                s.k,
                s.n,
                mm * 1e6,
                flops / mm / 1e9,
                gm * 1e6,
                flops / gm / 1e9,
                mm / gm
            );
        }
    }
}
