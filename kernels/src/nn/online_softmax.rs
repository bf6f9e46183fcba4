//! Softmax over rows whose entries arrive a chunk at a time (the online
//! softmax of Milakov and Gimelshein, 2018; FlashAttention's inner loop).
//!
//! Per row, the state is the running maximum `m` and the running sum
//! `s = Σ_seen exp(z_j − m)`. A new chunk `z_c` of the row is folded in as:
//! ```text
//! m' = max(m, max z_c)
//! ρ  = exp(m − m')                  moves what was summed against m onto m'
//! s' = s·ρ + Σ exp(z_c − m')
//! z_c ← p̃_c = exp(z_c − m')         written over the chunk
//! ```
//! After the last chunk, `lse = m + ln s`, and `softmax(z)_j = p̃_j · Π ρ / s`
//! where the product runs over the chunks after `j`'s. So a caller that
//! accumulates something linear in `p̃` (the LM head's `Σ_j p̃_j · W_j`)
//! multiplies its accumulator by each chunk's `ρ` before adding the chunk,
//! and divides by `s` at the end: then no chunk of probabilities is ever
//! needed twice. The first chunk starts from `m = −∞, s = 0`, so its `ρ` is 0.
//!
//! Every row is computed by one thread in a fixed order: the same chunks
//! give the same bits for any thread count.

use super::exp::exp;
use super::{reduce, vectorized, PARALLEL_MIN};
use crate::KernelError;
use rayon::prelude::*;

/// The running maximum and sum of each row's exponentials.
#[derive(Clone, Debug)]
pub struct OnlineSoftmax {
    max: Vec<f32>,
    sum: Vec<f32>,
}

vectorized! {
    /// Folds one chunk of one row into `(m, s)`: returns `(m', s', ρ)` and
    /// leaves `p̃_c` in `z`.
    fn fold_row(z: &mut [f32], m: f32, s: f32) -> (f32, f32, f32) {
        let m_new = m.max(reduce::max(z));
        // m = m' = −∞ (nothing seen yet, an empty chunk) would give NaN; ρ = 0 then.
        let rho = if m == f32::NEG_INFINITY { 0.0 } else { exp(m - m_new) };
        z.iter_mut().for_each(|v| *v = exp(*v - m_new));
        (m_new, s * rho + reduce::sum(z), rho)
    }
}

impl OnlineSoftmax {
    /// The state of `rows` rows before any chunk: `m = −∞`, `s = 0`.
    pub fn new(rows: usize) -> OnlineSoftmax {
        OnlineSoftmax { max: vec![f32::NEG_INFINITY; rows], sum: vec![0.0; rows] }
    }

    /// Rows in the state.
    pub fn rows(&self) -> usize {
        self.max.len()
    }

    /// Folds `chunk` (`rows × width`, row-major) into the state, writes
    /// `p̃_c` over it, and `ρ` of each row into `rescale`. Rows where
    /// `skip(i)` holds keep their state; their chunk row becomes zeros and
    /// their `ρ` is 1, so an accumulator of them stays as it is (zero).
    pub fn fold(
        &mut self,
        chunk: &mut [f32],
        width: usize,
        skip: impl Fn(usize) -> bool + Sync,
        rescale: &mut [f32],
    ) -> Result<(), KernelError> {
        let rows = self.rows();
        if width == 0 || chunk.len() != rows * width || rescale.len() != rows {
            return Err(KernelError::bad(
                "online_softmax",
                format!(
                    "a chunk of {} floats and {} factors for {rows} rows of width {width}",
                    chunk.len(),
                    rescale.len()
                ),
            ));
        }
        let one = |i: usize, z: &mut [f32], m: &mut f32, s: &mut f32, r: &mut f32| {
            if skip(i) {
                z.fill(0.0);
                *r = 1.0;
            } else {
                (*m, *s, *r) = fold_row(z, *m, *s);
            }
        };
        let (max, sum) = (&mut self.max, &mut self.sum);
        if chunk.len() < PARALLEL_MIN || rayon::current_num_threads() == 1 {
            let rows = chunk.chunks_mut(width).zip(max.iter_mut()).zip(sum.iter_mut()).zip(rescale.iter_mut());
            rows.enumerate().for_each(|(i, (((z, m), s), r))| one(i, z, m, s, r));
        } else {
            let rows =
                chunk.par_chunks_mut(width).zip(max.par_iter_mut()).zip(sum.par_iter_mut()).zip(rescale.par_iter_mut());
            rows.enumerate().for_each(|(i, (((z, m), s), r))| one(i, z, m, s, r));
        }
        Ok(())
    }

    /// Each row's `s = Σ exp(z_j − m)` so far.
    pub fn sums(&self) -> &[f32] {
        &self.sum
    }

    /// Each row's `log Σ exp(z_j) = m + ln s` so far.
    pub fn lse(&self) -> Vec<f32> {
        self.max.iter().zip(&self.sum).map(|(&m, &s)| m + s.ln()).collect()
    }
}

/// Multiplies row `i` of `data` (rows of `width`) by `factors[i]`; rows whose
/// factor is 1 are not touched.
pub fn scale_rows(data: &mut [f32], width: usize, factors: &[f32]) -> Result<(), KernelError> {
    if width == 0 || data.len() != factors.len() * width {
        return Err(KernelError::bad(
            "scale_rows",
            format!("{} floats are not {} rows of width {width}", data.len(), factors.len()),
        ));
    }
    vectorized! {
        fn scale_row(row: &mut [f32], f: f32) {
            row.iter_mut().for_each(|v| *v *= f);
        }
    }
    for (row, &f) in data.chunks_mut(width).zip(factors) {
        if f != 1.0 {
            scale_row(row, f);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding a row in chunks of every width gives f64's log-sum-exp, and
    /// the `ρ`-rescaled sum of `p̃ · v` equals the softmax-weighted sum of `v`.
    #[test]
    fn chunked_rows_match_the_whole_row_softmax() {
        let (rows, cols) = (3, 37);
        let z: Vec<f32> = (0..rows * cols).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.7).collect();
        let v: Vec<f32> = (0..cols).map(|j| (j as f32 * 0.3).cos()).collect();
        for width in [1, 5, 16, 36, 37] {
            let mut state = OnlineSoftmax::new(rows);
            let mut acc = vec![0.0f32; rows]; // Σ_j p̃_j · v_j per row
            for c0 in (0..cols).step_by(width) {
                let w = width.min(cols - c0);
                let mut chunk: Vec<f32> =
                    (0..rows).flat_map(|i| z[i * cols + c0..i * cols + c0 + w].to_vec()).collect();
                let mut rho = vec![0.0; rows];
                state.fold(&mut chunk, w, |i| i == 1, &mut rho).unwrap();
                assert_eq!(rho[1], 1.0);
                assert!(chunk[w..2 * w].iter().all(|&p| p == 0.0), "a skipped row is zeroed");
                for i in 0..rows {
                    acc[i] = acc[i] * rho[i] + (0..w).map(|j| chunk[i * w + j] * v[c0 + j]).sum::<f32>();
                }
            }
            for i in [0, 2] {
                let row = &z[i * cols..(i + 1) * cols];
                let lse = row.iter().map(|&x| (x as f64).exp()).sum::<f64>().ln();
                let want = row.iter().zip(&v).map(|(&x, &y)| (x as f64 - lse).exp() * y as f64).sum::<f64>();
                assert!((state.lse()[i] as f64 - lse).abs() < 1e-5, "lse, width {width}");
                assert!((acc[i] as f64 / state.sums()[i] as f64 - want).abs() < 1e-5, "weighted sum, width {width}");
            }
            assert_eq!(state.sums()[1], 0.0, "a skipped row keeps its state");
        }
        let mut bad = vec![0.0; 5];
        assert!(OnlineSoftmax::new(3).fold(&mut bad, 2, |_| false, &mut [0.0; 3]).is_err());
        let mut m = vec![1.0, 2.0, 3.0, 4.0];
        scale_rows(&mut m, 2, &[2.0, 1.0]).unwrap();
        assert_eq!(m, [2.0, 4.0, 3.0, 4.0]);
    }
}
