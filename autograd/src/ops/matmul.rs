//! `C = A · B`: 2-D, batched, or a batch of `A` against one shared `B`.
//!
//! ```text
//! ∂L/∂A = G · Bᵀ                     (m, n)·(n, k) -> (m, k)
//! ∂L/∂B = Aᵀ · G                     (k, m)·(m, n) -> (k, n)
//! shared B:  ∂L/∂B = Σ_batch A_bᵀ G_b = (A as (B·m, k))ᵀ · (G as (B·m, n))
//! ```
//! Transposed operands are stride-swapped views, so "all transpose forms"
//! are this one op applied to `transpose(x)`: the GEMM reads either layout.

use super::grad_for;
use crate::Var;
use tensor::{matmul as mm, TensorError};

pub fn matmul(a: &Var, b: &Var) -> Result<Var, TensorError> {
    let (av, bv) = (a.value(), b.value());
    let value = mm(&av, &bv)?;
    Ok(Var::from_op(
        "matmul",
        value,
        &[a, b],
        Box::new(move |g, needs| {
            let (ra, rb) = (av.rank(), bv.rank());
            let ga = grad_for(needs, 0, || mm(g, &bv.transpose(rb - 2, rb - 1)?))?;
            let gb = grad_for(needs, 1, || {
                if ra == 3 && rb == 2 {
                    let (batch, m, k) = (av.shape()[0], av.shape()[1], av.shape()[2]);
                    let n = g.shape()[2];
                    mm(&av.reshape(&[batch * m, k])?.transpose(0, 1)?, &g.reshape(&[batch * m, n])?)
                } else {
                    mm(&av.transpose(ra - 2, ra - 1)?, g)
                }
            })?;
            Ok(vec![ga, gb])
        }),
    ))
}
