//! The portable fallback: `Simd` over a single `f32`.
//!
//! No intrinsics and no target features, so it runs on every CPU. Its `fma`
//! is an unfused `a * b + c`: `f32::mul_add` would call the C library's
//! software `fmaf` on CPUs without FMA, tens of times slower. This is the
//! kernel to read first; the SIMD ones are the same code with wider registers.

use super::Simd;
use crate::gemm::microkernel::{microkernel_body, KernelFn, STREAMED_B};
use crate::peak::fma_probe_body;

/// Marker type for the scalar "ISA".
#[derive(Clone, Copy)]
pub(crate) struct Scalar;

impl Simd for Scalar {
    const LANES: usize = 1;
    type V = f32;

    #[inline(always)]
    unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> f32 {
        // SAFETY: the caller guarantees `p` is valid for one read.
        unsafe { *p }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: the caller guarantees `p` is valid for one write.
        unsafe { *p = v }
    }
    #[inline(always)]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    unsafe fn sum(v: f32) -> f32 {
        v
    }
}

/// Rows of the scalar register tile.
pub(crate) const MR: usize = 4;
/// Columns of the scalar register tile (4 registers of 1 lane).
pub(crate) const NR: usize = 4;
const _: () = assert!(MR * NR <= crate::gemm::catalog::MAX_TILE, "tile larger than the driver's scratch tile");

/// The 4×4 scalar SGEMM microkernel (contract: [`KernelFn`]).
pub(crate) const GEMM: KernelFn = gemm_4x4;

unsafe fn gemm_4x4(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; scalar code needs no CPU feature.
    unsafe { microkernel_body::<Scalar, MR, NR>(STREAMED_B, k, a, b, c, ldc, alpha, beta) }
}

/// Runs the FMA throughput loop with scalar code (see [`crate::peak`]); the
/// result only serves to keep the loop from being optimised away.
pub(crate) fn fma_probe(iters: usize) -> f32 {
    // SAFETY: scalar code needs no CPU feature.
    unsafe { fma_probe_body::<Scalar>(iters) }
}
