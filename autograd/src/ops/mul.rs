//! `y = a ⊙ b`, with broadcasting.
//!
//! ∂L/∂a = g ⊙ b,  ∂L/∂b = g ⊙ a  (each summed back to its input's shape).

use super::grad_for;
use crate::Var;
use kernels::nn::elementwise::BinaryOp::Mul;
use tensor::ops::elementwise::{binary, sum_to_shape};
use tensor::TensorError;

pub fn mul(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let (av, bv) = (a.value(), b.value());
    let value = binary(Mul, &av, &bv)?;
    Ok(Var::from_op(
        "mul",
        value,
        &[a, b],
        Box::new(move |g, needs| {
            Ok(vec![
                grad_for(needs, 0, || sum_to_shape(&binary(Mul, g, &bv)?, av.shape()))?,
                grad_for(needs, 1, || sum_to_shape(&binary(Mul, g, &av)?, bv.shape()))?,
            ])
        }),
    ))
}
