//! The threaded module (feature `threads`, built by `scripts/build-wasm.sh --threads` into
//! `pkg-threads`): wasm atomics with a shared memory, and rayon's pool on Web Workers
//! (wasm-bindgen-rayon), on which burn's CPU backend, its gemm and sam-core's host kernels
//! run. It needs a cross-origin isolated page (`SharedArrayBuffer`).
//!
//! JavaScript calls `initThreadPool(n)` once, before anything else runs: rayon's pool is
//! global, and a first parallel call without it would settle for one thread.

use wasm_bindgen::prelude::*;

#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// The threads that run the CPU backend: rayon's pool in the threaded module (after
/// `initThreadPool`), 1 in the single-threaded module.
#[wasm_bindgen(js_name = threadCount)]
pub fn thread_count() -> usize {
    #[cfg(feature = "threads")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "threads"))]
    1
}

/// Runs `work` (a whole step of the model: an embedding, the prompt-independent decoder
/// work) on a thread of rayon's pool in the threaded module, and in place otherwise.
///
/// The module's caller (the package's worker) is not a thread of the pool. Called from
/// there, every parallel operation inside `work` (burn's CPU kernels, the matrix products,
/// `for_each_chunk`) would be handed to the pool and the caller put to sleep until it is
/// done, one cross-thread wake-up (`Atomics.wait` / `notify`) per operation, thousands an
/// embedding. Run on a pool thread, the operations split in place and the other threads
/// join by stealing: the caller waits once.
pub fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    return rayon::scope(|_| work());
    #[cfg(not(feature = "threads"))]
    work()
}
