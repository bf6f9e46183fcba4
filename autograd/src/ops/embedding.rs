//! `y[n] = table[ids[n]]`: token embedding lookup.
//!
//! ∂L/∂table[v] = Σ_{n : ids[n] = v} g[n] (a scatter-add; rows never looked up get 0).

use super::grad_for;
use crate::Var;
use kernels::nn::embedding::embedding_backward;
use tensor::ops::gather::embedding as gather;
use tensor::{Tensor, TensorError};

/// Rows `ids` of `table` `(vocab, width)`, shape `(ids.len(), width)`.
pub fn embedding(table: &Var, ids: &[u32]) -> Result<Var, TensorError> {
    let value = gather(&table.value_ref(), ids)?;
    let shape = table.shape();
    let ids = ids.to_vec();
    Ok(Var::from_op(
        "embedding",
        value,
        &[table],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let mut d = vec![0.0f32; shape.iter().product()];
                embedding_backward(&g.f32_data(), shape[1], &ids, &mut d)?;
                Tensor::from_vec(d, &shape)
            })?])
        }),
    ))
}
