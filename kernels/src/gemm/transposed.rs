//! Products of few rows and many columns, run as their transpose.
//!
//! `C = A·B` with `m` rows, `m` at most one B panel wide, and `n` wider:
//! LoRA's `∂L/∂A = dhᵀ·x` (`16 × N · N × in`), and every product of a
//! decoding step (`1 × in · in × out`). The BLIS loops pack all of B
//! (`k × n`, the big operand) into panels, and then use each panel for one
//! A panel: B is read, written and read again for a single use. As
//!
//! ```text
//!   Cᵀ = Bᵀ · Aᵀ        (n × k) · (k × m), m ≤ NR columns: one B panel
//! ```
//!
//! the big operand becomes the left one, which the kernel's in-place twin
//! reads where it is (see `driver::a_in_place`), once; only the small one is
//! packed. The kernel computes `Cᵀ` into a scratch matrix, which is then
//! written into `C` transposed.
//!
//! Each element is the same sum as in `A·B`: the products `a·b` and `b·a`
//! are the same floats, taken in the same k order, over the same K blocks.

use super::driver::Plan;
use super::{MatMut, MatRef};
use crate::Element;

/// Whether `C = A·B` (`m × n`) runs as its transpose under `plan_for`, which
/// gives the plan of a product of `n` columns. Only when the transposed
/// product reads its left operand (`Bᵀ`) in place: f32 B, and `m` within one
/// panel of the kernel chosen for `m` columns.
pub(crate) fn runs_transposed<TB: Element>(
    m: usize,
    n: usize,
    b: &MatRef<'_, TB>,
    plan_for: impl Fn(usize) -> Plan,
) -> bool {
    let plan = plan_for(m);
    let k = plan.kernel;
    m <= k.nr && n > k.nr && k.run_in_place.is_some() && !plan.round_bf16 && TB::as_f32_slice(b.data()).is_some()
}

/// `C <- beta * C` read into `Cᵀ` (`n × m`, row-major) when `beta` reads C:
/// the scratch the transposed product accumulates into.
pub(crate) fn c_transposed(c: &mut MatMut<'_>, beta: f32) -> Vec<f32> {
    let (m, n) = (c.rows(), c.cols());
    let mut ct = vec![0.0f32; n * m];
    if beta != 0.0 {
        for i in 0..m {
            for (j, &v) in c.row_mut(i).iter().enumerate() {
                ct[j * m + i] = v;
            }
        }
    }
    ct
}

/// Writes `Cᵀ` (`n × m`, row-major) into `C`.
pub(crate) fn write_back(ct: &[f32], c: &mut MatMut<'_>) {
    let m = c.rows();
    for (j, row) in ct.chunks_exact(m).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            c.write(i, j, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::gemm::{Gemm, MatMut, MatRef};
    use half::bf16;

    /// The transposed run gives the bits of the direct one. B as f32 runs
    /// transposed; the same B as bf16 (its values are exact in bf16, so
    /// widening changes nothing) cannot be read in place and runs directly.
    #[test]
    fn transposed_run_matches_direct_bit_for_bit() {
        let gemm = Gemm::new().unwrap();
        let nr = gemm.kernel().nr;
        // Small integers over 8: exact in bf16, and sums of them round.
        let value = |i: usize| ((i * 7919) % 61) as f32 / 8.0 - 3.5;
        for (m, k, n) in [(1, 33, 100), (nr, 600, 3 * nr + 5), (5, 7, nr + 1), (3, 1200, 700)] {
            let a: Vec<f32> = (0..m * k).map(value).collect();
            let b: Vec<f32> = (0..k * n).map(|i| value(i + 3)).collect();
            let b16: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
            assert!(b16.iter().zip(&b).all(|(h, &x)| h.to_f32() == x));
            let c0: Vec<f32> = (0..m * n).map(|i| value(i + 5)).collect();
            for (beta, a_t) in [(0.0, false), (1.0, true), (-0.5, false)] {
                let a_data: Vec<f32> =
                    if a_t { (0..k * m).map(|i| a[(i % m) * k + i / m]).collect() } else { a.clone() };
                let am = if a_t {
                    MatRef::new(&a_data, k, m, m).unwrap().t()
                } else {
                    MatRef::new(&a_data, m, k, k).unwrap()
                };
                let (mut via_t, mut direct) = (c0.clone(), c0.clone());
                let b32 = MatRef::new(&b, k, n, n).unwrap();
                gemm.run(0.75, am, b32, beta, MatMut::new(&mut via_t, m, n, n).unwrap()).unwrap();
                gemm.run(
                    0.75,
                    am,
                    MatRef::new(&b16, k, n, n).unwrap(),
                    beta,
                    MatMut::new(&mut direct, m, n, n).unwrap(),
                )
                .unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&via_t), bits(&direct), "{m}x{k}x{n} beta={beta} a_t={a_t}");
            }
        }
    }
}
