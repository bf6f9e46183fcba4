//! Softmax over the last axis, forward and backward.
//!
//! ```text
//! y_i = exp(x_i − m) / Σ_j exp(x_j − m),   m = max_j x_j   (m keeps exp from overflowing)
//! ∂L/∂x_i = y_i · (∂L/∂y_i − Σ_j ∂L/∂y_j · y_j)
//! ```

use super::exp::exp;
use super::{for_rows, reduce, vectorized};
use crate::KernelError;

fn check(op: &'static str, width: usize, lens: &[usize]) -> Result<(), KernelError> {
    if width == 0 || lens.iter().any(|&l| l != lens[0] || l % width != 0) {
        return Err(KernelError::bad(op, format!("slices of lengths {lens:?} are not whole rows of {width}")));
    }
    Ok(())
}

vectorized! {
    /// One row: `y = softmax(x)`.
    fn softmax_row(x: &[f32], y: &mut [f32]) {
        let m = reduce::max(x);
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = exp(x - m));
        let inv = 1.0 / reduce::sum(y);
        y.iter_mut().for_each(|y| *y *= inv);
    }
}

vectorized! {
    /// One row: `dx = y ⊙ (dy − ⟨dy, y⟩)`.
    fn softmax_backward_row(y: &[f32], dy: &[f32], dx: &mut [f32]) {
        let d = reduce::dot(dy, y);
        dx.iter_mut().zip(y.iter().zip(dy)).for_each(|(dx, (&y, &dy))| *dx = y * (dy - d));
    }
}

/// `y = softmax(x)` for each row of `width` elements.
pub fn softmax(x: &[f32], width: usize, y: &mut [f32]) -> Result<(), KernelError> {
    check("softmax", width, &[x.len(), y.len()])?;
    for_rows(y, width, |row0, ys| {
        for (r, y) in ys.chunks_exact_mut(width).enumerate() {
            let i = (row0 + r) * width;
            softmax_row(&x[i..i + width], y);
        }
    });
    Ok(())
}

/// The gradient through softmax rows, from the output `y` and its gradient `dy`.
pub fn softmax_backward(y: &[f32], dy: &[f32], width: usize, dx: &mut [f32]) -> Result<(), KernelError> {
    check("softmax_backward", width, &[y.len(), dy.len(), dx.len()])?;
    for_rows(dx, width, |row0, dxs| {
        for (r, dx) in dxs.chunks_exact_mut(width).enumerate() {
            let i = (row0 + r) * width;
            softmax_backward_row(&y[i..i + width], &dy[i..i + width], dx);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_match_f64() {
        let width = 37;
        let x: Vec<f32> = (0..width * 5).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.7 + 50.0).collect();
        let mut y = vec![0.0; x.len()];
        softmax(&x, width, &mut y).unwrap();
        for (xr, yr) in x.chunks(width).zip(y.chunks(width)) {
            let m = xr.iter().cloned().fold(f64::MIN, |a, b| a.max(b as f64));
            let s: f64 = xr.iter().map(|&v| (v as f64 - m).exp()).sum();
            for (&xv, &yv) in xr.iter().zip(yr) {
                assert!((yv as f64 - (xv as f64 - m).exp() / s).abs() < 1e-6);
            }
        }
        assert!(softmax(&x, 36, &mut y).is_err());
    }
}
