//! Causal multi-head attention with grouped-query heads, fused: forward and backward.
//!
//! Shapes (row-major), with `Hq` query heads sharing `Hkv` key/value heads
//! (`Hq / Hkv` query heads per group; `Hkv = Hq` is ordinary multi-head):
//! ```text
//! q, out, dq, dout   (B, T,  Hq,  D)     the layout a projection produces: no transposes
//! k, v, dk, dv       (B, Tk, Hkv, D)     Tk ≥ T; query i sees keys j ≤ i + (Tk − T)
//! lse                (B, Hq, T)          log-sum-exp of each score row: all the forward keeps
//! ```
//! For one head, with `s = 1/√D`:
//! ```text
//! S = s · Q Kᵀ,   P = softmax(S + causal mask),   O = P V
//! dV = Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),   dQ = s · dS K,   dK = s · dSᵀ Q
//! ```
//! (`rowsum(dO ⊙ O) = rowsum(P ⊙ dP)`, the softmax backward's inner product,
//! computed from the outputs instead of the scores.)
//!
//! [`causal_attention_qkv`] takes q, k and v as one `(B, T, (Hq + 2·Hkv)·D)`
//! tensor, the rows `[q | k | v]` that GPT-2's fused `c_attn` projection
//! produces, and its backward writes their gradient in the same layout: no
//! copies of the three parts going in, no three zero-padded gradients
//! summed coming out. It is the same arithmetic on the same rows, so the
//! same bits as the three-tensor call (tested).
//!
//! Fused the way FlashAttention is: queries are taken 64 rows at a time, so
//! the scores of a block (64 × Tk floats) are the only score memory, and the
//! forward stores only `lse`, never P. The backward rebuilds
//! `P = exp(S − lse)` block by block. The products are the SGEMM's, run
//! single-threaded inside a task; tasks are (batch, head) pairs in the
//! forward and (batch, key/value head) pairs in the backward, so the
//! gradients of a shared K/V head are summed by one task in a fixed order.

use super::exp::exp;
use super::{reduce, vectorized};
use crate::gemm::{Gemm, MatMut, MatRef};
use crate::KernelError;
use rayon::prelude::*;

/// Query rows per block.
const BLOCK_Q: usize = 64;

/// The sizes of an attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub batch: usize,
    /// Query positions `T`.
    pub seq: usize,
    /// Key/value positions `Tk` (`= T` in training; more with a KV cache).
    pub kv_seq: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    fn check(&self, q: usize, kv: &[usize]) -> Result<(), KernelError> {
        let s = *self;
        let ok = s.kv_heads > 0
            && s.q_heads.is_multiple_of(s.kv_heads)
            && s.kv_seq >= s.seq
            && Some(q) == mul(&[s.batch, s.seq, s.q_heads, s.head_dim])
            && kv.iter().all(|&l| Some(l) == mul(&[s.batch, s.kv_seq, s.kv_heads, s.head_dim]));
        if !ok {
            return Err(KernelError::bad(
                "attention",
                format!("{s:?} (q_heads a multiple of kv_heads, kv_seq ≥ seq) does not fit q of {q}, k/v of {kv:?}"),
            ));
        }
        Ok(())
    }

    /// Multiply-adds ×2 of the products this call runs (its FLOP count).
    pub fn forward_flops(&self) -> f64 {
        let s = self;
        // Each query row i sees i + 1 + (Tk − T) keys; two products (QKᵀ, PV) of D each.
        let visible: f64 = (0..s.seq).map(|i| (i + 1 + s.kv_seq - s.seq) as f64).sum();
        4.0 * s.batch as f64 * s.q_heads as f64 * s.head_dim as f64 * visible
    }
}

fn mul(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// Where the rows of one of q, k, v (or of their gradients) sit in a slice:
/// head `h` of row `r` (a flattened (batch, position)) starts at
/// `offset + r · stride + h · D`.
#[derive(Clone, Copy, Debug)]
struct Rows {
    offset: usize,
    stride: usize,
}

impl Rows {
    /// Heads side by side, one tensor per row: `(B, T, H, D)`.
    fn packed(heads: usize, d: usize) -> Rows {
        Rows { offset: 0, stride: heads * d }
    }

    fn at(self, row: usize, head: usize, d: usize) -> usize {
        self.offset + row * self.stride + head * d
    }
}

/// q, k, v of one call: three tensors, or three parts of one fused tensor.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    q: (&'a [f32], Rows),
    k: (&'a [f32], Rows),
    v: (&'a [f32], Rows),
}

impl<'a> Inputs<'a> {
    fn split(s: AttentionShape, q: &'a [f32], k: &'a [f32], v: &'a [f32]) -> Inputs<'a> {
        let kv = Rows::packed(s.kv_heads, s.head_dim);
        Inputs { q: (q, Rows::packed(s.q_heads, s.head_dim)), k: (k, kv), v: (v, kv) }
    }

    /// `[q | k | v]` rows in one tensor.
    fn fused(s: AttentionShape, qkv: &'a [f32]) -> Inputs<'a> {
        let (qw, kw) = (s.q_heads * s.head_dim, s.kv_heads * s.head_dim);
        let stride = qw + 2 * kw;
        let at = |offset| (qkv, Rows { offset, stride });
        Inputs { q: at(0), k: at(qw), v: at(qw + kw) }
    }
}

/// Where the backward writes dq, dk, dv.
enum Grads<'a> {
    Split { dq: &'a mut [f32], dk: &'a mut [f32], dv: &'a mut [f32] },
    Fused(&'a mut [f32]),
}

impl AttentionShape {
    /// The fused layout's checks: `qkv` holds `(B, T, (Hq + 2·Hkv)·D)` and
    /// the keys are the queries' positions (training: no cache).
    fn check_fused(&self, qkv: usize) -> Result<(), KernelError> {
        let s = *self;
        let width = s.q_heads.checked_add(2 * s.kv_heads).and_then(|h| h.checked_mul(s.head_dim));
        let ok = s.kv_heads > 0
            && s.q_heads.is_multiple_of(s.kv_heads)
            && s.kv_seq == s.seq
            && width.and_then(|w| mul(&[s.batch, s.seq, w])) == Some(qkv);
        if !ok {
            return Err(KernelError::bad(
                "attention",
                format!("{s:?} (kv_seq = seq, q_heads a multiple of kv_heads) does not fit a fused qkv of {qkv}"),
            ));
        }
        Ok(())
    }
}

vectorized! {
    /// Softmax of `row[..visible]` in place, zeros after; returns the row's log-sum-exp.
    fn masked_softmax(row: &mut [f32], visible: usize) -> f32 {
        let (live, masked) = row.split_at_mut(visible);
        masked.fill(0.0);
        let m = reduce::max(live);
        live.iter_mut().for_each(|v| *v = exp(*v - m));
        let sum = reduce::sum(live);
        let inv = 1.0 / sum;
        live.iter_mut().for_each(|v| *v *= inv);
        m + sum.ln()
    }
}

vectorized! {
    /// Turns a score row into `dS = P ⊙ (dP − δ)`, rebuilding `P = exp(S − lse)`;
    /// `s_row` becomes P, `dp_row` becomes dS. Masked entries become 0.
    fn softmax_grad_row(s_row: &mut [f32], dp_row: &mut [f32], visible: usize, lse: f32, delta: f32) {
        for j in 0..s_row.len().min(dp_row.len()) {
            let p = if j < visible { exp(s_row[j] - lse) } else { 0.0 };
            s_row[j] = p;
            dp_row[j] = p * (dp_row[j] - delta);
        }
    }
}

/// Rows `start..start + rows` of one head: a `(rows, D)` view with row stride `stride`.
fn head_rows<'a>(
    data: &'a [f32],
    base: usize,
    start: usize,
    rows: usize,
    d: usize,
    stride: usize,
) -> Result<MatRef<'a, f32>, KernelError> {
    MatRef::strided(&data[base + start * stride..], rows, d, stride, 1)
}

/// `out = attention(q, k, v)`; returns `lse` `(B, Hq, T)` for the backward.
pub fn causal_attention(
    shape: AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
) -> Result<Vec<f32>, KernelError> {
    shape.check(q.len(), &[k.len(), v.len()])?;
    if out.len() != q.len() {
        return Err(KernelError::bad("attention", "out must have q's size"));
    }
    forward(shape, Inputs::split(shape, q, k, v), out)
}

/// [`causal_attention`] with q, k, v as the `[q | k | v]` rows of one
/// `(B, T, (Hq + 2·Hkv)·D)` tensor; `out` is `(B, T, Hq, D)`.
pub fn causal_attention_qkv(shape: AttentionShape, qkv: &[f32], out: &mut [f32]) -> Result<Vec<f32>, KernelError> {
    shape.check_fused(qkv.len())?;
    if Some(out.len()) != mul(&[shape.batch, shape.seq, shape.q_heads, shape.head_dim]) {
        return Err(KernelError::bad("attention", "out must be (B, T, Hq, D)"));
    }
    forward(shape, Inputs::fused(shape, qkv), out)
}

fn forward(shape: AttentionShape, x: Inputs, out: &mut [f32]) -> Result<Vec<f32>, KernelError> {
    let AttentionShape { batch, seq, kv_seq, q_heads, kv_heads, head_dim: d } = shape;
    let (group, offset, scale) = (q_heads / kv_heads, kv_seq - seq, 1.0 / (d as f32).sqrt());
    let gemm = Gemm::new()?.single_threaded();
    let tasks: Vec<(usize, usize)> = (0..batch).flat_map(|b| (0..q_heads).map(move |h| (b, h))).collect();
    // Each task: one (batch, head); returns that head's O (T × D) and lse (T).
    let per_head: Vec<(Vec<f32>, Vec<f32>)> = tasks
        .par_iter()
        .map(|&(b, h)| -> Result<_, KernelError> {
            let ((q, qr), (k, kr), (v, vr)) = (x.q, x.k, x.v);
            let (qb, kb, vb) = (qr.at(b * seq, h, d), kr.at(b * kv_seq, h / group, d), vr.at(b * kv_seq, h / group, d));
            let (mut o, mut lse) = (vec![0.0f32; seq * d], vec![0.0f32; seq]);
            let mut s = vec![0.0f32; BLOCK_Q.min(seq) * kv_seq];
            for i0 in (0..seq).step_by(BLOCK_Q) {
                let (bq, kend) = (BLOCK_Q.min(seq - i0), (i0 + BLOCK_Q).min(seq) + offset);
                let s_blk = &mut s[..bq * kend];
                let qm = head_rows(q, qb, i0, bq, d, qr.stride)?;
                let km = head_rows(k, kb, 0, kend, d, kr.stride)?;
                gemm.run(scale, qm, km.t(), 0.0, MatMut::new(s_blk, bq, kend, kend)?)?; // (bq, kend)
                for (r, row) in s_blk.chunks_exact_mut(kend).enumerate() {
                    lse[i0 + r] = masked_softmax(row, i0 + r + offset + 1);
                }
                let vm = head_rows(v, vb, 0, kend, d, vr.stride)?;
                let o_blk = MatMut::new(&mut o[i0 * d..(i0 + bq) * d], bq, d, d)?;
                gemm.run(1.0, MatRef::new(s_blk, bq, kend, kend)?, vm, 0.0, o_blk)?;
                // (bq, D)
            }
            Ok((o, lse))
        })
        .collect::<Result<_, _>>()?;
    let mut lse_all = Vec::with_capacity(batch * q_heads * seq);
    for (&(b, h), (o, lse)) in tasks.iter().zip(&per_head) {
        for t in 0..seq {
            let dst = ((b * seq + t) * q_heads + h) * d;
            out[dst..dst + d].copy_from_slice(&o[t * d..(t + 1) * d]);
        }
        lse_all.extend_from_slice(lse);
    }
    Ok(lse_all)
}

/// Gradients of [`causal_attention`]: `dq`, `dk`, `dv` are overwritten.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention_backward(
    shape: AttentionShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) -> Result<(), KernelError> {
    shape.check(q.len(), &[k.len(), v.len(), dk.len(), dv.len()])?;
    if dq.len() != q.len() {
        return Err(KernelError::bad("attention_backward", "dq must have q's size"));
    }
    backward(shape, Inputs::split(shape, q, k, v), out, lse, dout, Grads::Split { dq, dk, dv })
}

/// Gradients of [`causal_attention_qkv`]: `dqkv` (the layout of `qkv`) is overwritten.
pub fn causal_attention_qkv_backward(
    shape: AttentionShape,
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    dqkv: &mut [f32],
) -> Result<(), KernelError> {
    shape.check_fused(qkv.len())?;
    if dqkv.len() != qkv.len() {
        return Err(KernelError::bad("attention_backward", "dqkv must have qkv's size"));
    }
    backward(shape, Inputs::fused(shape, qkv), out, lse, dout, Grads::Fused(dqkv))
}

fn backward(
    shape: AttentionShape,
    x: Inputs,
    out: &[f32],
    lse: &[f32],
    dout: &[f32],
    mut grads: Grads,
) -> Result<(), KernelError> {
    let AttentionShape { batch, seq, kv_seq, q_heads, kv_heads, head_dim: d } = shape;
    let nq = batch * seq * q_heads * d;
    if out.len() != nq || dout.len() != nq || lse.len() != batch * q_heads * seq {
        return Err(KernelError::bad("attention_backward", "out and dout must be (B, T, Hq, D) and lse (B, Hq, T)"));
    }
    let (group, offset, scale) = (q_heads / kv_heads, kv_seq - seq, 1.0 / (d as f32).sqrt());
    let gemm = Gemm::new()?.single_threaded();
    let ((q, qr), (k, kr), (v, vr)) = (x.q, x.k, x.v);
    // out and dout are (B, T, Hq, D) whatever the inputs' layout.
    let orows = Rows::packed(q_heads, d);
    let tasks: Vec<(usize, usize)> = (0..batch).flat_map(|b| (0..kv_heads).map(move |g| (b, g))).collect();
    // Each task: one (batch, kv head) and its `group` query heads; returns
    // dQ of each of those heads (T × D) and the summed dK, dV (Tk × D).
    type TaskGrads = (Vec<Vec<f32>>, Vec<f32>, Vec<f32>);
    let per_task: Vec<TaskGrads> = tasks
        .par_iter()
        .map(|&(b, g)| -> Result<TaskGrads, KernelError> {
            let (kb, vb) = (kr.at(b * kv_seq, g, d), vr.at(b * kv_seq, g, d));
            let (mut dk_acc, mut dv_acc) = (vec![0.0f32; kv_seq * d], vec![0.0f32; kv_seq * d]);
            let mut dqs = Vec::with_capacity(group);
            let rows = BLOCK_Q.min(seq) * kv_seq;
            let (mut s, mut dp) = (vec![0.0f32; rows], vec![0.0f32; rows]);
            for h in g * group..(g + 1) * group {
                let (qb, ob, os) = (qr.at(b * seq, h, d), orows.at(b * seq, h, d), orows.stride);
                let lse_h = &lse[(b * q_heads + h) * seq..(b * q_heads + h + 1) * seq];
                // δ_i = ⟨dO_i, O_i⟩
                let delta: Vec<f32> =
                    (0..seq).map(|t| reduce::dot(&dout[ob + t * os..][..d], &out[ob + t * os..][..d])).collect();
                let mut dq_h = vec![0.0f32; seq * d];
                for i0 in (0..seq).step_by(BLOCK_Q) {
                    let (bq, kend) = (BLOCK_Q.min(seq - i0), (i0 + BLOCK_Q).min(seq) + offset);
                    let (s_blk, dp_blk) = (&mut s[..bq * kend], &mut dp[..bq * kend]);
                    let qm = head_rows(q, qb, i0, bq, d, qr.stride)?;
                    let dom = head_rows(dout, ob, i0, bq, d, os)?;
                    let km = head_rows(k, kb, 0, kend, d, kr.stride)?;
                    let vm = head_rows(v, vb, 0, kend, d, vr.stride)?;
                    gemm.run(scale, qm, km.t(), 0.0, MatMut::new(s_blk, bq, kend, kend)?)?; // S
                    gemm.run(1.0, dom, vm.t(), 0.0, MatMut::new(dp_blk, bq, kend, kend)?)?; // dP
                    for (r, (s_row, dp_row)) in
                        s_blk.chunks_exact_mut(kend).zip(dp_blk.chunks_exact_mut(kend)).enumerate()
                    {
                        let i = i0 + r;
                        softmax_grad_row(s_row, dp_row, i + offset + 1, lse_h[i], delta[i]);
                    }
                    let (p, ds) =
                        (MatRef::new(&s[..bq * kend], bq, kend, kend)?, MatRef::new(&dp[..bq * kend], bq, kend, kend)?);
                    let dq_blk = MatMut::new(&mut dq_h[i0 * d..(i0 + bq) * d], bq, d, d)?;
                    gemm.run(scale, ds, km, 0.0, dq_blk)?; // dQ = s · dS K
                    gemm.run(scale, ds.t(), qm, 1.0, MatMut::new(&mut dk_acc[..kend * d], kend, d, d)?)?; // dK += s · dSᵀ Q
                    gemm.run(1.0, p.t(), dom, 1.0, MatMut::new(&mut dv_acc[..kend * d], kend, d, d)?)?;
                    // dV += Pᵀ dO
                }
                dqs.push(dq_h);
            }
            Ok((dqs, dk_acc, dv_acc))
        })
        .collect::<Result<_, _>>()?;
    // The gradients' layout is the inputs' (qr, kr, vr).
    // Row `at` of part 0 (dq), 1 (dk) or 2 (dv).
    let mut put = |part: usize, at: usize, src: &[f32]| {
        let dst = match &mut grads {
            Grads::Split { dq, .. } if part == 0 => &mut **dq,
            Grads::Split { dk, .. } if part == 1 => &mut **dk,
            Grads::Split { dv, .. } => &mut **dv,
            Grads::Fused(dqkv) => &mut **dqkv,
        };
        dst[at..at + d].copy_from_slice(src);
    };
    for (&(b, g), (dqs, dk_acc, dv_acc)) in tasks.iter().zip(&per_task) {
        for (j, dq_h) in dqs.iter().enumerate() {
            for t in 0..seq {
                put(0, qr.at(b * seq + t, g * group + j, d), &dq_h[t * d..(t + 1) * d]);
            }
        }
        for t in 0..kv_seq {
            put(1, kr.at(b * kv_seq + t, g, d), &dk_acc[t * d..(t + 1) * d]);
            put(2, vr.at(b * kv_seq + t, g, d), &dv_acc[t * d..(t + 1) * d]);
        }
    }
    Ok(())
}
