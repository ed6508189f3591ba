//! Worker threads: a requested count (or the machine's physical cores) → one rayon pool that
//! this crate's kernels and Candle's share.
//!
//! Candle 0.11 sizes its CPU parallelism from environment variables rather than from the pool
//! it runs on:
//! - its f32/f16 matmul (the `gemm` crate) splits work into `candle_core::utils::
//!   get_num_threads()` tasks (`RAYON_NUM_THREADS`, else the physical cores) and runs them on
//!   the *current* rayon pool;
//! - its quantized matmul runs on a private spinning "barrier pool" of
//!   `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else physical cores) threads;
//! - `Device::with_context` would install a second, private rayon pool (this crate never
//!   calls it).
//!
//! Left alone, rayon's global pool takes one thread per *logical* CPU while gemm splits by
//! *physical* cores, and the two disagree on SMT machines. [`init`] makes them one number:
//! it sets both environment variables (Candle reads them when it first needs a pool, so this
//! must happen before any tensor work) and builds rayon's global pool with the same count, so
//! every parallel section of this crate and of Candle runs on the same `n` threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// The count [`init`] set, 0 before it ran.
static CONFIGURED: AtomicUsize = AtomicUsize::new(0);

/// The default worker count: `RAYON_NUM_THREADS` when set to a positive number, otherwise the
/// physical cores this process may run on (SMT siblings share one core's vector units, so a
/// second thread per core slows these kernels down).
fn default_threads() -> usize {
    if let Some(n) = env_count("RAYON_NUM_THREADS") {
        return n;
    }
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    num_cpus::get_physical().clamp(1, allowed)
}

fn env_count(key: &str) -> Option<usize> {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
}

/// Sets the worker count for this process: `threads`, or `default_threads` when `None`.
/// Returns the count in effect.
///
/// Call it once, at the start of `main`, before any other thread exists and before any tensor
/// work: it sets `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` in the process environment (the
/// only way to size Candle's matmul and quantized-matmul parallelism) and builds rayon's global
/// pool. Calling it again with the same count is harmless; a different count once the pool
/// exists is an error, since rayon's global pool cannot be resized.
///
/// ```
/// let n = vlm::threads::init(None)?;
/// assert_eq!(n, vlm::threads::current());
/// # Ok::<(), vlm::Error>(())
/// ```
pub fn init(threads: Option<usize>) -> Result<usize> {
    let n = match threads {
        Some(0) => {
            return Err(Error::InvalidOption {
                name: "threads",
                reason: "must be at least 1".into(),
            })
        }
        Some(n) => n,
        None => default_threads(),
    };
    let configured = CONFIGURED.load(Ordering::SeqCst);
    if configured == n {
        return Ok(n);
    }
    if configured != 0 {
        return Err(Error::InvalidOption {
            name: "threads",
            reason: format!("the thread pool already runs {configured} threads; asked for {n}"),
        });
    }
    let value = n.to_string();
    std::env::set_var("RAYON_NUM_THREADS", &value);
    std::env::set_var("CANDLE_NUM_THREADS", &value);
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("vlm-worker-{i}"))
        .build_global();
    let running = rayon::current_num_threads();
    if built.is_err() && running != n {
        return Err(Error::InvalidOption {
            name: "threads",
            reason: format!(
                "rayon's global pool was already started with {running} threads; asked for {n}"
            ),
        });
    }
    CONFIGURED.store(n, Ordering::SeqCst);
    Ok(n)
}

/// Threads in the pool that runs this crate's kernels (rayon's global pool).
pub fn current() -> usize {
    rayon::current_num_threads()
}

/// The task count Candle's matmul splits its work into.
pub(crate) fn candle_threads() -> usize {
    candle_core::utils::get_num_threads()
}
