//! LayerNorm over the last axis: `y = (x − μ)/√(σ² + ε) · w + b`.
//!
//! With `x̂ = (x − μ)·σ⁻¹`, `g' = g ⊙ w` and C the row width:
//! ```text
//! ∂L/∂x = σ⁻¹ · (g' − mean(g') − x̂ · mean(g' ⊙ x̂))
//! ∂L/∂w = Σ_rows g ⊙ x̂,   ∂L/∂b = Σ_rows g
//! ```
//! The forward keeps only μ and σ⁻¹ per row (see `kernels::nn::norm`).

use crate::Var;
use kernels::nn::norm::{norm_backward, NormKind};
use tensor::ops::rows::norm;
use tensor::{Tensor, TensorError};

pub fn layer_norm(x: &Var, weight: &Var, bias: &Var, eps: f32) -> Result<Var, TensorError> {
    let (xv, wv) = (x.value(), weight.value());
    let (value, stats) = norm(&xv, &wv, Some(&bias.value_ref()), eps)?;
    Ok(Var::from_op(
        "layer_norm",
        value,
        &[x, weight, bias],
        Box::new(move |g, needs| {
            let width = wv.numel();
            let (xd, wd) = (xv.f32_data(), wv.f32_data());
            let (mut dx, mut dw, mut db) = (vec![0.0; xd.len()], vec![0.0; width], vec![0.0; width]);
            norm_backward(NormKind::Layer, &xd, &wd, &g.f32_data(), &stats, width, &mut dx, &mut dw, Some(&mut db))?;
            let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s).map(Some);
            Ok(vec![
                if needs[0] { t(dx, xv.shape())? } else { None },
                if needs[1] { t(dw, &[width])? } else { None },
                if needs[2] { t(db, &[width])? } else { None },
            ])
        }),
    ))
}
