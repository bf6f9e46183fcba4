//! `y = x` viewed with another shape of the same size.
//!
//! Reshaping moves no values, so ∂L/∂x is `g` reshaped back.

use super::grad_for;
use crate::Var;
use tensor::TensorError;

pub fn reshape(x: &Var, shape: &[usize]) -> Result<Var, TensorError> {
    let value = x.value_ref().reshape(shape)?;
    let original = x.shape();
    Ok(Var::from_op(
        "reshape",
        value,
        &[x],
        Box::new(move |g, needs| Ok(vec![grad_for(needs, 0, || g.reshape(&original))?])),
    ))
}
