//! `y = softmax(x)` over the last axis.
//!
//! ∂L/∂x_i = y_i · (g_i − Σ_j g_j·y_j): the Jacobian `diag(y) − y yᵀ` applied to g.

use super::grad_for;
use crate::Var;
use kernels::nn::softmax::softmax_backward;
use tensor::ops::rows::softmax as softmax_forward;
use tensor::{Tensor, TensorError};

pub fn softmax(x: &Var) -> Result<Var, TensorError> {
    let value = softmax_forward(&x.value_ref())?;
    let y = value.clone();
    Ok(Var::from_op(
        "softmax",
        value,
        &[x],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let width = *y.shape().last().expect("softmax input has a last axis");
                let mut dx = vec![0.0; y.numel()];
                softmax_backward(&y.f32_data(), &g.f32_data(), width, &mut dx)?;
                Tensor::from_vec(dx, y.shape())
            })?])
        }),
    ))
}
