//! x86-64 AVX-512F: `Simd` over `__m512` (16 × f32), 32 registers.
//!
//! Register budget of the 8×48 SGEMM tile: 8 rows × 3 registers = 24
//! accumulators, 3 registers for the row of packed B, 1 for the broadcast
//! element of A: 28 of the 32 `zmm` registers. Per k step that is 24 FMAs
//! for 3 loads and 8 broadcasts. 8×48 measured faster than 14×32, 6×64 and
//! 9×48 (`gemm-compare`): it is the shape whose B panel (48 columns) and
//! A panel (8 rows) divide the training shapes (512, 768, 3072, 49152)
//! exactly, so no edge tiles, and it leaves registers to spare.

use super::Simd;
use crate::gemm::microkernel::{microkernel_body, KernelFn};
use crate::peak::fma_probe_body;
use std::arch::x86_64::*;

/// Marker type for AVX-512F.
#[derive(Clone, Copy)]
pub(crate) struct Avx512;

impl Simd for Avx512 {
    const LANES: usize = 16;
    type V = __m512;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        // SAFETY (all methods): only reached from `#[target_feature(enable = "avx512f")]`
        // wrappers below, which are only called once AVX-512F was detected.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        unsafe { _mm512_reduce_add_ps(v) }
    }
}

/// Rows of the AVX-512 register tile.
pub(crate) const MR: usize = 8;
/// Columns of the AVX-512 register tile (3 registers of 16 lanes).
pub(crate) const NR: usize = 48;
const _: () = assert!(MR * NR <= crate::gemm::plan::MAX_TILE, "tile larger than the driver's scratch tile");

/// The 8×48 AVX-512 SGEMM microkernel (contract: [`KernelFn`]).
pub(crate) const GEMM: KernelFn = gemm_8x48;

#[target_feature(enable = "avx512f")]
unsafe fn gemm_8x48(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; the feature is enabled on this function.
    unsafe { microkernel_body::<Avx512, MR, { NR / 16 }>(k, a, b, c, ldc, alpha, beta) }
}

#[target_feature(enable = "avx512f")]
unsafe fn probe(iters: usize) -> f32 {
    unsafe { fma_probe_body::<Avx512>(iters) }
}

/// Runs the FMA throughput loop with AVX-512 (see [`crate::peak`]); the result
/// only serves to keep the loop from being optimised away.
pub(crate) fn fma_probe(iters: usize) -> f32 {
    assert!(super::Isa::Avx512.is_supported());
    // SAFETY: AVX-512F was detected just above.
    unsafe { probe(iters) }
}
