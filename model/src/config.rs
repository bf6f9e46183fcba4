//! `config.json` read into one [`Config`] for every supported architecture.
//!
//! GPT-2 and Llama spell the same things differently (`n_embd` and
//! `hidden_size`, `n_layer` and `num_hidden_layers`, ...); both are read into
//! the same fields here, so the rest of the crate never looks at JSON.
//! A missing or mistyped field is an error naming the file and the field.

use crate::ModelError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The architectures hone implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// GPT-2: learned positions, LayerNorm, GELU-tanh MLP, fused Conv1D `c_attn`, tied head.
    Gpt2,
    /// Llama, SmolLM2, TinyLlama, Llama 3.x: RMSNorm, RoPE, grouped-query attention, SwiGLU.
    Llama,
    /// Qwen2: the Llama layout with biases on q, k and v.
    Qwen2,
}

/// Llama 3's frequency-dependent rotary scaling (`rope_scaling.rope_type = "llama3"`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

/// Everything the model code needs from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub max_positions: usize,
    pub norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: Option<Llama3Scaling>,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k, v projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// A bias on the output projection (Llama's `attention_bias`).
    pub o_bias: bool,
    /// Biases on the MLP projections (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

struct Fields<'a> {
    file: PathBuf,
    v: &'a Value,
}

impl Fields<'_> {
    fn get(&self, names: &[&str]) -> Option<&Value> {
        names.iter().find_map(|n| self.v.get(*n).filter(|v| !v.is_null()))
    }
    fn usize(&self, names: &[&str]) -> Result<usize, ModelError> {
        match self.get(names) {
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| self.err(names[0], format!("expected an integer, found {v}"))),
            None => Err(self.err(names[0], "missing")),
        }
    }
    fn usize_or(&self, names: &[&str], default: usize) -> Result<usize, ModelError> {
        if self.get(names).is_some() {
            self.usize(names)
        } else {
            Ok(default)
        }
    }
    fn f32_or(&self, names: &[&str], default: f32) -> Result<f32, ModelError> {
        match self.get(names) {
            Some(v) => {
                v.as_f64().map(|x| x as f32).ok_or_else(|| self.err(names[0], format!("expected a number, found {v}")))
            }
            None => Ok(default),
        }
    }
    fn bool_or(&self, name: &str, default: bool) -> Result<bool, ModelError> {
        match self.get(&[name]) {
            Some(v) => v.as_bool().ok_or_else(|| self.err(name, format!("expected true or false, found {v}"))),
            None => Ok(default),
        }
    }
    /// A token id or a list of them (`eos_token_id` may be either).
    fn ids(&self, name: &str) -> Result<Vec<u32>, ModelError> {
        match self.get(&[name]) {
            None => Ok(vec![]),
            Some(Value::Number(n)) => Ok(n.as_u64().map(|x| vec![x as u32]).unwrap_or_default()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().map(|x| x as u32).ok_or_else(|| self.err(name, "expected token ids")))
                .collect(),
            Some(v) => Err(self.err(name, format!("expected a token id or a list, found {v}"))),
        }
    }
    fn err(&self, field: &str, detail: impl Into<String>) -> ModelError {
        ModelError::config(&self.file, field, detail)
    }
}

impl Config {
    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Config, ModelError> {
        let file = dir.join("config.json");
        let text = std::fs::read_to_string(&file).map_err(|source| ModelError::Io { path: file.clone(), source })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::config(&file, "(file)", format!("not valid JSON: {e}")))?;
        Config::from_json(&file, &v)
    }

    /// Parses a config already read as JSON (`file` is for messages).
    pub fn from_json(file: &Path, v: &Value) -> Result<Config, ModelError> {
        let f = Fields { file: file.to_path_buf(), v };
        let model_type = match f.get(&["model_type"]) {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(f.err("model_type", "missing (it selects the architecture)")),
        };
        let arch = match model_type.as_str() {
            "gpt2" => Arch::Gpt2,
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            _ => return Err(ModelError::Unsupported { file: file.to_path_buf(), model_type }),
        };
        let gpt2 = arch == Arch::Gpt2;
        let hidden_size = f.usize(&["hidden_size", "n_embd"])?;
        let num_heads = f.usize(&["num_attention_heads", "n_head"])?;
        if num_heads == 0 || (!hidden_size.is_multiple_of(num_heads) && f.get(&["head_dim"]).is_none()) {
            return Err(
                f.err("num_attention_heads", format!("{num_heads} heads do not divide hidden size {hidden_size}"))
            );
        }
        let num_kv_heads = if gpt2 { num_heads } else { f.usize_or(&["num_key_value_heads"], num_heads)? };
        if num_kv_heads == 0 || !num_heads.is_multiple_of(num_kv_heads) {
            return Err(f.err("num_key_value_heads", format!("{num_kv_heads} does not divide {num_heads} query heads")));
        }
        let head_dim = f.usize_or(&["head_dim"], hidden_size / num_heads)?;
        let intermediate_size =
            if gpt2 { f.usize_or(&["n_inner"], 4 * hidden_size)? } else { f.usize(&["intermediate_size"])? };
        if gpt2 {
            let act = f.get(&["activation_function"]).and_then(Value::as_str).unwrap_or("gelu_new");
            if !matches!(act, "gelu_new" | "gelu_pytorch_tanh") {
                return Err(
                    f.err("activation_function", format!("{act:?}: hone implements GPT-2's tanh GELU (gelu_new)"))
                );
            }
        } else if let Some(act) = f.get(&["hidden_act"]).and_then(Value::as_str) {
            if act != "silu" {
                return Err(f.err("hidden_act", format!("{act:?}: hone implements Llama's SwiGLU with silu")));
            }
        }
        // transformers ≥ 5 writes `rope_parameters` (theta and scaling together);
        // earlier versions, and most checkpoints, `rope_theta` and `rope_scaling`.
        let rope_params = f.get(&["rope_parameters"]);
        let rope_theta = match rope_params.and_then(|p| p.get("rope_theta")) {
            Some(t) => t.as_f64().ok_or_else(|| f.err("rope_parameters", "rope_theta must be a number"))? as f32,
            None => f.f32_or(&["rope_theta"], 10000.0)?,
        };
        let rope_scaling = match f.get(&["rope_scaling", "rope_parameters"]) {
            None => None,
            Some(s) => {
                let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str).unwrap_or("");
                if kind == "default" || (kind.is_empty() && s.get("factor").is_none()) {
                    None
                } else if kind != "llama3" {
                    return Err(
                        f.err("rope_scaling", format!("rope_type {kind:?} is not supported (hone implements llama3)"))
                    );
                } else {
                    let sf = Fields { file: file.to_path_buf(), v: s };
                    Some(Llama3Scaling {
                        factor: sf.f32_or(&["factor"], 8.0)?,
                        low_freq_factor: sf.f32_or(&["low_freq_factor"], 1.0)?,
                        high_freq_factor: sf.f32_or(&["high_freq_factor"], 4.0)?,
                        original_max_position_embeddings: sf.usize(&["original_max_position_embeddings"])?,
                    })
                }
            }
        };
        let attention_bias = f.bool_or("attention_bias", false)?;
        Ok(Config {
            arch,
            vocab_size: f.usize(&["vocab_size"])?,
            hidden_size,
            num_layers: f.usize(&["num_hidden_layers", "n_layer"])?,
            num_heads,
            num_kv_heads,
            head_dim,
            intermediate_size,
            max_positions: f.usize_or(&["max_position_embeddings", "n_positions"], 2048)?,
            norm_eps: f.f32_or(&["rms_norm_eps", "layer_norm_epsilon"], if gpt2 { 1e-5 } else { 1e-6 })?,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: f.bool_or("tie_word_embeddings", gpt2)?,
            qkv_bias: arch == Arch::Qwen2 || attention_bias,
            o_bias: attention_bias,
            mlp_bias: f.bool_or("mlp_bias", false)?,
            bos_token_id: f.ids("bos_token_id")?.first().copied(),
            eos_token_ids: f.ids("eos_token_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, ModelError> {
        Config::from_json(Path::new("config.json"), &serde_json::from_str(json).unwrap())
    }

    #[test]
    fn reads_both_spellings_and_names_missing_fields() {
        let g = parse(r#"{"model_type":"gpt2","n_embd":64,"n_head":4,"n_layer":2,"vocab_size":100,"n_positions":32}"#)
            .unwrap();
        assert_eq!((g.head_dim, g.intermediate_size, g.num_kv_heads, g.tie_word_embeddings), (16, 256, 4, true));
        let l = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"num_hidden_layers":2,
                "vocab_size":100,"intermediate_size":128,"eos_token_id":[1,2],"rope_scaling":{"rope_type":"llama3","factor":8.0,
                "original_max_position_embeddings":8192}}"#,
        )
        .unwrap();
        assert_eq!((l.num_kv_heads, l.eos_token_ids.clone(), l.tie_word_embeddings), (2, vec![1, 2], false));
        assert_eq!(l.rope_scaling.unwrap().original_max_position_embeddings, 8192);
        let err = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"vocab_size":10}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"intermediate_size\": missing"), "{err}");
        let err = parse(r#"{"model_type":"mamba"}"#).unwrap_err().to_string();
        assert!(err.contains("mamba") && err.contains("not supported"), "{err}");
        let err = parse(r#"{"model_type":"llama","hidden_size":"x"}"#).unwrap_err().to_string();
        assert!(err.contains("hidden_size") && err.contains("integer"), "{err}");
    }
}
