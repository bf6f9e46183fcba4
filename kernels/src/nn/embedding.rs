//! Embedding lookup (a gather of rows) and its backward (a scatter-add).
//!
//! ```text
//! forward   out[n, :] = table[ids[n], :]
//! backward  ∂L/∂table[v, :] = Σ_{n : ids[n] = v} ∂L/∂out[n, :]
//! ```
//! The table may be f32, bf16 or f16 (a memory-mapped weight, widened per row).
//! The backward adds rows in the order of `n`, on one thread, so a token that
//! appears many times always sums its gradients in the same order.

use crate::{Element, KernelError};
use rayon::prelude::*;

fn check_ids(ids: &[u32], vocab: usize) -> Result<(), KernelError> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(n) => Err(KernelError::bad(
            "embedding",
            format!("token id {} at position {n} is outside the vocabulary of {vocab}", ids[n]),
        )),
        None => Ok(()),
    }
}

/// `out[n] = table[ids[n]]` for a `(vocab, width)` table.
pub fn embedding<T: Element>(table: &[T], width: usize, ids: &[u32], out: &mut [f32]) -> Result<(), KernelError> {
    if width == 0 || !table.len().is_multiple_of(width) || out.len() != ids.len() * width {
        return Err(KernelError::bad(
            "embedding",
            format!("table of {} elements, width {width}, {} ids, out of {}", table.len(), ids.len(), out.len()),
        ));
    }
    check_ids(ids, table.len() / width)?;
    out.par_chunks_mut(width).zip(ids.par_iter()).with_min_len(16).for_each(|(row, &id)| {
        let src = &table[id as usize * width..(id as usize + 1) * width];
        row.iter_mut().zip(src).for_each(|(o, s)| *o = s.to_f32());
    });
    Ok(())
}

/// `dtable[ids[n]] += dout[n]` for every `n`, in order.
pub fn embedding_backward(dout: &[f32], width: usize, ids: &[u32], dtable: &mut [f32]) -> Result<(), KernelError> {
    if width == 0 || !dtable.len().is_multiple_of(width) || dout.len() != ids.len() * width {
        return Err(KernelError::bad("embedding_backward", "gradient sizes do not match the ids and width"));
    }
    check_ids(ids, dtable.len() / width)?;
    for (g, &id) in dout.chunks_exact(width).zip(ids) {
        let dst = &mut dtable[id as usize * width..(id as usize + 1) * width];
        dst.iter_mut().zip(g).for_each(|(d, g)| *d += g);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_add() {
        let table: Vec<f32> = (0..12).map(|i| i as f32).collect(); // (4, 3)
        let mut out = vec![0.0; 9];
        embedding(&table, 3, &[2, 0, 2], &mut out).unwrap();
        assert_eq!(out, [6., 7., 8., 0., 1., 2., 6., 7., 8.]);
        let mut d = vec![0.0; 12];
        embedding_backward(&[1.0; 9], 3, &[2, 0, 2], &mut d).unwrap();
        assert_eq!(d, [1., 1., 1., 0., 0., 0., 2., 2., 2., 0., 0., 0.]);
        let err = embedding(&table, 3, &[4], &mut out[..3]).unwrap_err();
        assert!(err.to_string().contains("token id 4 at position 0"), "{err}");
    }
}
