//! `y = x[.., start..start+len, ..]` along one axis (a view).
//!
//! ∂L/∂x is `g` in the narrowed range and zero elsewhere.

use super::grad_for;
use crate::Var;
use tensor::ops::gather::concat;
use tensor::{Tensor, TensorError};

pub fn narrow(x: &Var, dim: usize, start: usize, len: usize) -> Result<Var, TensorError> {
    let value = x.value_ref().narrow(dim, start, len)?;
    let shape = x.shape();
    Ok(Var::from_op(
        "narrow",
        value,
        &[x],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let zeros = |n: usize| {
                    let mut s = shape.clone();
                    s[dim] = n;
                    Tensor::zeros(&s)
                };
                let (before, after) = (zeros(start), zeros(shape[dim] - start - len));
                concat(&[&before, g, &after], dim)
            })?])
        }),
    ))
}
