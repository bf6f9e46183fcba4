//! x86-64 AVX2 + FMA3: `Simd` over `__m256` (8 × f32), 16 registers.
//!
//! Register budget of the 6×16 SGEMM tile: 6 rows × 2 registers = 12
//! accumulators, 2 registers for the row of packed B, 1 for the broadcast
//! element of A: 15 of the 16 `ymm` registers.

use super::Simd;
use crate::gemm::microkernel::{microkernel_body, KernelFn};
use crate::peak::fma_probe_body;
use std::arch::x86_64::*;

/// Marker type for AVX2 + FMA.
#[derive(Clone, Copy)]
pub(crate) struct Avx2;

impl Simd for Avx2 {
    const LANES: usize = 8;
    type V = __m256;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        // SAFETY (all methods): only reached from `#[target_feature(enable = "avx2,fma")]`
        // wrappers below, which are only called once AVX2 and FMA were detected.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        unsafe {
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
            lanes.iter().sum()
        }
    }
}

/// Rows of the AVX2 register tile.
pub(crate) const MR: usize = 6;
/// Columns of the AVX2 register tile (2 registers of 8 lanes).
pub(crate) const NR: usize = 16;
const _: () = assert!(MR * NR <= crate::gemm::catalog::MAX_TILE, "tile larger than the driver's scratch tile");

/// The 6×16 AVX2 SGEMM microkernel (contract: [`KernelFn`]).
pub(crate) const GEMM: KernelFn = gemm_6x16;

#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_6x16(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; the features are enabled on this function.
    unsafe { microkernel_body::<Avx2, MR, { NR / 8 }>(k, a, b, c, ldc, alpha, beta) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn probe(iters: usize) -> f32 {
    unsafe { fma_probe_body::<Avx2>(iters) }
}

/// Runs the FMA throughput loop with AVX2 (see [`crate::peak`]); the result
/// only serves to keep the loop from being optimised away.
pub(crate) fn fma_probe(iters: usize) -> f32 {
    assert!(super::Isa::Avx2.is_supported());
    // SAFETY: AVX2 and FMA were detected just above.
    unsafe { probe(iters) }
}
