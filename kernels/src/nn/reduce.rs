//! Sums, dot products and maxima over a row, in an order the compiler can
//! vectorise.
//!
//! Rust does not let LLVM reorder floating-point additions, so
//! `x.iter().sum()` is one long serial chain: one add per cycle latency, no
//! SIMD. Here the row is summed in `LANES` interleaved partial sums
//! (element `i` goes to partial `i % LANES`), which is elementwise work on an
//! array and vectorises; the partials are then added in index order. The
//! order is defined by `LANES`, not by the instruction set, so every ISA
//! gives the same bits.

/// Interleaved partial sums: 16 = one AVX-512 register, two AVX2, four NEON.
const LANES: usize = 16;

/// Adds the partials in a fixed order (pairwise, which also halves the error).
#[inline(always)]
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
}

/// `Σ f(x[i])`.
#[inline(always)]
pub(crate) fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    for (i, &v) in tail.iter().enumerate() {
        acc[i] += f(v);
    }
    fold(acc)
}

/// `Σ x[i]`.
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    sum_map(x, |v| v)
}

/// `Σ f(x[i], y[i])` over two rows of equal length.
#[inline(always)]
pub(crate) fn sum_zip(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(x.len(), y.len());
    let mut acc = [0.0f32; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (xt, yt) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for i in 0..LANES {
            acc[i] += f(a[i], b[i]);
        }
    }
    for (i, (&a, &b)) in xt.iter().zip(yt).enumerate() {
        acc[i] += f(a, b);
    }
    fold(acc)
}

/// `Σ f(x[i], y[i], z[i])` over three rows of equal length.
#[inline(always)]
pub(crate) fn sum_zip3(x: &[f32], y: &[f32], z: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let n = x.len().min(y.len()).min(z.len());
    let full = n / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    for c in (0..full).step_by(LANES) {
        let (a, b, d) = (&x[c..c + LANES], &y[c..c + LANES], &z[c..c + LANES]);
        for i in 0..LANES {
            acc[i] += f(a[i], b[i], d[i]);
        }
    }
    for i in full..n {
        acc[i - full] += f(x[i], y[i], z[i]);
    }
    fold(acc)
}

/// `Σ x[i]·y[i]`.
#[inline(always)]
pub(crate) fn dot(x: &[f32], y: &[f32]) -> f32 {
    sum_zip(x, y, |a, b| a * b)
}

/// `max x[i]` (−∞ for an empty row). NaN-ignoring, like `f32::max`.
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    for (i, &v) in tail.iter().enumerate() {
        acc[i] = acc[i].max(v);
    }
    acc.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_f64_for_every_tail_length() {
        for n in 0..70 {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.25).collect();
            let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).sin()).collect();
            let s: f64 = x.iter().map(|&v| v as f64).sum();
            let d: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((sum(&x) as f64 - s).abs() < 1e-5, "n={n}");
            assert!((dot(&x, &y) as f64 - d).abs() < 1e-5, "n={n}");
            let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&x), m);
        }
    }
}
