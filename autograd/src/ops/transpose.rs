//! `y = x` with its axes reordered (a view: no copy).
//!
//! `y[i_order[0], ..] = x[i_0, ..]`: the gradient is `g` permuted by the
//! inverse order, `inverse[order[k]] = k`.

use super::grad_for;
use crate::Var;
use tensor::TensorError;

/// Axis `k` of the result is axis `order[k]` of `x`.
pub fn permute(x: &Var, order: &[usize]) -> Result<Var, TensorError> {
    let value = x.value_ref().permute(order)?;
    let mut inverse = vec![0; order.len()];
    for (k, &o) in order.iter().enumerate() {
        inverse[o] = k;
    }
    Ok(Var::from_op(
        "permute",
        value,
        &[x],
        Box::new(move |g, needs| Ok(vec![grad_for(needs, 0, || g.permute(&inverse))?])),
    ))
}

/// Swaps axes `a` and `b`.
pub fn transpose(x: &Var, a: usize, b: usize) -> Result<Var, TensorError> {
    let rank = x.shape().len();
    if a >= rank || b >= rank {
        return Err(TensorError::Shape { op: "transpose", detail: format!("axes {a}, {b} of a rank-{rank} tensor") });
    }
    let mut order: Vec<usize> = (0..rank).collect();
    order.swap(a, b);
    permute(x, &order)
}
