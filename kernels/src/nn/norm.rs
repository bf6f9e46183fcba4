//! LayerNorm and RMSNorm over the last axis, forward and backward.
//!
//! ```text
//! LayerNorm  μ = mean(x),  σ⁻¹ = 1/√(mean((x−μ)²) + ε),  x̂ = (x−μ)·σ⁻¹,  y = x̂·w + b
//! RMSNorm               σ⁻¹ = 1/√(mean(x²) + ε),        x̂ = x·σ⁻¹,      y = x̂·w
//!
//! backward, with g = ∂L/∂y ⊙ w (the gradient reaching x̂) and C the row width:
//! LayerNorm  ∂L/∂x = σ⁻¹ · (g − mean(g) − x̂ · mean(g ⊙ x̂))
//! RMSNorm    ∂L/∂x = σ⁻¹ · (g − x̂ · mean(g ⊙ x̂))
//!            ∂L/∂w = Σ_rows ∂L/∂y ⊙ x̂,   ∂L/∂b = Σ_rows ∂L/∂y
//! ```
//! The forward saves μ and σ⁻¹ per row (two floats), not x̂: backward rebuilds x̂.

use super::{reduce, vectorized, ROWS_PER_CHUNK};
use crate::KernelError;
use rayon::prelude::*;

/// What the forward keeps for the backward: per row, the mean (0 for RMSNorm) and 1/σ.
#[derive(Clone, Debug, Default)]
pub struct NormStats {
    pub mean: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// LayerNorm (subtracts the mean, has a bias) or RMSNorm (neither).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    Layer,
    Rms,
}

fn check(op: &'static str, width: usize, x: usize, w: usize, others: &[usize]) -> Result<usize, KernelError> {
    if width == 0 || !x.is_multiple_of(width) || w != width || others.iter().any(|&l| l != x) {
        return Err(KernelError::bad(
            op,
            format!("x of {x} elements, weight of {w}, width {width}, others {others:?} do not fit"),
        ));
    }
    Ok(x / width)
}

vectorized! {
    fn norm_row(kind: NormKind, eps: f32, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) -> (f32, f32) {
        let n = x.len() as f32;
        let mean = if kind == NormKind::Layer { reduce::sum(x) / n } else { 0.0 };
        let var = reduce::sum_map(x, |v| (v - mean) * (v - mean)) / n;
        let rstd = 1.0 / (var + eps).sqrt();
        match b {
            Some(b) => {
                for i in 0..y.len().min(x.len()).min(w.len()).min(b.len()) {
                    y[i] = (x[i] - mean) * rstd * w[i] + b[i];
                }
            }
            None => {
                for i in 0..y.len().min(x.len()).min(w.len()) {
                    y[i] = (x[i] - mean) * rstd * w[i];
                }
            }
        }
        (mean, rstd)
    }
}

vectorized! {
    /// One row's dx, and its contribution to dw and db (added in).
    #[allow(clippy::too_many_arguments)]
    fn norm_backward_row(kind: NormKind, x: &[f32], w: &[f32], dy: &[f32], mean: f32, rstd: f32,
                         dx: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
        let n = x.len() as f32;
        // mean(g), g = dy ⊙ w (LayerNorm only: RMSNorm does not centre).
        let g_mean = if kind == NormKind::Layer { reduce::sum_zip(dy, w, |d, w| d * w) / n } else { 0.0 };
        // mean(g ⊙ x̂) = Σ dy·w·(x−μ) · σ⁻¹ / C
        let gxh_mean = sum3(x, dy, w, mean) * rstd / n;
        for i in 0..dx.len().min(x.len()).min(w.len()).min(dy.len()) {
            let xh = (x[i] - mean) * rstd;
            dx[i] = rstd * (dy[i] * w[i] - g_mean - xh * gxh_mean);
        }
        for i in 0..dw.len().min(x.len()).min(dy.len()) {
            dw[i] += dy[i] * (x[i] - mean) * rstd;
        }
        if kind == NormKind::Layer {
            for i in 0..db.len().min(dy.len()) {
                db[i] += dy[i];
            }
        }
    }
}

/// `Σ (x−μ)·dy·w`, in reduce's fixed order.
#[inline(always)]
fn sum3(x: &[f32], dy: &[f32], w: &[f32], mean: f32) -> f32 {
    reduce::sum_zip3(x, dy, w, |x, d, w| (x - mean) * d * w)
}

/// Normalises each row of `width` elements of `x` into `y`; `b` is LayerNorm's bias
/// (`None` for RMSNorm). Returns the per-row statistics the backward needs.
pub fn norm_forward(
    kind: NormKind,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    width: usize,
    eps: f32,
    y: &mut [f32],
) -> Result<NormStats, KernelError> {
    let rows = check("norm_forward", width, x.len(), w.len(), &[y.len()])?;
    if b.is_some_and(|b| b.len() != width) || (kind == NormKind::Layer) != b.is_some() {
        return Err(KernelError::bad("norm_forward", "LayerNorm needs a bias of the row width; RMSNorm has none"));
    }
    let mut stats = NormStats { mean: vec![0.0; rows], rstd: vec![0.0; rows] };
    y.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .zip(stats.mean.par_iter_mut().zip(stats.rstd.par_iter_mut()))
        .with_min_len(ROWS_PER_CHUNK)
        .for_each(|((y, x), (m, r))| (*m, *r) = norm_row(kind, eps, x, w, b, y));
    Ok(stats)
}

/// Gradients of a norm: `dx` is written; `dw` and `db` (LayerNorm only) are
/// added to, so several calls accumulate. Rows are processed in chunks of
/// fixed size whose weight-gradient partials are summed in chunk order.
#[allow(clippy::too_many_arguments)]
pub fn norm_backward(
    kind: NormKind,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    stats: &NormStats,
    width: usize,
    dx: &mut [f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> Result<(), KernelError> {
    let rows = check("norm_backward", width, x.len(), w.len(), &[dy.len(), dx.len()])?;
    if stats.mean.len() != rows || stats.rstd.len() != rows || dw.len() != width {
        return Err(KernelError::bad("norm_backward", "statistics or weight gradient of the wrong size"));
    }
    let chunk = ROWS_PER_CHUNK * width;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(chunk)
        .enumerate()
        .map(|(c, dxs)| {
            let (mut pw, mut pb) = (vec![0.0f32; width], vec![0.0f32; width]);
            for (r, dx) in dxs.chunks_exact_mut(width).enumerate() {
                let row = c * ROWS_PER_CHUNK + r;
                let s = row * width..(row + 1) * width;
                let (m, rs) = (stats.mean[row], stats.rstd[row]);
                norm_backward_row(kind, &x[s.clone()], w, &dy[s], m, rs, dx, &mut pw, &mut pb);
            }
            (pw, pb)
        })
        .collect();
    let mut db = db;
    for (pw, pb) in &partials {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        if let Some(db) = db.as_deref_mut() {
            db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_matches_f64_definition() {
        let width = 19;
        let x: Vec<f32> = (0..width * 4).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.3 + 2.0).collect();
        let w: Vec<f32> = (0..width).map(|i| 0.5 + i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..width).map(|i| i as f32 * -0.05).collect();
        for kind in [NormKind::Layer, NormKind::Rms] {
            let mut y = vec![0.0; x.len()];
            let bias = (kind == NormKind::Layer).then_some(&b[..]);
            norm_forward(kind, &x, &w, bias, width, 1e-5, &mut y).unwrap();
            for (xr, yr) in x.chunks(width).zip(y.chunks(width)) {
                let n = width as f64;
                let mu = if kind == NormKind::Layer { xr.iter().map(|&v| v as f64).sum::<f64>() / n } else { 0.0 };
                let var = xr.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n;
                for i in 0..width {
                    let want = (xr[i] as f64 - mu) / (var + 1e-5).sqrt() * w[i] as f64
                        + if kind == NormKind::Layer { b[i] as f64 } else { 0.0 };
                    assert!((yr[i] as f64 - want).abs() < 1e-5, "{kind:?}");
                }
            }
        }
        let mut y = vec![0.0; x.len()];
        assert!(norm_forward(NormKind::Rms, &x, &w, Some(&b), width, 1e-5, &mut y).is_err());
        assert!(norm_forward(NormKind::Rms, &x, &w[1..], None, width, 1e-5, &mut y).is_err());
    }
}
