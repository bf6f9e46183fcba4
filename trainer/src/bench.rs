//! `hone bench`: time whole training steps (forward, backward, AdamW) of a
//! model, random or real, and report tokens/s, model FLOPs, MFU and peak memory.
//!
//! Model FLOPs per step, with `P` the weights that go through a matrix
//! product (every linear layer and the LM head) and `A` the forward
//! attention products (`4·L·Hq·D·Σ_t (t+1)` per sequence, causal):
//! ```text
//! full fine-tuning   6·P·tokens + 3·A      (forward 2P, backward 2P for inputs + 2P for weights)
//! LoRA               4·P·tokens + 3·A      (frozen weights need no weight gradient)
//! ```
//! MFU is that divided by the step time and the measured FMA peak of the
//! pool's threads (`kernels::pool_peak_gflops`, best of a probe before the
//! steps and one after; `peak_gflops` in the output). With `--precision bf16` the same
//! figure is kept (the FP32 peak, so it compares with f32 runs), and
//! `bf16_peak_pct` gives the share of the bf16 kernel's own measured peak.
//!
//! `prompt_fraction` ignores the first part of every row's labels, as a chat
//! prompt is: hone runs the LM head on counted positions only, so the head's
//! share of `P·tokens` counts only those (the FLOPs done, not the FLOPs a
//! full-logits implementation would do).

use crate::optim::{AdamW, AdamWConfig};
use anyhow::{bail, Result};
use autograd::IGNORE_INDEX;
use kernels::gemm::Precision;
use model::{Config, LoraConfig, Model};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The built-in architectures `--arch` names.
pub fn builtin_config(arch: &str) -> Result<Config> {
    let v = match arch {
        "gpt2-124m" => {
            json!({"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12})
        }
        "smollm2-135m" => {
            json!({"model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
            "rope_theta": 100000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": true})
        }
        other => bail!("--arch {other}: use gpt2-124m, smollm2-135m or a model directory"),
    };
    Ok(Config::from_json(Path::new(arch), &v)?)
}

/// What one benchmark measured.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub step_seconds_median: f64,
    pub tokens_per_s: f64,
    pub flops_per_step: f64,
    pub mfu_pct: f64,
    /// The FMA peak `mfu_pct` is a share of (GFLOP/s).
    pub peak_gflops: f64,
    pub peak_rss_mb: f64,
    /// With bf16 precision: the kernel used (`None`: rounding while packing)
    /// and the model FLOPs rate as a share of that kernel's measured peak.
    pub bf16_kernel: Option<&'static str>,
    pub bf16_peak_pct: Option<f64>,
    pub losses: Vec<f32>,
    /// With profiling: one line per op and pass, per step.
    pub profile: Vec<String>,
}

/// One benchmark's shape and settings.
#[derive(Clone, Debug)]
pub struct BenchJob {
    pub batch: usize,
    pub seq: usize,
    pub warmup: usize,
    pub steps: usize,
    /// Per-op table in [`BenchResult::profile`].
    pub profile: bool,
    /// The leading fraction of each row whose labels are ignored (a prompt).
    pub prompt_fraction: f64,
    /// Matmul precision of the run.
    pub precision: Precision,
    /// Recompute each block in the backward (`Model::set_recompute`). The
    /// FLOPs and MFU count the model's work only, not the recomputation.
    pub recompute: bool,
}

impl BenchJob {
    /// `steps` timed steps of B×T after one warm-up step, nothing masked.
    pub fn new(batch: usize, seq: usize, steps: usize) -> BenchJob {
        BenchJob {
            batch,
            seq,
            warmup: 1,
            steps,
            profile: false,
            prompt_fraction: 0.0,
            precision: Precision::F32,
            recompute: false,
        }
    }

    /// Labels of `ids` with each row's first `prompt_fraction` ignored.
    fn labels(&self, ids: &[u32]) -> Vec<i64> {
        let prompt = (self.prompt_fraction * self.seq as f64).round() as usize;
        ids.iter().enumerate().map(|(i, &id)| if i % self.seq < prompt { IGNORE_INDEX } else { id as i64 }).collect()
    }
}

/// FLOPs of one training step (see the module doc), the LM head on `counted` positions.
pub fn step_flops(model: &Model, batch: usize, seq: usize, lora: bool, counted: usize) -> f64 {
    let c = &model.config;
    let mut p = 0usize;
    for (name, v) in model.named_vars() {
        let n: usize = v.shape().iter().product();
        let is_matrix =
            v.shape().len() == 2 && !name.contains("embed") && !name.contains(".wte.") && !name.contains(".wpe.");
        if is_matrix {
            p += n;
        }
    }
    if c.tie_word_embeddings || model.config.arch == model::Arch::Gpt2 {
        p += c.vocab_size * c.hidden_size; // the tied LM head is a product too
    }
    let tokens = (batch * seq) as f64;
    let head = (c.vocab_size * c.hidden_size) as f64;
    let head_trains = !lora && (c.tie_word_embeddings || model.named_vars().iter().any(|(n, _)| n == "lm_head.weight"));
    let skipped = (if head_trains { 6.0 } else { 4.0 }) * head * (tokens - counted as f64);
    let causal: f64 = (0..seq).map(|t| (t + 1) as f64).sum::<f64>() * batch as f64;
    let attn = 4.0 * c.num_layers as f64 * (c.num_heads * c.head_dim) as f64 * causal;
    (if lora { 4.0 } else { 6.0 }) * p as f64 * tokens + 3.0 * attn - skipped
}

/// The threaded GEMMs of the timed steps by shape, slowest total first:
/// which products lose speed inside the step (cold operands, fresh output
/// pages, packing), against what `gemm-compare` measures on hot operands.
fn gemm_shape_lines(steps: usize, peak: f64) -> Vec<String> {
    let rows = kernels::gemm::stats::by_shape();
    kernels::gemm::stats::record_by_shape(false);
    let mut lines = vec![format!(
        "{:<30} {:>9} {:>10} {:>8} {:>7}",
        "GEMM (M x K x N) in the step", "calls", "ms/step", "GFLOP/s", "% peak"
    )];
    for (key, t) in rows {
        let gflops = t.flops / t.seconds / 1e9;
        lines.push(format!(
            "{:<30} {:>9} {:>10.1} {:>8.0} {:>6.1}%",
            key.label(),
            t.calls / steps as u64,
            t.seconds / steps as f64 * 1e3,
            gflops,
            100.0 * gflops / peak
        ));
    }
    lines
}

fn random_ids(n: usize, vocab: usize) -> Vec<u32> {
    let v = vocab as u64;
    autograd::gradcheck::pseudo_random(n, 1)
        .into_iter()
        .map(|u| (((u + 1.0) * 0.5 * v as f32) as u64).min(v - 1) as u32)
        .collect()
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs `warmup` then `steps` timed training steps of `model` on random tokens.
pub fn run(mut model: Model, lora: Option<LoraConfig>, job: &BenchJob) -> Result<BenchResult> {
    let BenchJob { batch, seq, warmup, steps, profile, .. } = *job;
    crate::memory::keep_resident_memory_flat();
    kernels::gemm::set_matmul_precision(job.precision);
    model.set_recompute(job.recompute);
    let is_lora = lora.is_some();
    match &lora {
        Some(l) => {
            model.add_lora(l, 0)?;
        }
        None => model.set_trainable(|_| true),
    }
    let ids: Vec<u32> = random_ids(batch * seq, model.config.vocab_size);
    let labels = job.labels(&ids);
    // Position t predicts label t + 1: the counted positions are the shifted labels that are kept.
    let counted = model::shift_labels(&labels, seq).iter().filter(|&&l| l != IGNORE_INDEX).count();
    let flops = step_flops(&model, batch, seq, is_lora, counted);
    let mut opt = AdamW::new(model.trainable(), AdamWConfig::default());
    // The FMA peak of the pool's threads, best of a probe before the steps
    // and one after: on a shared virtual machine a core taken away during
    // one probe reads low, and an MFU against it reads high.
    let peak_before = kernels::pool_peak_gflops();
    let mut times = Vec::new();
    let mut losses = Vec::new();
    let (mut opt_time, mut gemm0) = (0.0, kernels::gemm::gemm_stats());
    for i in 0..warmup + steps {
        if profile && i == warmup {
            autograd::profile::enable();
            gemm0 = kernels::gemm::gemm_stats();
            kernels::gemm::stats::record_by_shape(true);
        }
        let t = Instant::now();
        let loss = model.loss(&ids, &labels, batch, seq)?;
        losses.push(loss.item()?);
        loss.backward()?;
        let o = Instant::now();
        opt.step(1e-4)?;
        if i >= warmup {
            opt_time += o.elapsed().as_secs_f64();
            times.push(t.elapsed().as_secs_f64());
        }
        autograd::profile::mark();
    }
    // The MFU and the per-shape table's % of peak use the same figure.
    let peak = kernels::pool_peak_gflops().max(peak_before);
    let mut lines = Vec::new();
    if profile {
        let total: f64 = times.iter().sum();
        let per = |x: f64| x / steps as f64 * 1e3;
        lines.push(format!("{:<20} {:<9} {:>9} {:>10} {:>7}", "op", "pass", "calls", "ms/step", "share"));
        for (op, pass, n, t) in autograd::profile::report() {
            lines.push(format!(
                "{op:<20} {pass:<9} {:>9} {:>10.1} {:>6.1}%",
                n / steps as u64,
                per(t),
                100.0 * t / total
            ));
        }
        lines.push(format!(
            "{:<20} {:<9} {:>9} {:>10.1} {:>6.1}%",
            "adamw",
            "update",
            1,
            per(opt_time),
            100.0 * opt_time / total
        ));
        let g1 = kernels::gemm::gemm_stats();
        let (calls, flops, secs) = (g1.0 - gemm0.0, g1.1 - gemm0.1, g1.2 - gemm0.2);
        lines.push(format!(
            "threaded GEMMs inside the ops: {} calls/step, {:.1} ms/step ({:.1}% of the step) at {:.0} GFLOP/s",
            calls / steps as u64,
            per(secs),
            100.0 * secs / total,
            flops as f64 / secs / 1e9
        ));
        lines.extend(gemm_shape_lines(steps, peak));
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let bf16 = job.precision == Precision::Bf16;
    let bf16_kernel =
        bf16.then(|| kernels::gemm::Microkernel::bf16_selected().ok().flatten().map(|k| k.name)).flatten();
    let bf16_peak = if bf16 { kernels::pool_peak_bf16_gflops() } else { None };
    Ok(BenchResult {
        step_seconds_median: median,
        tokens_per_s: (batch * seq) as f64 / median,
        flops_per_step: flops,
        mfu_pct: 100.0 * flops / median / 1e9 / peak,
        peak_gflops: peak,
        peak_rss_mb: peak_rss_mb(),
        bf16_kernel,
        bf16_peak_pct: bf16_peak.map(|p| 100.0 * flops / median / 1e9 / p),
        losses,
        profile: lines,
    })
}
