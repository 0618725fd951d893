//! The CPU kernels' loops compiled for the vector instructions of the machine they run on.
//!
//! A release build targets the baseline x86-64 (SSE2: 4 lanes of `f32`), so that the binary
//! runs on any x86-64 CPU; matrixmultiply picks its AVX2 or AVX-512 kernel at run time, but
//! loops written in Rust stay at SSE2. [`vectorized`] runs a closure inside a function
//! compiled with AVX-512 or AVX2 and FMA, when the CPU has them (checked once, then a load),
//! so that the closure, inlined there, is vectorised for them. The arithmetic is the same
//! operation by operation (Rust never contracts `a * b + c` into an FMA nor reorders a sum),
//! so a kernel gives the same bits whichever path runs.

#![allow(unsafe_code)] // `#[target_feature]` functions, called only after the CPU check

/// The widest vector instructions that [`vectorized`] compiles for.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    Avx512,
    Avx2,
    Baseline,
}

/// This CPU's [`Tier`], narrowed by `MAKEMORE_SIMD=avx2` or `=none` (for measuring),
/// decided once.
fn tier() -> Tier {
    static TIER: std::sync::OnceLock<Tier> = std::sync::OnceLock::new();
    *TIER.get_or_init(|| {
        let asked = std::env::var("MAKEMORE_SIMD").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            if asked != "none"
                && asked != "avx2"
                && avx2
                && std::is_x86_feature_detected!("avx512f")
            {
                return Tier::Avx512;
            }
            if asked != "none" && avx2 {
                return Tier::Avx2;
            }
        }
        let _ = asked;
        Tier::Baseline
    })
}

/// Whether this CPU has AVX-512F (and [`vectorized`] compiles for it): for kernels written
/// with its intrinsics.
pub fn has_avx512() -> bool {
    tier() == Tier::Avx512
}

/// Runs `f` compiled for the widest vector instructions this CPU has (see the module docs).
#[cfg_attr(not(feature = "ndarray"), allow(dead_code))] // the CPU kernels' loops
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    match tier() {
        // SAFETY: `tier` found AVX-512F, AVX2 and FMA on this CPU.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { avx512(f) },
        // SAFETY: `tier` found AVX2 and FMA on this CPU.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
