//! Elementwise arithmetic over slices of equal length.
//!
//! These are the inner loops of the tensor crate's broadcasting ops: the
//! tensor crate walks the broadcast shape and hands each contiguous run to
//! one of these. Each is memory-bound; the point is only that they vectorise.

use super::{for_rows, vectorized};
use crate::KernelError;

/// A binary operation on two f32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    /// The operation on one pair (the scalar definition the slices follow).
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
}

fn check(op: &'static str, a: usize, b: usize, out: usize) -> Result<(), KernelError> {
    if a != out || b != out {
        return Err(KernelError::bad(op, format!("lengths differ: a {a}, b {b}, out {out}")));
    }
    Ok(())
}

vectorized! {
    fn binary_loop(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
        // One loop per op, so the match is outside the loop.
        match op {
            BinaryOp::Add => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x + y),
            BinaryOp::Sub => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x - y),
            BinaryOp::Mul => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x * y),
            BinaryOp::Div => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x / y),
        }
    }
}

vectorized! {
    fn scalar_loop(op: BinaryOp, a: &[f32], b: f32, out: &mut [f32]) {
        match op {
            BinaryOp::Add => out.iter_mut().zip(a).for_each(|(o, x)| *o = x + b),
            BinaryOp::Sub => out.iter_mut().zip(a).for_each(|(o, x)| *o = x - b),
            BinaryOp::Mul => out.iter_mut().zip(a).for_each(|(o, x)| *o = x * b),
            BinaryOp::Div => out.iter_mut().zip(a).for_each(|(o, x)| *o = x / b),
        }
    }
}

vectorized! {
    fn axpy_loop(alpha: f32, x: &[f32], y: &mut [f32]) {
        y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
    }
}

/// `out[i] = a[i] op b[i]`.
pub fn binary(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) -> Result<(), KernelError> {
    check("binary", a.len(), b.len(), out.len())?;
    // Each element alone, so the split over threads does not change the bits.
    for_rows(out, 1, |i, out| binary_loop(op, &a[i..i + out.len()], &b[i..i + out.len()], out));
    Ok(())
}

/// `out[i] = a[i] op b` for one scalar `b` (a broadcast along a whole run).
pub fn binary_scalar(op: BinaryOp, a: &[f32], b: f32, out: &mut [f32]) -> Result<(), KernelError> {
    check("binary_scalar", a.len(), out.len(), out.len())?;
    for_rows(out, 1, |i, out| scalar_loop(op, &a[i..i + out.len()], b, out));
    Ok(())
}

/// `y += alpha · x` (gradient accumulation).
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
    check("axpy", x.len(), y.len(), y.len())?;
    for_rows(y, 1, |i, y| axpy_loop(alpha, &x[i..i + y.len()], y));
    Ok(())
}

/// `Σ x[i]`, accumulated in f64 in a fixed order (a loss or a test's checksum,
/// not a hot loop).
pub fn sum_f64(x: &[f32]) -> f64 {
    x.iter().map(|&v| v as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_match_scalar_definition() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).cos() + 2.0).collect();
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let mut out = vec![0.0; 37];
            binary(op, &a, &b, &mut out).unwrap();
            assert!(out.iter().enumerate().all(|(i, &o)| o == op.apply(a[i], b[i])));
            binary_scalar(op, &a, 1.7, &mut out).unwrap();
            assert!(out.iter().enumerate().all(|(i, &o)| o == op.apply(a[i], 1.7)));
        }
        let mut y = b.clone();
        axpy(2.0, &a, &mut y).unwrap();
        assert!(y.iter().enumerate().all(|(i, &v)| v == b[i] + 2.0 * a[i]));
        assert!(binary(BinaryOp::Add, &a, &b[1..], &mut [0.0; 37]).is_err());
    }

    #[test]
    fn long_runs_split_over_threads_match_the_definition() {
        // Longer than PARALLEL_MIN and not a multiple of the chunk: the
        // threaded split must cover every element once, each at its index.
        let n = 3 * super::super::PARALLEL_MIN + 7;
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..n).map(|i| 1.5 + (i as f32 * 0.11).cos()).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
                let mut out = vec![f32::NAN; n];
                binary(op, &a, &b, &mut out).unwrap();
                assert!(out.iter().enumerate().all(|(i, &o)| o == op.apply(a[i], b[i])), "{op:?}");
                binary_scalar(op, &a, 1.7, &mut out).unwrap();
                assert!(out.iter().enumerate().all(|(i, &o)| o == op.apply(a[i], 1.7)), "{op:?} scalar");
            }
            let mut y = b.clone();
            axpy(2.0, &a, &mut y).unwrap();
            assert!(y.iter().enumerate().all(|(i, &v)| v == b[i] + 2.0 * a[i]));
        });
    }
}
