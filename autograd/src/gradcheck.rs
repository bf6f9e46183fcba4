//! Checks an op's backward against central finite differences.
//!
//! For a function `f` of some input tensors, [`check`]:
//! 1. draws fixed pseudo-random weights `w` of `f`'s output shape, so the
//!    scalar being differentiated, `L = Σ w ⊙ f(x)`, exercises every output
//!    element with a different weight (a plain sum would hide transposed or
//!    permuted gradients);
//! 2. runs `f` on parameters and backward seeded with `w`: the analytic gradients;
//! 3. for every element `x_j` of every input, evaluates
//!    `(L(x_j + h) − L(x_j − h)) / 2h` with `h = step · max(1, |x_j|)`,
//!    summing `L` in f64 so that only `f`'s own f32 rounding remains;
//! 4. requires `|analytic − numeric| ≤ abs + rel · |numeric|` everywhere.
//!
//! The central difference's truncation error is `h²/6 · f'''`; with
//! `step = 1e-2` and outputs of order 1 that is about 1e-5, the same order
//! as the f32 rounding of `L` divided by `2h`. The defaults, `abs = 3e-4`
//! and `rel = 3e-3`, pass 500 random cases of every op and fail each of a
//! set of 1% mutations of the backward rules (scaled weight gradients,
//! a wrong GELU constant, a scaled attention dK, ...).

use crate::{no_grad, Var};
use tensor::{Tensor, TensorError};

/// How close the analytic and numeric gradients must be.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
    /// The finite-difference step, relative to `max(1, |x|)`.
    pub step: f32,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance { abs: 3e-4, rel: 3e-3, step: 1e-2 }
    }
}

/// The worst disagreement found (for reports), when all were within tolerance.
#[derive(Clone, Debug)]
pub struct Report {
    pub worst_abs_error: f64,
    pub elements_checked: usize,
}

/// `n` deterministic values in [−1, 1) from `seed` (xorshift64).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x2545_F491_4F6C_DD1D) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// An f32 tensor of `shape` with values from [`pseudo_random`], times `scale`.
pub fn random_tensor(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(pseudo_random(n, seed).into_iter().map(|v| v * scale).collect(), shape).expect("sizes match")
}

/// Compares `f`'s backward with finite differences at `inputs` (see the module doc).
pub fn check<F>(inputs: &[Tensor], tol: Tolerance, f: F) -> Result<Report, String>
where
    F: Fn(&[Var]) -> Result<Var, TensorError>,
{
    let err = |e: TensorError| e.to_string();
    let params: Vec<Var> = inputs.iter().cloned().map(Var::parameter).collect();
    let out = f(&params).map_err(err)?;
    let weights = random_tensor(&out.shape(), 0xC0FFEE, 1.0);
    let w = weights.to_f32_vec();
    out.backward_with(weights).map_err(err)?;

    let loss = |xs: &[Tensor]| -> Result<f64, String> {
        let consts: Vec<Var> = xs.iter().cloned().map(Var::constant).collect();
        let y = no_grad(|| f(&consts)).map_err(err)?.value().to_f32_vec();
        Ok(y.iter().zip(&w).map(|(&y, &w)| y as f64 * w as f64).sum())
    };
    let mut report = Report { worst_abs_error: 0.0, elements_checked: 0 };
    for (i, p) in params.iter().enumerate() {
        let analytic = p.grad().map(|g| g.to_f32_vec()).unwrap_or_else(|| vec![0.0; inputs[i].numel()]);
        let base = inputs[i].to_f32_vec();
        for j in 0..base.len() {
            let h = tol.step * base[j].abs().max(1.0);
            let at = |delta: f32| -> Result<f64, String> {
                let mut x = base.clone();
                x[j] += delta;
                let mut xs = inputs.to_vec();
                xs[i] = Tensor::from_vec(x, inputs[i].shape()).map_err(err)?;
                loss(&xs)
            };
            let (hi, lo) = (base[j] + h, base[j] - h);
            // Divide by the step actually taken after f32 rounding of x ± h.
            let numeric = (at(h)? - at(-h)?) / (hi as f64 - lo as f64);
            let diff = (analytic[j] as f64 - numeric).abs();
            report.worst_abs_error = report.worst_abs_error.max(diff);
            report.elements_checked += 1;
            if diff > tol.abs + tol.rel * numeric.abs() {
                return Err(format!(
                    "input {i} (shape {:?}) element {j}: backward gives {}, finite differences give {numeric:.6}",
                    inputs[i].shape(),
                    analytic[j]
                ));
            }
        }
    }
    Ok(report)
}
