//! # model: transformers from Hugging Face model directories
//!
//! Will own (issue 4): reading `config.json`, safetensors weights (kept
//! memory-mapped) and `tokenizer.json`; GPT-2 and the Llama family (Llama,
//! SmolLM2, TinyLlama, Qwen2) as stacks of `autograd` ops; LoRA wrappers;
//! KV-cache generation.
//!
//! Must not: know about optimisers, data files, checkpoints or the command
//! line (that is `trainer`), or about SIMD.
