//! `y = silu(x) = x·σ(x)`.
//!
//! ∂L/∂x = g · σ(x)·(1 + x·(1 − σ(x))).

use super::grad_for;
use crate::Var;
use kernels::nn::activation::silu_backward;
use tensor::ops::elementwise::{activate, Activation};
use tensor::{Tensor, TensorError};

pub fn silu(x: &Var) -> Result<Var, TensorError> {
    let xv = x.value();
    let value = activate(Activation::Silu, &xv)?;
    Ok(Var::from_op(
        "silu",
        value,
        &[x],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let xd = xv.f32_data();
                let mut dx = vec![0.0; xd.len()];
                silu_backward(&xd, &g.f32_data(), &mut dx)?;
                Tensor::from_vec(dx, xv.shape())
            })?])
        }),
    ))
}
