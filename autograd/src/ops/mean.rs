//! `y = (1/n) Σ_i x_i`, a scalar.
//!
//! ∂y/∂x_i = 1/n, so ∂L/∂x = g/n everywhere.

use super::{full, grad_for};
use crate::Var;
use tensor::ops::elementwise::sum_all;
use tensor::{Tensor, TensorError};

pub fn mean(x: &Var) -> Result<Var, TensorError> {
    let shape = x.shape();
    let n = shape.iter().product::<usize>().max(1) as f32;
    let value = Tensor::from_vec(vec![sum_all(&x.value_ref()).item()? / n], &[])?;
    Ok(Var::from_op(
        "mean",
        value,
        &[x],
        Box::new(move |g, needs| Ok(vec![grad_for(needs, 0, || full(&shape, g.item()? / n))?])),
    ))
}
