//! Embedding lookup and concatenation.

use crate::{DType, Tensor, TensorError};
use kernels::nn::embedding::embedding as gather_rows;

/// Rows `ids` of a `(vocab, width)` table (f32, bf16 or f16, read in place),
/// as an f32 tensor of shape `(ids.len(), width)`.
pub fn embedding(table: &Tensor, ids: &[u32]) -> Result<Tensor, TensorError> {
    let &[_, width] = table.shape() else {
        return Err(TensorError::shape("embedding", format!("the table must be 2-D, got {:?}", table.shape())));
    };
    let t = table.contiguous();
    let mut out = vec![0.0; ids.len() * width];
    let s = t.storage();
    let range = t.offset()..t.offset() + t.numel();
    match t.dtype() {
        DType::F32 => gather_rows(&s.as_f32().expect("f32")[range], width, ids, &mut out)?,
        DType::BF16 => gather_rows(&s.as_bf16().expect("bf16")[range], width, ids, &mut out)?,
        DType::F16 => gather_rows(&s.as_f16().expect("f16")[range], width, ids, &mut out)?,
    }
    Tensor::from_vec(out, &[ids.len(), width])
}

/// The tensors joined along axis `dim` (all other axes must agree).
pub fn concat(parts: &[&Tensor], dim: usize) -> Result<Tensor, TensorError> {
    let first = parts.first().ok_or_else(|| TensorError::shape("concat", "nothing to concatenate"))?;
    let rank = first.rank();
    let same = |t: &Tensor| {
        t.rank() == rank && t.shape().iter().zip(first.shape()).enumerate().all(|(i, (a, b))| i == dim || a == b)
    };
    if dim >= rank || !parts.iter().all(|t| same(t)) {
        let shapes: Vec<_> = parts.iter().map(|t| t.shape().to_vec()).collect();
        return Err(TensorError::shape("concat", format!("shapes {shapes:?} do not join along axis {dim}")));
    }
    let outer: usize = first.shape()[..dim].iter().product();
    let inner: usize = first.shape()[dim + 1..].iter().product();
    let mut shape = first.shape().to_vec();
    shape[dim] = parts.iter().map(|t| t.shape()[dim]).sum();
    let data: Vec<_> = parts.iter().map(|t| t.f32_data()).collect();
    let mut out = Vec::with_capacity(outer * shape[dim] * inner);
    for o in 0..outer {
        for (t, d) in parts.iter().zip(&data) {
            let run = t.shape()[dim] * inner;
            out.extend_from_slice(&d[o * run..(o + 1) * run]);
        }
    }
    Tensor::from_vec(out, &shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_and_joins() {
        let table = Tensor::from_vec((0..6).map(|i| i as f32).collect(), &[3, 2]).unwrap();
        assert_eq!(embedding(&table, &[2, 0]).unwrap().to_f32_vec(), [4., 5., 0., 1.]);
        assert!(embedding(&table, &[3]).is_err());
        let a = Tensor::from_vec(vec![1., 2., 3., 4.], &[2, 2]).unwrap();
        let b = Tensor::from_vec(vec![5., 6.], &[2, 1]).unwrap();
        assert_eq!(concat(&[&a, &b], 1).unwrap().to_f32_vec(), [1., 2., 5., 3., 4., 6.]);
        assert_eq!(concat(&[&a, &a], 0).unwrap().shape(), [4, 2]);
        assert!(concat(&[&a, &b], 0).is_err());
    }
}
