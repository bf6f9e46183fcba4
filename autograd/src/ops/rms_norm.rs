//! RMSNorm over the last axis: `y = x / √(mean(x²) + ε) · w` (Llama).
//!
//! With `x̂ = x·σ⁻¹` and `g' = g ⊙ w`:
//! ```text
//! ∂L/∂x = σ⁻¹ · (g' − x̂ · mean(g' ⊙ x̂))
//! ∂L/∂w = Σ_rows g ⊙ x̂
//! ```

use crate::Var;
use kernels::nn::norm::{norm_backward, NormKind};
use tensor::ops::rows::norm;
use tensor::{Tensor, TensorError};

pub fn rms_norm(x: &Var, weight: &Var, eps: f32) -> Result<Var, TensorError> {
    let (xv, wv) = (x.value(), weight.value());
    let (value, stats) = norm(&xv, &wv, None, eps)?;
    Ok(Var::from_op(
        "rms_norm",
        value,
        &[x, weight],
        Box::new(move |g, needs| {
            let width = wv.numel();
            let (xd, wd) = (xv.f32_data(), wv.f32_data());
            let (mut dx, mut dw) = (vec![0.0; xd.len()], vec![0.0; width]);
            norm_backward(NormKind::Rms, &xd, &wd, &g.f32_data(), &stats, width, &mut dx, &mut dw, None)?;
            Ok(vec![
                if needs[0] { Some(Tensor::from_vec(dx, xv.shape())?) } else { None },
                if needs[1] { Some(Tensor::from_vec(dw, &[width])?) } else { None },
            ])
        }),
    ))
}
