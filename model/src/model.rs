//! [`Model`]: a decoder-only transformer read from a Hugging Face directory.
//!
//! ```text
//! ids (B, T) ─> embed (+ learned positions) ─> N × Block ─> final norm ─> LM head ─> logits (B, T, V)
//! ```
//! Weights are loaded as frozen, memory-mapped constants; [`Model::set_trainable`]
//! turns the chosen ones into parameters (full fine-tuning), and
//! [`Model::add_lora`] / [`Model::load_adapter`] wrap linears with LoRA.

use crate::config::Config;
use crate::layers::{rope_tables, Block, KvCache, Linear, Norm};
use crate::lora::{Lora, LoraConfig};
use crate::rope::Rope;
use crate::ModelError;
use autograd::{add, cross_entropy, embedding, linear, linear_cross_entropy, reshape, Var, IGNORE_INDEX};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use tensor::{Tensor, TensorError};

#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub dir: PathBuf,
    /// The dtype the weights are stored in (exports write this dtype back).
    pub source_dtype: tensor::DType,
    pub(crate) embed: Var,
    pub(crate) positions: Option<Var>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) final_norm: Norm,
    /// `None`: tied to the embedding.
    pub(crate) lm_head: Option<Linear>,
    pub(crate) rope: Option<Rope>,
    /// Seed of the next forward's dropout masks (LoRA dropout only).
    pub(crate) dropout_seed: Cell<u64>,
    /// Whether training forwards recompute each block in the backward
    /// instead of keeping its activations (see [`Model::set_recompute`]).
    pub(crate) recompute: Cell<bool>,
}

/// What one LoRA-wrapped layer folds into its weight: `W + (α/r)·B·A`.
fn merged_weight(lin: &Linear, lora: &Lora) -> Result<Tensor, TensorError> {
    let ba = tensor::matmul(&lora.b.value(), &lora.a.value())?; // (out, in)
    let delta = tensor::ops::elementwise::scale(&ba, lora.scale)?;
    let delta = if lin.conv1d { delta.transpose(0, 1)?.contiguous() } else { delta };
    tensor::ops::elementwise::binary(kernels::nn::elementwise::BinaryOp::Add, &lin.weight.value(), &delta)
}

impl Model {
    /// Reads `config.json` and the safetensors weights of `dir` (mapped, not copied).
    pub fn load(dir: impl AsRef<Path>) -> Result<Model, ModelError> {
        let dir = dir.as_ref();
        crate::load::load(dir, Config::from_dir(dir)?)
    }

    /// A model of `config` with random weights (transformers' init scale), for benchmarks.
    pub fn random(config: Config, seed: u64) -> Result<Model, ModelError> {
        crate::load::random(config, seed)
    }

    /// Logits `(batch, seq, vocab)` for `ids` (`batch · seq` token ids, row-major).
    pub fn forward(&self, ids: &[u32], batch: usize, seq: usize) -> Result<Var, TensorError> {
        self.run(ids, batch, seq, None)
    }

    /// The mean next-token loss as transformers computes it: position `t`
    /// predicts `labels[t + 1]`; the last position and labels of −100 carry no loss.
    pub fn loss(&self, ids: &[u32], labels: &[i64], batch: usize, seq: usize) -> Result<Var, TensorError> {
        if labels.len() != batch * seq {
            return Err(TensorError::shape("loss", format!("{} labels for {batch}x{seq} tokens", labels.len())));
        }
        let targets = shift_labels(labels, seq);
        // Positions whose target is ignored (prompt tokens, padding, each row's
        // last position) need no logits: only the counted rows go through the
        // LM head, the largest matmul of a small model. The loss and every
        // gradient are the same; the ignored rows get a zero gradient.
        let counted: Vec<u32> = (0..targets.len() as u32).filter(|&i| targets[i as usize] != IGNORE_INDEX).collect();
        let hidden = self.hidden(ids, batch, seq, None)?; // (B, T, C)
        let (rows, kept) = if counted.is_empty() || counted.len() == targets.len() {
            (hidden, targets)
        } else {
            let flat = reshape(&hidden, &[batch * seq, self.config.hidden_size])?; // (B·T, C)
                                                                                   // Picking rows is an embedding lookup into the hidden states: the
                                                                                   // backward scatters each row's gradient back to its position.
            let picked = embedding(&flat, &counted)?; // (R, C)
            (picked, counted.iter().map(|&i| targets[i as usize]).collect())
        };
        match self.plain_head_weight() {
            // The head and the loss fused: no (R, V) logits kept.
            Some(w) => linear_cross_entropy(&rows, w, &kept),
            None => cross_entropy(&self.head(&rows)?, &kept),
        }
    }

    /// Whether the MLPs keep their activation's output for the backward
    /// (see [`crate::layers::Mlp::keeps_product`]), for memory estimates.
    pub fn mlp_keeps_product(&self) -> bool {
        self.blocks.iter().any(|b| b.mlp.keeps_product())
    }

    /// The LM head's `(vocab, C)` weight when the head is `x · Wᵀ` and
    /// nothing more (tied, or untied without bias or LoRA): then the loss
    /// can run the fused head + cross-entropy.
    pub fn plain_head_weight(&self) -> Option<&Var> {
        match &self.lm_head {
            None => Some(&self.embed),
            Some(h) if h.is_plain() => Some(&h.weight),
            Some(_) => None,
        }
    }

    /// Logits `(T, vocab)` of `ids` continuing the sequence in `cache`
    /// (batch 1, no graph); the cache grows by `ids.len()` positions.
    pub fn forward_cached(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor, TensorError> {
        let logits = autograd::no_grad(|| self.run(ids, 1, ids.len(), Some(cache)))?;
        logits.value().reshape(&[ids.len(), self.config.vocab_size])
    }

    fn run(&self, ids: &[u32], batch: usize, seq: usize, cache: Option<&mut KvCache>) -> Result<Var, TensorError> {
        self.head(&self.hidden(ids, batch, seq, cache)?)
    }

    /// Logits `(.., vocab)` of final hidden states `(.., C)`.
    fn head(&self, x: &Var) -> Result<Var, TensorError> {
        match &self.lm_head {
            Some(head) => head.forward(x, self.dropout_seed.get().wrapping_mul(1 << 20)),
            None => linear(x, &self.embed, None), // tied: logits = x · Eᵀ
        }
    }

    /// The final hidden states `(B, T, C)`, after the last norm.
    fn hidden(
        &self,
        ids: &[u32],
        batch: usize,
        seq: usize,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Var, TensorError> {
        let c = &self.config;
        if ids.len() != batch * seq || seq == 0 {
            return Err(TensorError::shape("forward", format!("{} ids for {batch}x{seq} tokens", ids.len())));
        }
        let start = cache.as_ref().map_or(0, |k| k.len);
        if start + seq > c.max_positions && self.positions.is_some() {
            return Err(TensorError::shape(
                "forward",
                format!("position {} is past the model's {} learned positions", start + seq - 1, c.max_positions),
            ));
        }
        if let Some(k) = cache.as_deref_mut() {
            k.layers.resize(self.blocks.len(), Default::default());
        }
        let seed = self.dropout_seed.get().wrapping_mul(1 << 20);
        let mut x = reshape(&embedding(&self.embed, ids)?, &[batch, seq, c.hidden_size])?; // (B, T, C)
        if let Some(wpe) = &self.positions {
            let pos: Vec<u32> = (start..start + seq).map(|p| p as u32).collect();
            x = add(&x, &embedding(wpe, &pos)?)?; // + (T, C), broadcast over B
        }
        let tables = rope_tables(self.rope.as_ref(), start, seq)?;
        let recompute = self.recompute.get() && cache.is_none() && autograd::is_grad_enabled();
        for (l, block) in self.blocks.iter().enumerate() {
            let block_seed = seed + 100 * l as u64;
            if recompute {
                // Only the block's input is kept; its activations are
                // rebuilt in the backward (the same dropout masks: same seed).
                let (block, tables) = (block.clone(), tables.clone());
                let f = move |x: &Var| block.forward(x, tables.as_ref(), None, block_seed);
                x = autograd::checkpoint(&x, &self.blocks[l].trainable_vars(), f)?;
                continue;
            }
            let slot = cache.as_deref_mut().map(|k| (&mut k.layers[l], start));
            x = block.forward(&x, tables.as_ref(), slot, block_seed)?;
        }
        if let Some(k) = cache {
            k.len += seq;
        }
        self.final_norm.forward(&x)
    }

    /// Activation recomputation: with `on`, a training forward keeps only
    /// each block's input, and the backward runs the block again before
    /// back-propagating through it (one block's activations at a time, for
    /// one more forward's time). Evaluation and generation are unaffected.
    pub fn set_recompute(&self, on: bool) {
        self.recompute.set(on);
    }

    /// Whether [`Model::set_recompute`] is on.
    pub fn recomputes(&self) -> bool {
        self.recompute.get()
    }

    /// Sets the seed of the next forward's dropout masks (LoRA dropout).
    pub fn set_dropout_seed(&self, seed: u64) {
        self.dropout_seed.set(seed);
    }

    /// Every weight by its Hugging Face parameter name (LoRA factors as
    /// `<module>.lora_A.weight` / `.lora_B.weight`). A tied LM head is not listed.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        let mut me = self.shallow_clone();
        for (name, v) in me.vars_mut() {
            out.push((name, v.clone()));
        }
        out
    }

    /// The parameters that will receive gradients.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.named_vars().into_iter().filter(|(_, v)| v.requires_grad()).collect()
    }

    /// Makes the weights whose names satisfy `pick` trainable and freezes the rest
    /// (LoRA factors included, by their names).
    pub fn set_trainable(&mut self, pick: impl Fn(&str) -> bool) {
        for (name, v) in self.vars_mut() {
            let value = v.value();
            *v = if pick(&name) { Var::parameter(value) } else { Var::constant(value) };
        }
    }

    /// Wraps every linear `config` targets with a fresh adapter (A
    /// Kaiming-uniform from `seed`, B zero), trainable; everything else frozen.
    pub fn add_lora(&mut self, config: &LoraConfig, seed: u64) -> Result<usize, ModelError> {
        let mut count = 0;
        for (i, lin) in self.linears_mut().into_iter().enumerate() {
            if config.targets(&lin.path) {
                let (out, inp) = lin.dims();
                lin.lora = Some(Lora::new(config, inp, out, seed.wrapping_add(i as u64))?);
                count += 1;
            }
        }
        if count == 0 {
            return Err(ModelError::config(
                &self.dir.join("config.json"),
                "target_modules",
                format!("{:?} match no linear layer of this {:?} model", config.target_modules, self.config.arch),
            ));
        }
        self.set_trainable(|name| name.contains(".lora_"));
        Ok(count)
    }

    /// Loads a PEFT LoRA adapter (`adapter_config.json`, `adapter_model.safetensors`)
    /// onto the matching linears; its factors become the trainable parameters.
    pub fn load_adapter(&mut self, dir: impl AsRef<Path>) -> Result<LoraConfig, ModelError> {
        let dir = dir.as_ref();
        let config = crate::lora::read_adapter_config(dir)?;
        let file = tensor::safetensors::SafetensorsFile::open(dir.join("adapter_model.safetensors"))?;
        let scale = config.alpha / config.r as f32;
        let mut used = 0;
        for lin in self.linears_mut() {
            if !config.targets(&lin.path) {
                continue;
            }
            let (out, inp) = lin.dims();
            let key = |f: &str| format!("base_model.model.{}.{f}.weight", lin.path);
            let get = |f: &str, shape: [usize; 2]| -> Result<Tensor, ModelError> {
                let name = key(f);
                let err = |detail: String| ModelError::Weight { dir: dir.to_path_buf(), tensor: name.clone(), detail };
                let t = file.tensor(&name).map_err(|e| err(e.to_string()))?;
                if t.shape() != shape {
                    return Err(err(format!("has shape {:?}, expected {shape:?}", t.shape())));
                }
                Ok(t.contiguous())
            };
            let (a, b) = (get("lora_A", [config.r, inp])?, get("lora_B", [out, config.r])?);
            lin.lora = Some(Lora { a: Var::parameter(a), b: Var::parameter(b), scale, dropout: config.dropout });
            used += 1;
        }
        if used == 0 {
            return Err(ModelError::config(
                &dir.join("adapter_config.json"),
                "target_modules",
                "match no layer of the model",
            ));
        }
        self.set_trainable(|name| name.contains(".lora_"));
        Ok(config)
    }

    /// Folds every LoRA adapter into its layer's weight (`W + (α/r)·B·A`)
    /// and removes the adapters. Returns how many layers changed.
    pub fn merge_lora(&mut self) -> Result<usize, TensorError> {
        let mut n = 0;
        for lin in self.linears_mut() {
            if let Some(lora) = lin.lora.take() {
                lin.weight = Var::constant(merged_weight(lin, &lora)?);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The LoRA factors under PEFT's key names (`base_model.model.<module>.lora_A.weight`).
    pub fn adapter_tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| n.contains(".lora_"))
            .map(|(n, v)| (format!("base_model.model.{n}"), v.value()))
            .collect()
    }

    /// The model's own weights (no LoRA factors) by Hugging Face name.
    pub fn weight_tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars().into_iter().filter(|(n, _)| !n.contains(".lora_")).map(|(n, v)| (n, v.value())).collect()
    }

    /// Whether any layer carries a LoRA adapter.
    pub fn has_lora(&self) -> bool {
        self.named_vars().iter().any(|(n, _)| n.contains(".lora_"))
    }

    pub(crate) fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut out: Vec<&mut Linear> = self.blocks.iter_mut().flat_map(|b| b.parts_mut().2).collect();
        out.extend(self.lm_head.as_mut());
        out
    }

    fn vars_mut(&mut self) -> Vec<(String, &mut Var)> {
        let gpt2 = self.positions.is_some();
        let mut out: Vec<(String, &mut Var)> = Vec::new();
        let (embed, pos) =
            if gpt2 { ("transformer.wte.weight", "transformer.wpe.weight") } else { ("model.embed_tokens.weight", "") };
        out.push((embed.into(), &mut self.embed));
        if let Some(p) = self.positions.as_mut() {
            out.push((pos.into(), p));
        }
        let mut linears: Vec<&mut Linear> = Vec::new();
        for (l, b) in self.blocks.iter_mut().enumerate() {
            let (n1, n2) = if gpt2 {
                (format!("transformer.h.{l}.ln_1"), format!("transformer.h.{l}.ln_2"))
            } else {
                (format!("model.layers.{l}.input_layernorm"), format!("model.layers.{l}.post_attention_layernorm"))
            };
            let (norm1, norm2, block_linears) = b.parts_mut();
            push_norm(&mut out, n1, norm1);
            push_norm(&mut out, n2, norm2);
            linears.extend(block_linears);
        }
        let final_name = if gpt2 { "transformer.ln_f" } else { "model.norm" };
        push_norm(&mut out, final_name.into(), &mut self.final_norm);
        linears.extend(self.lm_head.as_mut());
        for lin in linears {
            out.push((format!("{}.weight", lin.path), &mut lin.weight));
            if let Some(b) = lin.bias.as_mut() {
                out.push((format!("{}.bias", lin.path), b));
            }
            if let Some(lora) = lin.lora.as_mut() {
                out.push((format!("{}.lora_A.weight", lin.path), &mut lora.a));
                out.push((format!("{}.lora_B.weight", lin.path), &mut lora.b));
            }
        }
        out
    }

    /// A copy sharing every `Var` (cheap): lets `named_vars` reuse `vars_mut`.
    fn shallow_clone(&self) -> Model {
        Model {
            config: self.config.clone(),
            dir: self.dir.clone(),
            embed: self.embed.clone(),
            positions: self.positions.clone(),
            blocks: self.blocks.clone(),
            final_norm: self.final_norm.clone(),
            lm_head: self.lm_head.clone(),
            rope: self.rope.clone(),
            dropout_seed: self.dropout_seed.clone(),
            recompute: self.recompute.clone(),
            source_dtype: self.source_dtype,
        }
    }
}

fn push_norm<'a>(out: &mut Vec<(String, &'a mut Var)>, prefix: String, n: &'a mut Norm) {
    match n {
        Norm::Layer { weight, bias, .. } => {
            out.push((format!("{prefix}.weight"), weight));
            out.push((format!("{prefix}.bias"), bias));
        }
        Norm::Rms { weight, .. } => out.push((format!("{prefix}.weight"), weight)),
    }
}

/// transformers' label shift: `targets[t] = labels[t + 1]` within each row, −100 at the end.
pub fn shift_labels(labels: &[i64], seq: usize) -> Vec<i64> {
    labels.chunks(seq).flat_map(|row| row[1..].iter().copied().chain(std::iter::once(IGNORE_INDEX))).collect()
}
