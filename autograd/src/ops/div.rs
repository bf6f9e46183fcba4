//! `y = a / b`, with broadcasting.
//!
//! ∂L/∂a = g / b,  ∂L/∂b = −g ⊙ a / b² = −g ⊙ y / b  (each summed back to its input's shape).

use super::grad_for;
use crate::Var;
use kernels::nn::elementwise::BinaryOp::{Div, Mul};
use tensor::ops::elementwise::{binary, scale, sum_to_shape};
use tensor::TensorError;

pub fn div(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let (sa, bv) = (a.shape(), b.value());
    let value = binary(Div, &a.value_ref(), &bv)?;
    let y = value.clone();
    Ok(Var::from_op(
        "div",
        value,
        &[a, b],
        Box::new(move |g, needs| {
            let g_over_b = binary(Div, g, &bv)?;
            Ok(vec![
                grad_for(needs, 0, || sum_to_shape(&g_over_b, &sa))?,
                grad_for(needs, 1, || sum_to_shape(&scale(&binary(Mul, &g_over_b, &y)?, -1.0)?, bv.shape()))?,
            ])
        }),
    ))
}
