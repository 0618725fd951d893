//! The CPU threads behind the kernels: large matrix products, element-wise passes and
//! dropout masks are split over rayon's global thread pool. Each output value is computed by
//! one thread in a fixed order, so results are the same bit for bit whatever the number of
//! threads.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Starts rayon's global pool with `threads` threads (default: `RAYON_NUM_THREADS`, else one
/// per core), the calling thread being one of them.
///
/// Call it once, first thing, from the thread that will train. Optional, but it saves time
/// on small machines: the calling thread then does its share of each split operation instead
/// of waiting for the pool, and [`Polling`] keeps the other threads busy only for a thread of
/// the pool. Fails when the global pool was already started (by an earlier call, or by
/// anything that used rayon).
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

/// Keeps the pool's other threads polling for work during the training steps that hand them
/// some, instead of sleeping between one split operation and the next.
///
/// A training step of a Transformer hands work to the pool dozens of times (each large
/// product, each split kernel), a few hundred microseconds of it each time. Between two of
/// those, rayon puts an idle thread to sleep, and on a virtual machine waking it again takes
/// a good part of the work it is woken for; the training thread often ran both halves of a
/// product itself. While [`Polling::run`]'s closure runs, the other threads poll
/// (`rayon::yield_now`) and take each piece as soon as it is handed out, keeping their cores
/// busy until the closure returns.
///
/// A step that hands out nothing (a small model, or a GPU backend) would only pay for the
/// polling: when the pollers of a step found no work, the next [`PROBE_EVERY`]` − 1` steps run
/// without them. Nothing here changes a result: it changes which thread computes a piece,
/// never how.
#[derive(Debug, Default)]
pub struct Polling {
    skip: u32,
}

/// How often a step that found nothing for the pollers tries them again.
pub const PROBE_EVERY: u32 = 64;

impl Polling {
    /// Runs `f` on the calling thread with the pool's other threads polling for its work (or
    /// `f()` alone: a pool of one thread, a caller outside the pool (see
    /// [`join_thread_pool`]), or a recent step that handed out nothing).
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let me = rayon::current_thread_index();
        let threads = rayon::current_num_threads();
        if me.is_none() || threads < 2 {
            return f();
        }
        if self.skip > 0 {
            self.skip -= 1;
            return f();
        }
        let done = AtomicBool::new(false);
        let executed = AtomicUsize::new(0);
        let result = rayon::in_place_scope(|scope| {
            for _ in 1..threads {
                let (done, executed) = (&done, &executed);
                scope.spawn(move |_| poll(done, executed, me));
            }
            let _stop = Stop(&done);
            f()
        });
        if executed.load(Ordering::Relaxed) == 0 {
            self.skip = PROBE_EVERY - 1;
        }
        result
    }
}

/// Sets its flag when dropped, also when the closure unwinds.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs the pool's pending work until `done`, counting the pieces; returns at once on the
/// thread that called [`Polling::run`] (which may pick this job up itself while it waits
/// inside a split operation).
fn poll(done: &AtomicBool, executed: &AtomicUsize, caller: Option<usize>) {
    if rayon::current_thread_index() == caller {
        return;
    }
    let mut count = 0;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            count += 1;
        } else {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
    executed.fetch_add(count, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a pool of two threads whose caller is one of them, a step that splits work runs
    /// with the pollers and gives the same result; a step that splits nothing makes the
    /// next `PROBE_EVERY − 1` steps run without them.
    #[test]
    fn polling_runs_the_work_and_backs_off_when_there_is_none() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build();
        let Ok(pool) = pool else {
            panic!("a thread pool")
        };
        pool.install(|| {
            let mut polling = Polling::default();
            let split = |n: u64| {
                let (a, b) = rayon::join(|| (0..n).sum::<u64>(), || (n..2 * n).sum::<u64>());
                a + b
            };
            assert_eq!(polling.run(|| split(1000)), (0..2000).sum::<u64>());
            let mut polling = Polling::default();
            assert_eq!(polling.run(|| 7), 7);
            // (Whether the join's second half above was taken by the poller or run by the
            // caller itself varies; a step with nothing split backs off for sure.)
            assert_eq!(polling.skip, PROBE_EVERY - 1);
            for left in (0..PROBE_EVERY - 1).rev() {
                assert_eq!(polling.run(|| split(10)), (0..20).sum::<u64>());
                assert_eq!(polling.skip, left);
            }
        });
        // Outside a pool of several threads, it is `f()`.
        let mut polling = Polling::default();
        assert_eq!(polling.run(|| 3), 3);
        assert_eq!(polling.skip, 0);
    }
}
