//! Packing for bf16 products: operands rounded to bf16 as they are copied.
//!
//! Two layouts, one per microkernel family:
//! - [`pack_panel_rounded`]: the f32 layout of `pack` (one f32 per element),
//!   each value rounded to bf16 and widened back, for the f32 microkernels
//!   when the CPU has no bf16 instructions;
//! - [`pack_panel_pairs`]: for `VDPBF16PS`, which multiplies pairs of bf16
//!   along k. Each 32-bit slot holds the elements `2p` (low half) and
//!   `2p + 1` (high half) of one row; an odd `kc` pads the last pair with 0:
//!
//! ```text
//!   dst[p * width + i] = bf16(s(r0+i, c0+2p)) | bf16(s(r0+i, c0+2p+1)) << 16     p < ⌈kc/2⌉
//! ```
//!
//! So a pair panel has `⌈kc/2⌉ · width` slots, half the bytes of the f32
//! panel. Rows past the end of the source are zeros, as in `pack`.
//! - [`pack_panel_tiles`]: for AMX (`isa::amx`), whose A tile wants each
//!   row's pairs contiguous: k in blocks of 32 (16 pair slots), and within a
//!   block row by row. B for AMX is the pair layout, padded to whole blocks.
//!
//! ```text
//!   A tiles:  dst[(kb · width + i) · 16 + q] = pair(row i, k = 32·kb + 2q)      q < 16
//! ```

use super::pack::{prefetch_strided, zero_padding};
use super::MatRef;
use crate::Element;

/// The f32 layout of `pack::pack_panel`, each value rounded to bf16.
pub(crate) fn pack_panel_rounded<T: Element>(
    src: &MatRef<'_, T>,
    rows: (usize, usize),
    cols: (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    super::pack::pack_panel(src, rows, cols, width, dst);
    // Rounding the packed copy rounds each element once: widening a bf16 or
    // f16 source to f32 was exact, so this equals rounding the source.
    crate::convert::round_to_bf16(dst);
}

/// Packs one panel as bf16 pairs along k; `dst` is `⌈kc/2⌉ · width` slots.
pub(crate) fn pack_panel_pairs<T: Element>(
    src: &MatRef<'_, T>,
    (r0, height): (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    let pairs = kc.div_ceil(2);
    debug_assert!(height <= width && dst.len() == pairs * width);
    debug_assert!(r0 + height <= src.rows() && c0 + kc <= src.cols());
    let dst: &mut [u32] = bytemuck::cast_slice_mut(dst);
    if let Some(f) = T::as_f32_slice(src.data()).filter(|_| vector_conversion()) {
        if pairs_fast(f, src, (r0, height), (c0, kc), width, dst) {
            return;
        }
    }
    let pair = |lo: T, hi: Option<T>| lo.to_bf16_bits() as u32 | (hi.map_or(0, |h| h.to_bf16_bits()) as u32) << 16;
    let data = src.data();
    let (rs, cs) = (src.row_stride(), src.col_stride());
    if cs == 1 && height > 0 {
        // Rows contiguous over k (A as stored for A·B, B as stored for A·Bᵀ):
        // read each row's pairs in order, write them with stride `width`.
        for i in 0..height {
            let row = &data[(r0 + i) * rs + c0..(r0 + i) * rs + c0 + kc];
            let mut chunks = row.chunks_exact(2);
            for (p, two) in chunks.by_ref().enumerate() {
                dst[p * width + i] = pair(two[0], Some(two[1]));
            }
            if let [last] = chunks.remainder() {
                dst[(pairs - 1) * width + i] = pair(*last, None);
            }
        }
    } else {
        // Columns contiguous over rows (B as stored for A·B), or general strides.
        let at = |i: usize, j: usize| data[(r0 + i) * rs + (c0 + j) * cs];
        for p in 0..pairs {
            let out = &mut dst[p * width..p * width + height];
            let second = 2 * p + 1 < kc;
            for (i, o) in out.iter_mut().enumerate() {
                *o = pair(at(i, 2 * p), second.then(|| at(i, 2 * p + 1)));
            }
        }
    }
    zero_padding(dst, height, width);
}

/// Whether the vector conversions (`VCVTNE2PS2BF16`) can run here.
fn vector_conversion() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::isa::avx512_bf16::is_supported();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
use crate::isa::avx512_bf16::{
    pairs_from_contiguous, pairs_from_k_rows_transposed_16x16, pairs_from_two_rows, pairs_transposed_16x16,
};
#[cfg(not(target_arch = "x86_64"))]
fn pairs_from_contiguous(_: &[f32], _: &mut [u32]) {
    unreachable!("vector_conversion() is false")
}
#[cfg(not(target_arch = "x86_64"))]
fn pairs_from_k_rows_transposed_16x16(_: &[f32], _: usize, _: &mut [u32], _: usize) {
    unreachable!("vector_conversion() is false")
}
#[cfg(not(target_arch = "x86_64"))]
fn pairs_transposed_16x16(_: &[f32], _: usize, _: &mut [u32], _: usize) {
    unreachable!("vector_conversion() is false")
}
#[cfg(not(target_arch = "x86_64"))]
fn pairs_from_two_rows(_: &[f32], _: Option<&[f32]>, _: &mut [u32]) {
    unreachable!("vector_conversion() is false")
}

/// `pack_panel_pairs` for an f32 source with a unit stride, vectorised;
/// false (nothing written) for other strides.
fn pairs_fast<T: Element>(
    f: &[f32],
    src: &MatRef<'_, T>,
    (r0, height): (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [u32],
) -> bool {
    let (rs, cs) = (src.row_stride(), src.col_stride());
    let pairs = kc.div_ceil(2);
    if rs == 1 {
        // k = 2p and 2p + 1 are two runs over the panel's rows: one vector pass each.
        for p in 0..pairs {
            // Strided rows, cold in a backward: asked for ahead (see `prefetch_strided`).
            prefetch_strided(f, (c0 + 2 * p) * cs + r0, cs, height);
            prefetch_strided(f, (c0 + 2 * p + 1) * cs + r0, cs, height);
            let lo = &f[(c0 + 2 * p) * cs + r0..][..height];
            let hi = (2 * p + 1 < kc).then(|| &f[(c0 + 2 * p + 1) * cs + r0..][..height]);
            pairs_from_two_rows(lo, hi, &mut dst[p * width..p * width + height]);
        }
    } else if cs == 1 {
        // Each row is k-contiguous. Sixteen rows by 32 k at a time: convert
        // and transpose in registers, writing sixteen pair runs.
        let (row_groups, k_blocks) = (height / 16, kc / 32);
        for g in 0..row_groups {
            for b in 0..k_blocks {
                let src = &f[(r0 + 16 * g) * rs + c0 + 32 * b..];
                pairs_transposed_16x16(src, rs, &mut dst[16 * b * width + 16 * g..], width);
            }
        }
        // The rest (rows past the groups, k past the blocks): convert 32 at a
        // time, then write the 16 pairs down their column of the panel.
        let mut tmp = [0u32; 16];
        for i in 0..height {
            let row = &f[(r0 + i) * rs + c0..][..kc];
            let done = if i < 16 * row_groups { k_blocks } else { 0 };
            for (b, chunk) in row.chunks(32).enumerate().skip(done) {
                let n = chunk.len().div_ceil(2);
                pairs_from_contiguous(chunk, &mut tmp[..n]);
                for (q, &v) in tmp[..n].iter().enumerate() {
                    dst[(16 * b + q) * width + i] = v;
                }
            }
        }
    } else {
        return false;
    }
    zero_padding(dst, height, width);
    true
}

/// `pack_panel_tiles` for an f32 source with a unit stride, vectorised,
/// into a zeroed `dst`; false (nothing written) for other strides.
fn tiles_fast(
    f: &[f32],
    (rs, cs): (usize, usize),
    (r0, height): (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [u32],
) -> bool {
    if cs == 1 {
        // A row's 32 k of one block are exactly one tile row: convert in place.
        for i in 0..height {
            let row = &f[(r0 + i) * rs + c0..][..kc];
            for (kb, chunk) in row.chunks(32).enumerate() {
                let at = (kb * width + i) * 16;
                pairs_from_contiguous(chunk, &mut dst[at..at + chunk.len().div_ceil(2)]);
            }
        }
    } else if rs == 1 {
        // k = 2p and 2p + 1 are runs over the rows. Sixteen rows by a whole
        // block of 32 k at a time: pairs formed and transposed in registers,
        // each row's 16 pairs written as one tile row.
        let (row_groups, k_blocks) = (height / 16, kc / 32);
        for g in 0..row_groups {
            for kb in 0..k_blocks {
                let src = &f[(c0 + 32 * kb) * cs + r0 + 16 * g..];
                pairs_from_k_rows_transposed_16x16(src, cs, &mut dst[(kb * width + 16 * g) * 16..], 16);
            }
        }
        // The rest: convert a pair's rows together, then put each row's
        // pair in its tile row.
        let mut tmp = [0u32; 64];
        assert!(height <= tmp.len());
        for p in 0..kc.div_ceil(2) {
            let first = if p < 16 * k_blocks { 16 * row_groups } else { 0 };
            let n = height - first;
            let lo = &f[(c0 + 2 * p) * cs + r0 + first..][..n];
            let hi = (2 * p + 1 < kc).then(|| &f[(c0 + 2 * p + 1) * cs + r0 + first..][..n]);
            pairs_from_two_rows(lo, hi, &mut tmp[..n]);
            let (kb, q) = (p / 16, p % 16);
            for (i, &v) in tmp[..n].iter().enumerate() {
                dst[(kb * width + first + i) * 16 + q] = v;
            }
        }
    } else {
        return false;
    }
    true
}

/// Pair slots of a `kc`-deep tile panel row: whole blocks of 16.
pub(crate) fn tile_slots(kc: usize) -> usize {
    kc.div_ceil(32) * 16
}

/// Packs one A panel for AMX tiles; `dst` is `tile_slots(kc) · width` slots.
pub(crate) fn pack_panel_tiles<T: Element>(
    src: &MatRef<'_, T>,
    (r0, height): (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    debug_assert!(height <= width && dst.len() == tile_slots(kc) * width);
    let dst: &mut [u32] = bytemuck::cast_slice_mut(dst);
    dst.fill(0);
    let (data, rs, cs) = (src.data(), src.row_stride(), src.col_stride());
    if let Some(f) = T::as_f32_slice(data).filter(|_| vector_conversion()) {
        if tiles_fast(f, (rs, cs), (r0, height), (c0, kc), width, dst) {
            return;
        }
    }
    for i in 0..height {
        let at = |j: usize| data[(r0 + i) * rs + (c0 + j) * cs].to_bf16_bits() as u32;
        for j in (0..kc).step_by(2) {
            let (kb, q) = (j / 32, (j % 32) / 2);
            let hi = if j + 1 < kc { at(j + 1) } else { 0 };
            dst[(kb * width + i) * 16 + q] = at(j) | hi << 16;
        }
    }
}

/// Packs one B panel for AMX tiles: the pair layout, then zero pair rows up
/// to whole blocks; `dst` is `tile_slots(kc) · width` slots.
pub(crate) fn pack_panel_tiles_b<T: Element>(
    src: &MatRef<'_, T>,
    rows: (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    let used = kc.div_ceil(2) * width;
    pack_panel_pairs(src, rows, (c0, kc), width, &mut dst[..used]);
    dst[used..].fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::f32_to_bf16;

    #[test]
    fn pairs_hold_consecutive_k_in_low_then_high_half() {
        // A 4x5 source, rows 1..3 (height 2, width 3), columns 0..5 (odd kc).
        let (rows, cols) = (4, 5);
        let v: Vec<f32> = (0..rows * cols).map(|x| 1.0 + x as f32 / 7.0).collect();
        let row_major = MatRef::new(&v, rows, cols, cols).unwrap();
        let col_major_data: Vec<f32> = (0..rows * cols).map(|x| v[(x % rows) * cols + x / rows]).collect();
        let col_major = MatRef::new(&col_major_data, cols, rows, rows).unwrap().t();
        for view in [row_major, col_major] {
            let mut dst = vec![f32::NAN; 3 * 3];
            pack_panel_pairs(&view, (1, 2), (0, 5), 3, &mut dst);
            let got: &[u32] = bytemuck::cast_slice(&dst);
            for p in 0..3 {
                for i in 0..3 {
                    let bits = |j: usize| if i < 2 && j < 5 { f32_to_bf16(v[(1 + i) * cols + j]) as u32 } else { 0 };
                    assert_eq!(got[p * 3 + i], bits(2 * p) | bits(2 * p + 1) << 16, "p={p} i={i}");
                }
            }
        }
    }

    #[test]
    fn k_contiguous_panels_match_the_definition_across_whole_and_partial_blocks() {
        // Rows 3..40 (two groups of 16 and 5 more) of a 45 x 80 source, k
        // columns 5..75 (two blocks of 32 and 6 more): the register transpose
        // and the row-by-row rest must agree with the definition everywhere.
        let (rows, cols, width) = (45, 80, 48);
        let v: Vec<f32> = (0..rows * cols).map(|x| 1.0 + (x as f32 * 0.37).sin()).collect();
        let view = MatRef::new(&v, rows, cols, cols).unwrap();
        let cases: [(usize, usize, usize, usize); 4] =
            [(3, 37, 5, 70), (13, 32, 16, 64), (10, 16, 1, 33), (0, 45, 0, 31)];
        for (r0, height, c0, kc) in cases {
            let pairs = kc.div_ceil(2);
            let mut dst = vec![f32::NAN; pairs * width];
            pack_panel_pairs(&view, (r0, height), (c0, kc), width, &mut dst);
            let got: &[u32] = bytemuck::cast_slice(&dst);
            for p in 0..pairs {
                for i in 0..width {
                    let bits = |j: usize| {
                        if i < height && j < kc {
                            f32_to_bf16(v[(r0 + i) * cols + c0 + j]) as u32
                        } else {
                            0
                        }
                    };
                    let want = bits(2 * p) | bits(2 * p + 1) << 16;
                    assert_eq!(got[p * width + i], want, "r0={r0} height={height} c0={c0} kc={kc} p={p} i={i}");
                }
            }
        }
    }

    #[test]
    fn tile_panels_from_k_major_sources_match_the_definition() {
        // A stored k-major (rows contiguous over the panel's rows, as `dyᵀ`
        // is): 45 rows by 80 k, packed 32 wide. Whole groups of 16 rows and
        // blocks of 32 k go through the register transpose, the rest row by
        // row; both must give the tile layout.
        let (rows, cols, width) = (45, 80, 32);
        let v: Vec<f32> = (0..rows * cols).map(|x| 1.0 + (x as f32 * 0.37).sin()).collect();
        let k_major: Vec<f32> = (0..rows * cols).map(|x| v[(x % rows) * cols + x / rows]).collect();
        let view = MatRef::new(&k_major, cols, rows, rows).unwrap().t();
        let cases: [(usize, usize, usize, usize); 4] =
            [(3, 32, 5, 70), (13, 32, 16, 64), (10, 17, 1, 33), (0, 31, 0, 80)];
        for (r0, height, c0, kc) in cases {
            let mut dst = vec![f32::NAN; tile_slots(kc) * width];
            pack_panel_tiles(&view, (r0, height), (c0, kc), width, &mut dst);
            let got: &[u32] = bytemuck::cast_slice(&dst);
            for kb in 0..kc.div_ceil(32) {
                for i in 0..width {
                    for q in 0..16 {
                        let bits = |j: usize| {
                            if i < height && j < kc {
                                f32_to_bf16(v[(r0 + i) * cols + c0 + j]) as u32
                            } else {
                                0
                            }
                        };
                        let j = 32 * kb + 2 * q;
                        let want = bits(j) | bits(j + 1) << 16;
                        assert_eq!(
                            got[(kb * width + i) * 16 + q],
                            want,
                            "case {r0},{height},{c0},{kc} kb={kb} i={i} q={q}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn tile_panels_hold_each_rows_pairs_together() {
        // A 3x40 source (two k blocks, the second partial), width 4.
        let (rows, cols) = (3, 40);
        let v: Vec<f32> = (0..rows * cols).map(|x| 1.0 + x as f32 / 64.0).collect();
        let view = MatRef::new(&v, rows, cols, cols).unwrap();
        let mut dst = vec![f32::NAN; tile_slots(cols) * 4];
        pack_panel_tiles(&view, (0, 3), (0, cols), 4, &mut dst);
        let got: &[u32] = bytemuck::cast_slice(&dst);
        for kb in 0..2 {
            for i in 0..4 {
                for q in 0..16 {
                    let bits = |j: usize| if i < 3 && j < cols { f32_to_bf16(v[i * cols + j]) as u32 } else { 0 };
                    let j = 32 * kb + 2 * q;
                    assert_eq!(got[(kb * 4 + i) * 16 + q], bits(j) | bits(j + 1) << 16, "kb={kb} i={i} q={q}");
                }
            }
        }
    }
}
