//! Writing what a run produced in the formats the ecosystem loads.
//!
//! - Full fine-tuning: a Hugging Face model directory: `config.json` and the
//!   tokenizer files copied from the input, `model.safetensors` with every
//!   weight in the input's dtype (trained f32 masters rounded back to
//!   bf16/f16 where the input was). A tied LM head is not stored, as
//!   transformers does not store it.
//! - LoRA: a PEFT adapter: `adapter_config.json` and `adapter_model.safetensors`
//!   with PEFT's key names and shapes (A `(r, in)`, B `(out, r)`).
//!
//! Every file goes through a temporary name and a rename (safetensors' `save`
//! and [`write_atomic`]).

use crate::checkpoint::write_synced;
use anyhow::{Context, Result};
use half::{bf16, f16};
use model::{Arch, LoraConfig, Model};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use tensor::{DType, Tensor};

/// The files of a model directory besides its weights (`config.json`, the
/// first, is the one every directory must have): copied next to an exported
/// model when the input has them, fetched with the weights from the hub.
pub(crate) const MODEL_FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// `t` converted to `dtype` (f32 values rounded to nearest-even for bf16/f16).
pub fn to_dtype(t: &Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        return Ok(t.contiguous());
    }
    let v = t.to_f32_vec();
    Ok(match dtype {
        DType::F32 => Tensor::from_vec(v, t.shape())?,
        DType::BF16 => Tensor::from_bf16(v.into_iter().map(bf16::from_f32).collect(), t.shape())?,
        DType::F16 => Tensor::from_f16(v.into_iter().map(f16::from_f32).collect(), t.shape())?,
    })
}

/// Writes `bytes` under a temporary name in the same directory, then renames it to `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// The full model (without adapters: merge them first) as a Hugging Face directory.
pub fn save_full(model: &Model, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let dtype = model.source_dtype;
    let tensors: Vec<(String, Tensor)> =
        model.weight_tensors().into_iter().map(|(n, t)| Ok((n, to_dtype(&t, dtype)?))).collect::<Result<_>>()?;
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    tensor::safetensors::save(out.join("model.safetensors"), &refs, &meta)?;
    for f in MODEL_FILES {
        let src = model.dir.join(f);
        if src.is_file() {
            let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            write_atomic(&out.join(f), &bytes)?;
        }
    }
    Ok(())
}

/// The adapter as PEFT writes it.
pub fn save_adapter(model: &Model, lora: &LoraConfig, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let tensors = model.adapter_tensors();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    tensor::safetensors::save(out.join("adapter_model.safetensors"), &refs, &meta)?;
    let config = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": model.dir.to_string_lossy(),
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": lora.target_modules,
        // GPT-2's Conv1D stores weights (in, out); PEFT sets this for it.
        "fan_in_fan_out": model.config.arch == Arch::Gpt2,
        "bias": "none",
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    });
    write_atomic(&out.join("adapter_config.json"), serde_json::to_string_pretty(&config)?.as_bytes())
}
