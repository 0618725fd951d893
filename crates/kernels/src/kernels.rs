//! Plain slice kernels behind the CPU implementation of [`FusedOps`](super::FusedOps).
//! Written as straight-line loops over `f32` so that the compiler vectorises them; no burn
//! types here, so they are tested against `f64` references directly.

use rayon::prelude::*;

use super::simd;

/// Largest |x| for which tanh is not yet 1 in `f32`; beyond it the rational form is clamped.
const TANH_CLAMP: f32 = 7.905_311;
/// Below this |x|, tanh(x) = x to within `f32` rounding.
const TANH_LINEAR: f32 = 0.000_4;

/// `tanh` in `f32` without a libm call: clamp, then a degree-13/6 rational approximation
/// (the one Eigen and XLA use for `f32`). At most 4 units in the last place from the
/// correctly rounded result for |x| < 1, at most 4e-7 from it anywhere (tested); NaN stays
/// NaN and ±∞ gives ±1.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published, rounded by the compiler
pub fn tanh(x: f32) -> f32 {
    const A1: f32 = 4.893_524_558_917_86e-3;
    const A3: f32 = 6.372_619_288_754_36e-4;
    const A5: f32 = 1.485_722_357_179_79e-5;
    const A7: f32 = 5.122_297_090_371_14e-8;
    const A9: f32 = -8.604_671_522_137_35e-11;
    const A11: f32 = 2.000_187_904_824_77e-13;
    const A13: f32 = -2.760_768_477_423_55e-16;
    const B0: f32 = 4.893_525_185_543_85e-3;
    const B2: f32 = 2.268_434_632_439_00e-3;
    const B4: f32 = 1.185_347_056_866_54e-4;
    const B6: f32 = 1.198_258_394_667_02e-6;
    let c = x.clamp(-TANH_CLAMP, TANH_CLAMP);
    let x2 = c * c;
    let mut p = x2 * A13 + A11;
    p = x2 * p + A9;
    p = x2 * p + A7;
    p = x2 * p + A5;
    p = x2 * p + A3;
    p = x2 * p + A1;
    p *= c;
    let mut q = x2 * B6 + B4;
    q = x2 * q + B2;
    q = x2 * q + B0;
    if x.abs() < TANH_LINEAR {
        x
    } else {
        p / q
    }
}

/// Element-wise work below this many values stays on the calling thread (handing work to
/// the pool costs microseconds; a training step at batch 32 touches about 6,400 values per op).
pub const PARALLEL_MIN: usize = 1 << 17;

/// How many units go in one piece when `units` units of `width` values each are split over
/// rayon's threads: one piece per thread, or all of them in one piece when there are fewer
/// than [`PARALLEL_MIN`] values in all or a single thread.
pub fn units_per_piece(units: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads();
    if units * width < PARALLEL_MIN || threads < 2 {
        units.max(1)
    } else {
        units.div_ceil(threads)
    }
}

/// `tanh` of every value, in place.
pub fn tanh_in_place(values: &mut [f32]) {
    let piece = units_per_piece(values.len(), 1);
    values.par_chunks_mut(piece).for_each(|values| {
        simd::vectorized(
            #[inline(always)]
            || {
                values.iter_mut().for_each(|v| *v = tanh(*v));
            },
        )
    });
}

/// `out[i] = grad[i] · (1 − y[i]²)`: the gradient of tanh from its output. The three slices
/// have the same length.
pub fn tanh_backward(grad: &[f32], y: &[f32], out: &mut [f32]) {
    let piece = units_per_piece(out.len(), 1);
    out.par_chunks_mut(piece)
        .zip(grad.par_chunks(piece))
        .zip(y.par_chunks(piece))
        .for_each(|((out, grad), y)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    for ((o, &g), &y) in out.iter_mut().zip(grad).zip(y) {
                        *o = g * (1.0 - y * y);
                    }
                },
            )
        });
}

/// `√(2/π)` and GELU's cubic coefficient.
const GELU_K: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// GPT-2's GELU of every value, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, into `out`.
pub fn gelu(x: &[f32], out: &mut [f32]) {
    let piece = units_per_piece(out.len(), 1);
    out.par_chunks_mut(piece)
        .zip(x.par_chunks(piece))
        .for_each(|(out, x)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    for (o, &x) in out.iter_mut().zip(x) {
                        *o = 0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_C * x * x * x)));
                    }
                },
            )
        });
}

/// The gradient of [`gelu`] at `x`, times `grad`, into `out`.
pub fn gelu_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    let piece = units_per_piece(out.len(), 1);
    out.par_chunks_mut(piece)
        .zip(x.par_chunks(piece))
        .zip(grad.par_chunks(piece))
        .for_each(|((out, x), grad)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
                        let x2 = x * x;
                        let t = tanh(GELU_K * (x + GELU_C * x2 * x));
                        let du = GELU_K * (1.0 + 3.0 * GELU_C * x2);
                        *o = g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
                    }
                },
            )
        });
}

/// Causal softmax of square `t × t` score blocks, row by row: row `i` of each block becomes
/// `softmax(scale · x[i, 0..=i])`, then zeros.
pub fn causal_softmax(x: &[f32], t: usize, scale: f32, out: &mut [f32]) {
    let piece = units_per_piece(out.len() / t.max(1), t) * t;
    out.par_chunks_mut(piece)
        .zip(x.par_chunks(piece))
        .for_each(|(out, x)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    for (r, (o, x)) in out.chunks_exact_mut(t).zip(x.chunks_exact(t)).enumerate() {
                        let i = r % t;
                        let (live, dead) = o.split_at_mut(i + 1);
                        let mut max = f32::NEG_INFINITY;
                        for &v in &x[..=i] {
                            max = max.max(v * scale);
                        }
                        let mut sum = 0.0f32;
                        for (o, &v) in live.iter_mut().zip(&x[..=i]) {
                            *o = (v * scale - max).exp();
                            sum += *o;
                        }
                        let inv = 1.0 / sum;
                        live.iter_mut().for_each(|o| *o *= inv);
                        dead.iter_mut().for_each(|o| *o = 0.0);
                    }
                },
            )
        });
}

/// The gradient of [`causal_softmax`] from its output `y`: `scale · y · (grad − Σ grad·y)`
/// row by row, into `out`.
pub fn causal_softmax_backward(y: &[f32], grad: &[f32], t: usize, scale: f32, out: &mut [f32]) {
    let piece = units_per_piece(out.len() / t.max(1), t) * t;
    out.par_chunks_mut(piece)
        .zip(y.par_chunks(piece))
        .zip(grad.par_chunks(piece))
        .for_each(|((out, y), grad)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    for ((o, y), g) in out
                        .chunks_exact_mut(t)
                        .zip(y.chunks_exact(t))
                        .zip(grad.chunks_exact(t))
                    {
                        let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                            *o = scale * y * (g - dot);
                        }
                    }
                },
            )
        });
}

/// `word(out, x, sum)` on each sequence of `t` rows of `c` values (`sum`: `c` zeros), the
/// sequences split over rayon's threads when there are many values.
fn per_sequence(
    x: &[f32],
    t: usize,
    c: usize,
    out: &mut [f32],
    word: impl Fn(&mut [f32], &[f32], &mut [f32]) + Sync,
) {
    let width = (t * c).max(1);
    let piece = units_per_piece(out.len() / width, width) * width;
    out.par_chunks_mut(piece)
        .zip(x.par_chunks(piece))
        .for_each(|(out, x)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    let mut sum = vec![0.0f32; c];
                    for (o, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                        sum.fill(0.0);
                        word(o, x, &mut sum);
                    }
                },
            )
        });
}

/// The running mean over each sequence's positions: `x` holds sequences of `t` rows of `c`
/// values, and row `i` of a sequence becomes `(x_0 + … + x_i) · (1 / (i + 1))`, summed in
/// that order (burn's `cumsum`, then the scale: the same bits as the generic path).
pub fn causal_mean(x: &[f32], t: usize, c: usize, out: &mut [f32]) {
    per_sequence(x, t, c, out, |o, x, sum| {
        for (i, (o, x)) in o.chunks_exact_mut(c).zip(x.chunks_exact(c)).enumerate() {
            let inv = 1.0 / (i + 1) as f32;
            for ((o, s), &v) in o.iter_mut().zip(&mut *sum).zip(x) {
                *s += v;
                *o = *s * inv;
            }
        }
    });
}

/// The gradient of [`causal_mean`]: row `j` of a sequence gets `Σ_{i ≥ j} grad_i · (1 / (i + 1))`,
/// summed from the last position back (the generic path's reversed `cumsum`).
pub fn causal_mean_backward(grad: &[f32], t: usize, c: usize, out: &mut [f32]) {
    per_sequence(grad, t, c, out, |o, g, sum| {
        let rows = o.chunks_exact_mut(c).zip(g.chunks_exact(c)).enumerate();
        for (i, (o, g)) in rows.rev() {
            let inv = 1.0 / (i + 1) as f32;
            for ((o, s), &v) in o.iter_mut().zip(&mut *sum).zip(g) {
                *s += v * inv;
                *o = *s;
            }
        }
    });
}

/// The shape of one attention call: `batch` words of `t` positions, `c` channels in
/// `heads` heads.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Words.
    pub batch: usize,
    /// Positions per word.
    pub t: usize,
    /// Channels (q, k and v each).
    pub c: usize,
    /// Heads.
    pub heads: usize,
}

/// One head's keys (or values) of one word, transposed into `[hs, t]`, so that a row of
/// scores is `hs` multiply-adds of whole rows of it, vectorised along the key positions,
/// instead of `t` dot products of `hs` each (a sum in order, which the compiler cannot
/// vectorise). Queries, keys and values are otherwise read where they are, rows of `qkv`.
struct Transposed(Vec<f32>);

impl Transposed {
    fn new(t: usize, hs: usize) -> Self {
        Transposed(vec![0.0; hs * t])
    }

    /// The `hs` columns from `col` on of the `t` rows of `rows`, `stride` apart.
    #[inline(always)]
    fn gather(&mut self, rows: &[f32], stride: usize, col: usize, t: usize, hs: usize) {
        for i in 0..t {
            for (d, &x) in rows[i * stride + col..][..hs].iter().enumerate() {
                self.0[d * t + i] = x;
            }
        }
    }
}

/// `out[j] = Σ_d a[d] · m[d][j]` for the `width` columns of `m` `[a.len(), stride]`: a
/// row vector times a matrix, multiply-adds of whole rows of `m`.
#[inline(always)]
fn row_times(a: &[f32], m: &[f32], stride: usize, out: &mut [f32]) {
    combine(out, a.len(), |d| a[d], m, stride);
}

/// `out[l] = Σ_j w(j) · rows[j · stride + l]` over `j < n`, summed in order from 0: a
/// weighted sum of `n` rows of `out.len()` values.
///
/// Sixteen columns at a time, each sum kept in registers through all the rows: attention's
/// rows are short (16 positions, 32 channels a head), and a loop that added a row at a time
/// into `out` would wait on its own stores, or fall to its scalar remainder. Each value is
/// the same sum, in the same order, as the plain loop.
#[inline(always)]
fn combine(out: &mut [f32], n: usize, w: impl Fn(usize) -> f32, rows: &[f32], stride: usize) {
    let (chunks, rest) = out.as_chunks_mut::<16>();
    let done = 16 * chunks.len();
    for (c, out) in chunks.iter_mut().enumerate() {
        let mut acc = [0f32; 16];
        for j in 0..n {
            let wj = w(j);
            let row = &rows[j * stride + 16 * c..][..16];
            for (a, &r) in acc.iter_mut().zip(row) {
                *a += wj * r;
            }
        }
        *out = acc;
    }
    for (l, out) in rest.iter_mut().enumerate() {
        *out = (0..n).fold(0.0, |acc, j| acc + w(j) * rows[j * stride + done + l]);
    }
}

/// Causal multi-head self-attention of `qkv` `[batch · t, 3c]` (q, k, v side by side):
/// writes `y` `[batch · t, c]` and the weights `probs` `[batch, heads, t, t]` (0 above the
/// diagonal); `mask` (dropout, scaled) multiplies the weights that `y` uses. Words go to
/// rayon's threads.
pub fn attention(
    qkv: &[f32],
    s: AttentionShape,
    mask: Option<&[f32]>,
    y: &mut [f32],
    probs: &mut [f32],
) {
    let AttentionShape { t, c, heads, .. } = s;
    let hs = c / heads;
    let piece = units_per_piece(s.batch, t * c * t);
    y.par_chunks_mut(piece * t * c)
        .zip(probs.par_chunks_mut(piece * heads * t * t))
        .enumerate()
        .for_each(|(p, (y, probs))| {
            simd::vectorized(
                #[inline(always)]
                || {
                    let mut kt = Transposed::new(t, hs);
                    for (w, (y, probs)) in y
                        .chunks_exact_mut(t * c)
                        .zip(probs.chunks_exact_mut(heads * t * t))
                        .enumerate()
                    {
                        let b = p * piece + w;
                        let rows = &qkv[b * t * 3 * c..(b + 1) * t * 3 * c];
                        for h in 0..heads {
                            kt.gather(rows, 3 * c, c + h * hs, t, hs);
                            let probs = &mut probs[h * t * t..][..t * t];
                            let mask = mask.map(|m| &m[(b * heads + h) * t * t..][..t * t]);
                            head_forward(rows, &kt, t, hs, mask, probs, y, c, h);
                        }
                    }
                },
            )
        });
}

/// One head of one word's attention (`rows` its `[t, 3c]` of `qkv`, `kt` its keys
/// transposed): its weights into `probs` `[t, t]` and its output into columns
/// `h·hs..(h+1)·hs` of `y` `[t, c]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn head_forward(
    rows: &[f32],
    kt: &Transposed,
    t: usize,
    hs: usize,
    mask: Option<&[f32]>,
    probs: &mut [f32],
    y: &mut [f32],
    c: usize,
    h: usize,
) {
    let scale = 1.0 / (hs as f32).sqrt();
    for i in 0..t {
        let pr = &mut probs[i * t..][..t];
        row_times(&rows[i * 3 * c + h * hs..][..hs], &kt.0[..hs * t], t, pr);
        let (live, dead) = pr.split_at_mut(i + 1);
        let mut max = f32::NEG_INFINITY;
        for p in live.iter_mut() {
            *p *= scale;
            max = max.max(*p);
        }
        let mut sum = 0.0;
        for p in live.iter_mut() {
            *p = (*p - max).exp();
            sum += *p;
        }
        let inv = 1.0 / sum;
        live.iter_mut().for_each(|p| *p *= inv);
        dead.fill(0.0);
        let out = &mut y[i * c + h * hs..][..hs];
        let m = mask.map(|m| &m[i * t..][..t]);
        let weight = |j: usize| pr[j] * m.map_or(1.0, |m| m[j]);
        combine(out, i + 1, weight, &rows[2 * c + h * hs..], 3 * c);
    }
}

/// The gradient at `qkv` of [`attention`], from the gradient `dy` at its output and the
/// weights it saved, into `dqkv` `[batch · t, 3c]`. Each head's values are transposed
/// first (so that a row of the weights' gradient is vectorised along the key positions);
/// everything else is read and written in place.
pub fn attention_backward(
    qkv: &[f32],
    probs: &[f32],
    mask: Option<&[f32]>,
    dy: &[f32],
    s: AttentionShape,
    dqkv: &mut [f32],
) {
    let AttentionShape { t, c, heads, .. } = s;
    let hs = c / heads;
    let piece = units_per_piece(s.batch, t * c * t);
    dqkv.par_chunks_mut(piece * t * 3 * c)
        .enumerate()
        .for_each(|(p, dqkv)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    let mut vt = Transposed::new(t, hs);
                    let mut scratch = vec![0.0; 2 * t];
                    for (w, dqkv) in dqkv.chunks_exact_mut(t * 3 * c).enumerate() {
                        let b = p * piece + w;
                        let rows = &qkv[b * t * 3 * c..(b + 1) * t * 3 * c];
                        let dys = &dy[b * t * c..(b + 1) * t * c];
                        // The heads add their keys' and values' gradients into it.
                        dqkv.fill(0.0);
                        for h in 0..heads {
                            let at = (b * heads + h) * t * t;
                            let probs = &probs[at..][..t * t];
                            let mask = mask.map(|m| &m[at..][..t * t]);
                            vt.gather(rows, 3 * c, 2 * c + h * hs, t, hs);
                            let head = HeadBackward {
                                rows,
                                dys,
                                vt: &vt,
                                t,
                                c,
                                h,
                                hs,
                            };
                            head.backward(probs, mask, &mut scratch, dqkv);
                        }
                    }
                },
            )
        });
}

/// One head of one word for [`attention_backward`]: its rows `[t, 3c]` of `qkv` and `[t, c]`
/// of the output's gradient, read in place, and its values transposed.
struct HeadBackward<'a> {
    rows: &'a [f32],
    dys: &'a [f32],
    vt: &'a Transposed,
    t: usize,
    c: usize,
    h: usize,
    hs: usize,
}

impl HeadBackward<'_> {
    /// Adds the head's dq, dk and dv, from its weights `probs` `[t, t]`, into its columns of
    /// the word's `dqkv` `[t, 3c]`. `scratch` holds `2t` values.
    #[inline(always)]
    fn backward(&self, probs: &[f32], mask: Option<&[f32]>, scratch: &mut [f32], dqkv: &mut [f32]) {
        let HeadBackward {
            rows,
            dys,
            vt,
            t,
            c,
            h,
            hs,
        } = *self;
        let scale = 1.0 / (hs as f32).sqrt();
        let (dw, ds) = scratch[..2 * t].split_at_mut(t);
        let (q, k, v) = (h * hs, c + h * hs, 2 * c + h * hs);
        for i in 0..t {
            let pr = &probs[i * t..][..t];
            let m = mask.map(|m| &m[i * t..][..t]);
            let dyi = &dys[i * c + h * hs..][..hs];
            // The gradient at the (masked) weights: dy_i · v_j for every j.
            row_times(dyi, &vt.0[..hs * t], t, dw);
            if let Some(m) = m {
                dw.iter_mut().zip(m).for_each(|(d, &m)| *d *= m);
            }
            for j in 0..=i {
                let wgt = pr[j] * m.map_or(1.0, |m| m[j]);
                for (d, &g) in dqkv[j * 3 * c + v..][..hs].iter_mut().zip(dyi) {
                    *d += wgt * g;
                }
            }
            let total = dot(&pr[..=i], &dw[..=i]);
            for ((d, &p), &w) in ds.iter_mut().zip(pr).zip(&*dw) {
                *d = scale * p * (w - total);
            }
            // dq_i (zero until now) is a weighted sum of the keys; each dk_j takes a share
            // of q_i.
            combine(
                &mut dqkv[i * 3 * c + q..][..hs],
                i + 1,
                |j| ds[j],
                &rows[k..],
                3 * c,
            );
            let qi = &rows[i * 3 * c + q..][..hs];
            for (j, &dsj) in ds[..=i].iter().enumerate() {
                for (d, &qv) in dqkv[j * 3 * c + k..][..hs].iter_mut().zip(qi) {
                    *d += dsj * qv;
                }
            }
        }
    }
}

/// `Σ a_i b_i`, in order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One AdamW update of every value, in the order of burn 0.21's `AdamW` operations (each
/// rounded to `f32` as its tensor operation rounds): writes the new parameter, first and
/// second moments. `moments` is `None` on the first step.
pub fn adamw(
    w: &[f32],
    g: &[f32],
    moments: Option<(&[f32], &[f32])>,
    s: crate::AdamWStep,
    out: (&mut [f32], &mut [f32], &mut [f32]),
) {
    // Each value reads four arrays and writes three, with a square root and a division: it
    // counts as eight values of a plain element-wise pass, so that a Transformer's 128×512
    // weights (65,536 values) are split too. Unsplit, the update was 3% of the training
    // thread's profile samples in a record-sized step, all of it while the other thread
    // waited.
    let piece = units_per_piece(w.len(), 8);
    if piece >= w.len() {
        return adamw_piece(w, g, moments, s, out);
    }
    let (w_out, m_out, v_out) = out;
    let outs = w_out
        .par_chunks_mut(piece)
        .zip(m_out.par_chunks_mut(piece))
        .zip(v_out.par_chunks_mut(piece));
    outs.enumerate().for_each(|(i, ((w_out, m_out), v_out))| {
        simd::vectorized(
            #[inline(always)]
            || {
                let range = i * piece..(i * piece + w_out.len());
                let moments = moments.map(|(m, v)| (&m[range.clone()], &v[range.clone()]));
                adamw_piece(
                    &w[range.clone()],
                    &g[range],
                    moments,
                    s,
                    (w_out, m_out, v_out),
                );
            },
        )
    });
}

/// [`adamw`] on one thread.
fn adamw_piece(
    w: &[f32],
    g: &[f32],
    moments: Option<(&[f32], &[f32])>,
    s: crate::AdamWStep,
    out: (&mut [f32], &mut [f32], &mut [f32]),
) {
    let (factor_1, factor_2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let (c1, c2) = s.bias_corrections();
    let decay_rate = s.lr * (s.weight_decay as f64);
    let decay = (1.0 - decay_rate) as f32;
    let lr = s.lr as f32;
    let (w_out, m_out, v_out) = out;
    for i in 0..w.len() {
        let gi = g[i];
        let (m, v) = match moments {
            Some((m, v)) => (
                m[i] * s.beta_1 + gi * factor_1,
                v[i] * s.beta_2 + (gi * gi) * factor_2,
            ),
            None => (gi * factor_1, (gi * gi) * factor_2),
        };
        let delta = (m / c1) / ((v / c2).sqrt() + s.epsilon);
        let decayed = if decay_rate == 0.0 {
            w[i]
        } else {
            w[i] * decay
        };
        w_out[i] = decayed - delta * lr;
        m_out[i] = m;
        v_out[i] = v;
    }
}

/// Σ `term(i)` for `i` in `0..len`, in eight running partial sums (which the compiler keeps
/// in one vector register), added pairwise at the end, then the tail in order.
#[inline(always)]
fn sum_lanes(len: usize, term: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let main = len / 8 * 8;
    for i in (0..main).step_by(8) {
        for (k, acc) in acc.iter_mut().enumerate() {
            *acc += term(i + k);
        }
    }
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (main..len).fold((pairs[0] + pairs[1]) + (pairs[2] + pairs[3]), |t, i| {
        t + term(i)
    })
}

/// Σ a·b over two slices of the same length.
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    sum_lanes(a.len(), |i| a[i] * b[i])
}

/// Σ a.
fn sum8(a: &[f32]) -> f32 {
    sum_lanes(a.len(), |i| a[i])
}

/// LayerNorm of each row of `x` (`cols` values a row), then tanh: writes the output `y`, the
/// normalised rows `x_hat` and each row's `1 / √(var + ε)` to `rstd`. Rows are split over
/// rayon's threads for large inputs; each row is computed by one thread.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_tanh(
    x: &[f32],
    cols: usize,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
    y: &mut [f32],
    x_hat: &mut [f32],
    rstd: &mut [f32],
) {
    layer_norm_rows(x, cols, gamma, beta, epsilon, true, y, x_hat, rstd);
}

/// [`layer_norm_tanh`] without the tanh: `y = γ x̂ + β`.
#[allow(clippy::too_many_arguments)] // the kernel's slices, as its callers hold them
pub fn layer_norm(
    x: &[f32],
    cols: usize,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
    y: &mut [f32],
    x_hat: &mut [f32],
    rstd: &mut [f32],
) {
    layer_norm_rows(x, cols, gamma, beta, epsilon, false, y, x_hat, rstd);
}

#[allow(clippy::too_many_arguments)] // the kernel's slices, as its callers hold them
fn layer_norm_rows(
    x: &[f32],
    cols: usize,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
    with_tanh: bool,
    y: &mut [f32],
    x_hat: &mut [f32],
    rstd: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let rows = rstd.len();
    let piece = units_per_piece(rows, cols);
    let n = cols as f32;
    y.par_chunks_mut(piece * cols)
        .zip(x_hat.par_chunks_mut(piece * cols))
        .zip(rstd.par_chunks_mut(piece))
        .zip(x.par_chunks(piece * cols))
        .for_each(|(((y, x_hat), rstd), x)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    let rows = y.chunks_exact_mut(cols).zip(x_hat.chunks_exact_mut(cols));
                    for (((y, xh), r), x) in rows.zip(rstd.iter_mut()).zip(x.chunks_exact(cols)) {
                        let mean = sum8(x) / n;
                        for (c, &v) in xh.iter_mut().zip(x) {
                            *c = v - mean;
                        }
                        let var = dot8(xh, xh) / n;
                        *r = 1.0 / (var + epsilon).sqrt();
                        for (((y, c), &g), &b) in
                            y.iter_mut().zip(xh.iter_mut()).zip(gamma).zip(beta)
                        {
                            *c *= *r;
                            *y = if with_tanh {
                                tanh(g * *c + b)
                            } else {
                                g * *c + b
                            };
                        }
                    }
                },
            )
        });
}

/// The row-wise part of the gradient of [`layer_norm_tanh`]: writes `dx`, and per value the
/// terms `dz = grad · (1 − y²)` and `dz · x̂` whose column sums are the gradients of β and γ.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_tanh_backward(
    x_hat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    y: Option<&[f32]>,
    grad: &[f32],
    cols: usize,
    dx: &mut [f32],
    dz: &mut [f32],
    dz_x_hat: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let rows = rstd.len();
    let piece = units_per_piece(rows, cols);
    let n = cols as f32;
    let chunk = piece * cols;
    dx.par_chunks_mut(chunk)
        .zip(dz.par_chunks_mut(chunk))
        .zip(dz_x_hat.par_chunks_mut(chunk))
        .enumerate()
        .for_each(|(i, ((dx, dz), dzx))| {
            simd::vectorized(
                #[inline(always)]
                || {
                    let first = i * piece;
                    for (k, dx) in dx.chunks_exact_mut(cols).enumerate() {
                        let row = (first + k) * cols..(first + k + 1) * cols;
                        let here = k * cols..(k + 1) * cols;
                        let (xh, g) = (&x_hat[row.clone()], &grad[row.clone()]);
                        let (dz, dzx) = (&mut dz[here.clone()], &mut dzx[here]);
                        // dz (through tanh when there is one), then d = dz · γ in dx for now.
                        match y {
                            Some(y) => {
                                let y = &y[row];
                                for ((((dz, dx), &g), &y), &gm) in
                                    dz.iter_mut().zip(dx.iter_mut()).zip(g).zip(y).zip(gamma)
                                {
                                    *dz = g * (1.0 - y * y);
                                    *dx = *dz * gm;
                                }
                            }
                            None => {
                                for (((dz, dx), &g), &gm) in
                                    dz.iter_mut().zip(dx.iter_mut()).zip(g).zip(gamma)
                                {
                                    *dz = g;
                                    *dx = g * gm;
                                }
                            }
                        }
                        let mean_d = sum8(dx) / n;
                        let mean_dx = dot8(dx, xh) / n;
                        let r = rstd[first + k];
                        for (((dx, dzx), &dz), &xh) in
                            dx.iter_mut().zip(dzx.iter_mut()).zip(dz.iter()).zip(xh)
                        {
                            *dx = (*dx - mean_d - xh * mean_dx) * r;
                            *dzx = dz * xh;
                        }
                    }
                },
            )
        });
}

/// Softmax cross-entropy of `logits` (`[rows, classes]`, row-major) against `targets`:
/// writes each row's probabilities to `probs` and returns the mean negative log-likelihood
/// (accumulated in `f64`, row by row in order, so the result does not depend on how the
/// rows were split over threads). A target outside `0..classes` makes the loss NaN.
pub fn cross_entropy_into<T: Copy + TryInto<usize> + Sync>(
    logits: &[f32],
    targets: &[T],
    classes: usize,
    probs: &mut [f32],
) -> f32 {
    if classes == 0 {
        return f32::NAN;
    }
    let rows = targets
        .len()
        .min(logits.len() / classes)
        .min(probs.len() / classes);
    let mut losses = vec![0f32; rows];
    let piece = units_per_piece(rows, classes);
    probs[..rows * classes]
        .par_chunks_mut(piece * classes)
        .zip(losses.par_chunks_mut(piece))
        .zip(logits[..rows * classes].par_chunks(piece * classes))
        .zip(targets[..rows].par_chunks(piece))
        .for_each(|(((probs, losses), logits), targets)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    row_losses(logits, targets, classes, probs, losses);
                },
            )
        });
    let total = losses.iter().fold(0.0f64, |t, &l| t + f64::from(l));
    (total / targets.len().max(1) as f64) as f32
}

/// The softmax of each row into `probs`, and its negative log-likelihood into `losses`.
fn row_losses<T: Copy + TryInto<usize>>(
    logits: &[f32],
    targets: &[T],
    classes: usize,
    probs: &mut [f32],
    losses: &mut [f32],
) {
    let rows = logits
        .chunks_exact(classes)
        .zip(probs.chunks_exact_mut(classes));
    for (((row, p), &t), loss) in rows.zip(targets).zip(losses) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (p, &l) in p.iter_mut().zip(row) {
            let e = (l - max).exp();
            *p = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        for p in p.iter_mut() {
            *p *= inv;
        }
        let picked = t
            .try_into()
            .ok()
            .and_then(|t: usize| row.get(t).copied())
            .unwrap_or(f32::NAN);
        // ln Σ exp(l − max) − (l_target − max): the difference of two large logits first,
        // so a loss of a few nats keeps its precision when the logits are in the thousands.
        *loss = sum.ln() - (picked - max);
    }
}

/// Gradient of the mean cross-entropy with respect to the logits, scaled by `grad` (the
/// gradient arriving at the loss): `out = (probs − onehot(targets)) · grad / rows`.
pub fn cross_entropy_backward_into<T: Copy + TryInto<usize> + Sync>(
    probs: &[f32],
    targets: &[T],
    classes: usize,
    grad: f32,
    out: &mut [f32],
) {
    if classes == 0 {
        return;
    }
    let scale = grad / targets.len().max(1) as f32;
    let rows = targets
        .len()
        .min(probs.len() / classes)
        .min(out.len() / classes);
    let piece = units_per_piece(rows, classes);
    out[..rows * classes]
        .par_chunks_mut(piece * classes)
        .zip(probs[..rows * classes].par_chunks(piece * classes))
        .zip(targets[..rows].par_chunks(piece))
        .for_each(|((out, probs), targets)| {
            simd::vectorized(
                #[inline(always)]
                || {
                    let rows = probs
                        .chunks_exact(classes)
                        .zip(out.chunks_exact_mut(classes));
                    for ((p, o), &t) in rows.zip(targets) {
                        for (o, &p) in o.iter_mut().zip(p) {
                            *o = p * scale;
                        }
                        if let Some(o) = t.try_into().ok().and_then(|t: usize| o.get_mut(t)) {
                            *o -= scale;
                        }
                    }
                },
            )
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention in f64, the textbook way, for one word-major `qkv`; `y` and the loss
    /// `Σ y · r` for a fixed `r` (so its gradient at `qkv` can be taken numerically).
    fn attention_f64(
        qkv: &[f64],
        s: AttentionShape,
        mask: Option<&[f64]>,
        r: &[f64],
    ) -> (Vec<f64>, f64) {
        let AttentionShape { batch, t, c, heads } = s;
        let hs = c / heads;
        let mut y = vec![0.0; batch * t * c];
        for b in 0..batch {
            for h in 0..heads {
                let at = |i: usize, part: usize, e: usize| {
                    qkv[(b * t + i) * 3 * c + part * c + h * hs + e]
                };
                for i in 0..t {
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            (0..hs).map(|e| at(i, 0, e) * at(j, 1, e)).sum::<f64>()
                                / (hs as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let ex: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
                    let sum: f64 = ex.iter().sum();
                    for (j, e) in ex.iter().enumerate() {
                        let m = mask.map_or(1.0, |m| m[((b * heads + h) * t + i) * t + j]);
                        for k in 0..hs {
                            y[(b * t + i) * c + h * hs + k] += e / sum * m * at(j, 2, k);
                        }
                    }
                }
            }
        }
        let loss = y.iter().zip(r).map(|(a, b)| a * b).sum();
        (y, loss)
    }

    #[test]
    fn attention_and_its_gradient_against_f64_and_finite_differences() {
        let s = AttentionShape {
            batch: 3,
            t: 5,
            c: 8,
            heads: 2,
        };
        let n = s.batch * s.t * 3 * s.c;
        let qkv: Vec<f64> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f64 / 500.0 - 1.0) * 1.3)
            .collect();
        let r: Vec<f64> = (0..s.batch * s.t * s.c)
            .map(|i| (i * 104_729 % 997) as f64 / 498.5 - 1.0)
            .collect();
        let mask: Vec<f64> = (0..s.batch * s.heads * s.t * s.t)
            .map(|i| if i % 7 == 3 { 0.0 } else { 1.25 })
            .collect();
        for m in [None, Some(&mask)] {
            let (y64, _) = attention_f64(&qkv, s, m.map(|m| m.as_slice()), &r);
            let q32: Vec<f32> = qkv.iter().map(|&v| v as f32).collect();
            let m32: Option<Vec<f32>> = m.map(|m| m.iter().map(|&v| v as f32).collect());
            let mut y = vec![0f32; y64.len()];
            let mut probs = vec![0f32; s.batch * s.heads * s.t * s.t];
            attention(&q32, s, m32.as_deref(), &mut y, &mut probs);
            for (a, b) in y.iter().zip(&y64) {
                assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
            }
            // The causal weights: rows sum to 1, nothing after the diagonal.
            for (k, row) in probs.chunks(s.t).enumerate() {
                let i = k % s.t;
                assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                assert!(row[i + 1..].iter().all(|&p| p == 0.0));
            }
            let r32: Vec<f32> = r.iter().map(|&v| v as f32).collect();
            let mut d = vec![0f32; n];
            attention_backward(&q32, &probs, m32.as_deref(), &r32, s, &mut d);
            for i in (0..n).step_by(5) {
                let (mut up, mut down) = (qkv.clone(), qkv.clone());
                up[i] += 1e-6;
                down[i] -= 1e-6;
                let mm = m.map(|m| m.as_slice());
                let numeric =
                    (attention_f64(&up, s, mm, &r).1 - attention_f64(&down, s, mm, &r).1) / 2e-6;
                assert!(
                    (f64::from(d[i]) - numeric).abs() < 2e-4,
                    "d qkv[{i}]: {} vs {numeric}",
                    d[i]
                );
            }
        }
    }

    #[test]
    fn gelu_and_causal_softmax_against_f64() {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let gelu64 = |x: f64| 0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh());
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 / 37.0).collect();
        let mut y = vec![0f32; xs.len()];
        gelu(&xs, &mut y);
        let ones = vec![1f32; xs.len()];
        let mut d = vec![0f32; xs.len()];
        gelu_backward(&xs, &ones, &mut d);
        for ((&x, &y), &d) in xs.iter().zip(&y).zip(&d) {
            let x = f64::from(x);
            assert!((f64::from(y) - gelu64(x)).abs() < 2e-6, "gelu({x})");
            let numeric = (gelu64(x + 1e-6) - gelu64(x - 1e-6)) / 2e-6;
            assert!(
                (f64::from(d) - numeric).abs() < 2e-5,
                "gelu'({x}): {d} vs {numeric}"
            );
        }
        // One 4x4 block: row i normalises 0..=i.
        let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut out = vec![0f32; 16];
        causal_softmax(&x, 4, 0.5, &mut out);
        for i in 0..4 {
            let row = &x[i * 4..i * 4 + 4];
            let sum: f64 = row[..=i].iter().map(|&v| (0.5 * f64::from(v)).exp()).sum();
            for j in 0..4 {
                let want = if j <= i {
                    (0.5 * f64::from(row[j])).exp() / sum
                } else {
                    0.0
                };
                assert!((f64::from(out[i * 4 + j]) - want).abs() < 1e-6);
            }
        }
    }

    /// Units in the last place between `a` and the correctly rounded `f32` of `exact`.
    fn ulps(a: f32, exact: f64) -> u32 {
        let b = exact as f32;
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn cross_entropy_keeps_its_precision_with_large_logits() {
        // Logits around 3,000 (an f32 ulp there is 2.4e-4) that differ by small amounts,
        // exactly representable there: the loss must come out as precisely as for the same
        // logits shifted to 0 (`max + ln Σ − picked` is off by about 1e-4).
        let small = [0.125f32, -0.25, 0.375, 0.0625];
        let large: Vec<f32> = small.iter().map(|l| l + 3000.0).collect();
        let mut probs = [0f32; 4];
        let want = cross_entropy_into(&small, &[2usize], 4, &mut probs);
        let got = cross_entropy_into(&large, &[2usize], 4, &mut probs);
        assert!((got - want).abs() < 1e-6, "{got} against {want}");
    }

    #[test]
    fn tanh_is_within_a_few_ulps_everywhere() {
        // Worst case in units in the last place, for |x| < 1 and beyond (where the result
        // is close to ±1 and one ulp is 6e-8), and the worst absolute error.
        let (mut inner, mut outer, mut abs) = (0u32, 0u32, 0f64);
        let mut x = -12.0f32;
        while x <= 12.0 {
            let exact = f64::from(x).tanh();
            let e = ulps(tanh(x), exact);
            if x.abs() < 1.0 {
                inner = inner.max(e);
            } else {
                outer = outer.max(e);
            }
            abs = abs.max((f64::from(tanh(x)) - exact).abs());
            x += 1.0e-4;
        }
        assert!(inner <= 4, "{inner} ulps for |x| < 1");
        assert!(outer <= 8, "{outer} ulps for |x| >= 1");
        assert!(abs <= 4e-7, "absolute error {abs}");
        for tiny in [1e-30f32, -1e-8, 3e-4, -3.99e-4] {
            assert_eq!(tanh(tiny), tiny);
        }
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!(tanh(0.0), 0.0);
    }

    #[test]
    fn cross_entropy_matches_the_definition_and_its_gradient() {
        let logits = [1.0f32, 2.0, 0.5, -3.0, 0.0, 4.0];
        let targets = [1i64, 2];
        let mut probs = [0.0f32; 6];
        let loss = cross_entropy_into(&logits, &targets, 3, &mut probs);
        let nll = |row: &[f32], t: usize| {
            let z: f64 = row.iter().map(|&l| f64::from(l).exp()).sum();
            z.ln() - f64::from(row[t])
        };
        let expected = (nll(&logits[..3], 1) + nll(&logits[3..], 2)) / 2.0;
        assert!(
            (f64::from(loss) - expected).abs() < 1e-6,
            "{loss} vs {expected}"
        );
        for row in probs.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        // Finite differences of the loss against the analytic gradient.
        let mut grad = [0.0f32; 6];
        cross_entropy_backward_into(&probs, &targets, 3, 1.0, &mut grad);
        for i in 0..6 {
            let mut up = logits;
            up[i] += 1e-2;
            let mut down = logits;
            down[i] -= 1e-2;
            let mut scratch = [0.0f32; 6];
            let numeric = (cross_entropy_into(&up, &targets, 3, &mut scratch)
                - cross_entropy_into(&down, &targets, 3, &mut scratch))
                / 2e-2;
            assert!(
                (numeric - grad[i]).abs() < 1e-3,
                "logit {i}: {numeric} vs {}",
                grad[i]
            );
        }
        // An out-of-range target gives NaN, not a panic.
        assert!(cross_entropy_into(&logits, &[7i64, 0], 3, &mut probs).is_nan());
    }

    #[test]
    fn layer_norm_tanh_and_its_gradient_against_f64() {
        // 13 columns: the eight-lane sums have a tail.
        let (rows, cols) = (3usize, 13usize);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.3)
            .collect();
        let gamma: Vec<f32> = (0..cols).map(|j| 0.5 + j as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..cols).map(|j| j as f32 * 0.05 - 0.3).collect();
        let g: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.25)
            .collect();
        let eps = 1e-5;
        // f64 reference: the output, and Σ g·y for finite differences.
        let reference = |x: &[f64]| -> Vec<f64> {
            let mut y = Vec::new();
            for row in x.chunks(cols) {
                let mean = row.iter().sum::<f64>() / cols as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
                for (j, v) in row.iter().enumerate() {
                    let z =
                        f64::from(gamma[j]) * (v - mean) / (var + eps).sqrt() + f64::from(beta[j]);
                    y.push(z.tanh());
                }
            }
            y
        };
        let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let (mut y, mut x_hat, mut rstd) = (
            vec![0f32; rows * cols],
            vec![0f32; rows * cols],
            vec![0f32; rows],
        );
        layer_norm_tanh(
            &x, cols, &gamma, &beta, eps as f32, &mut y, &mut x_hat, &mut rstd,
        );
        for (a, b) in y.iter().zip(reference(&x64)) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{a} against {b}");
        }
        let (mut dx, mut dz, mut dzx) = (
            vec![0f32; rows * cols],
            vec![0f32; rows * cols],
            vec![0f32; rows * cols],
        );
        layer_norm_tanh_backward(
            &x_hat,
            &rstd,
            &gamma,
            Some(&y),
            &g,
            cols,
            &mut dx,
            &mut dz,
            &mut dzx,
        );
        let loss = |x: &[f64]| -> f64 {
            reference(x)
                .iter()
                .zip(&g)
                .map(|(y, &g)| y * f64::from(g))
                .sum()
        };
        for i in 0..rows * cols {
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let numeric = (loss(&up) - loss(&down)) / 2e-6;
            assert!(
                (numeric - f64::from(dx[i])).abs() < 1e-4,
                "x[{i}]: {numeric} against {}",
                dx[i]
            );
        }
        // dβ = Σ_rows dz and dγ = Σ_rows dz·x̂, against finite differences in β and γ.
        for j in 0..cols {
            let column = |v: &[f32]| (0..rows).map(|r| f64::from(v[r * cols + j])).sum::<f64>();
            let (db, dg) = (column(&dz), column(&dzx));
            let y_of = |dg_: f64, db_: f64| -> f64 {
                let mut total = 0.0;
                for (r, row) in x64.chunks(cols).enumerate() {
                    let mean = row.iter().sum::<f64>() / cols as f64;
                    let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
                    let xh = (row[j] - mean) / (var + eps).sqrt();
                    let z = (f64::from(gamma[j]) + dg_) * xh + f64::from(beta[j]) + db_;
                    total += z.tanh() * f64::from(g[r * cols + j]);
                }
                total
            };
            let numeric_b = (y_of(0.0, 1e-6) - y_of(0.0, -1e-6)) / 2e-6;
            let numeric_g = (y_of(1e-6, 0.0) - y_of(-1e-6, 0.0)) / 2e-6;
            assert!(
                (numeric_b - db).abs() < 1e-4,
                "beta[{j}]: {numeric_b} against {db}"
            );
            assert!(
                (numeric_g - dg).abs() < 1e-4,
                "gamma[{j}]: {numeric_g} against {dg}"
            );
        }
    }

    #[test]
    fn tanh_backward_is_one_minus_y_squared() {
        let y = [0.0f32, 0.5, -0.9, 1.0];
        let g = [1.0f32, 2.0, -1.0, 3.0];
        let mut out = [0.0f32; 4];
        tanh_backward(&g, &y, &mut out);
        assert_eq!(out, [1.0, 1.5, -0.19000006, 0.0]);
    }

    #[test]
    fn threaded_kernels_equal_the_single_threaded_loop() {
        // Large enough to be split across threads.
        let n = 3 * PARALLEL_MIN + 17;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.001).sin() * 4.0).collect();
        let serial: Vec<f32> = x.iter().map(|&v| tanh(v)).collect();
        let mut in_place = x.clone();
        tanh_in_place(&mut in_place);
        assert_eq!(in_place, serial);
        let mut grad = vec![0.0f32; n];
        tanh_backward(&x, &serial, &mut grad);
        let expected: Vec<f32> = x
            .iter()
            .zip(&serial)
            .map(|(g, y)| g * (1.0 - y * y))
            .collect();
        assert_eq!(grad, expected);
    }
}
