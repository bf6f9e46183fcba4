//! `hone inspect`: what a model is and what training it will cost, before it starts.
//!
//! The memory plan counts, for batch B and sequence T:
//! - weights: bytes left in the memory map (frozen) and resident f32 master
//!   copies of the trainable ones;
//! - gradients (f32, trainable only) and AdamW's two moments (f32 each);
//! - activations kept for the backward, per layer, from what each op saves
//!   (an estimate: the inputs of every norm, projection and activation, and
//!   q/k/v/out/lse of attention), times B·T;
//! - logits: one block of rows when the LM head is fused with the loss
//!   (`autograd::ops::linear_cross_entropy`), otherwise the logits and their
//!   gradient (B·T·V each).

use crate::train::{prepare_model, TrainConfig};
use anyhow::Result;
use model::{Arch, Model};

/// The figures `hone inspect` prints, in bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryPlan {
    pub params_total: usize,
    pub params_trainable: usize,
    pub mapped_weights: usize,
    pub resident_weights: usize,
    pub gradients: usize,
    pub adamw: usize,
    pub activations: usize,
    pub logits: usize,
}

impl MemoryPlan {
    pub fn total(&self) -> usize {
        self.resident_weights + self.gradients + self.adamw + self.activations + self.logits
    }
}

/// The plan for training `model` as configured (trainability already applied).
pub fn plan(model: &Model, batch: usize, seq: usize) -> MemoryPlan {
    let c = &model.config;
    let mut p = MemoryPlan::default();
    for (_, v) in model.named_vars() {
        let n: usize = v.shape().iter().product();
        p.params_total += n;
        let t = v.value();
        if v.requires_grad() {
            p.params_trainable += n;
            p.resident_weights += 4 * n;
        } else if t.is_mapped() {
            p.mapped_weights += n * t.dtype().size();
        } else {
            p.resident_weights += n * t.dtype().size();
        }
    }
    p.gradients = 4 * p.params_trainable;
    p.adamw = 8 * p.params_trainable;
    let (h, i, d) = (c.hidden_size, c.intermediate_size, c.head_dim);
    let qkv = (c.num_heads + 2 * c.num_kv_heads) * d;
    // Per token and layer, in floats: norm inputs and outputs (4h), q/k/v before
    // and after rotary (2·qkv), attention output (Hq·D), the residual (h), the
    // MLP's activation inputs (i for GELU, gate and up for SwiGLU) and its
    // output when the backward keeps it (i; SwiGLU into a plain down
    // projection recomputes it instead).
    let activation_inputs = if c.arch == Arch::Gpt2 { i } else { 2 * i };
    let mlp = activation_inputs + if model.mlp_keeps_product() { i } else { 0 };
    let per_token_layer = 4 * h + 2 * qkv + c.num_heads * d + h + mlp;
    // With recomputation, each block keeps only its input (h), and one block's
    // activations exist at a time, while it is recomputed.
    let kept_layers = match model.recomputes() {
        true => c.num_layers * h + per_token_layer,
        false => c.num_layers * per_token_layer,
    };
    p.activations = 4 * batch * seq * (kept_layers + 2 * h);
    let rows = batch * seq;
    p.logits = match model.plain_head_weight() {
        Some(w) => 4 * autograd::ops::linear_cross_entropy::logits_floats(rows, c.vocab_size, w.requires_grad()),
        None => 2 * 4 * rows * c.vocab_size,
    };
    p
}

fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// The text `hone inspect` prints.
pub fn report(c: &TrainConfig) -> Result<String> {
    let model = prepare_model(c)?;
    let cfg = &model.config;
    let p = plan(&model, c.batch_size, c.seq_len);
    let mut dtypes: Vec<String> = model.named_vars().iter().map(|(_, v)| v.value().dtype().to_string()).collect();
    dtypes.sort();
    dtypes.dedup();
    let mode = match &c.lora {
        Some(l) => format!("LoRA r={} alpha={} on {}", l.r, l.alpha, l.target_modules.join(",")),
        None if c.freeze_layers > 0 => format!("full fine-tuning above layer {}", c.freeze_layers),
        None => "full fine-tuning".into(),
    };
    Ok(format!(
        "model       {} ({:?})\n\
         layers      {} × hidden {} (heads {} q / {} kv × {}), MLP {}, vocab {}\n\
         weights     {} stored as {}\n\
         parameters  {} total, {} trainable ({mode})\n\
         \n\
         memory plan for batch {} × seq {}:\n\
         \x20 weights, mapped (read from disk on use)  {}\n\
         \x20 weights, resident (trainable f32)       {}\n\
         \x20 gradients (f32)                         {}\n\
         \x20 AdamW moments (2 × f32)                 {}\n\
         \x20 activations kept for backward (est.)    {}\n\
         \x20 logits (LM head)                        {}\n\
         \x20 total resident (est.)                   {}\n",
        model.dir.display(),
        cfg.arch,
        cfg.num_layers,
        cfg.hidden_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.head_dim,
        cfg.intermediate_size,
        cfg.vocab_size,
        mib(p.mapped_weights + p.resident_weights),
        dtypes.join(", "),
        p.params_total,
        p.params_trainable,
        c.batch_size,
        c.seq_len,
        mib(p.mapped_weights),
        mib(p.resident_weights),
        mib(p.gradients),
        mib(p.adamw),
        mib(p.activations),
        mib(p.logits),
        mib(p.total()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With recomputation the estimate keeps one input per block and one
    /// block's activations, which is below keeping every block's.
    #[test]
    fn recompute_estimates_less_activation_memory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/llama");
        let model = Model::load(dir).unwrap();
        let kept = plan(&model, 4, 64).activations;
        model.set_recompute(true);
        let again = plan(&model, 4, 64).activations;
        let (layers, h) = (model.config.num_layers, model.config.hidden_size);
        let per_layer = (kept / (4 * 4 * 64) - 2 * h) / layers;
        assert_eq!(again, 4 * 4 * 64 * (layers * h + per_layer + 2 * h));
        assert!(layers < 2 || again < kept, "{again} vs {kept}");
    }
}
