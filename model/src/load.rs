//! Building a [`Model`] from a directory's weights, per architecture: which
//! tensor names each layer reads, and the shape each must have.

use crate::config::{Arch, Config};
use crate::layers::{Attention, Block, Linear, Mlp, Norm, Projections};
use crate::rope::Rope;
use crate::{Model, ModelError};
use autograd::Var;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use tensor::safetensors::Weights;
use tensor::Tensor;

/// Reads named tensors and checks their shapes.
struct Reader {
    dir: PathBuf,
    /// `None`: random weights (see [`random`]), for benchmarks.
    weights: Option<Weights>,
    seed: std::cell::Cell<u64>,
    /// Prefix found in the file for GPT-2 (`transformer.` or nothing).
    file_prefix: String,
}

impl Reader {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let err = |detail: String| ModelError::Weight { dir: self.dir.clone(), tensor: name.to_string(), detail };
        let Some(weights) = &self.weights else {
            // transformers' initialisation: N(0, 0.02) weights, norms at 1, biases at 0.
            let n: usize = shape.iter().product();
            let v = if name.contains("norm") || name.contains("ln_") {
                vec![if name.ends_with("bias") { 0.0 } else { 1.0 }; n]
            } else if name.ends_with("bias") {
                vec![0.0; n]
            } else {
                self.seed.set(self.seed.get() + 1);
                autograd::gradcheck::pseudo_random(n, self.seed.get()).into_iter().map(|u| u * 0.0346).collect()
            };
            return Ok(Tensor::from_vec(v, shape)?);
        };
        let t = weights.tensor(name).map_err(|e| err(e.to_string()))?;
        if t.shape() != shape {
            return Err(err(format!("has shape {:?}, the config implies {shape:?}", t.shape())));
        }
        Ok(t)
    }

    /// A frozen weight (trainability is chosen later, see `Model::set_trainable`).
    fn var(&self, name: &str, shape: &[usize]) -> Result<Var, ModelError> {
        Ok(Var::constant(self.tensor(&format!("{}{name}", self.file_prefix), shape)?))
    }

    fn linear(&self, path: &str, out: usize, inp: usize, bias: bool) -> Result<Linear, ModelError> {
        Ok(Linear {
            path: path.to_string(),
            weight: self.var(&format!("{path}.weight"), &[out, inp])?,
            bias: if bias { Some(self.var(&format!("{path}.bias"), &[out])?) } else { None },
            conv1d: false,
            lora: None,
        })
    }

    /// GPT-2's Conv1D: the weight is stored `(in, out)`. Paths carry the
    /// `transformer.` module prefix; the file may or may not.
    fn conv1d(&self, path: &str, inp: usize, out: usize) -> Result<Linear, ModelError> {
        let local = path.trim_start_matches("transformer.");
        Ok(Linear {
            path: path.to_string(),
            weight: self.var(&format!("{local}.weight"), &[inp, out])?,
            bias: Some(self.var(&format!("{local}.bias"), &[out])?),
            conv1d: true,
            lora: None,
        })
    }
}

pub(crate) fn load(dir: &Path, config: Config) -> Result<Model, ModelError> {
    build(dir, Some(Weights::open(dir)?), config, 0)
}

/// A model of `config` with random f32 weights (uniform with the standard
/// deviation 0.02 of transformers' init; norms 1, biases 0), for benchmarks.
pub(crate) fn random(config: Config, seed: u64) -> Result<Model, ModelError> {
    build(Path::new("(random)"), None, config, seed)
}

fn build(dir: &Path, weights: Option<Weights>, config: Config, seed: u64) -> Result<Model, ModelError> {
    let file_prefix = match &weights {
        Some(w) if config.arch == Arch::Gpt2 && w.names().any(|n| n.starts_with("transformer.")) => "transformer.",
        _ => "",
    };
    let r = Reader {
        dir: dir.to_path_buf(),
        weights,
        seed: std::cell::Cell::new(seed),
        file_prefix: file_prefix.to_string(),
    };
    let c = &config;
    let source_dtype = r
        .weights
        .as_ref()
        .and_then(|w| w.names().next().and_then(|n| w.tensor(n).ok()))
        .map_or(tensor::DType::F32, |t| t.dtype());
    let (v, h, i, d) = (c.vocab_size, c.hidden_size, c.intermediate_size, c.head_dim);
    let (hq, hkv) = (c.num_heads, c.num_kv_heads);
    let mut blocks = Vec::with_capacity(c.num_layers);
    let model = match c.arch {
        Arch::Gpt2 => {
            let ln = |p: &str| -> Result<Norm, ModelError> {
                Ok(Norm::Layer {
                    weight: r.var(&format!("{p}.weight"), &[h])?,
                    bias: r.var(&format!("{p}.bias"), &[h])?,
                    eps: c.norm_eps,
                })
            };
            for l in 0..c.num_layers {
                let p = format!("transformer.h.{l}");
                let lp = format!("h.{l}");
                blocks.push(Block {
                    norm1: ln(&format!("{lp}.ln_1"))?,
                    attn: Attention {
                        proj: Projections::Fused { c_attn: r.conv1d(&format!("{p}.attn.c_attn"), h, 3 * h)? },
                        o: r.conv1d(&format!("{p}.attn.c_proj"), h, h)?,
                        q_heads: hq,
                        kv_heads: hkv,
                        head_dim: d,
                    },
                    norm2: ln(&format!("{lp}.ln_2"))?,
                    mlp: Mlp::Gelu {
                        fc: r.conv1d(&format!("{p}.mlp.c_fc"), h, i)?,
                        proj: r.conv1d(&format!("{p}.mlp.c_proj"), i, h)?,
                    },
                });
            }
            let lm_head = head(&r, c)?;
            Model {
                embed: r.var("wte.weight", &[v, h])?,
                positions: Some(r.var("wpe.weight", &[c.max_positions, h])?),
                blocks,
                final_norm: ln("ln_f")?,
                lm_head,
                rope: None,
                config,
                dir: dir.to_path_buf(),
                dropout_seed: Cell::new(0),
                recompute: Cell::new(false),
                source_dtype,
            }
        }
        Arch::Llama | Arch::Qwen2 => {
            let rms = |name: &str| -> Result<Norm, ModelError> {
                Ok(Norm::Rms { weight: r.var(name, &[h])?, eps: c.norm_eps })
            };
            for l in 0..c.num_layers {
                let p = format!("model.layers.{l}");
                let a = format!("{p}.self_attn");
                blocks.push(Block {
                    norm1: rms(&format!("{p}.input_layernorm.weight"))?,
                    attn: Attention {
                        proj: Projections::Split {
                            q: r.linear(&format!("{a}.q_proj"), hq * d, h, c.qkv_bias)?,
                            k: r.linear(&format!("{a}.k_proj"), hkv * d, h, c.qkv_bias)?,
                            v: r.linear(&format!("{a}.v_proj"), hkv * d, h, c.qkv_bias)?,
                        },
                        o: r.linear(&format!("{a}.o_proj"), h, hq * d, c.o_bias)?,
                        q_heads: hq,
                        kv_heads: hkv,
                        head_dim: d,
                    },
                    norm2: rms(&format!("{p}.post_attention_layernorm.weight"))?,
                    mlp: Mlp::SwiGlu {
                        gate: r.linear(&format!("{p}.mlp.gate_proj"), i, h, c.mlp_bias)?,
                        up: r.linear(&format!("{p}.mlp.up_proj"), i, h, c.mlp_bias)?,
                        down: r.linear(&format!("{p}.mlp.down_proj"), h, i, c.mlp_bias)?,
                    },
                });
            }
            let lm_head = head(&r, c)?;
            Model {
                embed: r.var("model.embed_tokens.weight", &[v, h])?,
                positions: None,
                blocks,
                final_norm: rms("model.norm.weight")?,
                lm_head,
                rope: Some(Rope::new(c)),
                config,
                dir: dir.to_path_buf(),
                dropout_seed: Cell::new(0),
                recompute: Cell::new(false),
                source_dtype,
            }
        }
    };
    Ok(model)
}

/// The LM head: `None` when tied to the embedding. An untied model without
/// `lm_head.weight` is an error naming the tensor.
fn head(r: &Reader, c: &Config) -> Result<Option<Linear>, ModelError> {
    // Tied: transformers uses the embedding even where a file also stores lm_head.weight.
    if c.tie_word_embeddings {
        return Ok(None);
    }
    Ok(Some(Linear {
        path: "lm_head".into(),
        weight: Var::constant(r.tensor("lm_head.weight", &[c.vocab_size, c.hidden_size])?),
        bias: None,
        conv1d: false,
        lora: None,
    }))
}
