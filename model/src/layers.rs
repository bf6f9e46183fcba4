//! The pieces of a decoder block, each a small struct with a `forward`:
//! [`Linear`] (with an optional LoRA adapter), [`Norm`], [`Mlp`] and
//! [`Attention`]. Shapes in comments: B batch, T positions, C hidden,
//! Hq/Hkv heads, D head size.

use crate::lora::Lora;
use crate::rope::Rope;
use autograd::{
    add, causal_attention, causal_attention_qkv, dropout_mask, gelu, layer_norm, linear, lora_linear, matmul, narrow,
    reshape, rms_norm, rope, swiglu, swiglu_linear, LoraLinear, Var,
};
use kernels::nn::attention::{causal_attention as attention_kernel, AttentionShape};
use tensor::{Tensor, TensorError};

/// A linear layer as Hugging Face names and stores it.
#[derive(Clone, Debug)]
pub struct Linear {
    /// The module path (`model.layers.0.self_attn.q_proj`), PEFT's key for adapters.
    pub path: String,
    /// `(out, in)`; or `(in, out)` for GPT-2's Conv1D (`conv1d = true`).
    pub weight: Var,
    pub bias: Option<Var>,
    pub conv1d: bool,
    pub lora: Option<Lora>,
}

impl Linear {
    /// `(out, in)` of the layer, whatever the storage order.
    pub fn dims(&self) -> (usize, usize) {
        let s = self.weight.shape();
        if self.conv1d {
            (s[1], s[0])
        } else {
            (s[0], s[1])
        }
    }

    /// `y = x·Wᵀ`: `(out, in)` weight, no bias, no adapter. Such a layer can
    /// be fused into the op before or after it (the LM head with the loss,
    /// Llama's down projection with SwiGLU).
    pub fn is_plain(&self) -> bool {
        !self.conv1d && self.bias.is_none() && self.lora.is_none()
    }

    /// `y = x·Wᵀ + b (+ LoRA)` (`x·W` for Conv1D); x is `(..., in)`.
    pub fn forward(&self, x: &Var, dropout_seed: u64) -> Result<Var, TensorError> {
        if let Some(l) = &self.lora {
            // One op for the layer and its adapter: the low-rank update is
            // accumulated into the output, never a separate (N, out) tensor.
            let mask = if l.dropout > 0.0 && autograd::is_grad_enabled() {
                Some(dropout_mask(&x.shape(), l.dropout, dropout_seed)?)
            } else {
                None
            };
            let parts = LoraLinear {
                weight: &self.weight,
                conv1d: self.conv1d,
                bias: self.bias.as_ref(),
                a: &l.a,
                b: &l.b,
                scale: l.scale,
                mask,
            };
            return lora_linear(x, parts);
        }
        if self.conv1d {
            // Conv1D stores W as (in, out): y = x·W + b.
            let y = matmul(x, &self.weight)?;
            match &self.bias {
                Some(b) => add(&y, b),
                None => Ok(y),
            }
        } else {
            linear(x, &self.weight, self.bias.as_ref())
        }
    }
}

/// LayerNorm (GPT-2) or RMSNorm (Llama).
#[derive(Clone, Debug)]
pub enum Norm {
    Layer { weight: Var, bias: Var, eps: f32 },
    Rms { weight: Var, eps: f32 },
}

impl Norm {
    pub fn forward(&self, x: &Var) -> Result<Var, TensorError> {
        match self {
            Norm::Layer { weight, bias, eps } => layer_norm(x, weight, bias, *eps),
            Norm::Rms { weight, eps } => rms_norm(x, weight, *eps),
        }
    }
}

/// GPT-2's `gelu(x·W_fc)·W_proj` or Llama's `(silu(x·W_gate) ⊙ x·W_up)·W_down`.
#[derive(Clone, Debug)]
pub enum Mlp {
    Gelu { fc: Linear, proj: Linear },
    SwiGlu { gate: Linear, up: Linear, down: Linear },
}

impl Mlp {
    /// Whether the backward keeps the activation's output (the down
    /// projection's input) besides its inputs. SwiGLU into a plain down
    /// projection runs as one op that recomputes `silu(gate) ⊙ up` instead
    /// (`autograd::swiglu_linear`, a third of the MLP's activations);
    /// GELU's output is kept.
    pub fn keeps_product(&self) -> bool {
        match self {
            Mlp::Gelu { .. } => true,
            Mlp::SwiGlu { down, .. } => !down.is_plain(),
        }
    }

    pub fn forward(&self, x: &Var, seed: u64) -> Result<Var, TensorError> {
        match self {
            Mlp::Gelu { fc, proj } => proj.forward(&gelu(&fc.forward(x, seed)?)?, seed + 1),
            Mlp::SwiGlu { gate, up, down } => {
                let (g, u) = (gate.forward(x, seed)?, up.forward(x, seed + 1)?);
                match self.keeps_product() {
                    false => swiglu_linear(&g, &u, &down.weight),
                    true => down.forward(&swiglu(&g, &u)?, seed + 2),
                }
            }
        }
    }
}

/// Projections of an attention layer.
#[derive(Clone, Debug)]
pub enum Projections {
    /// GPT-2: one Conv1D to `[q | k | v]`, each C wide.
    Fused { c_attn: Linear },
    /// Llama/Qwen2: separate q (Hq·D), k and v (Hkv·D).
    Split { q: Linear, k: Linear, v: Linear },
}

/// Causal self-attention: projections, optional rotary, fused attention, output projection.
#[derive(Clone, Debug)]
pub struct Attention {
    pub proj: Projections,
    pub o: Linear,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// One layer's cached keys and values, each `(len, Hkv, D)` flattened.
#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

/// Keys and values of the positions seen so far, per layer (batch 1), for generation.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    /// Positions cached.
    pub len: usize,
}

impl Attention {
    /// `x` `(B, T, C)` at positions `start..start+T` → `(B, T, C)`. With a
    /// cache (generation, batch 1, no graph), the new keys and values are
    /// appended and the queries attend to every cached position.
    pub fn forward(
        &self,
        x: &Var,
        rope_tables: Option<&(Tensor, Tensor)>,
        cache: Option<(&mut LayerCache, usize)>,
        seed: u64,
    ) -> Result<Var, TensorError> {
        let s = x.shape();
        let (b, t) = (s[0], s[1]);
        let (hq, hkv, d) = (self.q_heads, self.kv_heads, self.head_dim);
        if let (Projections::Fused { c_attn }, None, None) = (&self.proj, rope_tables, &cache) {
            // Training and scoring with GPT-2's fused projection: attention
            // reads q, k, v inside its (B, T, 3C) output, no split.
            let out = causal_attention_qkv(&c_attn.forward(x, seed)?, hq, hkv)?; // (B, T, Hq, D)
            return self.o.forward(&reshape(&out, &[b, t, hq * d])?, seed + 3);
        }
        let (q, k, v) = match &self.proj {
            Projections::Fused { c_attn } => {
                let qkv = c_attn.forward(x, seed)?; // (B, T, 3C)
                let c = hq * d;
                (narrow(&qkv, 2, 0, c)?, narrow(&qkv, 2, c, c)?, narrow(&qkv, 2, 2 * c, c)?)
            }
            Projections::Split { q, k, v } => (q.forward(x, seed)?, k.forward(x, seed + 1)?, v.forward(x, seed + 2)?),
        };
        let mut q = reshape(&q, &[b, t, hq, d])?;
        let mut k = reshape(&k, &[b, t, hkv, d])?;
        let v = reshape(&v, &[b, t, hkv, d])?;
        if let Some((cos, sin)) = rope_tables {
            q = rope(&q, cos, sin)?;
            k = rope(&k, cos, sin)?;
        }
        let out = match cache {
            None => causal_attention(&q, &k, &v)?,
            Some((kv, past)) => {
                if b != 1 {
                    return Err(TensorError::shape("attention", "the KV cache holds one sequence (batch 1)"));
                }
                kv.keys.extend_from_slice(&k.value().f32_data());
                kv.values.extend_from_slice(&v.value().f32_data());
                let shape =
                    AttentionShape { batch: 1, seq: t, kv_seq: past + t, q_heads: hq, kv_heads: hkv, head_dim: d };
                let mut out = vec![0.0; t * hq * d];
                attention_kernel(shape, &q.value().f32_data(), &kv.keys, &kv.values, &mut out)?;
                Var::constant(Tensor::from_vec(out, &[b, t, hq, d])?)
            }
        };
        self.o.forward(&reshape(&out, &[b, t, hq * d])?, seed + 3)
    }
}

/// A pre-norm decoder block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))`.
#[derive(Clone, Debug)]
pub struct Block {
    pub norm1: Norm,
    pub attn: Attention,
    pub norm2: Norm,
    pub mlp: Mlp,
}

impl Block {
    /// The two norms and every linear layer, borrowed at once (for naming
    /// parameters, attaching adapters, merging).
    pub fn parts_mut(&mut self) -> (&mut Norm, &mut Norm, Vec<&mut Linear>) {
        let mut linears = Vec::with_capacity(7);
        match &mut self.attn.proj {
            Projections::Fused { c_attn } => linears.push(c_attn),
            Projections::Split { q, k, v } => linears.extend([q, k, v]),
        }
        linears.push(&mut self.attn.o);
        match &mut self.mlp {
            Mlp::Gelu { fc, proj } => linears.extend([fc, proj]),
            Mlp::SwiGlu { gate, up, down } => linears.extend([gate, up, down]),
        }
        (&mut self.norm1, &mut self.norm2, linears)
    }

    /// The block's Vars that need a gradient (for [`autograd::checkpoint`]).
    pub fn trainable_vars(&self) -> Vec<Var> {
        let mut me = self.clone();
        let (norm1, norm2, linears) = me.parts_mut();
        let mut out = Vec::new();
        for norm in [norm1, norm2] {
            match norm {
                Norm::Layer { weight, bias, .. } => out.extend([weight.clone(), bias.clone()]),
                Norm::Rms { weight, .. } => out.push(weight.clone()),
            }
        }
        for lin in linears {
            out.push(lin.weight.clone());
            out.extend(lin.bias.clone());
            if let Some(lora) = &lin.lora {
                out.extend([lora.a.clone(), lora.b.clone()]);
            }
        }
        out.retain(|v| v.requires_grad());
        out
    }

    pub fn forward(
        &self,
        x: &Var,
        rope_tables: Option<&(Tensor, Tensor)>,
        cache: Option<(&mut LayerCache, usize)>,
        seed: u64,
    ) -> Result<Var, TensorError> {
        let x = add(x, &self.attn.forward(&self.norm1.forward(x)?, rope_tables, cache, seed)?)?;
        add(&x, &self.mlp.forward(&self.norm2.forward(&x)?, seed + 10)?)
    }
}

/// Rotary tables for positions `start..start+len`, or `None` without rotary (GPT-2).
pub fn rope_tables(rope: Option<&Rope>, start: usize, len: usize) -> Result<Option<(Tensor, Tensor)>, TensorError> {
    rope.map(|r| r.tables(start, len)).transpose()
}
