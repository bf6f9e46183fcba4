//! Causal self-attention with grouped-query heads, fused.
//!
//! `q` is `(B, T, Hq, D)`, `k` and `v` are `(B, T, Hkv, D)` with `Hq` a
//! multiple of `Hkv`; the result is `(B, T, Hq, D)`. Per head, `s = 1/√D`:
//! ```text
//! S = s·Q Kᵀ,  P = softmax(S + causal mask),  O = P V
//! ∂L/∂V = Pᵀ G,  dP = G Vᵀ,  dS = P ⊙ (dP − rowsum(G ⊙ O)),  ∂L/∂Q = s·dS K,  ∂L/∂K = s·dSᵀ Q
//! ```
//! The forward saves q, k, v, the output and one log-sum-exp per score row;
//! P is rebuilt in blocks during the backward (see `kernels::nn::attention`).
//!
//! [`causal_attention_qkv`] is the same op on one `(B, T, (Hq + 2·Hkv)·D)`
//! input whose rows are `[q | k | v]`, GPT-2's `c_attn` output: splitting
//! it into three Vars would copy each part going in, and give back three
//! zero-padded full-size gradients to sum; this reads the parts in place
//! and writes their gradient in place.

use crate::Var;
use kernels::nn::attention::{
    causal_attention as forward, causal_attention_backward, causal_attention_qkv as forward_qkv,
    causal_attention_qkv_backward, AttentionShape,
};
use tensor::{Tensor, TensorError};

pub fn causal_attention(q: &Var, k: &Var, v: &Var) -> Result<Var, TensorError> {
    let (qv, kv, vv) = (q.value(), k.value(), v.value());
    let shape = match (qv.shape(), kv.shape()) {
        (&[batch, seq, q_heads, head_dim], &[b2, t2, kv_heads, d2])
            if b2 == batch && t2 == seq && d2 == head_dim && vv.shape() == kv.shape() =>
        {
            AttentionShape { batch, seq, kv_seq: seq, q_heads, kv_heads, head_dim }
        }
        _ => {
            return Err(TensorError::Shape {
                op: "causal_attention",
                detail: format!(
                    "q must be (B, T, Hq, D) and k, v (B, T, Hkv, D); got {:?}, {:?}, {:?}",
                    qv.shape(),
                    kv.shape(),
                    vv.shape()
                ),
            })
        }
    };
    let mut out = vec![0.0; qv.numel()];
    let lse = forward(shape, &qv.f32_data(), &kv.f32_data(), &vv.f32_data(), &mut out)?;
    let value = Tensor::from_vec(out, qv.shape())?;
    let saved_out = value.clone();
    Ok(Var::from_op(
        "causal_attention",
        value,
        &[q, k, v],
        Box::new(move |g, needs| {
            let (mut dq, mut dk, mut dv) = (vec![0.0; qv.numel()], vec![0.0; kv.numel()], vec![0.0; vv.numel()]);
            let (qd, kd, vd) = (qv.f32_data(), kv.f32_data(), vv.f32_data());
            let (od, gd) = (saved_out.f32_data(), g.f32_data());
            causal_attention_backward(shape, &qd, &kd, &vd, &od, &lse, &gd, &mut dq, &mut dk, &mut dv)?;
            let t = |d: Vec<f32>, s: &Tensor, need: bool| {
                if need {
                    Tensor::from_vec(d, s.shape()).map(Some)
                } else {
                    Ok(None)
                }
            };
            Ok(vec![t(dq, &qv, needs[0])?, t(dk, &kv, needs[1])?, t(dv, &vv, needs[2])?])
        }),
    ))
}

/// Attention over `qkv` `(B, T, (Hq + 2·Hkv)·D)`, each row `[q | k | v]`,
/// with `q_heads` query and `kv_heads` key/value heads; the result is
/// `(B, T, Hq, D)`, as [`causal_attention`]'s on the three parts (the same bits).
pub fn causal_attention_qkv(qkv: &Var, q_heads: usize, kv_heads: usize) -> Result<Var, TensorError> {
    let xv = qkv.value();
    let heads = q_heads + 2 * kv_heads;
    let shape = match xv.shape() {
        &[batch, seq, width] if kv_heads > 0 && width > 0 && width.is_multiple_of(heads) => {
            AttentionShape { batch, seq, kv_seq: seq, q_heads, kv_heads, head_dim: width / heads }
        }
        s => {
            return Err(TensorError::Shape {
                op: "causal_attention_qkv",
                detail: format!("qkv must be (B, T, ({q_heads} + 2·{kv_heads})·D); got {s:?}"),
            })
        }
    };
    let out_shape = [shape.batch, shape.seq, q_heads, shape.head_dim];
    let mut out = vec![0.0; out_shape.iter().product()];
    let lse = forward_qkv(shape, &xv.f32_data(), &mut out)?;
    let value = Tensor::from_vec(out, &out_shape)?;
    let saved_out = value.clone();
    Ok(Var::from_op(
        "causal_attention",
        value,
        &[qkv],
        Box::new(move |g, _needs| {
            let mut dqkv = vec![0.0; xv.numel()];
            causal_attention_qkv_backward(
                shape,
                &xv.f32_data(),
                &saved_out.f32_data(),
                &lse,
                &g.f32_data(),
                &mut dqkv,
            )?;
            Ok(vec![Some(Tensor::from_vec(dqkv, xv.shape())?)])
        }),
    ))
}
