//! Activations, forward and backward: GELU (tanh form), SiLU and SwiGLU.
//!
//! ```text
//! GELU   y = ½·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
//!        dy/dx = ½·(1 + tanh u) + ½·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²)
//! SiLU   y = x·σ(x)
//!        dy/dx = σ(x)·(1 + x·(1 − σ(x)))
//! SwiGLU y = silu(g)·u                       (Llama's MLP: gate g, up u)
//!        ∂y/∂g = u·silu'(g),   ∂y/∂u = silu(g)
//! ```
//! GELU's tanh form is what GPT-2 uses (`gelu_new` / `gelu_pytorch_tanh` in transformers).

use super::exp::{sigmoid, tanh};
use super::vectorized;
use crate::KernelError;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

fn same_len(op: &'static str, lens: &[usize]) -> Result<(), KernelError> {
    if lens.iter().any(|&l| l != lens[0]) {
        return Err(KernelError::bad(op, format!("slice lengths differ: {lens:?}")));
    }
    Ok(())
}

#[inline(always)]
fn gelu1(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)))
}

#[inline(always)]
fn gelu_grad1(x: f32) -> f32 {
    let t = tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x)
}

#[inline(always)]
fn silu_grad1(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

vectorized! {
    fn gelu_loop(x: &[f32], y: &mut [f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = gelu1(x));
    }
}

vectorized! {
    fn gelu_backward_loop(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        // An index loop, not `dx.iter_mut().zip(x.iter().zip(dy))`: with that
        // nested zip, rustc left `Zip::fold` as a call to a function compiled
        // without this one's target features, and the loop ran in SSE at a
        // quarter of the forward's speed (seen in the disassembly).
        for i in 0..dx.len().min(x.len()).min(dy.len()) {
            dx[i] = dy[i] * gelu_grad1(x[i]);
        }
    }
}

vectorized! {
    fn silu_loop(x: &[f32], y: &mut [f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * sigmoid(x));
    }
}

vectorized! {
    fn silu_backward_loop(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        dx.iter_mut().zip(x.iter().zip(dy)).for_each(|(dx, (&x, &dy))| *dx = dy * silu_grad1(x));
    }
}

vectorized! {
    fn swiglu_loop(g: &[f32], u: &[f32], y: &mut [f32]) {
        y.iter_mut().zip(g.iter().zip(u)).for_each(|(y, (&g, &u))| *y = g * sigmoid(g) * u);
    }
}

vectorized! {
    fn swiglu_backward_loop(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
        for i in 0..dy.len().min(g.len()).min(u.len()).min(dg.len()).min(du.len()) {
            let s = sigmoid(g[i]);
            du[i] = dy[i] * g[i] * s;
            dg[i] = dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
        }
    }
}

/// Splits equal-length slices into the same parallel chunks and runs `f` on each.
macro_rules! par_chunks {
    ($n:expr; $($s:ident),* ; $($m:ident),* => $f:expr) => {{
        use rayon::prelude::*;
        let chunk = if $n < super::PARALLEL_MIN { $n.max(1) } else { super::PARALLEL_MIN / 2 };
        ($($m.par_chunks_mut(chunk),)*).into_par_iter()
            .zip(($($s.par_chunks(chunk),)*).into_par_iter())
            .for_each(|(($($m,)*), ($($s,)*))| $f);
    }};
}

/// `y = gelu(x)`.
pub fn gelu(x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
    same_len("gelu", &[x.len(), y.len()])?;
    par_chunks!(x.len(); x; y => gelu_loop(x, y));
    Ok(())
}

/// `dx = dy · gelu'(x)`.
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<(), KernelError> {
    same_len("gelu_backward", &[x.len(), dy.len(), dx.len()])?;
    par_chunks!(x.len(); x, dy; dx => gelu_backward_loop(x, dy, dx));
    Ok(())
}

/// `y = silu(x) = x·σ(x)`.
pub fn silu(x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
    same_len("silu", &[x.len(), y.len()])?;
    par_chunks!(x.len(); x; y => silu_loop(x, y));
    Ok(())
}

/// `dx = dy · silu'(x)`.
pub fn silu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<(), KernelError> {
    same_len("silu_backward", &[x.len(), dy.len(), dx.len()])?;
    par_chunks!(x.len(); x, dy; dx => silu_backward_loop(x, dy, dx));
    Ok(())
}

/// `y = silu(g)·u`.
pub fn swiglu(g: &[f32], u: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
    same_len("swiglu", &[g.len(), u.len(), y.len()])?;
    par_chunks!(g.len(); g, u; y => swiglu_loop(g, u, y));
    Ok(())
}

/// `dg = dy·u·silu'(g)`, `du = dy·silu(g)`.
pub fn swiglu_backward(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) -> Result<(), KernelError> {
    same_len("swiglu_backward", &[g.len(), u.len(), dy.len(), dg.len(), du.len()])?;
    par_chunks!(g.len(); g, u, dy; dg, du => swiglu_backward_loop(g, u, dy, dg, du));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_ref(x: f64) -> f64 {
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
    }
    fn silu_ref(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    #[test]
    fn forward_matches_f64_and_backward_matches_differences() {
        let x: Vec<f32> = (0..2001).map(|i| (i as f32 - 1000.0) * 0.01).collect();
        let n = x.len();
        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        let ones = vec![1.0; n];
        let h = 1e-3;
        for (fwd, bwd, reference) in [
            (
                gelu as fn(&[f32], &mut [f32]) -> _,
                gelu_backward as fn(&[f32], &[f32], &mut [f32]) -> _,
                gelu_ref as fn(f64) -> f64,
            ),
            (silu, silu_backward, silu_ref),
        ] {
            fwd(&x, &mut y).unwrap();
            bwd(&x, &ones, &mut dx).unwrap();
            for i in 0..n {
                let xi = x[i] as f64;
                assert!((y[i] as f64 - reference(xi)).abs() < 1e-6 * (1.0 + xi.abs()), "x={xi}");
                let fd = (reference(xi + h) - reference(xi - h)) / (2.0 * h);
                assert!((dx[i] as f64 - fd).abs() < 1e-5, "x={xi}: {} vs {fd}", dx[i]);
            }
        }
        assert!(gelu(&x, &mut y[1..]).is_err());
    }

    #[test]
    fn swiglu_is_silu_times_up() {
        let g: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.1).collect();
        let u: Vec<f32> = (0..100).map(|i| (i as f32 * 0.7).sin()).collect();
        let dy: Vec<f32> = (0..100).map(|i| (i as f32 * 0.3).cos()).collect();
        let (mut y, mut s) = (vec![0.0; 100], vec![0.0; 100]);
        swiglu(&g, &u, &mut y).unwrap();
        silu(&g, &mut s).unwrap();
        let (mut dg, mut du, mut ds) = (vec![0.0; 100], vec![0.0; 100], vec![0.0; 100]);
        swiglu_backward(&g, &u, &dy, &mut dg, &mut du).unwrap();
        let dyu: Vec<f32> = dy.iter().zip(&u).map(|(a, b)| a * b).collect();
        silu_backward(&g, &dyu, &mut ds).unwrap();
        for i in 0..100 {
            assert!((y[i] - s[i] * u[i]).abs() < 1e-6);
            assert!((du[i] - dy[i] * s[i]).abs() < 1e-6);
            assert!((dg[i] - ds[i]).abs() < 1e-5);
        }
    }
}
