//! Cross-entropy over a vocabulary, fused with log-softmax, with an ignore index.
//!
//! For a row of logits `z` (length V) and target class `t`:
//! ```text
//! lse  = log Σ_j exp(z_j)           (computed as m + log Σ exp(z_j − m), m = max z)
//! loss = lse − z_t
//! ∂loss/∂z_j = softmax(z)_j − [j = t] = exp(z_j − lse) − [j = t]
//! ```
//! The mean is over the rows whose target is not `ignore_index` (−100, as
//! Hugging Face labels padding and prompt tokens), so each counted row's
//! gradient is scaled by `1 / count`; ignored rows get zero gradient.
//!
//! Memory: the forward keeps one float per row (`lse`); the softmax is never
//! stored. The backward writes the gradient straight into one `(N, V)`
//! buffer, recomputing `exp(z − lse)`: the only vocabulary-sized allocation
//! beyond the logits themselves.

use super::exp::exp;
use super::{reduce, vectorized};
use crate::KernelError;
use rayon::prelude::*;

/// Hugging Face's label for "no loss here".
pub const IGNORE_INDEX: i64 = -100;

/// The forward's result: summed loss over counted rows, their count, and each row's log-sum-exp.
#[derive(Clone, Debug)]
pub struct CrossEntropy {
    /// Σ over counted rows of `lse − z_t`, accumulated in f64 in row order.
    pub loss_sum: f64,
    /// Rows whose target is not the ignore index.
    pub count: usize,
    /// `log Σ exp(z)` per row (also for ignored rows).
    pub lse: Vec<f32>,
}

impl CrossEntropy {
    /// The mean over counted rows (0 when every row is ignored, where PyTorch gives NaN).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.loss_sum / self.count as f64
        }
    }
}

fn check(logits: usize, vocab: usize, targets: &[i64], ignore_index: i64) -> Result<(), KernelError> {
    if vocab == 0 || logits != targets.len() * vocab {
        return Err(KernelError::bad(
            "cross_entropy",
            format!("{logits} logits are not {} rows of the vocabulary size {vocab}", targets.len()),
        ));
    }
    if let Some(n) = targets.iter().position(|&t| t != ignore_index && (t < 0 || t as u64 >= vocab as u64)) {
        return Err(KernelError::bad(
            "cross_entropy",
            format!(
                "target {} at row {n} is outside the vocabulary of {vocab} (and is not the ignore index {ignore_index})",
                targets[n]
            ),
        ));
    }
    Ok(())
}

vectorized! {
    fn log_sum_exp(z: &[f32]) -> f32 {
        let m = reduce::max(z);
        m + reduce::sum_map(z, |v| exp(v - m)).ln()
    }
}

vectorized! {
    fn grad_row(z: &[f32], lse: f32, scale: f32, dz: &mut [f32]) {
        dz.iter_mut().zip(z).for_each(|(d, &v)| *d = exp(v - lse) * scale);
    }
}

vectorized! {
    fn grad_row_in_place(z: &mut [f32], lse: f32, scale: f32) {
        z.iter_mut().for_each(|v| *v = exp(*v - lse) * scale);
    }
}

/// Loss of each row of `logits` (`targets.len()` rows of `vocab`).
pub fn cross_entropy_forward(
    logits: &[f32],
    vocab: usize,
    targets: &[i64],
    ignore_index: i64,
) -> Result<CrossEntropy, KernelError> {
    check(logits.len(), vocab, targets, ignore_index)?;
    let lse: Vec<f32> = logits.par_chunks(vocab).map(log_sum_exp).collect();
    let (mut loss_sum, mut count) = (0.0f64, 0usize);
    for (n, &t) in targets.iter().enumerate() {
        if t != ignore_index {
            loss_sum += lse[n] as f64 - logits[n * vocab + t as usize] as f64;
            count += 1;
        }
    }
    Ok(CrossEntropy { loss_sum, count, lse })
}

/// `dlogits = dloss · ∂mean/∂logits`: `(softmax − onehot) · dloss / count` on
/// counted rows, zero on ignored rows. Every element of `dlogits` is written.
pub fn cross_entropy_backward(
    logits: &[f32],
    vocab: usize,
    targets: &[i64],
    ignore_index: i64,
    forward: &CrossEntropy,
    dloss: f32,
    dlogits: &mut [f32],
) -> Result<(), KernelError> {
    check(logits.len(), vocab, targets, ignore_index)?;
    if dlogits.len() != logits.len() || forward.lse.len() != targets.len() {
        return Err(KernelError::bad("cross_entropy_backward", "gradient or saved lse of the wrong size"));
    }
    let scale = if forward.count == 0 { 0.0 } else { dloss / forward.count as f32 };
    dlogits.par_chunks_mut(vocab).zip(logits.par_chunks(vocab)).enumerate().for_each(|(n, (dz, z))| {
        let t = targets[n];
        if t == ignore_index {
            dz.fill(0.0);
        } else {
            grad_row(z, forward.lse[n], scale, dz);
            dz[t as usize] -= scale;
        }
    });
    Ok(())
}

/// The same gradient written over the logits themselves, for callers that
/// need the logits no longer (the fused LM head + loss): row `n` of `logits`
/// becomes `(softmax − onehot) · scale` with its saved `lse[n]`, or zeros
/// when its target is ignored. `scale` is `dloss / count` of the whole loss,
/// which a block of rows cannot know by itself.
pub fn cross_entropy_grad_in_place(
    logits: &mut [f32],
    vocab: usize,
    targets: &[i64],
    ignore_index: i64,
    lse: &[f32],
    scale: f32,
) -> Result<(), KernelError> {
    check(logits.len(), vocab, targets, ignore_index)?;
    if lse.len() != targets.len() {
        return Err(KernelError::bad("cross_entropy_grad_in_place", "saved lse of the wrong size"));
    }
    logits.par_chunks_mut(vocab).enumerate().for_each(|(n, z)| {
        let t = targets[n];
        if t == ignore_index {
            z.fill(0.0);
        } else {
            grad_row_in_place(z, lse[n], scale);
            z[t as usize] -= scale;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_log_softmax_and_skips_ignored_rows() {
        let vocab = 11;
        let logits: Vec<f32> = (0..4 * vocab).map(|i| ((i * 5 % 17) as f32 - 8.0) * 0.9).collect();
        let targets = [3i64, IGNORE_INDEX, 10, 0];
        let ce = cross_entropy_forward(&logits, vocab, &targets, IGNORE_INDEX).unwrap();
        let mut want = 0.0;
        for (n, &t) in targets.iter().enumerate() {
            if t >= 0 {
                let z = &logits[n * vocab..(n + 1) * vocab];
                let lse = z.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
                want += lse - z[t as usize] as f64;
            }
        }
        assert_eq!(ce.count, 3);
        assert!((ce.mean() - want / 3.0).abs() < 1e-6);
        let mut d = vec![f32::NAN; logits.len()];
        cross_entropy_backward(&logits, vocab, &targets, IGNORE_INDEX, &ce, 1.0, &mut d).unwrap();
        assert!(d[vocab..2 * vocab].iter().all(|&g| g == 0.0));
        for row in [0, 2, 3] {
            let s: f32 = d[row * vocab..(row + 1) * vocab].iter().sum();
            assert!(s.abs() < 1e-6, "each counted row's gradient sums to 0");
        }
        let mut in_place = logits.clone();
        cross_entropy_grad_in_place(&mut in_place, vocab, &targets, IGNORE_INDEX, &ce.lse, 1.0 / 3.0).unwrap();
        assert_eq!(in_place, d, "in place equals the two-buffer backward bit for bit");
        let err = cross_entropy_forward(&logits, vocab, &[3, 11, 0, 0], IGNORE_INDEX).unwrap_err();
        assert!(err.to_string().contains("target 11 at row 1"), "{err}");
        assert!(cross_entropy_forward(&logits, vocab, &[3, -5, 0, 0], IGNORE_INDEX).is_err());
    }
}
