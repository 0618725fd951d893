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

/// Runs `f` compiled for the widest vector instructions this CPU has (see the module docs).
static TIER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        let tier = TIER.get_or_init(|| std::env::var("MAKEMORE_SIMD").unwrap_or_default());
        if tier == "none" {
            return f();
        }
        if tier != "avx2" && std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked on the line above).
            return unsafe { avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA (checked on the line above).
            return unsafe { avx2(f) };
        }
    }
    f()
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
