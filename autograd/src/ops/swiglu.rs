//! `y = silu(gate) ⊙ up`, the gated activation of Llama's MLP.
//!
//! ∂L/∂gate = g ⊙ up ⊙ silu'(gate),   ∂L/∂up = g ⊙ silu(gate).

use crate::Var;
use kernels::nn::activation::swiglu_backward;
use tensor::ops::elementwise::swiglu as swiglu_forward;
use tensor::{Tensor, TensorError};

pub fn swiglu(gate: &Var, up: &Var) -> Result<Var, TensorError> {
    let (gv, uv) = (gate.value(), up.value());
    let value = swiglu_forward(&gv, &uv)?;
    Ok(Var::from_op(
        "swiglu",
        value,
        &[gate, up],
        Box::new(move |g, needs| {
            let (gd, ud) = (gv.f32_data(), uv.f32_data());
            let (mut dg, mut du) = (vec![0.0; gd.len()], vec![0.0; gd.len()]);
            swiglu_backward(&gd, &ud, &g.f32_data(), &mut dg, &mut du)?;
            Ok(vec![
                if needs[0] { Some(Tensor::from_vec(dg, gv.shape())?) } else { None },
                if needs[1] { Some(Tensor::from_vec(du, uv.shape())?) } else { None },
            ])
        }),
    ))
}
