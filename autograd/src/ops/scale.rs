//! `y = s · x` for a constant `s`.
//!
//! ∂L/∂x = s · g.

use super::grad_for;
use crate::Var;
use tensor::ops::elementwise::scale as scale_tensor;
use tensor::TensorError;

pub fn scale(x: &Var, s: f32) -> Result<Var, TensorError> {
    let value = scale_tensor(&x.value_ref(), s)?;
    Ok(Var::from_op(
        "scale",
        value,
        &[x],
        Box::new(move |g, needs| Ok(vec![grad_for(needs, 0, || scale_tensor(g, s))?])),
    ))
}
