//! LoRA: a trainable low-rank update beside a frozen linear layer.
//!
//! ```text
//! y = base(x) + (α / r) · (dropout(x) · Aᵀ) · Bᵀ      A: (r, in), B: (out, r)
//! ```
//! A starts Kaiming-uniform as PEFT does (`kaiming_uniform_(a=√5)`, which
//! is `U(−1/√in, 1/√in)`), B starts at zero, so a fresh adapter changes
//! nothing. Adapters are stored in PEFT's format: `adapter_config.json` and
//! `adapter_model.safetensors` with keys
//! `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`.
//!
//! The layer and its adapter run as one op, `autograd::lora_linear`, from
//! `Linear::forward`. Dropout applies only while recording a graph
//! (training); evaluation and generation see the expected value.

use autograd::gradcheck::pseudo_random;
use autograd::Var;
use tensor::{Tensor, TensorError};

/// The settings of an adapter (PEFT's `LoraConfig` fields of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    pub dropout: f32,
    /// Module names as PEFT spells them: `q_proj`, `v_proj`, `c_attn`, ...
    pub target_modules: Vec<String>,
}

impl LoraConfig {
    /// Whether the module at `path` (e.g. `model.layers.0.self_attn.q_proj`) is a target.
    pub fn targets(&self, path: &str) -> bool {
        let last = path.rsplit('.').next().unwrap_or(path);
        self.target_modules.iter().any(|t| t == last || t == path)
    }
}

/// The two factors of one adapted linear layer.
#[derive(Clone, Debug)]
pub struct Lora {
    pub a: Var,
    pub b: Var,
    pub scale: f32,
    pub dropout: f32,
}

impl Lora {
    /// A fresh adapter for a `(out, in)` layer: A Kaiming-uniform from `seed`, B zero.
    pub fn new(config: &LoraConfig, inputs: usize, outputs: usize, seed: u64) -> Result<Lora, TensorError> {
        let bound = 1.0 / (inputs as f32).sqrt();
        let a: Vec<f32> = pseudo_random(config.r * inputs, seed).into_iter().map(|u| u * bound).collect();
        Ok(Lora {
            a: Var::parameter(Tensor::from_vec(a, &[config.r, inputs])?),
            b: Var::parameter(Tensor::zeros(&[outputs, config.r])),
            scale: config.alpha / config.r as f32,
            dropout: config.dropout,
        })
    }
}

/// Reads PEFT's `adapter_config.json` from `dir`.
pub fn read_adapter_config(dir: &std::path::Path) -> Result<LoraConfig, crate::ModelError> {
    use crate::ModelError;
    let file = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&file).map_err(|source| ModelError::Io { path: file.clone(), source })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::config(&file, "(file)", format!("not valid JSON: {e}")))?;
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    if let Some(t) = field("peft_type").and_then(|t| t.as_str()) {
        if t != "LORA" {
            return Err(ModelError::config(&file, "peft_type", format!("{t:?}: hone reads LORA adapters")));
        }
    }
    for unsupported in ["use_dora", "use_rslora"] {
        if field(unsupported).and_then(|x| x.as_bool()) == Some(true) {
            return Err(ModelError::config(&file, unsupported, "is true; hone implements plain LoRA"));
        }
    }
    let r = field("r")
        .and_then(|x| x.as_u64())
        .ok_or_else(|| ModelError::config(&file, "r", "missing or not an integer"))?;
    let alpha = field("lora_alpha").and_then(|x| x.as_f64()).unwrap_or(8.0) as f32;
    let dropout = field("lora_dropout").and_then(|x| x.as_f64()).unwrap_or(0.0) as f32;
    let target_modules = match field("target_modules") {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => return Err(ModelError::config(&file, "target_modules", "missing")),
    };
    Ok(LoraConfig { r: r as usize, alpha, dropout, target_modules })
}
