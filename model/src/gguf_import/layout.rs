//! What differs between architectures in a GGUF import: the `config.json`
//! written from the `{arch}.*` metadata, and each llama.cpp tensor's
//! transformers name and orientation.
//!
//! - Llama/Qwen2: llama.cpp's converter permutes q/k rows so that each
//!   head's rotary pairs are adjacent, `(H, 2, D/2, C) → (H, D/2, 2, C)`; the
//!   inverse swaps the two axes back. Llama 3.1+ carries its rotary scaling
//!   as the tensor `rope_freqs.weight`, which becomes `rope_scaling`.
//! - GPT-2: transformers stores its projections as Conv1D `(in, out)`;
//!   llama.cpp's converter transposes them to `(out, in)`, so they are
//!   transposed back. The converter also writes `output.weight` as a copy of
//!   the token embedding: where the two are still equal the head stays tied;
//!   where quantisation made them differ, the file's own head is kept untied.

use super::{err, meta_f64, meta_u64, rope_freqs, strings};
use crate::ModelError;
use serde_json::{json, Value as Json};
use tensor::gguf::{GgufFile, Value};
use tensor::{DType, Tensor};

/// The architecture of a GGUF file, as far as importing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    Llama,
    Qwen2,
    Gpt2,
}

impl Layout {
    /// From `general.architecture`; anything else is an error naming it.
    pub(super) fn of(g: &GgufFile) -> Result<Layout, ModelError> {
        match g.get("general.architecture").and_then(Value::as_str).unwrap_or("") {
            "llama" => Ok(Layout::Llama),
            "qwen2" => Ok(Layout::Qwen2),
            "gpt2" => Ok(Layout::Gpt2),
            other => Err(err(
                g.path(),
                "general.architecture",
                format!("{other:?} is not importable (hone imports llama, qwen2 and gpt2 GGUF files)"),
            )),
        }
    }

    fn arch(self) -> &'static str {
        match self {
            Layout::Llama => "llama",
            Layout::Qwen2 => "qwen2",
            Layout::Gpt2 => "gpt2",
        }
    }

    /// `config.json` for this file.
    pub(super) fn config(self, g: &GgufFile, dtype: DType) -> Result<Json, ModelError> {
        let a = |k: &str| format!("{}.{k}", self.arch());
        let (hidden, layers, heads) = (
            meta_u64(g, &a("embedding_length"))?,
            meta_u64(g, &a("block_count"))?,
            meta_u64(g, &a("attention.head_count"))?,
        );
        let vocab = strings(g, "tokenizer.ggml.tokens")?.len();
        let id = |k: &str| g.get(k).and_then(Value::as_u64);
        let torch_dtype = if dtype == DType::BF16 { "bfloat16" } else { "float32" };
        if self == Layout::Gpt2 {
            return Ok(json!({
                "architectures": ["GPT2LMHeadModel"],
                "model_type": "gpt2",
                "n_embd": hidden,
                "n_layer": layers,
                "n_head": heads,
                "n_inner": g.get(&a("feed_forward_length")).and_then(Value::as_u64).unwrap_or(4 * hidden),
                "n_positions": meta_u64(g, &a("context_length"))?,
                "layer_norm_epsilon": meta_f64(g, &a("attention.layer_norm_epsilon"), 1e-5),
                "activation_function": "gelu_new",
                "vocab_size": vocab,
                "tie_word_embeddings": tied_head(g)?,
                "bos_token_id": id("tokenizer.ggml.bos_token_id"),
                "eos_token_id": id("tokenizer.ggml.eos_token_id"),
                "torch_dtype": torch_dtype,
            }));
        }
        let kv_heads = g.get(&a("attention.head_count_kv")).and_then(Value::as_u64).unwrap_or(heads);
        let head_dim = g.get(&a("attention.key_length")).and_then(Value::as_u64).unwrap_or(hidden / heads);
        let theta = meta_f64(g, &a("rope.freq_base"), 10000.0);
        let mut config = json!({
            "architectures": [if self == Layout::Llama { "LlamaForCausalLM" } else { "Qwen2ForCausalLM" }],
            "model_type": self.arch(),
            "hidden_size": hidden,
            "intermediate_size": meta_u64(g, &a("feed_forward_length"))?,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": meta_u64(g, &a("context_length"))?,
            "rms_norm_eps": meta_f64(g, &a("attention.layer_norm_rms_epsilon"), 1e-6),
            "rope_theta": theta,
            "vocab_size": vocab,
            "tie_word_embeddings": g.info("output.weight").is_none(),
            "hidden_act": "silu",
            "bos_token_id": id("tokenizer.ggml.bos_token_id"),
            "eos_token_id": id("tokenizer.ggml.eos_token_id"),
            "torch_dtype": torch_dtype,
        });
        if g.info("rope_freqs.weight").is_some() {
            let factors = g.tensor("rope_freqs.weight")?.to_f32_vec();
            let scaling = rope_freqs::llama3_from_factors(&factors, theta as f32, head_dim as usize)
                .map_err(|detail| err(g.path(), "rope_freqs.weight", detail))?;
            if let Some(s) = scaling {
                config["rope_scaling"] = json!({
                    "rope_type": "llama3",
                    "factor": s.factor,
                    "low_freq_factor": s.low_freq_factor,
                    "high_freq_factor": s.high_freq_factor,
                    "original_max_position_embeddings": s.original_max_position_embeddings,
                });
            }
        }
        Ok(config)
    }

    /// The transformers name and tensor for the llama.cpp tensor `name`;
    /// `None` for a tensor transformers does not store (`rope_freqs`, a
    /// GPT-2 head that only repeats the embedding).
    pub(super) fn tensor(self, g: &GgufFile, name: &str) -> Result<Option<(String, Tensor)>, ModelError> {
        let unknown = || ModelError::Weight {
            dir: g.path().to_path_buf(),
            tensor: name.to_string(),
            detail: format!("has no Hugging Face counterpart hone knows for {}", self.arch()),
        };
        if name == "rope_freqs.weight" && self != Layout::Gpt2 {
            return Ok(None);
        }
        if self == Layout::Gpt2 && name == "output.weight" && tied_head(g)? {
            return Ok(None);
        }
        let hf = match self {
            Layout::Gpt2 => hf_name(&GPT2_NAMES, name),
            _ => hf_name(&LLAMA_NAMES, name),
        }
        .ok_or_else(unknown)?;
        let t = g.tensor(name)?;
        let a = |k: &str| format!("{}.{k}", self.arch());
        let t = match (self, module(name)) {
            (Layout::Llama, Some("attn_q")) => unpermute(&t, meta_u64(g, &a("attention.head_count"))? as usize)?,
            (Layout::Llama, Some("attn_k")) => {
                let heads = g.get(&a("attention.head_count_kv")).and_then(Value::as_u64);
                let heads = heads.map_or_else(|| meta_u64(g, &a("attention.head_count")), Ok)?;
                unpermute(&t, heads as usize)?
            }
            (Layout::Gpt2, Some("attn_qkv" | "attn_output" | "ffn_up" | "ffn_down")) if t.rank() == 2 => {
                t.transpose(0, 1)?.contiguous()
            }
            _ => t,
        };
        Ok(Some((hf, t)))
    }
}

/// The module part of a block tensor name: `blk.3.attn_q.weight` → `attn_q`.
fn module(name: &str) -> Option<&str> {
    let (_, part) = name.strip_prefix("blk.")?.split_once('.')?;
    Some(part.rsplit_once('.')?.0)
}

/// GPT-2: is the head tied, i.e. absent or equal to the embedding after dequantising?
fn tied_head(g: &GgufFile) -> Result<bool, ModelError> {
    if g.info("output.weight").is_none() {
        return Ok(true);
    }
    let (head, embed) = (g.tensor("output.weight")?, g.tensor("token_embd.weight")?);
    Ok(head.shape() == embed.shape() && head.to_f32_vec() == embed.to_f32_vec())
}

/// Undoes llama.cpp's rotary permutation of a q or k weight `(H·D, C)`.
fn unpermute(t: &Tensor, heads: usize) -> Result<Tensor, ModelError> {
    let (rows, cols) = (t.shape()[0], t.shape()[1]);
    let half = rows / heads / 2;
    // Stored as (H, D/2, 2, C); transformers' order is (H, 2, D/2, C).
    Ok(t.reshape(&[heads, half, 2, cols])?.permute(&[0, 2, 1, 3])?.contiguous().reshape(&[rows, cols])?)
}

/// How one layout renames llama.cpp's tensors to transformers': whole names,
/// then, inside `blk.N.`, module names (the `.weight`/`.bias` suffix is kept).
struct Names {
    whole: &'static [(&'static str, &'static str)],
    block_prefix: &'static str,
    modules: &'static [(&'static str, &'static str)],
}

const LLAMA_NAMES: Names = Names {
    whole: &[
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
    ],
    block_prefix: "model.layers.",
    modules: &[
        ("attn_norm", "input_layernorm"),
        ("ffn_norm", "post_attention_layernorm"),
        ("attn_q", "self_attn.q_proj"),
        ("attn_k", "self_attn.k_proj"),
        ("attn_v", "self_attn.v_proj"),
        ("attn_output", "self_attn.o_proj"),
        ("ffn_gate", "mlp.gate_proj"),
        ("ffn_up", "mlp.up_proj"),
        ("ffn_down", "mlp.down_proj"),
    ],
};

const GPT2_NAMES: Names = Names {
    whole: &[
        ("token_embd.weight", "transformer.wte.weight"),
        ("position_embd.weight", "transformer.wpe.weight"),
        ("output_norm.weight", "transformer.ln_f.weight"),
        ("output_norm.bias", "transformer.ln_f.bias"),
        ("output.weight", "lm_head.weight"),
    ],
    block_prefix: "transformer.h.",
    modules: &[
        ("attn_norm", "ln_1"),
        ("attn_qkv", "attn.c_attn"),
        ("attn_output", "attn.c_proj"),
        ("ffn_norm", "ln_2"),
        ("ffn_up", "mlp.c_fc"),
        ("ffn_down", "mlp.c_proj"),
    ],
};

/// transformers' name of a llama.cpp tensor name under `names`.
fn hf_name(names: &Names, name: &str) -> Option<String> {
    if let Some((_, hf)) = names.whole.iter().find(|(gguf, _)| *gguf == name) {
        return Some(hf.to_string());
    }
    let (layer, _) = name.strip_prefix("blk.")?.split_once('.')?;
    let kind = name.rsplit_once('.')?.1;
    let module = module(name)?;
    let (_, hf) = names.modules.iter().find(|(gguf, _)| *gguf == module)?;
    Some(format!("{}{layer}.{hf}.{kind}", names.block_prefix))
}
