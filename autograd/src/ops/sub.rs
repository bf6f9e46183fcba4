//! `y = a − b`, with broadcasting.
//!
//! ∂y/∂a = 1, ∂y/∂b = −1 (each summed back to its input's shape).

use super::grad_for;
use crate::Var;
use kernels::nn::elementwise::BinaryOp;
use tensor::ops::elementwise::{binary, scale, sum_to_shape};
use tensor::TensorError;

pub fn sub(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let value = binary(BinaryOp::Sub, &a.value_ref(), &b.value_ref())?;
    let (sa, sb) = (a.shape(), b.shape());
    Ok(Var::from_op(
        "sub",
        value,
        &[a, b],
        Box::new(move |g, needs| {
            Ok(vec![
                grad_for(needs, 0, || sum_to_shape(g, &sa))?,
                grad_for(needs, 1, || sum_to_shape(&scale(g, -1.0)?, &sb))?,
            ])
        }),
    ))
}
