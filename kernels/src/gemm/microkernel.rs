//! The microkernel: the only code that knows the register layout.
//!
//! # Contract
//!
//! A microkernel computes one `MR × NR` tile of C from one packed micro-panel
//! of A and one packed micro-panel of B:
//!
//! ```text
//!     C[i][j] <- alpha * sum_{p < k} A[i][p] * B[p][j]  +  beta * C[i][j]
//!                                                  for i < MR, j < NR
//!
//!   packed A micro-panel (k × MR)         packed B micro-panel (k × NR)
//!   column p of the tile's A rows,        row p of the tile's B columns,
//!   MR floats, contiguous:                NR floats, contiguous:
//!
//!     a: [A0p A1p .. A(MR-1)p] p=0          b: [Bp0 Bp1 .. Bp(NR-1)] p=0
//!        [A0p A1p .. A(MR-1)p] p=1             [Bp0 Bp1 .. Bp(NR-1)] p=1
//!         ...                                   ...
//!   a[p * MR + i] = A[i][p]               b[p * NR + j] = B[p][j]
//! ```
//!
//! Preconditions (the caller's, as the function is `unsafe`):
//! - `a` is valid for `k * MR` reads and `b` for `k * NR` reads;
//! - C is row-major with row stride `ldc >= NR`: `c[i * ldc + j]` is valid
//!   for reads and writes for all `i < MR`, `j < NR`;
//! - the CPU supports the kernel's ISA.
//!
//! With `beta == 0` the kernel never reads C, so C may hold NaN or garbage
//! (BLAS semantics). The kernel always writes the full tile; edges are the
//! driver's business (it points the kernel at a scratch tile).
//!
//! # Inner loop
//!
//! For each `p`: load the `NV` registers of B's row `p`, then for each of the
//! `MR` rows broadcast `A[i][p]` and do `NV` FMAs into the accumulators
//! `acc[i][0..NV]`. That is `MR * NV` FMAs per `NV` loads and `MR`
//! broadcasts: with 8×3 on AVX-512, 24 FMAs for 11 memory operands, so the
//! two FMA ports stay busy and the loads fit in the load ports. Each ISA
//! says how many steps one loop trip runs and whether it prefetches B
//! ([`KLoop`]).

use crate::isa::Simd;

/// How the k loop of [`microkernel_body`] is run, per kernel.
///
/// `unroll` (at least 1) k steps per loop trip (with the `k % unroll` left in a plain
/// loop after), and whether each step prefetches B [`B_PREFETCH_STEPS`]
/// ahead. What pays differs by core and tile: see each ISA's kernel.
#[derive(Clone, Copy)]
pub(crate) struct KLoop {
    pub unroll: usize,
    pub prefetch_b: bool,
    /// Prefetch A read in place when its k step is the long stride (see
    /// [`STREAMED_B_STRIDED_A`]); packed kernels leave it off.
    pub prefetch_a: bool,
}

/// One k step per trip, prefetching B: the AVX-512 tiles, whose B
/// micro-panels (768·48 floats, 144 KiB) stream from L2, and the NEON and
/// scalar ones, as they were tuned.
pub(crate) const STREAMED_B: KLoop = KLoop { unroll: 1, prefetch_b: true, prefetch_a: false };

/// [`STREAMED_B`], and A read in place prefetched [`A_PREFETCH_STEPS`]
/// ahead when its k step is the long stride (`rs_p > rs_i`): `Gᵀ·u`, whose
/// A is a transposed activation, reads one 16-float run per k step from a
/// row 576 or 1536 floats further on, a stride the hardware prefetcher did
/// not keep up with once that activation had left the cache.
#[cfg(target_arch = "x86_64")] // only AVX-512's in-place kernel uses it
pub(crate) const STREAMED_B_STRIDED_A: KLoop = KLoop { prefetch_a: true, ..STREAMED_B };

/// How many k steps ahead a strided A is prefetched (see [`STREAMED_B_STRIDED_A`]).
const A_PREFETCH_STEPS: usize = 24;

/// How many k steps ahead the kernel asks for B's packed row.
///
/// With KC = 768 the B micro-panel (768 × 48 floats = 144 KiB on AVX-512)
/// does not fit in L1, so each call streams it from L2: three cache lines per
/// k step. The hardware prefetchers alone left the kernel at about 72% of
/// the FMA peak inside whole GEMMs; asking 16 steps (3 KiB) ahead measured
/// 4-5% faster on every `gemm-compare` shape (at KC = 576; 8 and 32 steps
/// were the same, 4 less). Prefetches never fault, so running past the panel's end is harmless.
const B_PREFETCH_STEPS: usize = 16;

/// Signature of a microkernel: `(k, a, b, c, ldc, alpha, beta)`, see the module contract.
pub(crate) type KernelFn =
    unsafe fn(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32);

/// Signature of an A-in-place microkernel: `(k, a, rs_i, rs_p, b, c, ldc, alpha, beta)`.
///
/// The same tile as [`KernelFn`], but A is read where it is, through
/// strides: element `(i, p)` of the tile's A rows is `a[i * rs_i + p * rs_p]`
/// (a packed panel is the case `rs_i = 1`, `rs_p = MR`). The driver uses it
/// when the kernel would read each A panel once: packing would copy A for a
/// single read. Preconditions: those of [`KernelFn`], with every
/// `a[i * rs_i + p * rs_p]` (`i < MR`, `p < k`) valid for reads.
pub(crate) type InPlaceKernelFn = unsafe fn(
    k: usize,
    a: *const f32,
    rs_i: usize,
    rs_p: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
);

/// The body every ISA's microkernel instantiates: an `MR × (NV * LANES)` tile
/// held in `MR * NV` registers, from a packed A panel.
///
/// `#[inline(always)]` so that it is compiled inside each ISA's
/// `#[target_feature]` wrapper, with that ISA's instructions; the constant
/// loop bounds are fully unrolled and `acc` lives in registers.
///
/// # Safety
/// The module contract, with `NR = NV * S::LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the microkernel signature plus how to run its k loop
pub(crate) unsafe fn microkernel_body<S: Simd, const MR: usize, const NV: usize>(
    steps: KLoop,
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    beta: f32,
) {
    // A packed panel is the strided body with constant strides, which fold
    // away: the instructions are those of a body written for packed A.
    // SAFETY: the module contract is `microkernel_body_strided`'s with rs_i = 1, rs_p = MR.
    unsafe { microkernel_body_strided::<S, MR, NV>(steps, k, a, 1, MR, b, c, ldc, alpha, beta) }
}

/// [`microkernel_body`] with A read through strides: `A[i][p]` at
/// `a[i * rs_i + p * rs_p]` (see [`InPlaceKernelFn`]).
///
/// # Safety
/// The module contract, with `NR = NV * S::LANES` and A's elements at the
/// strided addresses valid for reads.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // (i, v) index a register tile: clearer than iterator chains
#[allow(clippy::too_many_arguments)] // the microkernel signature plus A's two strides and the k loop
pub(crate) unsafe fn microkernel_body_strided<S: Simd, const MR: usize, const NV: usize>(
    steps: KLoop,
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
    let nr = NV * S::LANES;
    // SAFETY: every pointer offset below stays inside the ranges the contract
    // guarantees: a[i*rs_i + p*rs_p] for i < MR, p < k, b[..k*NR], c[i*ldc + j]
    // for i < MR, j < NR.
    unsafe {
        // Ask for the C tile now: its rows are `ldc` apart, a pattern the
        // hardware prefetcher does not follow, and without this the final
        // read-modify-write stalls on MR cache misses. Every line of the
        // row: a 48-float row spans three or four lines, depending on where
        // it starts.
        for i in 0..MR {
            for v in 0..NV {
                S::prefetch(c.add(i * ldc + v * S::LANES));
            }
            S::prefetch(c.add(i * ldc + nr - 1));
        }
        let mut acc = [[S::zero(); NV]; MR];
        let (mut a, mut b) = (a, b);
        // With the k step the long stride (a transposed A, rs_i = 1, the
        // case this is for), one step's MR elements lie in one or two cache
        // lines: prefetch those of its first and last element, A_PREFETCH_STEPS ahead.
        let prefetch_a = steps.prefetch_a && rs_p > rs_i;
        let (a_ahead, a_last) = (A_PREFETCH_STEPS * rs_p, (MR - 1) * rs_i);
        // `steps` is a constant at every call site, so after inlining the
        // inner loop is unrolled `steps.unroll` times with no counter of its own.
        let trips = k / steps.unroll;
        for _ in 0..trips {
            for _ in 0..steps.unroll {
                if prefetch_a {
                    S::prefetch(a.wrapping_add(a_ahead));
                    S::prefetch(a.wrapping_add(a_ahead + a_last));
                }
                k_step::<S, MR, NV>(&mut acc, a, rs_i, b, steps.prefetch_b);
                // `wrapping_add`: after the last step, A read in place may point
                // past the end of its slice (it is not dereferenced there).
                a = a.wrapping_add(rs_p);
                b = b.wrapping_add(nr);
            }
        }
        for _ in trips * steps.unroll..k {
            k_step::<S, MR, NV>(&mut acc, a, rs_i, b, steps.prefetch_b);
            a = a.wrapping_add(rs_p);
            b = b.wrapping_add(nr);
        }

        let alpha = S::splat(alpha);
        for i in 0..MR {
            for v in 0..NV {
                let cp = c.add(i * ldc + v * S::LANES);
                let ab = S::mul(alpha, acc[i][v]);
                // beta == 0: C is write-only (it may hold NaN).
                let out = if beta == 0.0 { ab } else { S::fma(S::splat(beta), S::load(cp), ab) };
                S::store(cp, out);
            }
        }
    }
}

/// One k step: load B's packed row `p` (`NV` registers), then for each of
/// the `MR` rows broadcast `A[i][p]` (at `a[i * rs_i]`) and do `NV` FMAs.
///
/// # Safety
/// `b[..NV * S::LANES]` and `a[i * rs_i]` for `i < MR` are valid for reads.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // (i, v) index a register tile
unsafe fn k_step<S: Simd, const MR: usize, const NV: usize>(
    acc: &mut [[S::V; NV]; MR],
    a: *const f32,
    rs_i: usize,
    b: *const f32,
    prefetch_b: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut bv = [S::zero(); NV];
        for v in 0..NV {
            bv[v] = S::load(b.add(v * S::LANES));
        }
        if prefetch_b {
            for v in 0..NV {
                // `wrapping_add`: the last steps point past the panel, which a
                // prefetch may do but pointer arithmetic with `add` may not.
                S::prefetch(b.wrapping_add(B_PREFETCH_STEPS * NV * S::LANES + v * S::LANES));
            }
        }
        for i in 0..MR {
            let ai = S::splat(*a.add(i * rs_i));
            for v in 0..NV {
                acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
            }
        }
    }
}
