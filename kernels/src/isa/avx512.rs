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
use crate::gemm::microkernel::{
    microkernel_body, microkernel_body_strided, InPlaceKernelFn, KernelFn, STREAMED_B, STREAMED_B_STRIDED_A,
};
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
const _: () = assert!(MR * NR <= crate::gemm::catalog::MAX_TILE, "tile larger than the driver's scratch tile");

/// The 8×48 AVX-512 SGEMM microkernel (contract: [`KernelFn`]).
pub(crate) const GEMM: KernelFn = gemm_8x48;

#[target_feature(enable = "avx512f")]
unsafe fn gemm_8x48(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; the feature is enabled on this function.
    unsafe { microkernel_body::<Avx512, MR, { NR / 16 }>(STREAMED_B, k, a, b, c, ldc, alpha, beta) }
}

/// Rows of the narrow AVX-512 tile, for narrow products (`gemm::plan::prefers_narrow`).
pub(crate) const NARROW_MR: usize = 16;
/// Columns of the narrow tile: one register.
pub(crate) const NARROW_NR: usize = 16;
const _: () =
    assert!(NARROW_MR * NARROW_NR <= crate::gemm::catalog::MAX_TILE, "tile larger than the driver's scratch tile");

/// The 16×16 AVX-512 SGEMM microkernel (contract: [`KernelFn`]), for
/// narrow products: LoRA's rank-16 products (`x·Aᵀ`, `dh·B`, `dhᵀ·u`), and
/// up to 128 columns where it pads fewer than 8×48; and every product of
/// attention (`nn::attention::tiles`), whose widths are multiples of 16. On the 8×48 tile a 16-column product would fill one
/// register of three and pad the rest with zeros: three times the FMAs, and
/// every tile through the driver's scratch edge path. Per k step: one load of B,
/// 16 broadcasts of A, 16 FMAs into 16 accumulators.
pub(crate) const NARROW_GEMM: KernelFn = gemm_16x16;

#[target_feature(enable = "avx512f")]
unsafe fn gemm_16x16(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; the feature is enabled on this function.
    unsafe { microkernel_body::<Avx512, NARROW_MR, 1>(STREAMED_B, k, a, b, c, ldc, alpha, beta) }
}

/// The 8×48 and 16×16 tiles reading A in place (contract:
/// [`InPlaceKernelFn`]), for products of one B panel, whose A panels the
/// kernel reads once: LoRA's rank-16 products. `x·Aᵀ` and `G·B` read 16 rows
/// of a row-major activation (16 streams, each sequential in k); `Gᵀ·u`
/// reads 16 consecutive floats of a row of `G` per k step.
pub(crate) const GEMM_IN_PLACE: InPlaceKernelFn = gemm_in_place::<MR, { NR / 16 }>;
pub(crate) const NARROW_GEMM_IN_PLACE: InPlaceKernelFn = gemm_in_place::<NARROW_MR, 1>;

#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)] // the InPlaceKernelFn signature
unsafe fn gemm_in_place<const ROWS: usize, const NV: usize>(
    k: usize,
    a: *const f32,
    rs_i: usize,
    rs_p: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // SAFETY: forwarded contract of `InPlaceKernelFn`; the feature is enabled on this function.
    unsafe {
        microkernel_body_strided::<Avx512, ROWS, NV>(STREAMED_B_STRIDED_A, k, a, rs_i, rs_p, b, c, ldc, alpha, beta)
    }
}

/// The 16 × 16 transpose of 32-bit elements: column `q` of the rows `r`
/// (`r[i]` lane `q`) becomes register `q` (lane `i`). Packing's building
/// block for k-contiguous sources (see `transpose_16x16` and
/// `avx512_bf16::pairs_transposed_16x16`).
///
/// # Safety
/// AVX-512F must be available; only call from a function that enables it
/// (`#[inline(always)]` compiles this inside the caller).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // index loops, not closures: see below
pub(crate) unsafe fn transpose_16x16_epi32(r: [__m512i; 16]) -> [__m512i; 16] {
    // Plain loops, no closures (`array::from_fn`): a closure is a function of
    // its own without the caller's target features, and when the compiler
    // does not inline it, every intrinsic becomes a call.
    // SAFETY: register-only instructions of AVX-512F, which the caller enables.
    unsafe {
        // 1: interleave rows 2k and 2k+1 within each 128-bit lane.
        let mut t = r;
        for k in 0..8 {
            t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
        }
        // 2: 64-bit interleave of rows 4k..4k+3: u[4k + j] holds, in lane L,
        //    column j + 4L of those four rows.
        let mut u = t;
        for k in 0..4 {
            let b = 4 * k;
            u[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
            u[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
            u[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
            u[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
        }
        // 3: join row groups 0-3 with 4-7 (and 8-11 with 12-15): for j < 4,
        //    s[j] holds columns j and j+8, s[4+j] columns j+4 and j+12.
        let mut s = u;
        for half in [0, 8] {
            for j in 0..4 {
                let (a, b) = (u[half + j], u[half + 4 + j]);
                s[half + j] = _mm512_shuffle_i32x4::<0x88>(a, b);
                s[half + 4 + j] = _mm512_shuffle_i32x4::<0xdd>(a, b);
            }
        }
        // 4: join rows 0-7 with 8-15: s[j] and s[8 + j] hold columns j and
        //    j + 8 for every j < 8.
        let mut out = s;
        for j in 0..8 {
            out[j] = _mm512_shuffle_i32x4::<0x88>(s[j], s[8 + j]);
            out[j + 8] = _mm512_shuffle_i32x4::<0xdd>(s[j], s[8 + j]);
        }
        out
    }
}

/// `dst[q * dst_stride + i] = src[i * stride + q]` for `i, q < 16`: one
/// 16 × 16 block of a k-contiguous panel, transposed in registers (16 loads,
/// 64 shuffles, 16 stores, where element by element it is 256 of each).
pub(crate) fn transpose_16x16(src: &[f32], stride: usize, dst: &mut [f32], dst_stride: usize) {
    assert!(super::Isa::Avx512.is_supported() && src.len() >= 15 * stride + 16);
    assert!(dst.len() >= 15 * dst_stride + 16);
    // SAFETY: feature checked; reads src[i * stride..][..16] and writes
    // dst[q * dst_stride..][..16] for i, q < 16, inside the asserted lengths.
    unsafe { transpose_16x16_impl(src.as_ptr(), stride, dst.as_mut_ptr(), dst_stride) }
}

#[target_feature(enable = "avx512f")]
unsafe fn transpose_16x16_impl(src: *const f32, stride: usize, dst: *mut f32, dst_stride: usize) {
    // SAFETY: the bounds `transpose_16x16` asserted.
    unsafe {
        let mut rows = [_mm512_setzero_si512(); 16];
        for (i, row) in rows.iter_mut().enumerate() {
            *row = _mm512_castps_si512(_mm512_loadu_ps(src.add(i * stride)));
        }
        for (q, col) in transpose_16x16_epi32(rows).into_iter().enumerate() {
            _mm512_storeu_ps(dst.add(q * dst_stride), _mm512_castsi512_ps(col));
        }
    }
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
