//! Inverted dropout: `y = x ⊙ m / (1 − p)`, `m_i ~ Bernoulli(1 − p)` from `seed`.
//!
//! ∂L/∂x = g ⊙ m / (1 − p): the same mask, kept for the backward.
//! The mask depends only on `seed` and the element index, so a step is
//! reproducible whatever the thread count.

use super::grad_for;
use crate::gradcheck::pseudo_random;
use crate::Var;
use kernels::nn::elementwise::BinaryOp::Mul;
use tensor::ops::elementwise::binary;
use tensor::{Tensor, TensorError};

pub fn dropout(x: &Var, p: f32, seed: u64) -> Result<Var, TensorError> {
    let mask = dropout_mask(&x.shape(), p, seed)?;
    let value = binary(Mul, &x.value_ref(), &mask)?;
    Ok(Var::from_op(
        "dropout",
        value,
        &[x],
        Box::new(move |g, needs| Ok(vec![grad_for(needs, 0, || binary(Mul, g, &mask))?])),
    ))
}

/// The mask `m / (1 − p)` of `shape` that [`dropout`] multiplies by: entries
/// are `1/(1 − p)` (kept) or 0 (dropped), from `seed` and the index alone.
pub fn dropout_mask(shape: &[usize], p: f32, seed: u64) -> Result<Tensor, TensorError> {
    if !(0.0..1.0).contains(&p) {
        return Err(TensorError::shape("dropout", format!("probability {p} is not in [0, 1)")));
    }
    let keep = 1.0 / (1.0 - p);
    // pseudo_random is uniform in [−1, 1): keep an element when (u + 1)/2 ≥ p.
    let mask: Vec<f32> = pseudo_random(shape.iter().product(), seed)
        .into_iter()
        .map(|u| if (u + 1.0) * 0.5 >= p { keep } else { 0.0 })
        .collect();
    Tensor::from_vec(mask, shape)
}
