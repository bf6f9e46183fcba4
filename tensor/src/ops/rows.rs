//! Row operations over the last axis: softmax, LayerNorm, RMSNorm, and the
//! rotary embedding of `(B, T, H, D)` activations.

use crate::{Tensor, TensorError};
use kernels::nn::norm::{norm_forward, NormKind, NormStats};
use kernels::nn::rope::{rope as rope_kernel, RopeShape};
use kernels::nn::softmax::softmax as softmax_kernel;

fn last(x: &Tensor, op: &'static str) -> Result<usize, TensorError> {
    match x.shape().last() {
        Some(&w) if w > 0 => Ok(w),
        _ => Err(TensorError::shape(op, format!("needs a non-empty last axis, got {:?}", x.shape()))),
    }
}

/// Softmax over the last axis.
pub fn softmax(x: &Tensor) -> Result<Tensor, TensorError> {
    let width = last(x, "softmax")?;
    let xd = x.f32_data();
    let mut y = vec![0.0; xd.len()];
    softmax_kernel(&xd, width, &mut y)?;
    Tensor::from_vec(y, x.shape())
}

/// LayerNorm (`bias` given) or RMSNorm (`bias` = `None`) over the last axis,
/// with `weight` (and `bias`) of the last axis' size. Returns the output and
/// the per-row statistics the backward needs.
pub fn norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f32) -> Result<(Tensor, NormStats), TensorError> {
    let width = last(x, "norm")?;
    let op = if bias.is_some() { "layer_norm" } else { "rms_norm" };
    let fits = |t: &Tensor| t.shape() == [width];
    if !fits(weight) || bias.is_some_and(|b| !fits(b)) {
        return Err(TensorError::shape(op, format!("weight/bias must be [{width}] for input {:?}", x.shape())));
    }
    let kind = if bias.is_some() { NormKind::Layer } else { NormKind::Rms };
    let (xd, wd) = (x.f32_data(), weight.f32_data());
    let bd = bias.map(|b| b.f32_data());
    let mut y = vec![0.0; xd.len()];
    let stats = norm_forward(kind, &xd, &wd, bd.as_deref(), width, eps, &mut y)?;
    Ok((Tensor::from_vec(y, x.shape())?, stats))
}

/// `x` of shape `(B, T, H, D)` rotated per position with `cos`, `sin` of shape `(T, D/2)`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, TensorError> {
    let shape = rope_shape(x, cos, sin)?;
    let (xd, c, s) = (x.f32_data(), cos.f32_data(), sin.f32_data());
    let mut y = vec![0.0; xd.len()];
    rope_kernel(shape, &xd, &c, &s, &mut y)?;
    Tensor::from_vec(y, x.shape())
}

/// The kernel's view of a rotary call, after checking the shapes.
pub fn rope_shape(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<RopeShape, TensorError> {
    match (x.shape(), cos.shape()) {
        (&[batch, seq, heads, head_dim], &[t, half])
            if t == seq && 2 * half == head_dim && sin.shape() == cos.shape() =>
        {
            Ok(RopeShape { batch, seq, heads, head_dim })
        }
        _ => Err(TensorError::shape(
            "rope",
            format!(
                "x must be (B, T, H, D) and cos/sin (T, D/2); got x {:?}, cos {:?}, sin {:?}",
                x.shape(),
                cos.shape(),
                sin.shape()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        let x = Tensor::from_vec((0..12).map(|i| i as f32).collect(), &[3, 4]).unwrap();
        let y = softmax(&x).unwrap().to_f32_vec();
        assert!((y[..4].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(norm(&x, &Tensor::zeros(&[3]), None, 1e-5).is_err());
        let (n, stats) = norm(&x, &Tensor::from_vec(vec![1.0; 4], &[4]).unwrap(), None, 0.0).unwrap();
        assert_eq!(stats.rstd.len(), 3);
        let row = &n.to_f32_vec()[4..8];
        assert!((row.iter().map(|v| v * v).sum::<f32>() / 4.0 - 1.0).abs() < 1e-5);
        let four = x.reshape(&[1, 3, 1, 4]).unwrap();
        assert!(rope(&four, &Tensor::zeros(&[3, 2]), &Tensor::zeros(&[3, 2])).is_ok());
        assert!(rope(&four, &Tensor::zeros(&[2, 2]), &Tensor::zeros(&[2, 2])).is_err());
    }
}
