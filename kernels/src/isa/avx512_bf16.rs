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
