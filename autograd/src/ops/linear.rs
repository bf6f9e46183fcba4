//! `y = x · Wᵀ + b`, PyTorch's `Linear` with `W` stored `(out, in)`.
//!
//! With `x` flattened to `(N, in)` and `G = ∂L/∂y` as `(N, out)`:
//! ```text
//! ∂L/∂x = G · W        (N, out)·(out, in)
//! ∂L/∂W = Gᵀ · x       (out, N)·(N, in): the weight-gradient product, skipped for a frozen W
//! ∂L/∂b = Σ_rows G
//! ```
//! `W` may be a memory-mapped bf16/f16 tensor: the GEMM widens it while packing.

use super::{grad_for, saved};
use crate::Var;
use kernels::nn::elementwise::BinaryOp;
use tensor::ops::elementwise::{binary, sum_to_shape};
use tensor::{matmul, TensorError};

pub fn linear(x: &Var, w: &Var, b: Option<&Var>) -> Result<Var, TensorError> {
    let (xv, wv) = (x.value(), w.value());
    let shape = xv.shape().to_vec();
    let (&inputs, lead) =
        shape.split_last().ok_or_else(|| TensorError::Shape { op: "linear", detail: "x is a scalar".into() })?;
    let &[out, w_in] = wv.shape() else {
        return Err(TensorError::Shape {
            op: "linear",
            detail: format!("weight must be (out, in), got {:?}", wv.shape()),
        });
    };
    if w_in != inputs || b.is_some_and(|b| b.shape() != [out]) {
        return Err(TensorError::Shape {
            op: "linear",
            detail: format!("x {shape:?}, weight {:?}, bias {:?} do not fit", wv.shape(), b.map(|b| b.shape())),
        });
    }
    let rows: usize = lead.iter().product();
    let x2 = xv.reshape(&[rows, inputs])?;
    let mut y = matmul(&x2, &wv.transpose(0, 1)?)?; // (N, out)
    if let Some(b) = b {
        y = binary(BinaryOp::Add, &y, &b.value_ref())?;
    }
    let mut out_shape = lead.to_vec();
    out_shape.push(out);
    let value = y.reshape(&out_shape)?;
    let mut parents = vec![x, w];
    parents.extend(b);
    // x is kept only for the weight gradient: a frozen W keeps nothing of x.
    let saved_x = w.requires_grad().then_some(x2);
    Ok(Var::from_op(
        "linear",
        value,
        &parents,
        Box::new(move |g, needs| {
            let g2 = g.reshape(&[rows, out])?;
            let gx = grad_for(needs, 0, || matmul(&g2, &wv)?.reshape(&shape))?;
            let gw = grad_for(needs, 1, || matmul(&g2.transpose(0, 1)?, saved(&saved_x, "linear")?))?;
            let mut grads = vec![gx, gw];
            if needs.len() == 3 {
                grads.push(grad_for(needs, 2, || sum_to_shape(&g2, &[out]))?);
            }
            Ok(grads)
        }),
    ))
}
