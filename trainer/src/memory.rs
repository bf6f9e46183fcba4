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
//!
//! The same cost in a smaller form remained: with the dynamic threshold,
//! glibc also trims the heap whenever more than twice the threshold is free
//! at its top, which the end of every step frees, and the next step faults
//! those pages in again, zeroed (SmolLM2 LoRA at B=4, T=128: 17.6K page
//! faults per step, about 70 MB). So the mmap threshold is also fixed, at
//! its largest (32 MiB), and trimming is turned off: the heap keeps its
//! high-water mark, which is the step's peak, and a steady step faults in
//! nothing (measured: 0 page faults per step for SmolLM2 LoRA). Buffers
//! above 32 MiB are still fresh mappings; full fine-tuning's one, the tied
//! embedding and head's gradient, is kept between steps by
//! `autograd::Var::zero_grad` instead (28 page faults per step for SmolLM2).

/// glibc's `mallopt` parameters used here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod mallopt_params {
    pub const M_TRIM_THRESHOLD: i32 = -1;
    pub const M_MMAP_THRESHOLD: i32 = -3;
    pub const M_ARENA_MAX: i32 = -8;
    /// The largest mmap threshold glibc accepts on 64-bit (`DEFAULT_MMAP_THRESHOLD_MAX`).
    pub const MMAP_THRESHOLD_MAX: i32 = 32 << 20;
    // Gradients from this size up are the buffers that would be fresh
    // mappings, so autograd keeps them between steps: one number, two crates.
    const _: () = assert!(
        autograd::KEEP_GRAD_BYTES == MMAP_THRESHOLD_MAX as usize,
        "autograd keeps gradient buffers from glibc's mmap threshold up"
    );
}

/// Limits glibc to one malloc arena, fixes its mmap threshold at 32 MiB and
/// turns heap trimming off (once per process; elsewhere does nothing).
pub fn keep_resident_memory_flat() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            use mallopt_params::*;
            // SAFETY: mallopt changes only glibc's allocation policy, and each
            // value is valid for its parameter.
            unsafe {
                mallopt(M_ARENA_MAX, 1);
                mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    });
}
