//! # model: transformers from Hugging Face model directories
//!
//! Owns:
//! - [`Config`]: `config.json` for GPT-2, Llama (SmolLM2, TinyLlama, Llama 3.x) and Qwen2.
//! - [`Model`]: the architectures as stacks of `autograd` ops, weights kept
//!   memory-mapped as stored (f32, bf16, f16); forward to logits and to the
//!   shifted next-token loss; named parameters; trainability.
//! - [`lora`]: LoRA adapters in PEFT's layout.
//! - [`generate`]: KV-cache generation (greedy, temperature, top-k, top-p, seed, EOS, streaming).
//! - [`tokenizer`]: `tokenizer.json` through the `tokenizers` crate, special
//!   ids, and chat templates rendered with minijinja as transformers renders them.
//!
//! Must not: know about optimisers, data files, checkpoints or the command
//! line (that is `trainer`), or about SIMD.

pub mod config;
mod error;
pub mod generate;
pub mod gguf_import;
pub mod layers;
mod load;
pub mod lora;
mod model;
pub mod rope;
pub mod tokenizer;

pub use config::{Arch, Config};
pub use error::ModelError;
pub use layers::KvCache;
pub use lora::LoraConfig;
pub use model::{shift_labels, Model};
