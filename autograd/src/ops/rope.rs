//! Rotary position embedding of `x` `(B, T, H, D)` with tables `cos`, `sin` `(T, D/2)`.
//!
//! Each pair `(x_i, x_{i+D/2})` is rotated by its angle θ; a rotation's
//! Jacobian is the rotation itself, so ∂L/∂x is `g` rotated by −θ.

use super::grad_for;
use crate::Var;
use kernels::nn::rope::rope_backward;
use tensor::ops::rows::{rope as rope_forward, rope_shape};
use tensor::{Tensor, TensorError};

pub fn rope(x: &Var, cos: &Tensor, sin: &Tensor) -> Result<Var, TensorError> {
    let value = rope_forward(&x.value_ref(), cos, sin)?;
    let shape = rope_shape(&value, cos, sin)?;
    let (cos, sin) = (cos.clone(), sin.clone());
    Ok(Var::from_op(
        "rope",
        value,
        &[x],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let mut dx = vec![0.0; g.numel()];
                rope_backward(shape, &g.f32_data(), &cos.f32_data(), &sin.f32_data(), &mut dx)?;
                Tensor::from_vec(dx, g.shape())
            })?])
        }),
    ))
}
