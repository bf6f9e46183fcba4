//! Packing: copying a block of A or B into the layout the microkernel reads.
//!
//! Both operands are packed by one function, because packing B's columns is
//! packing Bᵀ's rows. A *panel* is `width` rows (MR for A, NR for Bᵀ) by
//! `kc` columns of the source view, stored column by column:
//!
//! ```text
//!   source rows r0 .. r0+width, columns c0 .. c0+kc      packed panel
//!
//!        c0  c0+1 ...                                   [s(r0,c0)   s(r0+1,c0)   .. ]  p = 0
//!   r0   x    x                                ->       [s(r0,c0+1) s(r0+1,c0+1) .. ]  p = 1
//!   r0+1 x    x                                          ...
//!   dst[p * width + i] = source(r0 + i, c0 + p)
//! ```
//!
//! Rows past the end of the source (the last, partial panel) are packed as
//! zeros, so the microkernel can always compute a full tile. This is also
//! where bf16 and f16 are widened to f32.

use super::MatRef;
use crate::Element;

/// Packs one panel: `height <= width` source rows from `r0`, `kc` columns from `c0`.
///
/// `dst` must be exactly `kc * width` long.
pub(crate) fn pack_panel<T: Element>(
    src: &MatRef<'_, T>,
    (r0, height): (usize, usize),
    (c0, kc): (usize, usize),
    width: usize,
    dst: &mut [f32],
) {
    debug_assert!(height <= width && dst.len() == kc * width);
    debug_assert!(r0 + height <= src.rows() && c0 + kc <= src.cols());
    if height == 0 || kc == 0 {
        dst.fill(0.0);
        return;
    }
    let data = src.data();
    let (rs, cs) = (src.row_stride(), src.col_stride());
    if rs == 1 {
        // Each source column is contiguous over the panel's rows: one
        // contiguous read per packed row `p`. (B as stored for A·B.)
        for (p, out) in dst.chunks_exact_mut(width).enumerate() {
            let start = (c0 + p) * cs + r0;
            prefetch_strided(data, start, cs, height);
            let col = &data[start..start + height];
            for (o, &x) in out.iter_mut().zip(col) {
                *o = x.to_f32();
            }
        }
        zero_padding(dst, height, width);
    } else if cs == 1 {
        // Each source row is contiguous over k: read rows, write with stride
        // `width`. (A as stored for A·B, and B as stored for A·Bᵀ.)
        // Eight (or six) rows at a time, so each packed row `p` gets 8 (6)
        // contiguous writes instead of scattered ones; the rest one row at a time.
        let row = |i: usize| &data[(r0 + i) * rs + c0..(r0 + i) * rs + c0 + kc];
        let mut i = 0;
        // The register transposes read f32 sources only.
        let f32_data = T::as_f32_slice(data);
        if let Some(f) = f32_data.filter(|_| simd_transpose()) {
            // f32 on AVX-512: sixteen rows by sixteen k at a time, transposed
            // in registers; k past the last block one element at a time.
            let k16 = kc / 16 * 16;
            while i + 16 <= height {
                for p in (0..k16).step_by(16) {
                    transpose_16x16(&f[(r0 + i) * rs + c0 + p..], rs, &mut dst[p * width + i..], width);
                }
                for p in k16..kc {
                    for r in 0..16 {
                        dst[p * width + i + r] = f[(r0 + i + r) * rs + c0 + p];
                    }
                }
                i += 16;
            }
        }
        // Groups of 8 rows (an A panel of the AVX-512 tile, half a 16-wide B
        // panel), then one of 6 (the AVX2 tile's A panel).
        let group = (f32_data, rs, c0, kc, width);
        while i + 8 <= height {
            pack_row_group::<T, 8>(std::array::from_fn(|r| row(i + r)), group, r0 + i, i, dst);
            i += 8;
        }
        if height - i == 6 {
            pack_row_group::<T, 6>(std::array::from_fn(|r| row(i + r)), group, r0 + i, i, dst);
            i += 6;
        }
        for i in i..height {
            for (p, &x) in row(i).iter().enumerate() {
                dst[p * width + i] = x.to_f32();
            }
        }
        zero_padding(dst, height, width);
    } else {
        // General strides: element by element.
        for (p, out) in dst.chunks_exact_mut(width).enumerate() {
            for (i, o) in out[..height].iter_mut().enumerate() {
                *o = src.get(r0 + i, c0 + p);
            }
        }
        zero_padding(dst, height, width);
    }
}

/// Packs `R` k-contiguous source rows (`rows`, from source row `r`) into
/// rows `i..i + R` of each packed k step. f32 with AVX: 8 × 8 blocks
/// transposed in registers (`transpose_rows`); the k left, and other
/// element types, element by element.
fn pack_row_group<T: Element, const R: usize>(
    rows: [&[T]; R],
    (f32_data, rs, c0, kc, width): (Option<&[f32]>, usize, usize, usize, usize),
    r: usize,
    i: usize,
    dst: &mut [f32],
) {
    let done = match f32_data.filter(|_| simd_transpose_rows()) {
        Some(f) => transpose_rows::<R>(&f[r * rs + c0..], rs, kc, &mut dst[i..], width),
        None => 0,
    };
    for (p, out) in dst.chunks_exact_mut(width).enumerate().skip(done) {
        for (o, src) in out[i..i + R].iter_mut().zip(&rows) {
            *o = src[p].to_f32();
        }
    }
}

/// How many source columns ahead a packing loop over strided columns asks
/// for (`prefetch_strided`).
///
/// Packing B for `A·B` reads `height` floats from each of `kc` source rows
/// `cs` floats apart: a weight read in the backward of a Linear layer, or
/// the forward of GPT-2's Conv1D, cold from memory. With a row stride of
/// 12 KB (GPT-2's 3072-wide MLP) every read is a new page, which the
/// hardware prefetchers do not follow. Measured on Zen 4, cold B, one
/// sitting, alternating: 1.5-5% faster on `512x768x3072`, `512x3072x768`,
/// `512x1536x576` and `254x50257x768` A·B (16 ahead: 1-4%); the bf16 pair
/// packing of the same shapes (`pack_bf16`), 3-10% (alternated processes).
pub(crate) const STRIDED_PREFETCH: usize = 8;

/// Prefetches the `len` elements at `start + STRIDED_PREFETCH * stride`:
/// the run a strided packing loop reads that many steps later.
#[inline(always)]
pub(crate) fn prefetch_strided<T>(data: &[T], start: usize, stride: usize, len: usize) {
    let ahead = data.as_ptr().wrapping_add(start + STRIDED_PREFETCH * stride);
    crate::isa::prefetch_bytes(ahead.cast(), len * std::mem::size_of::<T>());
}

/// Zeros the padding rows `height..width` of every packed k step (f32
/// elements, or bf16 pairs in `pack_bf16`). A whole panel has none: not even
/// a `fill` of an empty slice per k step, which is a call to `memset` (3% of
/// a bf16 LoRA step).
pub(crate) fn zero_padding<T: Copy + Default>(dst: &mut [T], height: usize, width: usize) {
    if height < width {
        dst.chunks_exact_mut(width).for_each(|out| out[height..].fill(T::default()));
    }
}

/// Whether [`transpose_16x16`] can run here.
fn simd_transpose() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::isa::Isa::Avx512.is_supported();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether [`transpose_rows`] can run here.
fn simd_transpose_rows() -> bool {
    #[cfg(target_arch = "x86_64")]
    return crate::isa::Isa::Avx2.is_supported();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
use crate::isa::avx2::transpose_rows;
#[cfg(not(target_arch = "x86_64"))]
fn transpose_rows<const ROWS: usize>(_: &[f32], _: usize, _: usize, _: &mut [f32], _: usize) -> usize {
    unreachable!("simd_transpose_rows() is false")
}
#[cfg(target_arch = "x86_64")]
use crate::isa::avx512::transpose_16x16;
#[cfg(not(target_arch = "x86_64"))]
fn transpose_16x16(_: &[f32], _: usize, _: &mut [f32], _: usize) {
    unreachable!("simd_transpose() is false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_every_layout_the_same_way() {
        // A 5x7 source read as rows 1..4 (height 3, width 4) and columns 2..7.
        let rows = 5;
        let cols = 7;
        let row_major: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let col_major: Vec<f32> = (0..rows * cols).map(|x| ((x % rows) * cols + x / rows) as f32).collect();
        let views = [
            MatRef::new(&row_major, rows, cols, cols).unwrap(),
            MatRef::new(&col_major, cols, rows, rows).unwrap().t(),
            MatRef::strided(&row_major, 3, 4, 14, 2).unwrap(), // every other row and column
        ];
        for view in &views[..2] {
            let mut dst = vec![f32::NAN; 5 * 4];
            pack_panel(view, (1, 3), (2, 5), 4, &mut dst);
            for p in 0..5 {
                for i in 0..4 {
                    let want = if i < 3 { ((1 + i) * cols + 2 + p) as f32 } else { 0.0 };
                    assert_eq!(dst[p * 4 + i], want, "p={p} i={i}");
                }
            }
        }
        let mut dst = vec![f32::NAN; 2 * 3];
        pack_panel(&views[2], (1, 2), (1, 2), 3, &mut dst);
        assert_eq!(dst, [16.0, 30.0, 0.0, 18.0, 32.0, 0.0]);
    }

    #[test]
    fn k_contiguous_panels_match_the_definition_across_whole_and_partial_blocks() {
        // Rows r0.. of a 45 x 80 row-major source, packed 48, 16, 8 and 6
        // wide (B panels, and the AVX-512 and AVX2 A panels): whole groups of
        // 16 rows and blocks of 16 k, groups of 8 or 6 rows and blocks of 8 k
        // (the register transposes), and the rows and k left over (element by
        // element), must all agree.
        let (rows, cols) = (45, 80);
        let v: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
        let view = MatRef::new(&v, rows, cols, cols).unwrap();
        let cases: [(usize, usize, usize, usize, usize); 13] = [
            (5, 6, 1, 77, 6),
            (0, 6, 0, 16, 6),
            (7, 6, 9, 7, 6),
            (2, 14, 3, 21, 16),
            (3, 37, 5, 70, 48),
            (13, 32, 16, 64, 48),
            (10, 16, 1, 15, 48),
            (0, 45, 0, 80, 48),
            (1, 8, 3, 77, 8),
            (37, 8, 0, 80, 8),
            (20, 8, 9, 7, 8),
            (4, 5, 2, 40, 8),
            (2, 24, 5, 21, 48),
        ];
        for (r0, height, c0, kc, width) in cases {
            let mut dst = vec![f32::NAN; kc * width];
            pack_panel(&view, (r0, height), (c0, kc), width, &mut dst);
            for p in 0..kc {
                for i in 0..width {
                    let want = if i < height { v[(r0 + i) * cols + c0 + p] } else { 0.0 };
                    assert_eq!(dst[p * width + i], want, "r0={r0} height={height} c0={c0} kc={kc} p={p} i={i}");
                }
            }
        }
    }
}
