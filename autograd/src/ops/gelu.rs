//! `y = gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, GPT-2's activation.
//!
//! ∂L/∂x = g · (½·(1 + tanh u) + ½·x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²)),
//! with u the tanh argument (see `kernels::nn::activation`).

use super::grad_for;
use crate::Var;
use kernels::nn::activation::gelu_backward;
use tensor::ops::elementwise::{activate, Activation};
use tensor::{Tensor, TensorError};

pub fn gelu(x: &Var) -> Result<Var, TensorError> {
    let xv = x.value();
    let value = activate(Activation::Gelu, &xv)?;
    Ok(Var::from_op(
        "gelu",
        value,
        &[x],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let xd = xv.f32_data();
                let mut dx = vec![0.0; xd.len()];
                gelu_backward(&xd, &g.f32_data(), &mut dx)?;
                Tensor::from_vec(dx, xv.shape())
            })?])
        }),
    ))
}
