//! # trainer: fine-tuning runs and the `hone` command
//!
//! Will own (issue 5): AdamW and learning-rate schedules, the data pipeline
//! (text, prompt/completion and chat JSONL), the training loop with gradient
//! accumulation and evaluation, crash-safe checkpoints, export to Hugging Face
//! formats (full weights and PEFT LoRA adapters), and the `hone` binary.
//!
//! Must not: implement math kernels or model layers; it composes `model`.
