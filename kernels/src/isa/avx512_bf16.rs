//! x86-64 AVX512_BF16: the bf16 GEMM microkernel, built on `VDPBF16PS`.
//!
//! `VDPBF16PS acc, a, b` treats each 32-bit lane of `a` and `b` as a pair
//! of bf16 values and adds both products to that lane's f32:
//!
//! ```text
//! acc[l] += a[2l]·b[2l] + a[2l+1]·b[2l+1]        l < 16
//! ```
//!
//! so one instruction does 32 multiply-adds where `VFMADD231PS` does 16.
//! The packed operands (`gemm::pack_bf16::pack_panel_pairs`) hold pairs
//! along k: slot `p` of a row holds its elements `2p` and `2p + 1`. Then
//! broadcasting A's pair for row `i` against B's pairs for 16 columns gives
//! exactly `Σ_{k ∈ {2p, 2p+1}} A[i][k]·B[k][j]` in lane `j`.
//!
//! The tile is the f32 kernel's 8×48 (24 accumulators, 3 B registers, 1
//! broadcast: 28 of 32 `zmm`), and its contract is the f32 microkernel's
//! (`gemm::microkernel`) with `k` counting pairs and each packed "float"
//! being one pair.

use crate::gemm::microkernel::KernelFn;
use std::arch::x86_64::*;

/// Rows of the register tile.
pub(crate) const MR: usize = 8;
/// Columns of the register tile (3 registers of 16 f32 lanes).
pub(crate) const NR: usize = 48;
const NV: usize = NR / 16;

/// Whether this CPU has the instructions (AVX-512F and AVX512_BF16).
pub(crate) fn is_supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// The 8×48 bf16-pair microkernel (contract: [`KernelFn`], `k` in pairs).
pub(crate) const GEMM: KernelFn = gemm_bf16_8x48;

#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::needless_range_loop)] // (i, v) index a register tile
unsafe fn gemm_bf16_8x48(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    // SAFETY: the `KernelFn` contract: a[..k*MR] and b[..k*NR] slots are
    // readable, c[i*ldc + j] for i < MR, j < NR is readable and writable;
    // the features were detected before this kernel was selected.
    unsafe {
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc + NR - 1) as *const i8);
        }
        let (a, b) = (a as *const i32, b as *const i32);
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for p in 0..k {
            let bp = b.add(p * NR);
            // Each register: 16 columns × (k = 2p, 2p+1).
            let bv: [__m512bh; NV] =
                std::array::from_fn(|v| std::mem::transmute(_mm512_loadu_si512(bp.add(16 * v) as *const _)));
            let ap = a.add(p * MR);
            for i in 0..MR {
                // Row i's pair, in all 16 lanes.
                let ai: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(i)));
                for v in 0..NV {
                    acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
                }
            }
        }
        let alpha = _mm512_set1_ps(alpha);
        for i in 0..MR {
            for v in 0..NV {
                let cp = c.add(i * ldc + 16 * v);
                let ab = _mm512_mul_ps(alpha, acc[i][v]);
                // beta == 0: C is write-only (it may hold NaN).
                let out = if beta == 0.0 { ab } else { _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_loadu_ps(cp), ab) };
                _mm512_storeu_ps(cp, out);
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn probe(iters: usize) -> f32 {
    // Like `peak::fma_probe_body`: independent accumulators so the loop is
    // bound by throughput, not latency.
    unsafe {
        let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(std::hint::black_box(0x3f80_3f80))); // (1.0, 1.0)
        let y: __m512bh = std::mem::transmute(_mm512_set1_epi32(std::hint::black_box(0x3a80_3a80))); // (~0.001, ~0.001)
        let mut acc = [_mm512_setzero_ps(); 12];
        for _ in 0..std::hint::black_box(iters) {
            for a in acc.iter_mut() {
                *a = _mm512_dpbf16_ps(*a, x, y);
            }
        }
        let mut s = _mm512_setzero_ps();
        for a in acc {
            s = _mm512_add_ps(s, a);
        }
        _mm512_reduce_add_ps(s)
    }
}

/// FLOPs of one `probe` iteration: 12 instructions × 16 lanes × 2 pairs × 2 (multiply, add).
pub(crate) const PROBE_FLOPS_PER_ITER: usize = 12 * 16 * 2 * 2;

/// Runs the `VDPBF16PS` throughput loop; the result only keeps it from being optimised away.
pub(crate) fn dpbf16_probe(iters: usize) -> f32 {
    assert!(is_supported());
    // SAFETY: the features were detected just above.
    unsafe { probe(iters) }
}

/// `dst[q] = bf16(src[2q]) | bf16(src[2q + 1]) << 16`, rounding to nearest
/// even (`VCVTNE2PS2BF16`); an odd `src` pads its last pair with 0. `dst`
/// must hold `⌈src.len()/2⌉` slots. Packing's fast path for k-contiguous rows.
pub(crate) fn pairs_from_contiguous(src: &[f32], dst: &mut [u32]) {
    assert!(is_supported() && dst.len() == src.len().div_ceil(2));
    // SAFETY: features checked; the body reads src[..len] and writes dst[..len/2 rounded up].
    unsafe { pairs_from_contiguous_impl(src, dst) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_from_contiguous_impl(src: &[f32], dst: &mut [u32]) {
    // SAFETY: masked loads and stores stay inside the slices (see the masks).
    unsafe {
        let mut q = 0;
        while 2 * q < src.len() {
            let left = src.len() - 2 * q; // f32 values still to read
            let lo_mask: __mmask16 = if left >= 16 { 0xffff } else { ((1u32 << left) - 1) as u16 };
            let hi_left = left.saturating_sub(16);
            let hi_mask: __mmask16 = if hi_left >= 16 { 0xffff } else { ((1u32 << hi_left) - 1) as u16 };
            let lo = _mm512_maskz_loadu_ps(lo_mask, src.as_ptr().add(2 * q));
            let hi = _mm512_maskz_loadu_ps(hi_mask, src.as_ptr().add(2 * q + 16));
            // 32 bf16 in source order: lo's 16 then hi's 16, i.e. 16 pairs.
            let packed = _mm512_cvtne2ps_pbh(hi, lo);
            let n = left.div_ceil(2).min(16);
            let out_mask: __mmask16 = if n == 16 { 0xffff } else { ((1u32 << n) - 1) as u16 };
            _mm512_mask_storeu_epi32(
                dst.as_mut_ptr().add(q) as *mut _,
                out_mask,
                std::mem::transmute::<__m512bh, __m512i>(packed),
            );
            q += 16;
        }
    }
}

/// Sixteen k-contiguous rows' pairs, transposed: for `r < 16` and `q < 16`,
/// `dst[q * dst_stride + r] = bf16(src[r * stride + 2q]) | bf16(src[r * stride + 2q + 1]) << 16`.
///
/// Packing's fast path for a B panel stored k-contiguous (`Wᵀ` in `x·Wᵀ`):
/// the pair layout wants each k pair as a run over the panel's columns,
/// which is a 16 × 16 transpose of 32-bit slots. Done in registers it is
/// 16 loads of 32 floats, 16 conversions, 64 shuffles and 16 full-width
/// stores, where the row-by-row path scatters 256 single slots.
pub(crate) fn pairs_transposed_16x16(src: &[f32], stride: usize, dst: &mut [u32], dst_stride: usize) {
    assert!(is_supported() && src.len() >= 15 * stride + 32);
    assert!(dst_stride >= 16 && dst.len() >= 15 * dst_stride + 16);
    // SAFETY: features checked; the reads are src[r * stride..][..32] and the
    // writes dst[q * dst_stride..][..16] for r, q < 16, inside the asserted lengths.
    unsafe { pairs_transposed_16x16_impl(src.as_ptr(), stride, dst.as_mut_ptr(), dst_stride) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_transposed_16x16_impl(src: *const f32, stride: usize, dst: *mut u32, dst_stride: usize) {
    // SAFETY: the caller's bounds (see `pairs_transposed_16x16`).
    unsafe {
        // Row r's 16 pairs in one register, slot q = pair q (as in `pairs_from_contiguous`).
        let mut r = [_mm512_setzero_si512(); 16];
        for (i, row) in r.iter_mut().enumerate() {
            let lo = _mm512_loadu_ps(src.add(i * stride));
            let hi = _mm512_loadu_ps(src.add(i * stride + 16));
            *row = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
        }
        let columns = super::avx512::transpose_16x16_epi32(r);
        for (q, col) in columns.into_iter().enumerate() {
            _mm512_storeu_si512(dst.add(q * dst_stride) as *mut _, col);
        }
    }
}

/// `bf16(lo[i]) | bf16(hi[i]) << 16` for the 16 lanes: after converting
/// (hi, lo) the 16-bit lanes hold lo0..lo15, hi0..hi15, and a permutation
/// interleaves them into (lo_i, hi_i) pairs.
///
/// # Safety
/// AVX-512F and AVX512_BF16 must be available; only call from a function
/// that enables them (`#[inline(always)]` compiles this inside the caller).
#[inline(always)]
unsafe fn interleaved_pairs(lo: __m512, hi: __m512) -> __m512i {
    // SAFETY: register-only instructions of the features the caller enables.
    unsafe {
        let idx = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17,
            1, 16, 0,
        );
        let both = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_permutexvar_epi16(idx, both)
    }
}

/// Sixteen rows' first sixteen k pairs from a k-major source, transposed:
/// for `i, q < 16`,
/// `dst[i * dst_stride + q] = bf16(src[2q * stride + i]) | bf16(src[(2q + 1) * stride + i]) << 16`.
///
/// Packing's fast path for an AMX A panel whose source columns are
/// contiguous (`dyᵀ` in a weight gradient `dyᵀ·x`): a tile row wants one
/// row's 16 pairs together, the source gives one k's rows together. Pairs
/// are formed as in `pairs_from_two_rows`, then transposed in registers.
pub(crate) fn pairs_from_k_rows_transposed_16x16(src: &[f32], stride: usize, dst: &mut [u32], dst_stride: usize) {
    assert!(is_supported() && src.len() >= 31 * stride + 16);
    assert!(dst_stride >= 16 && dst.len() >= 15 * dst_stride + 16);
    // SAFETY: features checked; reads src[j * stride..][..16] for j < 32 and
    // writes dst[i * dst_stride..][..16] for i < 16, inside the asserted lengths.
    unsafe { pairs_from_k_rows_transposed_impl(src.as_ptr(), stride, dst.as_mut_ptr(), dst_stride) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_from_k_rows_transposed_impl(src: *const f32, stride: usize, dst: *mut u32, dst_stride: usize) {
    // SAFETY: the caller's bounds (see `pairs_from_k_rows_transposed_16x16`).
    unsafe {
        // Register q: pair q (k = 2q, 2q + 1) of rows 0..16.
        let mut pairs = [_mm512_setzero_si512(); 16];
        for (q, pair) in pairs.iter_mut().enumerate() {
            let lo = _mm512_loadu_ps(src.add(2 * q * stride));
            let hi = _mm512_loadu_ps(src.add((2 * q + 1) * stride));
            *pair = interleaved_pairs(lo, hi);
        }
        for (i, row) in super::avx512::transpose_16x16_epi32(pairs).into_iter().enumerate() {
            _mm512_storeu_si512(dst.add(i * dst_stride) as *mut _, row);
        }
    }
}

/// `dst[i] = bf16(lo[i]) | bf16(hi[i]) << 16` (`hi` absent: 0), rounding to
/// nearest even. Packing's fast path when two consecutive k are two rows.
pub(crate) fn pairs_from_two_rows(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    assert!(is_supported() && dst.len() == lo.len() && hi.is_none_or(|h| h.len() == lo.len()));
    // SAFETY: features checked; lengths checked.
    unsafe { pairs_from_two_rows_impl(lo, hi, dst) }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_from_two_rows_impl(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    // SAFETY: masked loads and stores stay inside the slices.
    unsafe {
        let mut i = 0;
        while i < lo.len() {
            let n = (lo.len() - i).min(16);
            let mask: __mmask16 = if n == 16 { 0xffff } else { ((1u32 << n) - 1) as u16 };
            let l = _mm512_maskz_loadu_ps(mask, lo.as_ptr().add(i));
            let h = match hi {
                Some(h) => _mm512_maskz_loadu_ps(mask, h.as_ptr().add(i)),
                None => _mm512_setzero_ps(),
            };
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(i) as *mut _, mask, interleaved_pairs(l, h));
            i += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::f32_to_bf16;

    /// Values that exercise rounding: ties (to even both ways), carries into
    /// the exponent, infinities, NaN, and ordinary numbers. (Subnormal f32
    /// inputs are left out: the instruction treats them as zero.)
    fn values(n: usize) -> Vec<f32> {
        let special = [
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3fff_ffff),
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            -0.0,
            65504.0,
            -2.71,
        ];
        (0..n)
            .map(|i| if i % 3 == 0 { special[i / 3 % special.len()] } else { ((i * 7919) % 2000) as f32 / 37.0 - 27.0 })
            .collect()
    }

    #[test]
    fn vector_conversions_round_as_the_scalar_one_does() {
        if !is_supported() {
            return;
        }
        for n in [1, 2, 15, 16, 17, 31, 32, 33, 64, 70] {
            let v = values(n);
            let mut got = vec![0u32; n.div_ceil(2)];
            pairs_from_contiguous(&v, &mut got);
            for (q, &g) in got.iter().enumerate() {
                let hi = v.get(2 * q + 1).map_or(0, |&x| f32_to_bf16(x) as u32);
                assert_eq!(g, f32_to_bf16(v[2 * q]) as u32 | hi << 16, "n={n} q={q}");
            }
            let w: Vec<f32> = v.iter().map(|x| x * 0.5 + 1.0).collect();
            for hi in [Some(&w[..]), None] {
                let mut got = vec![0u32; n];
                pairs_from_two_rows(&v, hi, &mut got);
                for i in 0..n {
                    let h = hi.map_or(0, |h| f32_to_bf16(h[i]) as u32);
                    assert_eq!(got[i], f32_to_bf16(v[i]) as u32 | h << 16, "n={n} i={i}");
                }
            }
        }
        let nan = [f32::NAN, 1.0];
        let mut got = [0u32; 1];
        pairs_from_contiguous(&nan, &mut got);
        assert!(crate::convert::bf16_to_f32(got[0] as u16).is_nan());
    }
}
