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
        Box::new(move |g, needs| swiglu_grads(&gv, &uv, g, needs).map(Vec::from)),
    ))
}

/// `[∂L/∂gate, ∂L/∂up]` from `g = ∂L/∂y`, each only if `needs` says so
/// (also `swiglu_linear`'s backward, with `g = ∂L/∂h`).
pub(crate) fn swiglu_grads(
    gate: &Tensor,
    up: &Tensor,
    g: &Tensor,
    needs: &[bool],
) -> Result<[Option<Tensor>; 2], TensorError> {
    let (gd, ud) = (gate.f32_data(), up.f32_data());
    let (mut dg, mut du) = (vec![0.0; gd.len()], vec![0.0; gd.len()]);
    swiglu_backward(&gd, &ud, &g.f32_data(), &mut dg, &mut du)?;
    Ok([
        if needs[0] { Some(Tensor::from_vec(dg, gate.shape())?) } else { None },
        if needs[1] { Some(Tensor::from_vec(du, up.shape())?) } else { None },
    ])
}
