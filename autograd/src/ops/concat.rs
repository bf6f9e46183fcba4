//! `y = [x_0, x_1, ...]` joined along one axis.
//!
//! Each input's gradient is its own slice of `g` along that axis.

use crate::Var;
use tensor::ops::gather::concat as concat_tensors;
use tensor::TensorError;

pub fn concat(parts: &[&Var], dim: usize) -> Result<Var, TensorError> {
    let values: Vec<_> = parts.iter().map(|p| p.value()).collect();
    let value = concat_tensors(&values.iter().collect::<Vec<_>>(), dim)?;
    let sizes: Vec<usize> = values.iter().map(|v| v.shape()[dim]).collect();
    Ok(Var::from_op(
        "concat",
        value,
        parts,
        Box::new(move |g, needs| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(sizes.len());
            for (i, &n) in sizes.iter().enumerate() {
                grads.push(if needs[i] { Some(g.narrow(dim, start, n)?.contiguous()) } else { None });
                start += n;
            }
            Ok(grads)
        }),
    ))
}
