//! The BLIS loops around the microkernel, and their split across threads.
//!
//! ```text
//! for jc in 0..n step NC                         loop 5
//!   for pc in 0..k step KC                       loop 4
//!     pack B[pc.., jc..] into KC × NC panels     (threads split the panels)
//!     parallel for each task (ic block, jr range):
//!       pack A[ic.., pc..] into MC × KC panels   (task-local buffer)
//!       for jr in the task's B panels            loop 2
//!         for ir in the task's A panels          loop 1
//!           microkernel: C tile += A panel · B panel
//! ```
//!
//! The tasks are cut by `split`. That shares one packed B block between the
//! threads: each reads the panels the others packed, from their caches.
//! When A is the smaller operand (`m <= n`) and the product is not too
//! wide (`column_parts` has the rules), the threads split C by columns
//! instead: each runs all the loops above, alone, on its own columns of B
//! and C. Each then packs the whole of A, the smaller operand, for itself;
//! in exchange no packed data crosses cores, and the call has one parallel
//! region, not two per K block. On a 2-vCPU Xeon (Emerald Rapids), 2 threads, SmolLM2's
//! 512x576x1536 and 512x1536x576 ran 2-6% faster this way, alternated
//! call by call in one process. A tall product with a small B (the head's
//! weight gradient) is split the same way by rows (`row_parts`): each
//! thread packs the whole of B and its own rows of A.
//!
//! When the kernel would read each A panel once (a single B panel), A is
//! read in place instead of packed (see `a_in_place`).
//!
//! The first `pc` block applies the caller's `beta`; later blocks accumulate
//! into C with `beta = 1`. Every C element is computed by the same sequence of
//! floating-point operations whatever the number of threads, so results are
//! identical bit for bit across thread counts.

use super::buffers::{with_buffer, Buffer};
use super::catalog::{Blocking, Microkernel, Packing, MAX_TILE};
use super::microkernel::InPlaceKernelFn;
use super::pack::pack_panel;
use super::pack_bf16::{pack_panel_pairs, pack_panel_rounded, pack_panel_tiles, pack_panel_tiles_b};
use super::split::Split;
use super::{MatMut, MatRef};
use crate::Element;
use rayon::prelude::*;

/// What one call runs with.
pub(crate) struct Plan {
    pub kernel: &'static Microkernel,
    pub blocking: Blocking,
    /// 1 = stay on the calling thread.
    pub threads: usize,
    /// Round operands to bf16 while packing for an f32 kernel (bf16
    /// precision on a CPU without bf16 instructions).
    pub round_bf16: bool,
}

/// Packs one panel of A (`is_a`) or of Bᵀ in the layout `plan`'s kernel
/// reads (see `pack` and `pack_bf16`).
fn pack<T: Element>(
    plan: &Plan,
    is_a: bool,
    src: &MatRef<'_, T>,
    rows: (usize, usize),
    cols: (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    match plan.kernel.packing {
        Packing::F32 if plan.round_bf16 => pack_panel_rounded(src, rows, cols, width, dst),
        Packing::F32 => pack_panel(src, rows, cols, width, dst),
        Packing::Bf16Pairs => pack_panel_pairs(src, rows, cols, width, dst),
        Packing::Bf16Tiles if is_a => pack_panel_tiles(src, rows, cols, width, dst),
        Packing::Bf16Tiles => pack_panel_tiles_b(src, rows, cols, width, dst),
    }
}

/// A raw pointer to C that tasks may share: each task writes a disjoint set
/// of tiles, so no element is written by two threads.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: see above; the pointer is only dereferenced for a task's own tiles.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

/// A second product summed into the same C, `A2 · B2` (`m × k2` and
/// `k2 × n`, f32): its k are appended to A's and B's, so it is packed into
/// the panels of the last K block and costs no pass over C of its own.
pub(crate) type ExtraK<'a, 'b> = Option<(&'b MatRef<'a, f32>, &'b MatRef<'a, f32>)>;

/// `C <- alpha * (A * B [+ A2 * B2]) + beta * C`; shapes were checked by the
/// caller, and with `extra`, A's k is a multiple of the packing's k step and not 0.
#[allow(clippy::too_many_arguments)] // the GEMM's operands, plus the extra product
pub(crate) fn gemm<TA: Element, TB: Element>(
    plan: &Plan,
    alpha: f32,
    a: &MatRef<'_, TA>,
    b: &MatRef<'_, TB>,
    extra: ExtraK<'_, '_>,
    beta: f32,
    c: &mut MatMut<'_>,
) {
    let (m, k1, n) = (a.rows(), a.cols(), b.cols());
    let k = k1 + extra.map_or(0, |(a2, _)| a2.cols());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 || alpha == 0.0 {
        scale(c, beta);
        return;
    }
    if let Some(parts) = column_parts(plan, a, n).or_else(|| row_parts(plan, a, b)) {
        let alone = Plan { threads: 1, ..*plan };
        let shared = c.shared();
        parts.into_par_iter().for_each(|(rows, cols)| {
            // SAFETY: the parts are disjoint blocks of C; the driver writes
            // C only tile by tile and through `scale`.
            let mut part = unsafe { shared.block(rows, cols) };
            let a = a.row_range(rows.0, rows.1);
            let extra_part = extra.map(|(a2, b2)| (a2.row_range(rows.0, rows.1), b2.columns(cols.0, cols.1)));
            let extra = extra_part.as_ref().map(|(a2, b2)| (a2, b2));
            gemm(&alone, alpha, &a, &b.columns(cols.0, cols.1), extra, beta, &mut part);
        });
        return;
    }
    let Plan { kernel, blocking: Blocking { mc, kc, nc }, threads, .. } = *plan;
    let blocks = k_blocks(k1, k, kc, kernel.packing.k_step());
    let slots = |kcur: usize| kernel.packing.slots(kcur);
    let (mr, nr) = (kernel.mr, kernel.nr);
    let bt = b.t(); // B's column panels are Bᵀ's row panels
    let extra_t = extra.map(|(a2, b2)| (a2, b2.t()));
    let ldc = c.ld();
    let cptr = CPtr(c.as_mut_ptr());
    let in_place = if extra.is_some() { None } else { a_in_place(plan, a, n) };

    let longest = blocks.iter().map(|&(_, len)| len).max().unwrap_or(0);
    let b_len = nc.min(n).div_ceil(nr) * nr * slots(longest);
    with_buffer(Buffer::B, b_len, |bbuf| {
        for jc in (0..n).step_by(nc) {
            let ncur = nc.min(n - jc);
            let npanels = ncur.div_ceil(nr);
            for &(pc, kcur) in &blocks {
                let ks = slots(kcur);
                let bpack = &mut bbuf[..npanels * nr * ks];
                let pack_b = |q: usize, dst: &mut [f32]| {
                    let cols = (jc + q * nr, nr.min(n - jc - q * nr));
                    let b2t = extra_t.as_ref().map(|(_, b2t)| b2t);
                    pack_k(plan, false, (&bt, b2t, k1), cols, (pc, kcur), nr, dst);
                };
                if threads > 1 {
                    bpack.par_chunks_mut(nr * ks).enumerate().for_each(|(q, dst)| pack_b(q, dst));
                } else {
                    bpack.chunks_mut(nr * ks).enumerate().for_each(|(q, dst)| pack_b(q, dst));
                }
                let bpack: &[f32] = bpack;
                let beta = if pc == 0 { beta } else { 1.0 };

                let split = Split::new(m, npanels, mr, mc, threads);
                let task = |t: usize| {
                    let (rows, panels) = split.task(t);
                    let block = Block { kc: ks, rows: rows.clone(), cols: (jc, jc + ncur), alpha, beta, ldc };
                    // A panels read in place: the task's whole ones (a last,
                    // partial one is packed, its missing rows as zeros).
                    let a_whole = if in_place.is_some() { rows.len() / mr } else { 0 };
                    let a_len = (rows.len().div_ceil(mr) - a_whole) * mr * ks;
                    with_buffer(Buffer::A, a_len, |apack| {
                        for (r, dst) in apack.chunks_mut(mr * ks).enumerate() {
                            let row = rows.start + (a_whole + r) * mr;
                            let a2 = extra_t.as_ref().map(|(a2, _)| *a2);
                            pack_k(plan, true, (a, a2, k1), (row, mr.min(rows.end - row)), (pc, kcur), mr, dst);
                        }
                        let a_panel = |r: usize| match in_place {
                            Some(InPlaceA { data, rs, cs, run }) if r < a_whole => {
                                let ptr = data[(rows.start + r * mr) * rs + pc * cs..].as_ptr();
                                APanel::InPlace { ptr, rs_i: rs, rs_p: cs, run }
                            }
                            _ => APanel::Packed(apack[(r - a_whole) * mr * ks..].as_ptr()),
                        };
                        let count = rows.len().div_ceil(mr);
                        macro_kernel(kernel, &block, (count, a_panel), bpack, panels, cptr);
                    });
                };
                if threads > 1 {
                    (0..split.tasks()).into_par_iter().for_each(task);
                } else {
                    (0..split.tasks()).for_each(task);
                }
            }
        }
    });
}

/// One thread's block of C in a split into parts: `((row start, end),
/// (column start, end))`.
type Part = ((usize, usize), (usize, usize));

/// The widest product split by columns (see [`column_parts`]).
const COLUMN_SPLIT_MAX_N: usize = 2048;

/// C's blocks `((row start, end), (column start, end))`, one per thread,
/// when the threads should split C by columns into parts each computes
/// alone (see the module doc), or `None`. The rules are measured (2-vCPU Xeon, 2 threads, alternated per call):
/// - A no larger than B (`m <= n`): A is the operand each thread packs whole.
/// - A row-major: a transposed A costs more to pack, and packing it twice
///   made 576x512x1536 `Aᵀ·B` 1-4% slower.
/// - At most [`COLUMN_SPLIT_MAX_N`] columns: products 576 to 1536 wide ran
///   2-6% faster split by columns, those 2304 to 4096 wide 0-4% slower, and
///   the head's 254x576x49152 level.
/// - At least two B panels per thread.
///
/// Ranges start at multiples of NR, so the tiles are those of the undivided
/// product.
fn column_parts<T: Element>(plan: &Plan, a: &MatRef<'_, T>, n: usize) -> Option<Vec<Part>> {
    let (threads, nr, m) = (plan.threads, plan.kernel.nr, a.rows());
    let npanels = n.div_ceil(nr);
    if threads < 2 || m > n || n > COLUMN_SPLIT_MAX_N || a.col_stride() != 1 || npanels < 2 * threads {
        return None;
    }
    let width = npanels.div_ceil(threads) * nr;
    Some((0..n).step_by(width).map(|j0| ((0, m), (j0, (j0 + width).min(n)))).collect())
}

/// How many times B's size A must be for [`row_parts`].
const ROW_SPLIT_MIN_RATIO: usize = 16;

/// C's blocks, one per thread, when the threads should split C by rows into
/// parts each computes alone (see the module doc), or `None`. The mirror of [`column_parts`], for a tall product with a small B: each
/// thread then packs the whole of B. Measured the same way:
/// - A at least [`ROW_SPLIT_MIN_RATIO`] times B's size (`m >= 16 n`), so
///   packing B once per thread is cheap: the head's weight gradient
///   49152x254x576 `Aᵀ·B` ran 14-15% faster; 1536x512x576 (2.7 times) was
///   level and 3072x512x768 (4 times) 2-3% slower, so they keep the shared B.
/// - B row-major (its packing reads rows), at least two MR tiles per thread.
///
/// Ranges start at multiples of MR, so the tiles are those of the undivided
/// product.
fn row_parts<TA: Element, TB: Element>(plan: &Plan, a: &MatRef<'_, TA>, b: &MatRef<'_, TB>) -> Option<Vec<Part>> {
    let (threads, mr, m, n) = (plan.threads, plan.kernel.mr, a.rows(), b.cols());
    let tiles = m.div_ceil(mr);
    if threads < 2 || m < ROW_SPLIT_MIN_RATIO * n || b.col_stride() != 1 || tiles < 2 * threads {
        return None;
    }
    let height = tiles.div_ceil(threads) * mr;
    Some((0..m).step_by(height).map(|i0| ((i0, (i0 + height).min(m)), (0, n))).collect())
}

/// The K blocks `(start, length)` of a product of depth `k`, whose first
/// `k1` come from A and B and the rest (if any) from the extra product.
///
/// Even blocks over `k1`: k = 576 with KC = 256 runs as 3 x 192, not
/// 256 + 256 + 64 (a short block pays a full C read-modify-write for little
/// work). bf16 kernels' blocks start at even k (pairs) or at multiples of 32
/// (tiles), so none straddles two blocks. The extra product's k (LoRA's
/// rank, 16) join the last block rather than making one of their own.
fn k_blocks(k1: usize, k: usize, kc: usize, k_step: usize) -> Vec<(usize, usize)> {
    if k1 == 0 {
        return vec![(0, k)];
    }
    let kc = k1.div_ceil(k1.div_ceil(kc)).next_multiple_of(k_step);
    let mut blocks: Vec<(usize, usize)> = (0..k1).step_by(kc).map(|pc| (pc, kc.min(k1 - pc))).collect();
    if let Some(last) = blocks.last_mut() {
        last.1 += k - k1;
    }
    blocks
}

/// Packs k `pc..pc + kcur` of one panel (`rows` of A, or of Bᵀ) from the
/// two sources of an extended product: k below `k1` from `src`, the rest
/// from `src2` (see [`ExtraK`]). Each part fills its own run of the panel's
/// packed k slots; `k1` is a multiple of the packing's k step, so no pair or
/// tile straddles the two.
fn pack_k<T: Element>(
    plan: &Plan,
    is_a: bool,
    (src, src2, k1): (&MatRef<'_, T>, Option<&MatRef<'_, f32>>, usize),
    rows: (usize, usize),
    (pc, kcur): (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    let len1 = kcur.min(k1.saturating_sub(pc));
    let Some(src2) = src2.filter(|_| len1 < kcur) else {
        return pack(plan, is_a, src, rows, (pc, kcur), width, dst);
    };
    let (d1, d2) = dst.split_at_mut(plan.kernel.packing.slots(len1) * width);
    if len1 > 0 {
        pack(plan, is_a, src, rows, (pc, len1), width, d1);
    }
    pack(plan, is_a, src2, rows, (pc + len1 - k1, kcur - len1), width, d2);
}

/// A as the kernel's in-place twin reads it: f32 data, row and column strides.
#[derive(Clone, Copy)]
struct InPlaceA<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
    run: InPlaceKernelFn,
}

/// A, when the kernel reads it in place rather than packed (see [`InPlaceKernelFn`]).
///
/// That is when the kernel would read each A panel once, so that packing
/// would copy A for a single read: one B panel (`n <= NR`), f32 A (nothing
/// to widen or round). LoRA's rank-16 products `x·Aᵀ`, `G·B` and `Gᵀ·u`
/// are of this kind. (B read in place, for products of at most MR rows such
/// as `dA = dhᵀ·x`, measured slower than packed: `x` is cold by then, and
/// the kernel walks it one cache line per row.)
fn a_in_place<'a, TA: Element>(plan: &Plan, a: &MatRef<'a, TA>, n: usize) -> Option<InPlaceA<'a>> {
    let k = plan.kernel;
    let run = k.run_in_place.filter(|_| k.packing == Packing::F32 && !plan.round_bf16 && n <= k.nr)?;
    let data = TA::as_f32_slice(a.data())?;
    Some(InPlaceA { data, rs: a.row_stride(), cs: a.col_stride(), run })
}

/// The C block one task updates.
struct Block {
    /// The microkernel's `k`: the block's depth, in pairs for a pair kernel.
    kc: usize,
    /// Rows of C (and of A).
    rows: std::ops::Range<usize>,
    /// Columns `[jc, jc + ncur)` of C covered by the packed B block.
    cols: (usize, usize),
    alpha: f32,
    beta: f32,
    ldc: usize,
}

/// Where the microkernel reads one A panel (`MR` rows of the block) from.
#[derive(Clone, Copy)]
enum APanel {
    /// A packed panel of `MR * kc` floats.
    Packed(*const f32),
    /// A itself: element `(i, p)` at `ptr[i * rs_i + p * rs_p]`, all `MR`
    /// rows inside A, read by the kernel's `run_in_place` twin (see `a_in_place`).
    InPlace { ptr: *const f32, rs_i: usize, rs_p: usize, run: InPlaceKernelFn },
}

/// One tile: `c <- alpha * A panel · B panel + beta * c`.
///
/// # Safety
/// The A panel is valid as its variant says, `bp` holds `blk.kc * NR`
/// floats, and `c` (row stride `ldc`) is valid for an `MR × NR` tile.
unsafe fn run_tile(kernel: &Microkernel, blk: &Block, a: APanel, bp: *const f32, c: *mut f32, ldc: usize) {
    let (kc, alpha, beta) = (blk.kc, blk.alpha, blk.beta);
    // SAFETY: forwarded from the caller.
    unsafe {
        match a {
            APanel::Packed(ap) => (kernel.run)(kc, ap, bp, c, ldc, alpha, beta),
            APanel::InPlace { ptr, rs_i, rs_p, run } => run(kc, ptr, rs_i, rs_p, bp, c, ldc, alpha, beta),
        }
    }
}

/// Loops 2 and 1: every (B panel, A panel) pair of the task, one microkernel
/// call each; `count` A panels, the `r`-th from `a_panel(r)`.
fn macro_kernel(
    kernel: &Microkernel,
    blk: &Block,
    (count, a_panel): (usize, impl Fn(usize) -> APanel),
    bpack: &[f32],
    panels: std::ops::Range<usize>,
    c: CPtr,
) {
    let (mr, nr, kc) = (kernel.mr, kernel.nr, blk.kc);
    let (jc, jend) = blk.cols;
    for q in panels {
        let bp = bpack[q * nr * kc..(q + 1) * nr * kc].as_ptr();
        let col = jc + q * nr;
        let ncols = nr.min(jend - col);
        for r in 0..count {
            let row = blk.rows.start + r * mr;
            let nrows = mr.min(blk.rows.end - row);
            // SAFETY: (row, col) is inside C: row < m and col < n, and the
            // MatMut invariant makes every (row + i, col + j) with i < nrows,
            // j < ncols addressable; this task alone owns these tiles.
            let ctile = unsafe { c.0.add(row * blk.ldc + col) };
            if nrows == mr && ncols == nr {
                // SAFETY: the panels hold kc k steps of MR rows and NR columns; the full tile is inside C.
                unsafe { run_tile(kernel, blk, a_panel(r), bp, ctile, blk.ldc) };
            } else {
                edge_tile(kernel, blk, a_panel(r), bp, ctile, (nrows, ncols));
            }
        }
    }
}

/// A partial tile: run the kernel on a scratch tile holding the valid part
/// of C, then copy that part back. The arithmetic is the kernel's own, so an
/// element's value does not depend on whether it fell in an edge tile.
fn edge_tile(
    kernel: &Microkernel,
    blk: &Block,
    ap: APanel,
    bp: *const f32,
    ctile: *mut f32,
    (nrows, ncols): (usize, usize),
) {
    let nr = kernel.nr;
    let mut scratch = [0.0f32; MAX_TILE];
    // With beta == 0 the kernel does not read C, so neither do we.
    for i in (0..nrows).filter(|_| blk.beta != 0.0) {
        for j in 0..ncols {
            // SAFETY: (i, j) is inside the valid part of the tile (see macro_kernel).
            scratch[i * nr + j] = unsafe { *ctile.add(i * blk.ldc + j) };
        }
    }
    // SAFETY: scratch holds MR*NR <= MAX_TILE floats with row stride NR; the
    // panels are valid (see macro_kernel).
    unsafe { run_tile(kernel, blk, ap, bp, scratch.as_mut_ptr(), nr) };
    for i in 0..nrows {
        for j in 0..ncols {
            // SAFETY: as above.
            unsafe { *ctile.add(i * blk.ldc + j) = scratch[i * nr + j] };
        }
    }
}

/// `C <- beta * C`, with `beta == 0` writing zeros without reading C (which
/// may be uninitialised then).
fn scale(c: &mut MatMut<'_>, beta: f32) {
    for i in 0..c.rows() {
        if beta == 0.0 {
            (0..c.cols()).for_each(|j| c.write(i, j, 0.0));
        } else if beta != 1.0 {
            c.row_mut(i).iter_mut().for_each(|x| *x *= beta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C's bits from `plan` on A (`m × k`, row-major or as the transpose of
    /// a `k × m` one, with `pad` extra floats per stored row) times B.
    fn run(plan: &Plan, (m, k, n): (usize, usize, usize), a_transposed: bool, pad: usize, beta: f32) -> Vec<u32> {
        let value = |i: usize| ((i * 7919) % 997) as f32 / 498.5 - 1.0;
        let (a_rows, a_cols) = if a_transposed { (k, m) } else { (m, k) };
        let a_data: Vec<f32> = (0..a_rows * (a_cols + pad)).map(value).collect();
        let a = MatRef::new(&a_data, a_rows, a_cols, a_cols + pad).unwrap();
        let a = if a_transposed { a.t() } else { a };
        let b_data: Vec<f32> = (0..k * n).map(|i| value(i + 11)).collect();
        let b = MatRef::new(&b_data, k, n, n).unwrap();
        let mut c_data: Vec<f32> = (0..m * n).map(|i| value(i + 5)).collect();
        gemm(plan, 0.75, &a, &b, None, beta, &mut MatMut::new(&mut c_data, m, n, n).unwrap());
        c_data.iter().map(|x| x.to_bits()).collect()
    }

    /// Split into parts each thread computes alone, by columns (a short,
    /// wide product) or by rows (a tall, narrow one, A transposed), a
    /// product gives the bits of one thread, with and without an extra
    /// product, over one and several NC blocks per part; the shapes are
    /// checked to take the split they are meant to.
    #[test]
    fn parts_match_one_thread_bit_for_bit() {
        let kernel = Microkernel::selected().unwrap();
        let (mr, nr) = (kernel.mr, kernel.nr);
        let value = |i: usize| ((i * 7919) % 997) as f32 / 498.5 - 1.0;
        let (k, k2) = (37, 5);
        for (m, n, by_rows) in [(3 * mr + 1, 7 * nr + 3, false), (100 * mr + 3, nr + 1, true)] {
            let a_data: Vec<f32> = (0..m * k).map(value).collect();
            let b_data: Vec<f32> = (0..k * n).map(|i| value(i + 11)).collect();
            let a2_data: Vec<f32> = (0..m * k2).map(|i| value(i + 3)).collect();
            let b2_data: Vec<f32> = (0..k2 * n).map(|i| value(i + 7)).collect();
            // The row split's A is transposed, as in a weight gradient `dyᵀ·x`.
            let a = if by_rows {
                MatRef::new(&a_data, k, m, m).unwrap().t()
            } else {
                MatRef::new(&a_data, m, k, k).unwrap()
            };
            let b = MatRef::new(&b_data, k, n, n).unwrap();
            let (a2, b2) = (MatRef::new(&a2_data, m, k2, k2).unwrap(), MatRef::new(&b2_data, k2, n, n).unwrap());
            for nc in [kernel.blocking.nc, 2 * nr] {
                let blocking = Blocking { nc, ..kernel.blocking };
                let mut results = Vec::new();
                for threads in [1, 2, 3] {
                    let plan = Plan { kernel, blocking, threads, round_bf16: false };
                    assert_eq!(column_parts(&plan, &a, n).is_some(), threads > 1 && !by_rows);
                    assert_eq!(row_parts(&plan, &a, &b).is_some(), threads > 1 && by_rows);
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    for extra in [None, Some((&a2, &b2))] {
                        let mut c: Vec<f32> = (0..m * n).map(|i| value(i + 5)).collect();
                        let mut cm = MatMut::new(&mut c, m, n, n).unwrap();
                        pool.install(|| gemm(&plan, 0.75, &a, &b, extra, 0.5, &mut cm));
                        results.push(c.iter().map(|x| x.to_bits()).collect::<Vec<u32>>());
                    }
                }
                assert!(results[0] != results[1], "the extra product changed nothing");
                for t in 1..3 {
                    let threads = t + 1;
                    assert_eq!(results[2 * t], results[0], "no extra, {m}x{n}, nc={nc}, {threads} threads");
                    assert_eq!(results[2 * t + 1], results[1], "extra, {m}x{n}, nc={nc}, {threads} threads");
                }
            }
        }
    }

    /// A read in place gives the bits of A packed: the same kernel body and
    /// sums, only the addresses of A differ. Whole and partial row panels,
    /// one and several K blocks, row-major and transposed A, one thread and two;
    /// every kernel with an in-place twin (the selected one, its narrow one).
    #[test]
    fn a_in_place_matches_a_packed_bit_for_bit() {
        let main = Microkernel::selected().unwrap();
        let kernels = std::iter::once(main).chain(Microkernel::narrow_for(main));
        for kernel in kernels.filter(|k| k.run_in_place.is_some()) {
            let mut without = *kernel;
            without.run_in_place = None;
            let without: &'static Microkernel = Box::leak(Box::new(without));
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            let nr = kernel.nr;
            for (kc, threads) in [(kernel.blocking.kc, 1), (7, 1), (40, 2)] {
                let blocking = Blocking { kc, ..kernel.blocking };
                let plan = |kernel| Plan { kernel, blocking, threads, round_bf16: false };
                for shape in [(37, 50, nr), (64, 33, 9), (5, 20, nr), (300, 90, 1)] {
                    for (a_transposed, pad, beta) in [(false, 0, 0.0), (true, 3, 1.0), (false, 2, 0.5)] {
                        let (with_a, without_a) = pool.install(|| {
                            (
                                run(&plan(kernel), shape, a_transposed, pad, beta),
                                run(&plan(without), shape, a_transposed, pad, beta),
                            )
                        });
                        let name = kernel.name;
                        assert_eq!(
                            with_a, without_a,
                            "{name} {shape:?} kc={kc} transposed={a_transposed} threads={threads}"
                        );
                    }
                }
            }
        }
    }
}
