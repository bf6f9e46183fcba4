//! The row kernels of a transformer, forward and backward side by side:
//! everything a training step computes that is not a matrix product.
//!
//! - [`exp`]: a branch-free `exp` the compiler can vectorise (libm's is a call per element).
//! - [`elementwise`]: `+ - * /` over slices, scaling, `axpy`.
//! - [`adamw`]: the AdamW update of one parameter, as PyTorch computes it.
//! - [`activation`]: GELU (tanh form), SiLU, SwiGLU.
//! - [`softmax`]: softmax over rows.
//! - [`norm`]: LayerNorm and RMSNorm.
//! - [`rope`]: rotary position embedding (Llama's half-rotation layout).
//! - [`embedding`]: gather rows of a table, and the scatter-add backward.
//! - [`cross_entropy`]: log-softmax and negative log-likelihood fused, with an ignore index.
//! - [`online_softmax`]: softmax over rows that arrive a chunk of columns at a
//!   time (the LM head over a vocabulary in chunks).
//! - [`attention`]: causal multi-head attention with grouped-query heads, fused
//!   (scores, mask, softmax and weighted sum never leave a block of 64 rows).
//!
//! ## How they are vectorised
//! The loops are plain Rust over slices, written so LLVM can vectorise them
//! (no branches in the inner loops, no calls into libm). [`vectorized!`]
//! compiles each such loop once per instruction set, inside a
//! `#[target_feature]` function, and calls the one [`crate::isa`] selected; so
//! a binary built for baseline x86-64 still runs AVX-512 code where it can.
//! Rows are spread over rayon's pool when a call is large enough to pay for it.
//!
//! ## Determinism
//! Every output element is computed by one thread, in a fixed order. Sums
//! across rows (the weight gradient of a norm, the loss of a batch) are made
//! over chunks whose boundaries depend on the sizes only, then added in
//! chunk order: the same inputs give the same bits for any thread count.

pub mod activation;
pub mod adamw;
pub mod attention;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod exp;
pub mod norm;
pub mod online_softmax;
mod reduce;
pub mod rope;
pub mod softmax;

use crate::isa::Isa;
use std::sync::OnceLock;

/// Below this many elements a call stays on the calling thread.
pub(crate) const PARALLEL_MIN: usize = 1 << 15;

/// Rows per chunk for cross-row sums: fixed, so results do not depend on threads.
pub(crate) const ROWS_PER_CHUNK: usize = 32;

/// The instruction set the row kernels are compiled for: the GEMM's
/// selection (so `HONE_KERNEL` forces both), or scalar if that failed.
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| crate::gemm::Microkernel::selected().map(|k| k.isa).unwrap_or(Isa::Scalar))
}

/// Defines a function whose body is compiled once per instruction set
/// (AVX-512, AVX2+FMA, and the baseline) and dispatches at run time to the
/// one [`isa`] selected. The body must be plain safe Rust; what the wrapper
/// adds is only the license to use wider registers.
macro_rules! vectorized {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }

            match $crate::nn::isa() {
                // SAFETY: `isa()` only returns an ISA that run-time detection found.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx512 => unsafe { avx512($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::isa::Isa::Avx2 => unsafe { avx2($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use vectorized;

/// Runs `f(row_index_of_first_row, rows_chunk)` over `data` split into
/// whole rows of `width`, in parallel when the call is large.
pub(crate) fn for_rows<F>(data: &mut [f32], width: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    use rayon::prelude::*;
    if width == 0 || data.is_empty() {
        return;
    }
    let rows = data.len() / width;
    if data.len() < PARALLEL_MIN || rayon::current_num_threads() == 1 {
        f(0, data);
        return;
    }
    // Chunks of several rows each, about 4 per thread, so work balances.
    let per = rows.div_ceil(4 * rayon::current_num_threads()).max(1);
    data.par_chunks_mut(per * width).enumerate().for_each(|(i, chunk)| f(i * per, chunk));
}
