//! `y[n] = table[ids[n]]`: token embedding lookup.
//!
//! ∂L/∂table[v] = Σ_{n : ids[n] = v} g[n] (a scatter-add; rows never looked up get 0).
//!
//! A parameter table's gradient is scatter-added straight into its
//! accumulated gradient (`Var::add_to_grad`): the rows of `g` are all the
//! backward writes. A dense `(vocab, width)` gradient would be 113 MB of
//! zeros for SmolLM2, made, faulted in, added into the tied LM head's
//! gradient and freed again at every step.

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
    let node = table.0.node.clone();
    Ok(Var::from_op(
        "embedding",
        value,
        &[table],
        Box::new(move |g, needs| {
            let width = shape[1];
            if needs[0] && Var::add_to_grad(&node, |acc| embedding_backward(&g.f32_data(), width, &ids, acc))? {
                return Ok(vec![None]);
            }
            Ok(vec![grad_for(needs, 0, || {
                let mut d = vec![0.0f32; shape.iter().product()];
                embedding_backward(&g.f32_data(), shape[1], &ids, &mut d)?;
                Tensor::from_vec(d, &shape)
            })?])
        }),
    ))
}
