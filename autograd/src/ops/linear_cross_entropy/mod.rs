//! `L = cross_entropy(x · Wᵀ, targets)`: the LM head and the loss as one op,
//! a block of rows at a time, so the `(N, V)` logits never exist whole.
//!
//! With `Z = x · Wᵀ` `(N, V)`, `C` counted rows, and the loss's gradient
//! `G = ∂L/∂Z = (softmax(Z) − onehot(t)) / C` (zero on ignored rows):
//! ```text
//! ∂L/∂x = G · W        (N, V)·(V, C)
//! ∂L/∂W = Gᵀ · x       (V, N)·(N, C)
//! ```
//! `L` is a scalar, so the gradient arriving in the backward is one number
//! `g`, and both results are linear in it. So the forward forms them with
//! `g = 1` while each block `Z_r` is at hand, and the backward only scales
//! by `g` (Liger Kernel's fused linear cross-entropy). For each block of R rows:
//! ```text
//! Z_r  = x_r · Wᵀ                          (R, V)   one reused buffer
//! lse_r, loss_r                            (R)
//! Z_r ← G_r, in place                      (R, V)
//! dx_r = G_r · W                           (R, C)
//! dW  += G_rᵀ · x_r                        (V, C)   only when W is trained
//! ```
//! Memory: one `(R, V)` block instead of the logits and their gradient
//! (`2·N·V` floats), plus `dx` and, for a trained W, `dW`, which is the size
//! of the gradient W receives anyway. The work is the unfused op's: three
//! products of `N·C·V`; W is packed once per block rather than once.
//!
//! The loss is the unfused op's bit for bit (the same per-row `lse`, summed
//! in row order in f64); `dW` sums its blocks in a different order, so it
//! agrees to rounding.
//!
//! A W that does not train (LoRA, a frozen head, and evaluation, where
//! nothing trains) takes the chunked path of [`online`] instead: columns of
//! the vocabulary a chunk at a time, so neither the rows' logits nor a large
//! block of them is ever held.

pub mod online;

use crate::var::spare_buffer;
use crate::{is_grad_enabled, Var};
use kernels::nn::cross_entropy::{cross_entropy_forward, cross_entropy_grad_in_place, IGNORE_INDEX};
pub use online::linear_cross_entropy_online;
use tensor::{matmul_into, Tensor, TensorError};

/// How many bytes of logits one block may hold when W trains.
const BLOCK_BYTES: usize = 64 << 20;

/// The mean cross-entropy of `x · Wᵀ` against `targets` (one per row of
/// `x`, [`IGNORE_INDEX`] skipped), `x` `(..., C)` and `W` `(V, C)`: in
/// blocks of rows sized by [`block_rows`] when W trains, otherwise in chunks
/// of the vocabulary sized by [`online::chunk_cols`].
pub fn linear_cross_entropy(x: &Var, w: &Var, targets: &[i64]) -> Result<Var, TensorError> {
    let vocab = w.shape().first().copied().unwrap_or(1);
    let w_trains = is_grad_enabled() && w.requires_grad();
    match w_trains || targets.is_empty() {
        true => linear_cross_entropy_blocked(x, w, targets, block_rows(targets.len(), vocab, w_trains)),
        false => linear_cross_entropy_online(x, w, targets, online::chunk_cols(targets.len(), vocab)),
    }
}

/// The floats of logits [`linear_cross_entropy`] holds at once for `rows`
/// rows of a `vocab`-sized head (for memory estimates).
pub fn logits_floats(rows: usize, vocab: usize, w_trains: bool) -> usize {
    match w_trains {
        true => vocab * block_rows(rows, vocab, true).min(rows),
        false => rows * online::chunk_cols(rows, vocab),
    }
}

/// Rows per block for `rows` rows of a `vocab`-sized head: the fewest even
/// blocks whose logits fit in about 64 MiB when W trains, 128 MiB when it
/// does not (which [`linear_cross_entropy`] now gives to the chunked path;
/// tests and measurements still call the blocked one). Every block packs W twice, so fewer blocks are faster and more
/// blocks are smaller (the head of SmolLM2 LoRA at B=4, T=128, measured:
/// 365 ms per step with 32 MiB blocks, 318 with 64, 290 with one 100 MiB
/// block; again this stop, on another machine: 344-400 with 64 MiB, 316-326
/// with one block). A frozen W has no `(V, C)` gradient to hold, which is
/// larger than the extra 64 MiB (113 MB for SmolLM2), so the op's memory
/// stays below a trained head's.
pub fn block_rows(rows: usize, vocab: usize, w_trains: bool) -> usize {
    let (rows, vocab) = (rows.max(1), vocab.max(1));
    let budget = if w_trains { BLOCK_BYTES } else { 2 * BLOCK_BYTES };
    let blocks = (rows * vocab * 4).div_ceil(budget).max(1);
    rows.div_ceil(blocks)
}

thread_local! {
    /// The logits block of the last call on this thread, kept for the next.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer of `len` floats for a logits block (contents unspecified: the
/// logits product overwrites it), the last call's if there was one.
///
/// A block is tens of MiB (50 MB for SmolLM2 at B=4, T=128), above glibc's
/// largest mmap threshold, so a fresh one is a fresh mapping whose pages the
/// kernel faults in and zeroes on first write, every step (12K page faults
/// per step). Kept, it costs its size in resident memory between steps,
/// when a step is far below its peak (the block is alive at the peak anyway).
pub(super) fn reused_block(len: usize) -> Vec<f32> {
    let mut v = BLOCK.with(|b| std::mem::take(&mut *b.borrow_mut()));
    v.resize(len, 0.0);
    v
}

/// Keeps `v` for the next call on this thread.
pub(super) fn keep_block(v: Vec<f32>) {
    BLOCK.with(|b| *b.borrow_mut() = v);
}

/// The mean of `lse − z_target` over counted rows, summed in row order in
/// f64 as the unfused op sums it (0 when no row counts).
pub(super) fn mean_loss(targets: &[i64], lse: &[f32], z_target: &[f32], count: usize) -> f32 {
    let counted = (0..targets.len()).filter(|&n| targets[n] != IGNORE_INDEX);
    let loss_sum: f64 = counted.map(|n| lse[n] as f64 - z_target[n] as f64).sum();
    if count == 0 {
        0.0
    } else {
        (loss_sum / count as f64) as f32
    }
}

/// A gradient formed for an upstream gradient of 1, scaled to the one that
/// arrived (`g`, a scalar loss's gradient), as a tensor of `shape`.
pub(super) fn scaled_by(mut v: Vec<f32>, g: f32, shape: &[usize]) -> Result<Tensor, TensorError> {
    if g != 1.0 {
        v.iter_mut().for_each(|e| *e *= g);
    }
    Tensor::from_vec(v, shape)
}

/// Checks `x` `(..., C)` holds one row per target and `W` is `(V, C)`;
/// returns `x`'s shape, `V` and `C`. `block` is the caller's block or chunk
/// size, which must not be 0.
pub(super) fn validate(
    xv: &Tensor,
    wv: &Tensor,
    targets: &[i64],
    block: usize,
) -> Result<(Vec<usize>, usize, usize), TensorError> {
    let bad = |detail: String| TensorError::shape("linear_cross_entropy", detail);
    let x_shape = xv.shape().to_vec();
    let &[vocab, hidden] = wv.shape() else {
        return Err(bad(format!("weight must be (vocab, hidden), got {:?}", wv.shape())));
    };
    let rows = targets.len();
    if x_shape.last() != Some(&hidden) || x_shape.iter().product::<usize>() != rows * hidden || block == 0 {
        return Err(bad(format!(
            "x {x_shape:?} does not hold {rows} rows of the weight's {hidden} inputs (block of {block})"
        )));
    }
    Ok((x_shape, vocab, hidden))
}

/// [`linear_cross_entropy`] with an explicit block of `block_rows` rows
/// (tests use small blocks to cross block edges).
pub fn linear_cross_entropy_blocked(x: &Var, w: &Var, targets: &[i64], block_rows: usize) -> Result<Var, TensorError> {
    let (xv, wv) = (x.value(), w.value());
    let (x_shape, vocab, hidden) = validate(&xv, &wv, targets, block_rows)?;
    let rows = targets.len();
    let x2 = xv.reshape(&[rows, hidden])?; // (N, C)
    let w_t = wv.transpose(0, 1)?; // (C, V), a view
    let count = targets.iter().filter(|&&t| t != IGNORE_INDEX).count();
    let recording = is_grad_enabled();
    let (need_x, need_w) = (recording && x.requires_grad(), recording && w.requires_grad());
    let mut dx = if need_x { vec![0.0f32; rows * hidden] } else { Vec::new() };
    // dW's first block overwrites it (β = 0), so a kept buffer needs no zeros.
    let mut dw = match need_w {
        true if rows > 0 => spare_buffer(vocab * hidden).unwrap_or_else(|| vec![0.0f32; vocab * hidden]),
        true => vec![0.0f32; vocab * hidden],
        false => Vec::new(),
    };
    // Per row: log-sum-exp and the target's logit, to sum in row order.
    let (mut lse, mut z_target) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let scale = if count == 0 { 0.0 } else { 1.0 / count as f32 };
    let cap = block_rows.min(rows).max(1);
    let mut block = Tensor::from_vec(reused_block(cap * vocab), &[cap, vocab])?; // (R, V), reused
    for start in (0..rows).step_by(block_rows) {
        let r = block_rows.min(rows - start);
        let t_r = &targets[start..start + r];
        let x_r = x2.narrow(0, start, r)?; // (R, C)
        let z = &mut block.f32_mut()[..r * vocab]; // (R, V)
        matmul_into(&x_r, &w_t, 0.0, z)?;
        let ce = cross_entropy_forward(z, vocab, t_r, IGNORE_INDEX)?;
        z_target.extend(
            t_r.iter().enumerate().map(|(i, &t)| if t == IGNORE_INDEX { 0.0 } else { z[i * vocab + t as usize] }),
        );
        if need_x || need_w {
            cross_entropy_grad_in_place(z, vocab, t_r, IGNORE_INDEX, &ce.lse, scale)?;
            let g_r = block.narrow(0, 0, r)?; // (R, V), now G_r
            if need_x {
                matmul_into(&g_r, &wv, 0.0, &mut dx[start * hidden..(start + r) * hidden])?;
            }
            if need_w {
                matmul_into(&g_r.transpose(0, 1)?, &x_r, if start == 0 { 0.0 } else { 1.0 }, &mut dw)?;
            }
        }
        lse.extend(ce.lse);
    }
    let value = Tensor::from_vec(vec![mean_loss(targets, &lse, &z_target, count)], &[])?;
    drop((x2, w_t));
    keep_block(block.into_f32_vec());
    Ok(Var::from_op(
        "linear_cross_entropy",
        value,
        &[x, w],
        Box::new(move |g, needs| {
            let g = g.item()?;
            let gx = if needs[0] { Some(scaled_by(dx, g, &x_shape)?) } else { None };
            let gw = if needs[1] { Some(scaled_by(dw, g, &[vocab, hidden])?) } else { None };
            Ok(vec![gx, gw])
        }),
    ))
}
