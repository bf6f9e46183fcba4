//! The AdamW update of one parameter tensor, as `torch.optim.AdamW` computes it.
//!
//! With step `t` (from 1), learning rate `η`, decay `λ`:
//! ```text
//! p ← p · (1 − η·λ)                                  decoupled weight decay, applied first
//! m ← m + (1 − β₁)·(g − m)                           (torch's lerp form of β₁·m + (1 − β₁)·g)
//! v ← β₂·v + (1 − β₂)·g²
//! p ← p − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//! The bias corrections are scalars computed once per step by the caller
//! ([`AdamWStep::new`]) in f64, as Python floats are.

use super::vectorized;
use crate::KernelError;
use rayon::prelude::*;

/// The scalars of one AdamW step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// `η / (1 − β₁ᵗ)`.
    pub step_size: f32,
    /// `√(1 − β₂ᵗ)`.
    pub bias_correction2_sqrt: f32,
}

impl AdamWStep {
    /// The scalars for step `t` (1-based).
    pub fn new(lr: f32, (beta1, beta2): (f32, f32), eps: f32, weight_decay: f32, t: u64) -> AdamWStep {
        let bc1 = 1.0 - (beta1 as f64).powi(t as i32);
        let bc2 = 1.0 - (beta2 as f64).powi(t as i32);
        AdamWStep {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            step_size: (lr as f64 / bc1) as f32,
            bias_correction2_sqrt: bc2.sqrt() as f32,
        }
    }
}

vectorized! {
    fn update(s: AdamWStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let decay = 1.0 - s.lr * s.weight_decay;
        let n = p.len().min(g.len()).min(m.len()).min(v.len());
        for i in 0..n {
            p[i] *= decay;
            m[i] += (1.0 - s.beta1) * (g[i] - m[i]);
            v[i] = v[i] * s.beta2 + (1.0 - s.beta2) * g[i] * g[i];
            let denom = v[i].sqrt() / s.bias_correction2_sqrt + s.eps;
            p[i] -= s.step_size * (m[i] / denom);
        }
    }
}

/// Applies one AdamW step to `param` in place, updating the moments `m` and `v`.
pub fn adamw(s: AdamWStep, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) -> Result<(), KernelError> {
    let n = param.len();
    if grad.len() != n || m.len() != n || v.len() != n {
        return Err(KernelError::bad(
            "adamw",
            format!("param {n}, grad {}, m {}, v {} elements differ", grad.len(), m.len(), v.len()),
        ));
    }
    const CHUNK: usize = 1 << 14;
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| update(s, p, g, m, v));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_weight_by_about_lr() {
        // At t = 1 the update is lr · g/(|g| + eps·...) ≈ lr · sign(g).
        let s = AdamWStep::new(0.1, (0.9, 0.999), 1e-8, 0.0, 1);
        let (mut p, g) = (vec![1.0f32, 1.0, 1.0], vec![0.5f32, -2.0, 1e-3]);
        let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
        adamw(s, &mut p, &g, &mut m, &mut v).unwrap();
        for (x, want) in p.iter().zip([0.9f32, 1.1, 0.9]) {
            assert!((x - want).abs() < 1e-4, "{x} vs {want}");
        }
        // Decay alone shrinks a weight with zero gradient by lr·λ.
        let s = AdamWStep::new(0.1, (0.9, 0.999), 1e-8, 0.5, 1);
        let mut p = vec![2.0f32];
        adamw(s, &mut p, &[0.0], &mut [0.0], &mut [0.0]).unwrap();
        assert!((p[0] - 2.0 * 0.95).abs() < 1e-6);
        assert!(adamw(s, &mut p, &[0.0, 1.0], &mut [0.0], &mut [0.0]).is_err());
    }
}
