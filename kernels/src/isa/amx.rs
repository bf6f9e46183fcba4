//! x86-64 AMX (Advanced Matrix Extensions, Sapphire Rapids and later): the
//! bf16 GEMM microkernel on tile registers.
//!
//! AMX adds eight tile registers `tmm0..7` of up to 16 rows × 64 bytes and
//! `TDPBF16PS C, A, B`, a 16×16×32 bf16 matrix product accumulated in f32:
//!
//! ```text
//! C[m][n] += Σ_{p < 16} A[m].pair[p] · B[p].pair[n]        m, n < 16
//!   A: 16 rows × 16 bf16 pairs (64 bytes): row m holds A[m][2p], A[m][2p+1]
//!   B: 16 rows × 16 bf16 pairs (64 bytes): row p holds (B[2p][n], B[2p+1][n]) for each n
//!   C: 16 rows × 16 f32 (64 bytes)
//! ```
//!
//! one instruction, 8192 multiply-adds. The register tile here is 32×32:
//!
//! ```text
//!             tmm6 (B cols 0..16)   tmm7 (B cols 16..32)
//! tmm4 (A rows 0..16)    tmm0                tmm1
//! tmm5 (A rows 16..32)   tmm2                tmm3
//! ```
//!
//! so each k block of 32 is 4 tile loads and 4 products. The packed A
//! panel is laid out for that (`gemm::pack_bf16::pack_panel_tiles`): per k
//! block, 32 rows of 16 pairs, 64 bytes apart; the packed B panel is the
//! pair layout of `VDPBF16PS` (row `p` of pairs for the panel's 32 columns,
//! 128 bytes apart), padded to whole k blocks. The microkernel's `k` counts
//! pair slots, a multiple of 16.
//!
//! Linux hands out the 8 KiB of tile state only on request:
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` once per process,
//! done by [`is_supported`]. Each thread loads the tile configuration
//! (`LDTILECFG`) before its first product.

use crate::gemm::microkernel::KernelFn;
use std::arch::asm;
use std::arch::x86_64::{__cpuid_count, _xgetbv};
use std::sync::OnceLock;

/// Rows of the register tile (two tiles of 16).
pub(crate) const MR: usize = 32;
/// Columns of the register tile (two tiles of 16).
pub(crate) const NR: usize = 32;
/// Pair slots per k block (32 bf16 values of k).
pub(crate) const SLOTS_PER_BLOCK: usize = 16;

/// AMX-BF16 and AMX-TILE in CPUID, tile state enabled by the OS (XCR0),
/// AVX-512F for the epilogue, and Linux's permission granted.
pub(crate) fn is_supported() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let max_leaf = __cpuid_count(0, 0).eax;
        if max_leaf < 7
            || !std::arch::is_x86_feature_detected!("avx512f")
            || !std::arch::is_x86_feature_detected!("xsave")
        {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        let (amx_bf16, amx_tile) = (edx >> 22 & 1 == 1, edx >> 24 & 1 == 1);
        // SAFETY: XSAVE (and so XGETBV) was detected above; OSXSAVE is implied by avx512f detection.
        let xcr0 = unsafe { _xgetbv(0) };
        let os_tiles = xcr0 >> 17 & 3 == 3; // XTILECFG and XTILEDATA
        amx_bf16 && amx_tile && os_tiles && request_tile_permission()
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: true when granted.
#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain system call; it only changes this process's permission
    // to use the tile state. rcx and r11 are clobbered by `syscall`.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => ret, in("rdi") ARCH_REQ_XCOMP_PERM,
             in("rsi") XFEATURE_XTILEDATA, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1; // palette
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        c[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(c)
};

thread_local! {
    static CONFIGURED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The 32×32 AMX microkernel (contract: [`KernelFn`], `k` in pair slots, a multiple of 16).
pub(crate) const GEMM: KernelFn = gemm_amx_32x32;

#[target_feature(enable = "avx512f")]
unsafe fn gemm_amx_32x32(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
    debug_assert!(k.is_multiple_of(SLOTS_PER_BLOCK));
    // The tile result, 32 rows × 32 f32, before alpha and beta (when C
    // cannot go through the tiles directly).
    #[repr(C, align(64))]
    struct Tile([f32; MR * NR]);
    // SAFETY: `is_supported()` (checked before this kernel can be selected)
    // established AMX and the permission. Per the `KernelFn` contract a
    // holds k·MR and b holds k·NR slots: each k block reads 32 rows × 64
    // bytes of A and 16 rows × 128 bytes of B inside them. C's tile rows
    // i < 32, columns j < 32 are readable and writable at c[i·ldc + j]: the
    // direct loads and stores touch exactly those (four 16×16 quarters,
    // rows ldc·4 bytes apart). The other stores write `acc`, 32 rows × 128 bytes.
    unsafe {
        if !CONFIGURED.get() {
            asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
            CONFIGURED.set(true);
        }
        // With alpha = 1 (nearly every call) C goes through the tiles
        // directly: loaded as the starting sum when beta = 1, stored at the
        // end. Otherwise the sum goes through `acc` and the epilogue below.
        let direct = alpha == 1.0 && (beta == 0.0 || beta == 1.0);
        let cb = c as *mut u8;
        let (c0, c1, c2, c3) = (cb, cb.add(64), cb.add(16 * ldc * 4), cb.add(16 * ldc * 4 + 64));
        if direct && beta == 1.0 {
            asm!(
                "tileloadd tmm0, [{c0} + {s}*1]",
                "tileloadd tmm1, [{c1} + {s}*1]",
                "tileloadd tmm2, [{c2} + {s}*1]",
                "tileloadd tmm3, [{c3} + {s}*1]",
                c0 = in(reg) c0, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                s = in(reg) ldc * 4,
                options(nostack, readonly),
            );
        } else {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
        let (a, b) = (a as *const u8, b as *const u8);
        for kb in 0..k / SLOTS_PER_BLOCK {
            let ak = a.add(kb * MR * 64);
            let bk = b.add(kb * SLOTS_PER_BLOCK * NR * 4);
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b0} + {sb}*1]",
                "tileloadd tmm7, [{b1} + {sb}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                a0 = in(reg) ak,
                a1 = in(reg) ak.add(16 * 64),
                b0 = in(reg) bk,
                b1 = in(reg) bk.add(64),
                sa = in(reg) 64usize,
                sb = in(reg) NR * 4,
                options(nostack, readonly),
            );
        }
        if direct {
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c0, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                s = in(reg) ldc * 4,
                options(nostack),
            );
            return;
        }
        let mut acc = Tile([0.0; MR * NR]);
        let t = acc.0.as_mut_ptr() as *mut u8;
        asm!(
            "tilestored [{t0} + {s}*1], tmm0",
            "tilestored [{t1} + {s}*1], tmm1",
            "tilestored [{t2} + {s}*1], tmm2",
            "tilestored [{t3} + {s}*1], tmm3",
            t0 = in(reg) t,
            t1 = in(reg) t.add(64),
            t2 = in(reg) t.add(16 * NR * 4),
            t3 = in(reg) t.add(16 * NR * 4 + 64),
            s = in(reg) NR * 4,
            options(nostack),
        );
        for i in 0..MR {
            let row = c.add(i * ldc);
            let src = &acc.0[i * NR..(i + 1) * NR];
            // beta == 0: C is write-only (it may hold NaN).
            if beta == 0.0 {
                for (j, &x) in src.iter().enumerate() {
                    *row.add(j) = alpha * x;
                }
            } else {
                for (j, &x) in src.iter().enumerate() {
                    *row.add(j) = alpha * x + beta * *row.add(j);
                }
            }
        }
    }
}

/// FLOPs of one `probe` iteration: 4 products of 16×16×32 multiply-adds.
pub(crate) const PROBE_FLOPS_PER_ITER: usize = 4 * 16 * 16 * 32 * 2;

/// Runs `iters` rounds of 4 tile products on registers only (no loads): the
/// AMX peak. Returns a value that depends on the results.
pub(crate) fn tile_probe(iters: usize) -> f32 {
    assert!(is_supported());
    #[repr(C, align(64))]
    struct Buf([u32; 256]);
    let ones = Buf([0x3f80_3f80; 256]);
    let mut out = Buf([0; 256]);
    // SAFETY: AMX is available (asserted); the loads read `ones` (16 rows of
    // 64 bytes) and the store writes `out` (the same size).
    unsafe {
        if !CONFIGURED.get() {
            asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
            CONFIGURED.set(true);
        }
        asm!("tileloadd tmm4, [{p} + {s}*1]", "tileloadd tmm6, [{p} + {s}*1]", p = in(reg) ones.0.as_ptr(), s = in(reg) 64usize, options(nostack, readonly));
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        for _ in 0..std::hint::black_box(iters) {
            asm!(
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm6",
                "tdpbf16ps tmm2, tmm4, tmm6",
                "tdpbf16ps tmm3, tmm4, tmm6",
                options(nostack, nomem)
            );
        }
        asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) out.0.as_mut_ptr(), s = in(reg) 64usize, options(nostack));
    }
    f32::from_bits(out.0[0])
}
