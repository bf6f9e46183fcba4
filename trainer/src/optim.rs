//! AdamW over named parameters, global-norm clipping, and the weight-decay mask.
//!
//! The update is `kernels::nn::adamw` (torch's formula). Parameters that by
//! default get no weight decay, as the issue and the Hugging Face Trainer's
//! practice have it: biases, norm weights and embeddings.

use autograd::Var;
use kernels::nn::adamw::{adamw, AdamWStep};

/// The hyperparameters of `torch.optim.AdamW`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    pub betas: (f32, f32),
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig { betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.0 }
    }
}

/// Whether a parameter of this name is decayed by default.
pub fn decays(name: &str) -> bool {
    let no_decay = name.ends_with(".bias")
        || name.contains("norm")
        || name.contains(".ln_")
        || name.contains("embed")
        || name.contains(".wte.")
        || name.contains(".wpe.");
    !no_decay
}

/// One parameter's optimizer state.
pub struct ParamState {
    pub name: String,
    pub var: Var,
    pub decay: bool,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

/// AdamW with its state.
pub struct AdamW {
    pub config: AdamWConfig,
    pub params: Vec<ParamState>,
    /// Steps taken so far (the next step is `step + 1`).
    pub step: u64,
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, config: AdamWConfig) -> AdamW {
        let params = params
            .into_iter()
            .map(|(name, var)| {
                let n = var.shape().iter().product();
                ParamState { decay: decays(&name), name, var, m: vec![0.0; n], v: vec![0.0; n] }
            })
            .collect();
        AdamW { config, params, step: 0 }
    }

    /// One step at learning rate `lr` with the accumulated gradients, which
    /// are then cleared. A parameter without a gradient is skipped (as torch does).
    pub fn step(&mut self, lr: f32) -> Result<(), kernels::KernelError> {
        self.step += 1;
        for p in &mut self.params {
            let wd = if p.decay { self.config.weight_decay } else { 0.0 };
            let s = AdamWStep::new(lr, self.config.betas, self.config.eps, wd, self.step);
            let (var, m, v) = (&p.var, &mut p.m, &mut p.v);
            // The gradient and the value live in separate cells of the node: no copy.
            var.with_grad(|g| match g {
                Some(g) => var.update_value(|w| adamw(s, w, g, m, v)),
                None => Ok(()),
            })?;
            var.zero_grad();
        }
        Ok(())
    }
}

/// Scales all gradients so their global 2-norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does (coefficient `max_norm / (norm + 1e-6)`,
/// capped at 1). Returns the norm before clipping.
pub fn clip_grad_norm(params: &[ParamState], max_norm: f32) -> f32 {
    let total: f64 = params
        .iter()
        .map(|p| p.var.with_grad(|g| g.map_or(0.0, |g| g.iter().map(|&x| x as f64 * x as f64).sum::<f64>())))
        .sum();
    let norm = total.sqrt() as f32;
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    if coef < 1.0 {
        for p in params {
            p.var.scale_grad(coef);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_mask() {
        assert!(decays("model.layers.0.self_attn.q_proj.weight"));
        assert!(decays("model.layers.0.self_attn.q_proj.lora_A.weight"));
        for name in [
            "model.embed_tokens.weight",
            "model.norm.weight",
            "transformer.h.0.ln_1.weight",
            "x.q_proj.bias",
            "transformer.wpe.weight",
        ] {
            assert!(!decays(name), "{name}");
        }
    }
}
