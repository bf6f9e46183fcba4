//! # trainer: fine-tuning runs and the `hone` command
//!
//! Owns:
//! - [`optim`]: AdamW (torch's update, through `kernels::nn::adamw`), the
//!   weight-decay mask, global-norm clipping; [`schedule`]: warmup and decay.
//! - [`data`]: `.txt` and `.jsonl` (text, prompt/completion, chat) to examples and batches.
//! - [`train`]: the loop with gradient accumulation, evaluation, logging and
//!   Ctrl-C; [`checkpoint`]: atomic checkpoints and exact resume.
//! - [`export`]: Hugging Face model directories and PEFT adapters.
//! - [`hub`]: `--model owner/name` fetched from the Hugging Face hub into its cache.
//! - the `hone` binary (`src/main.rs`).
//!
//! Must not: implement math kernels or model layers; it composes `model`.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod export;
pub mod hub;
pub mod inspect;
pub mod lock;
pub mod memory;
pub mod optim;
mod progress;
pub mod schedule;
pub mod train;
