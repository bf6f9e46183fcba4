//! `y = Σ_i x_i`, a scalar.
//!
//! ∂y/∂x_i = 1, so ∂L/∂x = g broadcast to x's shape.

use super::{full, grad_for};
use crate::Var;
use tensor::ops::elementwise::sum_all;
use tensor::TensorError;

pub fn sum(x: &Var) -> Result<Var, TensorError> {
    let shape = x.shape();
    let value = sum_all(&x.value_ref());
    Ok(Var::from_op(
        "sum",
        value,
        &[x],
        Box::new(move |g, needs| Ok(vec![grad_for(needs, 0, || full(&shape, g.item()?))?])),
    ))
}
