//! `hone import-gguf`: a llama.cpp GGUF file to a Hugging Face model directory.
//!
//! - `config.json` from the `{arch}.*` metadata (see [`layout`]);
//! - `model.safetensors`: every tensor dequantised (see `kernels::quant`) and
//!   renamed to transformers' names, undoing what llama.cpp's converter did to
//!   it: for Llama the q/k rows permuted for rotary, for GPT-2 the Conv1D
//!   weights transposed; Llama 3.1+'s `rope_freqs` vector becomes the
//!   `rope_scaling` that reproduces it (see [`rope_freqs`]);
//! - `tokenizer.json` from `tokenizer.ggml.*` (byte-level BPE: tokens,
//!   merges, token types, and the pre-tokenizer named by `tokenizer.ggml.pre`),
//!   `tokenizer_config.json` (special tokens, chat template) and `generation_config.json`.

mod layout;
mod rope_freqs;
mod tokenizer;

use crate::ModelError;
use layout::Layout;
use serde_json::Value as Json;
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

fn write_json(path: &Path, v: &Json) -> Result<(), ModelError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(v).expect("JSON"))
        .map_err(|source| ModelError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })
}

/// Imports `gguf` into the Hugging Face directory `out`, weights stored as `dtype`.
pub fn import_gguf(gguf: &Path, out: &Path, dtype: DType) -> Result<(), ModelError> {
    let g = GgufFile::open(gguf)?;
    let layout = Layout::of(&g)?;
    let config = layout.config(&g, dtype)?;
    std::fs::create_dir_all(out).map_err(|source| ModelError::Io { path: out.to_path_buf(), source })?;
    write_json(&out.join("config.json"), &config)?;
    tokenizer::write_tokenizer(&g, out)?;

    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for info in &g.tensors {
        let Some((hf, t)) = layout.tensor(&g, &info.name)? else { continue };
        let t = match dtype {
            DType::F32 => t,
            DType::BF16 => {
                Tensor::from_bf16(t.to_f32_vec().into_iter().map(half::bf16::from_f32).collect(), t.shape())?
            }
            DType::F16 => Tensor::from_f16(t.to_f32_vec().into_iter().map(half::f16::from_f32).collect(), t.shape())?,
        };
        tensors.push((hf, t));
    }
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let meta = std::collections::BTreeMap::from([("format".to_string(), "pt".to_string())]);
    tensor::safetensors::save(out.join("model.safetensors"), &refs, &meta)?;
    Ok(())
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
