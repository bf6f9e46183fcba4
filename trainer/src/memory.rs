//! Keeping resident memory flat over long runs.
//!
//! A training step allocates and frees the same large buffers (activations,
//! logits, gradients) every step, with sizes that vary with each batch's
//! length. glibc's malloc raises its mmap threshold after each large free
//! ("dynamic threshold"), so later large blocks come from per-thread heaps
//! instead of fresh mappings; with rayon's threads each holding an arena,
//! freed space is not reused across them and resident memory grows step
//! after step (measured: +176 MiB over 350 steps of the tiny fixture model;
//! `tests/memory_flat.rs` checks it).
//!
//! Two fixes were measured on the demo fine-tune:
//! - fixing the mmap threshold at 128 KiB kept memory flat but cost 39% of
//!   the throughput (every large buffer is fresh pages, zeroed by the kernel);
//! - one arena for all threads (`M_ARENA_MAX = 1`) keeps memory flat at
//!   full speed: a step makes few, large allocations, so the shared lock is
//!   not contended. That is what this does.

/// Limits glibc to one malloc arena (once per process; elsewhere does nothing).
pub fn keep_resident_memory_flat() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_ARENA_MAX: i32 = -8;
            // SAFETY: mallopt changes only glibc's allocation policy, and 1 is
            // a valid M_ARENA_MAX.
            unsafe {
                mallopt(M_ARENA_MAX, 1);
            }
        }
    });
}
