//! Rotary position embedding in Llama's half-rotation layout, forward and backward.
//!
//! A head vector of `D` elements is seen as `D/2` pairs `(x_i, x_{i+D/2})`
//! (the two halves, not adjacent elements: that is the "rotate_half" layout
//! of transformers' Llama). Pair `i` at position `t` is rotated by
//! `θ = t · inv_freq_i`:
//! ```text
//! y_i       = x_i · cos θ − x_{i+D/2} · sin θ
//! y_{i+D/2} = x_{i+D/2} · cos θ + x_i · sin θ
//! ```
//! A rotation's inverse is its transpose, the rotation by −θ, so the
//! backward is the same loop with `sin` negated:
//! ```text
//! ∂L/∂x_i       =  g_i · cos θ + g_{i+D/2} · sin θ
//! ∂L/∂x_{i+D/2} =  g_{i+D/2} · cos θ − g_i · sin θ
//! ```
//! The caller supplies `cos` and `sin` tables of shape `(T, D/2)` for the
//! positions it needs (the model owns `rope_theta` and Llama-3 scaling).
//! Activations are `(B, T, H, D)`, the layout a projection's output has
//! before heads are split, so no transpose is needed around the rotation.

use super::vectorized;
use crate::KernelError;
use rayon::prelude::*;

/// The sizes of a rotary call: `x` is `(batch, seq, heads, head_dim)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

vectorized! {
    /// Rotates the `heads` vectors of one position; `sign` is +1 forward, −1 backward.
    fn rotate_position(x: &[f32], cos: &[f32], sin: &[f32], sign: f32, y: &mut [f32]) {
        let half = cos.len();
        for (xv, yv) in x.chunks_exact(2 * half).zip(y.chunks_exact_mut(2 * half)) {
            let (x1, x2) = xv.split_at(half);
            let (y1, y2) = yv.split_at_mut(half);
            for i in 0..half.min(sin.len()) {
                let s = sign * sin[i];
                y1[i] = x1[i] * cos[i] - x2[i] * s;
                y2[i] = x2[i] * cos[i] + x1[i] * s;
            }
        }
    }
}

fn run(shape: RopeShape, x: &[f32], cos: &[f32], sin: &[f32], sign: f32, y: &mut [f32]) -> Result<(), KernelError> {
    let RopeShape { batch, seq, heads, head_dim } = shape;
    let half = head_dim / 2;
    let n = [batch, seq, heads, head_dim].iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    if head_dim % 2 != 0
        || n != Some(x.len())
        || y.len() != x.len()
        || cos.len() != seq * half
        || sin.len() != cos.len()
    {
        return Err(KernelError::bad(
            "rope",
            format!(
                "{shape:?} (head_dim must be even) does not fit x of {}, y of {}, cos of {}, sin of {} (want seq*head_dim/2)",
                x.len(),
                y.len(),
                cos.len(),
                sin.len()
            ),
        ));
    }
    let row = heads * head_dim; // one position: all heads
    if row == 0 {
        return Ok(());
    }
    y.par_chunks_mut(row).zip(x.par_chunks(row)).enumerate().with_min_len(16).for_each(|(r, (y, x))| {
        let t = r % seq;
        rotate_position(x, &cos[t * half..(t + 1) * half], &sin[t * half..(t + 1) * half], sign, y)
    });
    Ok(())
}

/// `y = rope(x)` with per-position tables `cos`, `sin` of shape `(seq, head_dim/2)`.
pub fn rope(shape: RopeShape, x: &[f32], cos: &[f32], sin: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
    run(shape, x, cos, sin, 1.0, y)
}

/// `dx = ropeᵀ(dy)`: the rotation by −θ.
pub fn rope_backward(
    shape: RopeShape,
    dy: &[f32],
    cos: &[f32],
    sin: &[f32],
    dx: &mut [f32],
) -> Result<(), KernelError> {
    run(shape, dy, cos, sin, -1.0, dx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_preserves_norm_and_inverts() {
        let shape = RopeShape { batch: 2, seq: 3, heads: 2, head_dim: 8 };
        let n = 2 * 3 * 2 * 8;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut cos, mut sin) = (vec![0.0; 12], vec![0.0; 12]);
        for t in 0..3 {
            for i in 0..4 {
                let theta = t as f32 / 10000f32.powf(2.0 * i as f32 / 8.0);
                cos[t * 4 + i] = theta.cos();
                sin[t * 4 + i] = theta.sin();
            }
        }
        let (mut y, mut back) = (vec![0.0; n], vec![0.0; n]);
        rope(shape, &x, &cos, &sin, &mut y).unwrap();
        rope_backward(shape, &y, &cos, &sin, &mut back).unwrap();
        for (a, b) in x.iter().zip(&back) {
            assert!((a - b).abs() < 1e-6);
        }
        // Position 0 is the identity; position 1, pair 0 rotates by 1 radian.
        assert_eq!(&y[..16], &x[..16]);
        let (x1, x2) = (x[16], x[20]);
        assert!((y[16] - (x1 * 1f32.cos() - x2 * 1f32.sin())).abs() < 1e-6);
        assert!((y[20] - (x2 * 1f32.cos() + x1 * 1f32.sin())).abs() < 1e-6);
        assert!(rope(shape, &x, &cos[1..], &sin, &mut y).is_err());
    }
}
