//! x86-64 AVX2 + FMA3: `Simd` over `__m256` (8 × f32), 16 registers.
//!
//! Register budget of the 6×16 SGEMM tile: 6 rows × 2 registers = 12
//! accumulators, 2 registers for the row of packed B, 1 for the broadcast
//! element of A: 15 of the 16 `ymm` registers.

use super::Simd;
use crate::gemm::microkernel::{microkernel_body, microkernel_body_strided, InPlaceKernelFn, KLoop, KernelFn};
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

/// The k loop of the AVX2 tile: four steps per trip, no B prefetch. Its B
/// micro-panel (KC·16 floats, 16 KiB at KC = 256) stays in L1, so a
/// prefetch only takes a load slot. Timed on Zen 3 (2 vCPUs), alternating
/// with the one-step loop in one process, single-threaded whole GEMMs of
/// the step's shapes: 5-20% faster, on every shape.
const K_LOOP: KLoop = KLoop { unroll: 4, prefetch_b: false, prefetch_a: false };

#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_6x16(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: forwarded contract of `KernelFn`; the features are enabled on this function.
    unsafe { microkernel_body::<Avx2, MR, { NR / 8 }>(K_LOOP, k, a, b, c, ldc, alpha, beta) }
}

/// The 6×16 tile reading A in place (contract: [`InPlaceKernelFn`]), for
/// products of one B panel (`n <= 16`), whose A panels the kernel reads
/// once: LoRA's rank-16 products `x·Aᵀ`, `G·B` and `Gᵀ·u`.
pub(crate) const GEMM_IN_PLACE: InPlaceKernelFn = gemm_6x16_in_place;

#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)] // the InPlaceKernelFn signature
unsafe fn gemm_6x16_in_place(
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
    // SAFETY: forwarded contract of `InPlaceKernelFn`; the features are enabled on this function.
    unsafe { microkernel_body_strided::<Avx2, MR, { NR / 8 }>(K_LOOP, k, a, rs_i, rs_p, b, c, ldc, alpha, beta) }
}

/// `dst[p * dst_stride + i] = src[i * stride + p]` for `i < ROWS` and
/// `p < k / 8 * 8`: `ROWS` (6 or 8) k-contiguous rows packed k-major, one
/// 8 × 8 block at a time, transposed in registers (8 loads, 24 shuffles, 8
/// stores, where element by element it is 64 of each). With 6 rows the two
/// missing ones are zeros that are never stored: each packed k step gets
/// 4 floats and then 2. Returns how many k it packed; the caller packs the
/// `k % 8` left. Packing's building block for A panels (the AVX-512 tile's
/// 8 rows, the AVX2 tile's 6) and 16-wide B panels from row-major sources.
pub(crate) fn transpose_rows<const ROWS: usize>(
    src: &[f32],
    stride: usize,
    k: usize,
    dst: &mut [f32],
    dst_stride: usize,
) -> usize {
    const { assert!(ROWS == 6 || ROWS == 8) };
    let k8 = k / 8 * 8;
    if k8 == 0 {
        return 0;
    }
    assert!(super::Isa::Avx2.is_supported() && src.len() >= (ROWS - 1) * stride + k8);
    assert!(dst.len() >= (k8 - 1) * dst_stride + ROWS);
    // SAFETY: feature checked; reads src[i * stride + p] and writes
    // dst[p * dst_stride + i] for i < ROWS, p < k8, inside the asserted lengths.
    unsafe { transpose_rows_impl::<ROWS>(src.as_ptr(), stride, k8, dst.as_mut_ptr(), dst_stride) };
    k8
}

/// Stores lanes `0..ROWS` (8, or 6) of `v` at `at`: with 6, lanes 0-3 and
/// then 4-5 as one 64-bit store.
///
/// # Safety
/// AVX must be available (`#[inline(always)]` compiles this inside the
/// caller, which enables it); `at[..ROWS]` is valid for writes.
#[inline(always)]
unsafe fn store_row<const ROWS: usize>(at: *mut f32, v: __m256) {
    // SAFETY: the caller's contract.
    unsafe {
        if ROWS == 8 {
            _mm256_storeu_ps(at, v);
        } else {
            _mm_storeu_ps(at, _mm256_castps256_ps128(v));
            _mm_store_sd(at.add(4).cast(), _mm_castps_pd(_mm256_extractf128_ps::<1>(v)));
        }
    }
}

#[target_feature(enable = "avx2")]
#[allow(clippy::needless_range_loop)] // an index loop, not an iterator chain: see below
unsafe fn transpose_rows_impl<const ROWS: usize>(
    src: *const f32,
    stride: usize,
    k8: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    // SAFETY: the bounds `transpose_rows` asserted; rows >= ROWS are never read.
    // Plain loops and an `#[inline(always)]` helper, no closures: a closure
    // does not get this function's target features (see `avx512::transpose_16x16_epi32`).
    unsafe {
        for p in (0..k8).step_by(8) {
            let mut r = [_mm256_setzero_ps(); 8];
            for i in 0..ROWS {
                r[i] = _mm256_loadu_ps(src.add(i * stride + p));
            }
            // 1: interleave row pairs within each 128-bit half:
            //    t[0] = [r00 r10 r01 r11 | r04 r14 r05 r15], t[1] the columns 2, 3 | 6, 7.
            let t = [
                _mm256_unpacklo_ps(r[0], r[1]),
                _mm256_unpackhi_ps(r[0], r[1]),
                _mm256_unpacklo_ps(r[2], r[3]),
                _mm256_unpackhi_ps(r[2], r[3]),
                _mm256_unpacklo_ps(r[4], r[5]),
                _mm256_unpackhi_ps(r[4], r[5]),
                _mm256_unpacklo_ps(r[6], r[7]),
                _mm256_unpackhi_ps(r[6], r[7]),
            ];
            // 2: join pairs into quads: s[j] (j < 4) holds column j of rows
            //    0-3 in its low half and column j + 4 in its high half; s[4 + j]
            //    the same for rows 4-7.
            let s = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            // 3: join the halves: column j is s[j]'s low half and s[4 + j]'s,
            //    column j + 4 their high halves.
            for j in 0..4 {
                let lo = _mm256_permute2f128_ps::<0x20>(s[j], s[4 + j]);
                let hi = _mm256_permute2f128_ps::<0x31>(s[j], s[4 + j]);
                store_row::<ROWS>(dst.add((p + j) * dst_stride), lo);
                store_row::<ROWS>(dst.add((p + j + 4) * dst_stride), hi);
            }
        }
    }
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
