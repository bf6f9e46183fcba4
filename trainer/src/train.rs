//! The training loop of `hone finetune`.
//!
//! ```text
//! for each optimizer step s:
//!     lr = schedule(s)
//!     K micro-batches from the data cursor (a new seeded shuffle each epoch)
//!     each micro-batch's mean loss is weighted by its share of the step's
//!     counted tokens, so K micro-batches give exactly the gradient of one
//!     K-times larger batch; backward accumulates into .grad
//!     clip to the global norm; AdamW; clear gradients
//!     log, evaluate every E steps, checkpoint every S steps (and on Ctrl-C)
//! ```
//! Everything random (data order, LoRA init, dropout masks) is derived from
//! the seed and the step, so a run resumed from a checkpoint repeats the
//! uninterrupted run's losses bit for bit.

use crate::checkpoint::{self, Cursor, State};
use crate::data::{collate, shuffled, Dataset, Example};
use crate::optim::{clip_grad_norm, AdamW, AdamWConfig};
use crate::schedule::{Schedule, ScheduleKind};
use anyhow::{bail, Context, Result};
use autograd::{no_grad, scale};
use kernels::gemm::Precision;
use model::{shift_labels, LoraConfig, Model};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How much to train: a number of optimizer steps or of passes over the data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Length {
    Steps(u64),
    Epochs(f32),
}

/// Everything `hone finetune` is asked to do.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub model: PathBuf,
    pub data: PathBuf,
    pub val: Option<PathBuf>,
    pub val_split: f32,
    pub out: PathBuf,
    pub lora: Option<LoraConfig>,
    /// Full fine-tuning of the top layers only: the bottom N blocks and the embeddings stay frozen.
    pub freeze_layers: usize,
    pub length: Length,
    pub batch_size: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    pub lr: f32,
    pub optim: AdamWConfig,
    pub schedule: ScheduleKind,
    pub warmup_steps: u64,
    pub min_lr: f32,
    pub clip_grad_norm: Option<f32>,
    pub seed: u64,
    pub eval_every: Option<u64>,
    pub save_every: Option<u64>,
    pub keep_checkpoints: usize,
    /// Resume from this checkpoint directory.
    pub resume: Option<PathBuf>,
    pub log: Option<PathBuf>,
    /// Show the progress bar and summary.
    pub progress: bool,
    /// Answer this many validation prompts (greedy) before and after training.
    pub samples: usize,
    /// With LoRA, also write the model with the adapter folded in (`OUT/merged`).
    pub merge: bool,
    /// Matmul precision (`kernels::gemm::precision`); weights, gradients and
    /// optimizer state are f32 either way.
    pub precision: Precision,
    /// Recompute each block's activations in the backward instead of
    /// keeping them (`Model::set_recompute`): less memory, one more forward.
    pub recompute: bool,
    /// Called after every optimizer step with its number (tests watch memory with it).
    pub on_step: Option<fn(u64)>,
}

/// One validation prompt answered before and after training.
#[derive(Clone, Debug)]
pub struct SampleAnswer {
    /// The end of the prompt (its last line or so), for display.
    pub prompt: String,
    pub before: String,
    pub after: String,
}

impl TrainConfig {
    /// Defaults for `model` with every path but the model empty (for tests and `inspect`).
    pub fn for_model(model: PathBuf) -> TrainConfig {
        TrainConfig {
            model,
            data: PathBuf::new(),
            val: None,
            val_split: 0.0,
            out: PathBuf::new(),
            lora: None,
            freeze_layers: 0,
            length: Length::Epochs(1.0),
            batch_size: 8,
            seq_len: 256,
            grad_accum: 1,
            lr: 2e-5,
            optim: AdamWConfig::default(),
            schedule: ScheduleKind::Linear,
            warmup_steps: 0,
            min_lr: 0.0,
            clip_grad_norm: Some(1.0),
            seed: 42,
            eval_every: None,
            save_every: None,
            keep_checkpoints: 2,
            resume: None,
            log: None,
            progress: false,
            samples: 0,
            merge: false,
            precision: Precision::F32,
            recompute: false,
            on_step: None,
        }
    }
}

/// What a run reports at the end.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Mean loss of each optimizer step, from the first step of this process.
    pub losses: Vec<f32>,
    pub first_step: u64,
    pub steps: u64,
    pub val_loss: Option<f64>,
    /// Validation loss before the first step of a fresh run.
    pub val_loss_before: Option<f64>,
    pub tokens_per_second: f64,
    pub interrupted: bool,
    pub outputs: Vec<PathBuf>,
    pub last_checkpoint: Option<PathBuf>,
    pub samples: Vec<SampleAnswer>,
    /// Training and validation examples cut to `--seq-len`.
    pub truncated: usize,
    /// Steps dropped because their loss or gradient was NaN or infinite.
    pub skipped_steps: u64,
    /// Data lines skipped, with file, line and why.
    pub skipped_lines: Vec<String>,
}

/// After this many consecutive non-finite steps the run stops.
pub const MAX_BAD_STEPS_IN_A_ROW: u32 = 3;

/// The prompts of the first `n` examples: their tokens before the first one that trains.
fn sample_prompts(data: &Dataset, n: usize) -> Vec<Vec<u32>> {
    data.examples
        .iter()
        .filter_map(|e| {
            let first = e.labels.iter().position(|&l| l != autograd::IGNORE_INDEX)?;
            (first > 0).then(|| e.ids[..first].to_vec())
        })
        .take(n)
        .collect()
}

/// Greedy answers (up to 48 tokens, stopping at EOS) to each prompt.
fn answer(model: &Model, tok: &model::tokenizer::Tokenizer, prompts: &[Vec<u32>]) -> Result<Vec<String>> {
    let sampling = model::generate::Sampling { max_new_tokens: 48, eos: tok.eos_ids.clone(), ..Default::default() };
    prompts
        .iter()
        .map(|p| {
            let ids = model::generate::generate(model, p, &sampling, |_| true)?;
            Ok(tok.decode(&ids, true)?.trim().to_string())
        })
        .collect()
}

/// Mean loss over `data` (no graph), with perplexity `exp(loss)`.
pub fn evaluate(model: &Model, data: &Dataset, batch_size: usize, pad: u32) -> Result<(f64, usize)> {
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in data.examples.chunks(batch_size.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let (ids, labels, seq) = collate(&refs, pad);
        let targets = shift_labels(&labels, seq);
        let n = targets.iter().filter(|&&t| t != autograd::IGNORE_INDEX).count();
        if n == 0 {
            continue;
        }
        let loss = no_grad(|| model.loss(&ids, &labels, refs.len(), seq))?;
        sum += loss.item()? as f64 * n as f64;
        count += n;
    }
    if count == 0 {
        bail!("{}: no tokens to evaluate on", data.source.display());
    }
    Ok((sum / count as f64, count))
}

/// The run's settings that must match when resuming.
fn settings(c: &TrainConfig) -> serde_json::Value {
    json!({
        "model": c.model, "data": c.data, "lora": c.lora.as_ref().map(|l| json!({"r": l.r, "alpha": l.alpha, "dropout": l.dropout, "targets": l.target_modules})),
        "freeze_layers": c.freeze_layers, "batch_size": c.batch_size, "seq_len": c.seq_len, "grad_accum": c.grad_accum,
        "seed": c.seed, "val_split": c.val_split,
    })
}

/// Loads the model and makes the configured parameters trainable.
pub fn prepare_model(c: &TrainConfig) -> Result<Model> {
    let mut model = Model::load(&c.model)?;
    model.set_recompute(c.recompute);
    match &c.lora {
        Some(lora) => {
            model.add_lora(lora, c.seed)?;
        }
        None => {
            let frozen = c.freeze_layers;
            if frozen > model.config.num_layers {
                bail!("--freeze-layers {frozen}: the model has only {} layers", model.config.num_layers);
            }
            model.set_trainable(|name| {
                if frozen == 0 {
                    return true;
                }
                // Layer index from "…layers.N." or "…h.N."; embeddings and bottom layers frozen.
                let layer = name
                    .split('.')
                    .collect::<Vec<_>>()
                    .windows(2)
                    .find_map(|w| (w[0] == "layers" || w[0] == "h").then(|| w[1].parse::<usize>().ok()).flatten());
                match layer {
                    Some(l) => l >= frozen,
                    None => !(name.contains("embed") || name.contains(".wte.") || name.contains(".wpe.")),
                }
            });
        }
    }
    Ok(model)
}

/// Runs `hone finetune`. `stop` is raised by Ctrl-C: the run then saves a
/// checkpoint after the current step and returns.
pub fn train(c: &TrainConfig, stop: &AtomicBool) -> Result<Summary> {
    if c.batch_size == 0 || c.seq_len == 0 || c.grad_accum == 0 {
        bail!("--batch-size, --seq-len and --grad-accum must be at least 1");
    }
    crate::memory::keep_resident_memory_flat();
    kernels::gemm::set_matmul_precision(c.precision);
    let _lock = crate::lock::RunLock::acquire(&c.out)?;
    checkpoint::remove_partial(&c.out)?;
    let tok = model::tokenizer::Tokenizer::from_dir(&c.model)?;
    let pad = tok.pad_id();
    let all = Dataset::load(&c.data, &tok, c.seq_len)?;
    let (train, val) = match &c.val {
        Some(v) => (all, Some(Dataset::load(v, &tok, c.seq_len)?)),
        None if c.val_split > 0.0 => {
            let (t, v) = all.split(c.val_split, c.seed)?;
            (t, Some(v))
        }
        None => (all, None),
    };
    let model = prepare_model(c)?;
    if model.config.arch == model::Arch::Gpt2 && c.seq_len > model.config.max_positions {
        bail!("--seq-len {} is longer than the model's {} learned positions", c.seq_len, model.config.max_positions);
    }
    let mut opt = AdamW::new(model.trainable(), c.optim);
    if opt.params.is_empty() {
        bail!("nothing to train: every parameter is frozen");
    }
    let batches_per_epoch = train.examples.len().div_ceil(c.batch_size) as u64;
    let steps_per_epoch = batches_per_epoch.div_ceil(c.grad_accum as u64).max(1);
    let total = match c.length {
        Length::Steps(n) => n,
        Length::Epochs(e) => ((e as f64) * steps_per_epoch as f64).ceil() as u64,
    };
    let schedule = Schedule { kind: c.schedule, lr: c.lr, min_lr: c.min_lr, warmup: c.warmup_steps, total };
    let mut cursor = Cursor::default();
    if let Some(dir) = &c.resume {
        let state = checkpoint::load_checkpoint(dir, &mut opt)?;
        if state.settings != settings(c) {
            bail!(
                "{}: the checkpoint was made with other settings ({}); resume with the same ones",
                dir.display(),
                state.settings
            );
        }
        cursor = state.cursor;
    }
    let mut log = match &c.log {
        Some(p) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ),
        None => None,
    };
    let prompts = val.as_ref().map(|v| sample_prompts(v, c.samples)).unwrap_or_default();
    let before = answer(&model, &tok, &prompts)?;
    let val_loss_before = match (&val, c.resume.is_none()) {
        (Some(v), true) => Some(evaluate(&model, v, c.batch_size, pad)?.0),
        _ => None,
    };
    let bar = crate::progress::bar(c.progress, total, opt.step);
    let mut order = shuffled(train.examples.len(), c.seed.wrapping_add(cursor.epoch));
    let truncated = train.truncated + val.as_ref().map_or(0, |v| v.truncated);
    let skipped_lines = [Some(&train), val.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|d| d.skipped.iter().map(move |(l, w)| format!("{}:{l}: {w}", d.source.display())))
        .collect();
    let mut summary = Summary { first_step: opt.step, val_loss_before, truncated, skipped_lines, ..Summary::default() };
    let started = Instant::now();
    let mut tokens = 0usize;
    let mut bad_in_a_row = 0;
    while opt.step < total {
        let step = opt.step;
        let lr = schedule.lr_at(step);
        // The step's micro-batches, and the counted tokens of each.
        let mut micro = Vec::with_capacity(c.grad_accum);
        for _ in 0..c.grad_accum {
            if cursor.batch as u64 >= batches_per_epoch {
                cursor = Cursor { epoch: cursor.epoch + 1, batch: 0 };
                order = shuffled(train.examples.len(), c.seed.wrapping_add(cursor.epoch));
            }
            let start = cursor.batch * c.batch_size;
            let refs: Vec<&Example> =
                order[start..(start + c.batch_size).min(order.len())].iter().map(|&i| &train.examples[i]).collect();
            let (ids, labels, seq) = collate(&refs, pad);
            let counted = shift_labels(&labels, seq).iter().filter(|&&t| t != autograd::IGNORE_INDEX).count();
            micro.push((ids, labels, seq, refs.len(), counted));
            cursor.batch += 1;
        }
        let total_counted: usize = micro.iter().map(|m| m.4).sum::<usize>().max(1);
        let mut step_loss = 0.0f64;
        for (i, (ids, labels, seq, rows, counted)) in micro.iter().enumerate() {
            if *counted == 0 {
                continue;
            }
            model.set_dropout_seed(c.seed.wrapping_mul(1_000_003).wrapping_add(step * c.grad_accum as u64 + i as u64));
            let loss = model.loss(ids, labels, *rows, *seq)?;
            let share = *counted as f32 / total_counted as f32;
            step_loss += loss.item()? as f64 * share as f64;
            scale(&loss, share)?.backward()?;
            tokens += ids.len();
        }
        let norm = match c.clip_grad_norm {
            Some(max) => clip_grad_norm(&opt.params, max),
            None => clip_grad_norm(&opt.params, f32::INFINITY),
        };
        if !step_loss.is_finite() || !norm.is_finite() {
            // A NaN/Inf loss or gradient: drop this step's gradients, keep the weights.
            opt.params.iter().for_each(|p| p.var.zero_grad());
            summary.skipped_steps += 1;
            bad_in_a_row += 1;
            if let Some(f) = log.as_mut() {
                writeln!(
                    f,
                    "{}",
                    json!({"step": opt.step + 1, "skipped": true, "loss": step_loss, "grad_norm": norm, "lr": lr})
                )?;
            }
            if bad_in_a_row >= MAX_BAD_STEPS_IN_A_ROW {
                let last = checkpoint::list(&c.out)?.pop();
                bail!(
                    "{bad_in_a_row} steps in a row had a non-finite loss or gradient (last: loss {step_loss}, gradient norm {norm}) \
                     at step {}: the learning rate ({lr:e}) is probably too high; lower --lr or add --warmup-steps. {}",
                    opt.step + 1,
                    match last {
                        Some(p) => format!("The last good checkpoint, {}, is untouched.", p.display()),
                        None => "No checkpoint had been written yet.".to_string(),
                    }
                );
            }
            continue;
        }
        bad_in_a_row = 0;
        opt.step(lr)?;
        summary.losses.push(step_loss as f32);
        let elapsed = started.elapsed().as_secs_f64();
        let tps = tokens as f64 / elapsed.max(1e-9);
        let mut record = json!({"step": opt.step, "loss": step_loss, "lr": lr, "grad_norm": norm, "tokens_per_s": tps, "epoch": cursor.epoch});
        if c.eval_every.is_some_and(|e| e > 0 && opt.step.is_multiple_of(e)) {
            if let Some(v) = &val {
                let (l, _) = evaluate(&model, v, c.batch_size, pad)?;
                record["val_loss"] = json!(l);
                record["val_ppl"] = json!(l.exp());
                summary.val_loss = Some(l);
            }
        }
        if let Some(f) = log.as_mut() {
            writeln!(f, "{record}")?;
        }
        crate::progress::update(&bar, opt.step, step_loss, lr, tps);
        if let Some(f) = c.on_step {
            f(opt.step);
        }
        let interrupted = stop.load(Ordering::SeqCst);
        let save_now = c.save_every.is_some_and(|s| s > 0 && opt.step.is_multiple_of(s)) || interrupted;
        if save_now {
            let state = State { step: opt.step, cursor, settings: settings(c) };
            summary.last_checkpoint = Some(checkpoint::save_checkpoint(&c.out, &opt, &state, c.keep_checkpoints)?);
        }
        if interrupted {
            summary.interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    summary.steps = opt.step;
    summary.tokens_per_second = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
    if summary.interrupted {
        return Ok(summary);
    }
    if let Some(v) = &val {
        let (l, _) = evaluate(&model, v, c.batch_size, pad)?;
        summary.val_loss = Some(l);
        if let Some(f) = log.as_mut() {
            writeln!(f, "{}", json!({"step": opt.step, "val_loss": l, "val_ppl": l.exp(), "final": true}))?;
        }
    }
    let state = State { step: opt.step, cursor, settings: settings(c) };
    summary.last_checkpoint = Some(checkpoint::save_checkpoint(&c.out, &opt, &state, c.keep_checkpoints)?);
    summary.outputs = write_outputs(&model, c)?;
    let after = answer(&model, &tok, &prompts)?;
    for ((p, b), a) in prompts.iter().zip(before).zip(after) {
        let text = tok.decode(p, true)?;
        // The last line that is not a bare role header (chat prompts end in "assistant").
        let headers = ["system", "user", "assistant"];
        let tail =
            text.lines().rev().map(str::trim).find(|l| !l.is_empty() && !headers.contains(l)).unwrap_or("").to_string();
        summary.samples.push(SampleAnswer { prompt: tail, before: b, after: a });
    }
    Ok(summary)
}

/// The run's products: the PEFT adapter (LoRA) or the full model, in `out`.
fn write_outputs(model: &Model, c: &TrainConfig) -> Result<Vec<PathBuf>> {
    match &c.lora {
        Some(lora) => {
            let dir = c.out.join("adapter");
            crate::export::save_adapter(model, lora, &dir)?;
            let mut outputs = vec![dir.clone()];
            if c.merge {
                let mut merged = Model::load(&c.model)?;
                merged.load_adapter(&dir)?;
                merged.merge_lora()?;
                let m = c.out.join("merged");
                crate::export::save_full(&merged, &m)?;
                outputs.push(m);
            }
            Ok(outputs)
        }
        None => {
            let dir = c.out.join("model");
            crate::export::save_full(model, &dir)?;
            Ok(vec![dir])
        }
    }
}

/// The newest checkpoint of a run's output directory.
pub fn latest_checkpoint(out: &Path) -> Result<PathBuf> {
    checkpoint::list(out)?
        .pop()
        .with_context(|| format!("no checkpoint to resume from in {}", checkpoint::checkpoints_dir(out).display()))
}
