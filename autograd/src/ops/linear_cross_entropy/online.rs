//! The fused head and loss for a W that does not train (LoRA, a frozen
//! head, evaluation): over the vocabulary a chunk of columns at a time, with
//! an online softmax, so the logits of a row never exist whole.
//!
//! With `Z = x · Wᵀ` `(N, V)`, `G = (softmax(Z) − onehot(t)) / C`, the only
//! gradient a frozen W needs is `∂L/∂x = G · W = (softmax(Z) · W − W[t]) / C`.
//! `softmax(Z) · W` is a softmax-weighted sum of W's rows, which the online
//! softmax (see `kernels::nn::online_softmax`) builds one chunk of `V_c`
//! vocabulary rows at a time, as FlashAttention builds `softmax(QKᵀ) · V`:
//! ```text
//! for each chunk c of W's rows:                  W_c (V_c, C)
//!     Z_c  = x · W_cᵀ                            (N, V_c)  one reused buffer
//!     z_t  ← Z_c[n, t_n] where t_n is in c       (N)
//!     m, s, ρ ← fold(Z_c);  Z_c ← p̃_c = exp(Z_c − m)
//!     acc  = ρ ⊙ acc + p̃_c · W_c                 (N, C)
//! lse = m + ln s,   loss = mean(lse − z_t)
//! ∂L/∂x = (acc / s − W[t]) / C                   (N, C)
//! ```
//! Against the blocked path (`super::linear_cross_entropy_blocked`), W is
//! read once per chunk while its rows are in cache for both products,
//! instead of twice over the whole vocabulary, and the buffer is `N · V_c`
//! floats (8 MiB, which stays in L3) instead of `N · V / blocks` (100 MB for
//! SmolLM2 at B=4, T=128). The work is the same two products.
//!
//! The loss agrees with the unfused op's to rounding, not bit for bit: `lse`
//! is summed chunk by chunk.

use super::{keep_block, mean_loss, reused_block, scaled_by, validate};
use crate::{is_grad_enabled, Var};
use kernels::nn::cross_entropy::IGNORE_INDEX;
use kernels::nn::online_softmax::{scale_rows, OnlineSoftmax};
use tensor::{matmul_into, Tensor, TensorError};

/// How many bytes of logits one chunk may hold: small enough to stay in L3
/// between its two products.
const CHUNK_BYTES: usize = 8 << 20;

/// Vocabulary rows per chunk for `rows` rows of input: as many as fit in
/// [`CHUNK_BYTES`], a multiple of 256, at least 256, at most `vocab`.
pub fn chunk_cols(rows: usize, vocab: usize) -> usize {
    let fit = CHUNK_BYTES / (4 * rows.max(1));
    (fit / 256 * 256).max(256).min(vocab.max(1))
}

/// [`super::linear_cross_entropy`] over the vocabulary in chunks of
/// `chunk_cols` rows of W (tests use small chunks to cross chunk edges).
/// W must not be trained here: its gradient is not formed.
pub fn linear_cross_entropy_online(x: &Var, w: &Var, targets: &[i64], chunk_cols: usize) -> Result<Var, TensorError> {
    let bad = |detail: String| TensorError::shape("linear_cross_entropy", detail);
    let (xv, wv) = (x.value(), w.value());
    let (x_shape, vocab, hidden) = validate(&xv, &wv, targets, chunk_cols)?;
    let recording = is_grad_enabled();
    if recording && w.requires_grad() {
        return Err(bad("the chunked path forms no gradient for W, and W trains here".into()));
    }
    if let Some(n) = targets.iter().position(|&t| t != IGNORE_INDEX && (t < 0 || t as u64 >= vocab as u64)) {
        return Err(bad(format!(
            "target {} at row {n} is outside the vocabulary of {vocab} (and is not the ignore index {IGNORE_INDEX})",
            targets[n]
        )));
    }
    let rows = targets.len();
    let need_x = recording && x.requires_grad();
    let x2 = xv.reshape(&[rows, hidden])?; // (N, C)
    let skip = |n: usize| targets[n] == IGNORE_INDEX;
    let count = (0..rows).filter(|&n| !skip(n)).count();
    let scale = if count == 0 { 0.0 } else { 1.0 / count as f32 };

    let mut state = OnlineSoftmax::new(rows);
    let (mut rho, mut z_target) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    let mut acc = if need_x { vec![0.0f32; rows * hidden] } else { Vec::new() }; // (N, C)
    let cap = chunk_cols.min(vocab);
    let mut chunk = Tensor::from_vec(reused_block(rows * cap), &[rows * cap])?; // (N, V_c), reused
    for c0 in (0..vocab).step_by(chunk_cols) {
        let width = chunk_cols.min(vocab - c0);
        let w_c = wv.narrow(0, c0, width)?; // (V_c, C)
        let z = &mut chunk.f32_mut()[..rows * width]; // (N, V_c)
        matmul_into(&x2, &w_c.transpose(0, 1)?, 0.0, z)?;
        for (n, &t) in targets.iter().enumerate() {
            if !skip(n) && (c0..c0 + width).contains(&(t as usize)) {
                z_target[n] = z[n * width + t as usize - c0];
            }
        }
        state.fold(z, width, skip, &mut rho)?;
        if need_x {
            // The first chunk overwrites acc (β = 0), which ρ = 0 would do too.
            if c0 > 0 {
                scale_rows(&mut acc, hidden, &rho)?;
            }
            let p = chunk.narrow(0, 0, rows * width)?.reshape(&[rows, width])?; // (N, V_c), now p̃_c
            matmul_into(&p, &w_c, if c0 == 0 { 0.0 } else { 1.0 }, &mut acc)?;
        }
    }
    keep_block(chunk.into_f32_vec());
    let loss = mean_loss(targets, &state.lse(), &z_target, count);
    if need_x {
        // ∂L/∂x_n = (acc_n / s_n − W[t_n]) / C; an ignored row's acc is already 0.
        for (n, row) in acc.chunks_mut(hidden).enumerate() {
            if !skip(n) {
                let w_t = wv.narrow(0, targets[n] as usize, 1)?.to_f32_vec(); // (C)
                let inv_s = 1.0 / state.sums()[n];
                row.iter_mut().zip(&w_t).for_each(|(a, &wt)| *a = (*a * inv_s - wt) * scale);
            }
        }
    }
    let value = Tensor::from_vec(vec![loss], &[])?;
    Ok(Var::from_op(
        "linear_cross_entropy",
        value,
        &[x, w],
        Box::new(move |g, needs| {
            let gx = if needs[0] { Some(scaled_by(acc, g.item()?, &x_shape)?) } else { None };
            Ok(vec![gx, None])
        }),
    ))
}
