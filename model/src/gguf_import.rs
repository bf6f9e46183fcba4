//! `hone import-gguf`: a llama.cpp GGUF file to a Hugging Face model directory.
//!
//! - `config.json` from the `{arch}.*` metadata;
//! - `model.safetensors`: every tensor dequantised (see `kernels::quant`),
//!   renamed to transformers' names, and for Llama the q/k rows put back in
//!   transformers' order: llama.cpp's converter permutes them so that each
//!   head's rotary pairs are adjacent, `(H, 2, D/2, C) → (H, D/2, 2, C)`; the
//!   inverse swaps the two axes back;
//! - `tokenizer.json` from `tokenizer.ggml.*` (byte-level BPE: tokens,
//!   merges, token types, and the pre-tokenizer named by `tokenizer.ggml.pre`),
//!   `tokenizer_config.json` (special tokens, chat template) and `generation_config.json`.

use crate::ModelError;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use tensor::gguf::{GgufFile, Value};
use tensor::{DType, Tensor};

fn err(file: &Path, field: &str, detail: impl Into<String>) -> ModelError {
    ModelError::config(file, field, detail)
}

fn meta_u64(g: &GgufFile, key: &str) -> Result<u64, ModelError> {
    g.get(key).and_then(Value::as_u64).ok_or_else(|| err(g.path(), key, "missing or not an integer"))
}

fn meta_f64(g: &GgufFile, key: &str, default: f64) -> f64 {
    g.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn strings(g: &GgufFile, key: &str) -> Result<Vec<String>, ModelError> {
    let a = g.get(key).and_then(Value::as_array).ok_or_else(|| err(g.path(), key, "missing or not a list"))?;
    a.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| err(g.path(), key, "holds a non-string"))).collect()
}

/// Undoes llama.cpp's rotary permutation of a q or k weight `(H·D, C)`.
fn unpermute(t: &Tensor, heads: usize) -> Result<Tensor, ModelError> {
    let (rows, cols) = (t.shape()[0], t.shape()[1]);
    let half = rows / heads / 2;
    // Stored as (H, D/2, 2, C); transformers' order is (H, 2, D/2, C).
    Ok(t.reshape(&[heads, half, 2, cols])?.permute(&[0, 2, 1, 3])?.contiguous().reshape(&[rows, cols])?)
}

/// The pre-tokenizer of tokenizer.json for llama.cpp's `tokenizer.ggml.pre` name.
fn pre_tokenizer(file: &Path, pre: &str) -> Result<Json, ModelError> {
    let byte_level =
        |regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        "gpt2" | "default" => byte_level(true),
        "smollm" => {
            json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]})
        }
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        other => {
            return Err(err(
                file,
                "tokenizer.ggml.pre",
                format!("{other:?} is not a pre-tokenizer hone knows (gpt2, smollm, llama-bpe, qwen2)"),
            ))
        }
    })
}

/// Writes the tokenizer files of `g` into `out`.
fn write_tokenizer(g: &GgufFile, out: &Path) -> Result<(), ModelError> {
    let file = g.path();
    let kind = g.get("tokenizer.ggml.model").and_then(Value::as_str).unwrap_or("");
    if kind != "gpt2" {
        return Err(err(
            file,
            "tokenizer.ggml.model",
            format!("{kind:?}: hone imports byte-level BPE tokenizers (gpt2)"),
        ));
    }
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let merges = strings(g, "tokenizer.ggml.merges")?;
    let types: Vec<u64> = g
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(1)).collect())
        .unwrap_or_else(|| vec![1; tokens.len()]);
    let pre = g.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let id = |key: &str| g.get(key).and_then(Value::as_u64).map(|v| v as usize).filter(|&i| i < tokens.len());
    let (bos, eos, pad, unk) = (
        id("tokenizer.ggml.bos_token_id"),
        id("tokenizer.ggml.eos_token_id"),
        id("tokenizer.ggml.padding_token_id"),
        id("tokenizer.ggml.unknown_token_id"),
    );
    let add_bos = matches!(g.get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(true)));
    // Token types: 3 = control (special), 4 = user-defined (added, not special).
    let added: Vec<Json> = types
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == 3 || t == 4)
        .map(|(i, &t)| json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false, "rstrip": false, "normalized": t == 4, "special": t == 3}))
        .collect();
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), json!(i))).collect();
    let post = match (add_bos, bos) {
        (true, Some(b)) => json!({"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": tokens[b], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": tokens[b], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": tokens[b], "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {tokens[b].clone(): {"id": tokens[b], "ids": [b], "tokens": [tokens[b]]}}}),
        _ => json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}),
    };
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": pre_tokenizer(file, pre)?,
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges},
    });
    let name = |i: Option<usize>| i.map(|i| json!(tokens[i])).unwrap_or(Json::Null);
    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": name(bos), "eos_token": name(eos),
        "pad_token": name(pad), "unk_token": name(unk), "add_bos_token": add_bos, "clean_up_tokenization_spaces": false,
    });
    if let Some(t) = g.get("tokenizer.chat_template").and_then(Value::as_str) {
        config["chat_template"] = json!(t);
    }
    write_json(&out.join("tokenizer.json"), &tokenizer)?;
    write_json(&out.join("tokenizer_config.json"), &config)?;
    write_json(
        &out.join("generation_config.json"),
        &json!({"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}),
    )
}

fn write_json(path: &Path, v: &Json) -> Result<(), ModelError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(v).expect("JSON"))
        .map_err(|source| ModelError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })
}

/// Imports `gguf` into the Hugging Face directory `out`, weights stored as `dtype`.
pub fn import_gguf(gguf: &Path, out: &Path, dtype: DType) -> Result<(), ModelError> {
    let g = GgufFile::open(gguf)?;
    let file = g.path().to_path_buf();
    let arch = g.get("general.architecture").and_then(Value::as_str).unwrap_or("").to_string();
    let model_type = match arch.as_str() {
        "llama" => "llama",
        "qwen2" => "qwen2",
        other => {
            return Err(err(
                &file,
                "general.architecture",
                format!("{other:?} is not importable yet (hone imports llama and qwen2 GGUF files)"),
            ))
        }
    };
    if g.info("rope_freqs.weight").is_some() {
        return Err(err(&file, "rope_freqs.weight", "scaled rotary frequencies (Llama 3.1+) are not imported yet"));
    }
    let a = |k: &str| format!("{arch}.{k}");
    let (hidden, layers, heads) = (
        meta_u64(&g, &a("embedding_length"))?,
        meta_u64(&g, &a("block_count"))?,
        meta_u64(&g, &a("attention.head_count"))?,
    );
    let kv_heads = g.get(&a("attention.head_count_kv")).and_then(Value::as_u64).unwrap_or(heads);
    let vocab = strings(&g, "tokenizer.ggml.tokens")?.len();
    let tied = g.info("output.weight").is_none();
    let id = |k: &str| g.get(k).and_then(Value::as_u64);
    let config = json!({
        "architectures": [if model_type == "llama" { "LlamaForCausalLM" } else { "Qwen2ForCausalLM" }],
        "model_type": model_type,
        "hidden_size": hidden,
        "intermediate_size": meta_u64(&g, &a("feed_forward_length"))?,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": g.get(&a("attention.key_length")).and_then(Value::as_u64).unwrap_or(hidden / heads),
        "max_position_embeddings": meta_u64(&g, &a("context_length"))?,
        "rms_norm_eps": meta_f64(&g, &a("attention.layer_norm_rms_epsilon"), 1e-6),
        "rope_theta": meta_f64(&g, &a("rope.freq_base"), 10000.0),
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "bos_token_id": id("tokenizer.ggml.bos_token_id"),
        "eos_token_id": id("tokenizer.ggml.eos_token_id"),
        "torch_dtype": if dtype == DType::BF16 { "bfloat16" } else { "float32" },
    });
    std::fs::create_dir_all(out).map_err(|source| ModelError::Io { path: out.to_path_buf(), source })?;
    write_json(&out.join("config.json"), &config)?;
    write_tokenizer(&g, out)?;

    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for info in &g.tensors {
        let hf = hf_name(&info.name).ok_or_else(|| ModelError::Weight {
            dir: file.clone(),
            tensor: info.name.clone(),
            detail: "has no Hugging Face counterpart hone knows".into(),
        })?;
        let mut t = g.tensor(&info.name)?;
        if model_type == "llama" && info.name.ends_with("attn_q.weight") {
            t = unpermute(&t, heads as usize)?;
        } else if model_type == "llama" && info.name.ends_with("attn_k.weight") {
            t = unpermute(&t, kv_heads as usize)?;
        }
        let t = match dtype {
            DType::F32 => t,
            DType::BF16 => Tensor::from_bf16(t.to_f32_vec().into_iter().map(half_bf16).collect(), t.shape())?,
            DType::F16 => Tensor::from_f16(t.to_f32_vec().into_iter().map(half::f16::from_f32).collect(), t.shape())?,
        };
        tensors.push((hf, t));
    }
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let meta = std::collections::BTreeMap::from([("format".to_string(), "pt".to_string())]);
    tensor::safetensors::save(out.join("model.safetensors"), &refs, &meta)?;
    Ok(())
}

fn half_bf16(x: f32) -> half::bf16 {
    half::bf16::from_f32(x)
}

/// transformers' name of a llama.cpp tensor name (Llama/Qwen2 layout).
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let (module, kind) = part.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// A model path as given to `--model`: a directory as is; a `.gguf` file
/// imported once into `cache/<file stem>` (reused when already there).
pub fn resolve_model(path: &Path, cache: &Path) -> Result<PathBuf, ModelError> {
    if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
        return Ok(path.to_path_buf());
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let dir = cache.join(stem);
    if !dir.join("model.safetensors").is_file() {
        let tmp = cache.join(format!(".{stem}.importing"));
        let _ = std::fs::remove_dir_all(&tmp);
        import_gguf(path, &tmp, DType::BF16)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|source| ModelError::Io { path: dir.clone(), source })?;
    }
    Ok(dir)
}
