//! Mean cross-entropy of `logits` `(..., V)` against integer `targets`,
//! fused with log-softmax, skipping `ignore_index` (−100).
//!
//! With `C` the number of counted rows and `lse` each row's log-sum-exp:
//! ```text
//! L = (1/C) Σ_{counted n} (lse_n − z_{n, t_n})
//! ∂L/∂z_{n,j} = (softmax(z_n)_j − [j = t_n]) / C   for counted rows, 0 for ignored rows
//! ```
//! The forward keeps the logits (already alive as the LM head's output) and
//! one float per row; the backward writes the one `(N, V)` gradient buffer.

use super::grad_for;
use crate::Var;
use kernels::nn::cross_entropy::{cross_entropy_backward, cross_entropy_forward};
use tensor::{Tensor, TensorError};

pub use kernels::nn::cross_entropy::IGNORE_INDEX;

/// The mean loss over the targets that are not [`IGNORE_INDEX`].
pub fn cross_entropy(logits: &Var, targets: &[i64]) -> Result<Var, TensorError> {
    let z = logits.value();
    let vocab = *z
        .shape()
        .last()
        .ok_or_else(|| TensorError::Shape { op: "cross_entropy", detail: "logits are a scalar".into() })?;
    let zd = z.f32_data();
    let forward = cross_entropy_forward(&zd, vocab, targets, IGNORE_INDEX)?;
    let value = Tensor::from_vec(vec![forward.mean() as f32], &[])?;
    drop(zd);
    let targets = targets.to_vec();
    Ok(Var::from_op(
        "cross_entropy",
        value,
        &[logits],
        Box::new(move |g, needs| {
            Ok(vec![grad_for(needs, 0, || {
                let mut dz = vec![0.0; z.numel()];
                cross_entropy_backward(&z.f32_data(), vocab, &targets, IGNORE_INDEX, &forward, g.item()?, &mut dz)?;
                Tensor::from_vec(dz, z.shape())
            })?])
        }),
    ))
}
