//! The CPU threads behind the kernels: large matrix products, element-wise passes and
//! dropout masks are split over rayon's global thread pool. Each output value is computed by
//! one thread in a fixed order, so results are the same bit for bit whatever the number of
//! threads.

use std::num::NonZeroUsize;

/// Starts rayon's global pool with `threads` threads (default: `RAYON_NUM_THREADS`, else one
/// per core), the calling thread being one of them.
///
/// Call it once, first thing, from the thread that will train. Optional, but it saves time
/// on small machines: the calling thread then does its share of each split operation instead
/// of waiting for the pool, and no thread is left spinning beside it. Fails when the global
/// pool was already started (by an earlier call, or by anything that used rayon).
pub fn join_thread_pool(threads: Option<NonZeroUsize>) -> Result<(), rayon::ThreadPoolBuildError> {
    let mut builder = rayon::ThreadPoolBuilder::new().use_current_thread();
    if let Some(n) = threads {
        builder = builder.num_threads(n.get());
    }
    builder.build_global()
}

/// The number of threads that split work: rayon's global pool's (`RAYON_NUM_THREADS`, else
/// one per core, unless [`join_thread_pool`] set another number).
pub fn count() -> usize {
    rayon::current_num_threads()
}
