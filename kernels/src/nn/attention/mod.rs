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
//! `P = exp(S − lse)` block by block ([`backward`]). Tasks are
//! (batch, head) pairs in the forward ([`forward`]) and (batch, key/value
//! head) pairs in the backward, so the gradients of a shared K/V head are
//! summed by one task in a fixed order: the same bits for any thread count.
//!
//! The products run tile by tile on the GEMM's microkernel ([`tiles`]):
//! K and V are packed once per head rather than once per product, and the
//! causal mask skips whole tiles, so a block computes about the visible
//! half of its scores rather than all of them. At B = 4, T = 128, D = 64
//! with SmolLM2's heads (9 over 3) on Zen 4, forward + backward ran about
//! 1.8 times as fast as the same blocks as whole `Gemm` calls (one thread
//! and two). The products are f32 in both
//! precisions: `P` and `dS` are never rounded to bf16.

mod backward;
mod forward;
mod tiles;

use crate::gemm::MatRef;
use crate::KernelError;
use backward::{backward, Saved};
use forward::forward;
use tiles::Disjoint;

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
    let x = Inputs::split(shape, q, k, v);
    let (dq, dk, dv) = (Disjoint::new(dq), Disjoint::new(dk), Disjoint::new(dv));
    backward(shape, x, Saved { out, lse, dout }, [(&dq, x.q.1), (&dk, x.k.1), (&dv, x.v.1)])
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
    let x = Inputs::fused(shape, qkv);
    // One slice, three row layouts: dq, dk, dv are its [q | k | v] columns.
    let all = Disjoint::new(dqkv);
    backward(shape, x, Saved { out, lse, dout }, [(&all, x.q.1), (&all, x.k.1), (&all, x.v.1)])
}
