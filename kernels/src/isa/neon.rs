//! aarch64 Advanced SIMD (NEON): `Simd` over `float32x4_t` (4 × f32), 32 registers.
//!
//! Register budget of the 8×12 SGEMM tile: 8 rows × 3 registers = 24
//! accumulators, 3 registers for the row of packed B, and the broadcast
//! element of A: 28 of the 32 `v` registers.
//!
//! This module is compiled only for aarch64. On an x86-64 host it is tested by
//! cross-compiling and running `kernel_check` under qemu-aarch64 (`.ci/neon`).

use super::Simd;
use crate::gemm::microkernel::{microkernel_body, KernelFn, STREAMED_B};
use crate::peak::fma_probe_body;
use std::arch::aarch64::*;

/// Marker type for NEON.
#[derive(Clone, Copy)]
pub(crate) struct Neon;

impl Simd for Neon {
    const LANES: usize = 4;
    type V = float32x4_t;

    #[inline(always)]
    unsafe fn zero() -> float32x4_t {
        // SAFETY (all methods): only reached from `#[target_feature(enable = "neon")]`
        // wrappers below, which are only called once NEON was detected.
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: float32x4_t) {
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // vfmaq_f32(c, a, b) = c + a * b, fused.
        unsafe { vfmaq_f32(c, a, b) }
    }
    #[inline(always)]
    unsafe fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
    #[inline(always)]
    unsafe fn sum(v: float32x4_t) -> f32 {
        unsafe { vaddvq_f32(v) }
    }
}

/// Rows of the NEON register tile.
pub(crate) const MR: usize = 8;
/// Columns of the NEON register tile (3 registers of 4 lanes).
pub(crate) const NR: usize = 12;
const _: () = assert!(MR * NR <= crate::gemm::catalog::MAX_TILE, "tile larger than the driver's scratch tile");

/// The 8×12 NEON SGEMM microkernel (contract: [`KernelFn`]).
pub(crate) const GEMM: KernelFn = gemm_8x12;

#[target_feature(enable = "neon")]
unsafe fn gemm_8x12(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; the feature is enabled on this function.
    unsafe { microkernel_body::<Neon, MR, { NR / 4 }>(STREAMED_B, k, a, b, c, ldc, alpha, beta) }
}

#[target_feature(enable = "neon")]
unsafe fn probe(iters: usize) -> f32 {
    unsafe { fma_probe_body::<Neon>(iters) }
}

/// Runs the FMA throughput loop with NEON (see [`crate::peak`]); the result
/// only serves to keep the loop from being optimised away.
pub(crate) fn fma_probe(iters: usize) -> f32 {
    assert!(super::Isa::Neon.is_supported());
    // SAFETY: NEON was detected just above.
    unsafe { probe(iters) }
}
