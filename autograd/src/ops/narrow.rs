//! `y = x[.., start..start+len, ..]` along one axis (a view).
//!
//! ∂L/∂x is `g` in the narrowed range and zero elsewhere.

use super::grad_for;
use crate::Var;
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
                // Zeros of x's shape, with g copied into the narrowed range:
                // for each index before `dim`, one run of len·inner elements.
                let inner: usize = shape[dim + 1..].iter().product();
                let (full, part) = (shape[dim] * inner, len * inner);
                let mut out = vec![0.0f32; shape.iter().product()];
                let g = g.to_f32_vec();
                if part > 0 {
                    for (o, gi) in out.chunks_exact_mut(full).zip(g.chunks_exact(part)) {
                        o[start * inner..start * inner + part].copy_from_slice(gi);
                    }
                }
                Tensor::from_vec(out, &shape)
            })?])
        }),
    ))
}
