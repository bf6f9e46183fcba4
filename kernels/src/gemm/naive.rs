//! The reference GEMM: one dot product per element, accumulated in f64.
//!
//! Slow and obviously right. Every fast path is tested against it, and the
//! benches report it so readers can see what packing and registers buy.

use super::{check_shapes, MatMut, MatRef};
use crate::{Element, KernelError};

/// `C <- alpha * A * B + beta * C`, each dot product summed in f64 and
/// rounded once. With `beta == 0`, C is not read.
pub fn sgemm<A: Element, B: Element>(
    alpha: f32,
    a: MatRef<'_, A>,
    b: MatRef<'_, B>,
    beta: f32,
    mut c: MatMut<'_>,
) -> Result<(), KernelError> {
    let (m, k, n) = check_shapes(&a, &b, beta, &c)?;
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| a.get(i, p) as f64 * b.get(p, j) as f64).sum();
            let old = if beta == 0.0 { 0.0 } else { beta as f64 * c.as_ref().get(i, j) as f64 };
            c.write(i, j, (alpha as f64 * dot + old) as f32);
        }
    }
    Ok(())
}

/// Per-element bound on the rounding error of a blocked f32 GEMM that sums
/// `k` products in blocks of `kc`, in any order within a block:
///
/// ```text
///   |C_computed - C_exact| <= gamma(k + nb + 2) * (|alpha| * sum_p |A_ip * B_pj| + |beta * C_ij|)
///   gamma(n) = n*u / (1 - n*u),   u = 2^-24 (f32 unit roundoff),   nb = ceil(k / kc)
/// ```
///
/// Derivation (Higham, *Accuracy and Stability of Numerical Algorithms*,
/// §3.1: an error term that passes through `n` roundings is bounded by
/// `gamma(n)` times its magnitude). Follow one product `A_ip * B_pj`: it is
/// rounded once when formed (or fused), at most `kc - 1` times as the block's
/// partial sum grows, once when the block sum is scaled by alpha, and at most
/// `nb` times as block sums are added into C: `k + nb + 1` at most, and the
/// `beta * C` term passes through at most `nb + 1`. A correct kernel can never
/// exceed this; the tests use it instead of a tolerance picked to pass.
/// `magnitude` is the bracket above.
pub fn error_bound(k: usize, kc: usize, magnitude: f64) -> f64 {
    let u = f32::EPSILON as f64 / 2.0;
    let n = (k + k.div_ceil(kc.max(1)) + 2) as f64;
    n * u / (1.0 - n * u) * magnitude
}
