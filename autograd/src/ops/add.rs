//! `y = a + b`, with broadcasting.
//!
//! ∂y/∂a = ∂y/∂b = 1, so each input gets `g` summed over the axes along
//! which that input was broadcast (`sum_to_shape`).

use super::grad_for;
use crate::Var;
use kernels::nn::elementwise::BinaryOp;
use tensor::ops::elementwise::{binary, sum_to_shape};
use tensor::TensorError;

pub fn add(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let value = binary(BinaryOp::Add, &a.value_ref(), &b.value_ref())?;
    let (sa, sb) = (a.shape(), b.shape());
    Ok(Var::from_op(
        "add",
        value,
        &[a, b],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || sum_to_shape(g, &sa))?, grad_for(needs, 1, || sum_to_shape(g, &sb))?])
        }),
    ))
}
