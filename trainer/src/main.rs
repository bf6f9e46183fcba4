//! `hone`: fine-tune, evaluate, sample from, merge and inspect Hugging Face
//! models on a CPU. `hone <command> --help` explains each command.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use kernels::gemm::Precision;
use model::generate::{generate, Sampling};
use model::tokenizer::{Message, Tokenizer};
use model::{LoraConfig, Model};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use trainer::optim::AdamWConfig;
use trainer::schedule::ScheduleKind;
use trainer::train::{evaluate, latest_checkpoint, train, Length, TrainConfig};

#[derive(Parser)]
#[command(name = "hone", version, about = "Fine-tune transformer language models on CPUs.", long_about = None)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a model on a .txt or .jsonl file (full weights, or LoRA with --lora-rank).
    Finetune(Box<FinetuneArgs>),
    /// Mean loss and perplexity of a model (and adapter) on a data file.
    Eval(EvalArgs),
    /// Continue a prompt or answer a chat message, streaming tokens as they come.
    Generate(GenerateArgs),
    /// Fold a LoRA adapter into the model's weights and write a full model.
    Merge(MergeArgs),
    /// Architecture, parameter counts and the memory a training run will need.
    Inspect(InspectArgs),
    /// Convert a llama.cpp GGUF file to a Hugging Face model directory.
    ImportGguf(ImportArgs),
    /// Time training steps and report tokens/s, MFU and peak memory.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// gpt2-124m, smollm2-135m (random weights), or a model directory.
    #[arg(long)]
    arch: String,
    /// full or lora.
    #[arg(long, default_value = "full")]
    mode: String,
    #[arg(long, default_value_t = 16)]
    lora_rank: usize,
    #[arg(long, default_value_t = 32.0)]
    lora_alpha: f32,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    seq_len: usize,
    #[arg(long, default_value_t = 5)]
    steps: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Add a per-op table: forward and backward time of each op kind, the optimizer, the GEMMs.
    #[arg(long)]
    profile: bool,
    /// Ignore the labels of this leading fraction of every row, as a chat prompt's are.
    #[arg(long, default_value_t = 0.0)]
    prompt_fraction: f64,
    /// Matmul precision: f32 or bf16 (see `hone finetune --help`).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Recompute each block's activations in the backward (see `hone finetune --help`).
    #[arg(long)]
    recompute: bool,
}

fn bench(a: BenchArgs) -> Result<()> {
    let model = if std::path::Path::new(&a.arch).is_dir() {
        Model::load(&a.arch)?
    } else {
        Model::random(trainer::bench::builtin_config(&a.arch)?, 1)?
    };
    let lora = match a.mode.as_str() {
        "full" => None,
        "lora" => {
            let targets = if model.config.arch == model::Arch::Gpt2 {
                vec!["c_attn", "c_proj", "c_fc"]
            } else {
                vec!["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            };
            Some(LoraConfig {
                r: a.lora_rank,
                alpha: a.lora_alpha,
                dropout: 0.0,
                target_modules: targets.into_iter().map(String::from).collect(),
            })
        }
        other => bail!("--mode {other}: use full or lora"),
    };
    if !(0.0..1.0).contains(&a.prompt_fraction) {
        bail!("--prompt-fraction {}: give a fraction in [0, 1)", a.prompt_fraction);
    }
    let job = trainer::bench::BenchJob {
        batch: a.batch_size,
        seq: a.seq_len,
        warmup: a.warmup,
        steps: a.steps,
        profile: a.profile,
        prompt_fraction: a.prompt_fraction,
        precision: a.precision,
        recompute: a.recompute,
    };
    let r = trainer::bench::run(model, lora, &job)?;
    let out = serde_json::json!({
        "arch": a.arch, "mode": a.mode, "batch_size": a.batch_size, "seq_len": a.seq_len, "threads": rayon::current_num_threads(),
        "step_s": r.step_seconds_median, "tokens_per_s": r.tokens_per_s, "flops_per_step": r.flops_per_step,
        "mfu_pct": r.mfu_pct, "peak_gflops": r.peak_gflops, "prompt_fraction": a.prompt_fraction, "precision": a.precision.name(), "recompute": a.recompute,
        "bf16_kernel": r.bf16_kernel, "bf16_peak_pct": r.bf16_peak_pct, "peak_rss_mb": r.peak_rss_mb, "first_loss": r.losses.first(), "last_loss": r.losses.last(),
    });
    if a.json {
        println!("{out}");
    } else {
        println!(
            "{} {} B={} T={}: {:.3} s/step, {:.0} tokens/s, {:.1} GFLOP/step, MFU {:.1}% (of {:.0} GFLOP/s), peak RSS {:.0} MB",
            a.arch,
            a.mode,
            a.batch_size,
            a.seq_len,
            r.step_seconds_median,
            r.tokens_per_s,
            r.flops_per_step / 1e9,
            r.mfu_pct,
            r.peak_gflops,
            r.peak_rss_mb
        );
    }
    for line in &r.profile {
        println!("{line}");
    }
    Ok(())
}

#[derive(Args)]
struct ImportArgs {
    /// The .gguf file (llama or qwen2; F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K tensors).
    file: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Storage dtype of the written weights: f32 or bf16.
    #[arg(long, default_value = "bf16")]
    dtype: String,
}

#[derive(Args, Clone)]
struct LoraArgs {
    /// LoRA rank; without it, all weights are trained (full fine-tuning).
    #[arg(long)]
    lora_rank: Option<usize>,
    /// LoRA scale numerator: the update is (alpha / rank) · B·A.
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f32,
    /// Dropout on the LoRA input during training.
    #[arg(long, default_value_t = 0.05)]
    lora_dropout: f32,
    /// Modules to adapt, as PEFT names them (default: q_proj,v_proj; c_attn for GPT-2).
    #[arg(long, value_delimiter = ',')]
    lora_targets: Vec<String>,
    /// Full fine-tuning of the top layers only: freeze the embeddings and the bottom N layers.
    #[arg(long, default_value_t = 0)]
    freeze_layers: usize,
}

#[derive(Args)]
struct FinetuneArgs {
    /// A Hugging Face model directory (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// Training data: .txt (documents separated by blank lines) or .jsonl
    /// ({"text"}, {"prompt","completion"} or {"messages":[...]}).
    #[arg(long)]
    data: PathBuf,
    /// A validation file (same formats).
    #[arg(long, conflicts_with = "val_split")]
    val: Option<PathBuf>,
    /// Hold out this fraction of --data for validation instead.
    #[arg(long, default_value_t = 0.0)]
    val_split: f32,
    /// Where checkpoints, the log and the result go.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    lora: LoraArgs,
    /// Optimizer steps to take.
    #[arg(long, conflicts_with = "epochs")]
    steps: Option<u64>,
    /// Passes over the data (default 1).
    #[arg(long)]
    epochs: Option<f32>,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Tokens per sequence (longer examples are truncated and counted).
    #[arg(long, default_value_t = 256)]
    seq_len: usize,
    /// Micro-batches per optimizer step (equivalent to a K-times larger batch).
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate (default 2e-4 with LoRA, 2e-5 for full fine-tuning).
    #[arg(long)]
    lr: Option<f32>,
    /// Decoupled weight decay (never on biases, norms or embeddings).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// AdamW betas, "b1,b2".
    #[arg(long, default_value = "0.9,0.999")]
    betas: String,
    #[arg(long, default_value_t = 1e-8)]
    eps: f32,
    /// constant, linear or cosine (after warmup).
    #[arg(long, default_value = "linear")]
    schedule: ScheduleKind,
    #[arg(long, default_value_t = 0)]
    warmup_steps: u64,
    /// The learning rate the schedule decays to.
    #[arg(long, default_value_t = 0.0)]
    min_lr: f32,
    /// Clip the global gradient norm to this (0 = no clipping).
    #[arg(long, default_value_t = 1.0)]
    clip_grad_norm: f32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Evaluate on the validation set every N steps (and always at the end).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Write a checkpoint every N steps (and always at the end, and on Ctrl-C).
    #[arg(long)]
    save_every: Option<u64>,
    /// Checkpoints to keep.
    #[arg(long, default_value_t = 2)]
    keep_checkpoints: usize,
    /// Continue from a checkpoint directory; alone, from the newest in --out.
    #[arg(long, num_args = 0..=1, default_missing_value = "newest", value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Append metrics as JSON lines to this file (default OUT/log.jsonl).
    #[arg(long)]
    log: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Answer this many validation prompts before and after training, to compare.
    #[arg(long, default_value_t = 0)]
    samples: usize,
    /// With LoRA, also write the model with the adapter folded in (OUT/merged).
    #[arg(long)]
    merge: bool,
    /// Matmul precision: f32, or bf16 (operands rounded to bf16, f32
    /// accumulation, f32 master weights and optimizer state; AMX or
    /// AVX512_BF16 where the CPU has them). LoRA's rank-r adapter products
    /// stay f32: bf16 would not make them faster.
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Keep only each block's input in the forward and recompute the block
    /// in the backward: activation memory of one block instead of all of
    /// them, for about a third more step time (gradient checkpointing).
    #[arg(long)]
    recompute: bool,
}

fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::from_name(s).ok_or_else(|| format!("{s:?}: use f32 or bf16"))
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    /// A PEFT LoRA adapter directory.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 256)]
    seq_len: usize,
    /// Print {"loss", "perplexity", "tokens"} as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenerateArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Text to continue.
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    prompt: Option<String>,
    /// A user message, wrapped in the model's chat template.
    #[arg(long)]
    chat: Option<String>,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// 0 = greedy (default: the model's generation_config.json, else greedy).
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct MergeArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    adapter: PathBuf,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct InspectArgs {
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    lora: LoraArgs,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 256)]
    seq_len: usize,
    /// Estimate for `hone finetune --recompute`.
    #[arg(long)]
    recompute: bool,
}

fn lora_config(args: &LoraArgs, model_dir: &std::path::Path) -> Result<Option<LoraConfig>> {
    let Some(r) = args.lora_rank else { return Ok(None) };
    let targets = if args.lora_targets.is_empty() {
        let arch = model::Config::from_dir(model_dir)?.arch;
        if arch == model::Arch::Gpt2 {
            vec!["c_attn".to_string()]
        } else {
            vec!["q_proj".into(), "v_proj".into()]
        }
    } else {
        args.lora_targets.clone()
    };
    Ok(Some(LoraConfig { r, alpha: args.lora_alpha, dropout: args.lora_dropout, target_modules: targets }))
}

fn finetune(a: FinetuneArgs) -> Result<()> {
    let lora = lora_config(&a.lora, &a.model)?;
    let betas: Vec<f32> = a
        .betas
        .split(',')
        .map(|b| b.trim().parse())
        .collect::<Result<_, _>>()
        .context("--betas takes two numbers: b1,b2")?;
    let [b1, b2] = betas[..] else { bail!("--betas takes two numbers: b1,b2") };
    let resume = match &a.resume {
        None => None,
        Some(p) if p.as_os_str() == "newest" && !p.exists() => Some(latest_checkpoint(&a.out)?),
        Some(p) => Some(p.clone()),
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let config = TrainConfig {
        lr: a.lr.unwrap_or(if lora.is_some() { 2e-4 } else { 2e-5 }),
        lora,
        model: a.model,
        data: a.data,
        val: a.val,
        val_split: a.val_split,
        log: Some(a.log.unwrap_or_else(|| a.out.join("log.jsonl"))),
        out: a.out,
        freeze_layers: a.lora.freeze_layers,
        length: match (a.steps, a.epochs) {
            (Some(s), _) => Length::Steps(s),
            (None, e) => Length::Epochs(e.unwrap_or(1.0)),
        },
        batch_size: a.batch_size,
        seq_len: a.seq_len,
        grad_accum: a.grad_accum,
        optim: AdamWConfig { betas: (b1, b2), eps: a.eps, weight_decay: a.weight_decay },
        schedule: a.schedule,
        warmup_steps: a.warmup_steps,
        min_lr: a.min_lr,
        clip_grad_norm: (a.clip_grad_norm > 0.0).then_some(a.clip_grad_norm),
        seed: a.seed,
        eval_every: a.eval_every,
        save_every: a.save_every,
        keep_checkpoints: a.keep_checkpoints,
        resume,
        progress: !a.quiet,
        samples: a.samples,
        merge: a.merge,
        precision: a.precision,
        recompute: a.recompute,
        on_step: None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ninterrupted (Ctrl-C or SIGTERM): saving a checkpoint after this step (Ctrl-C again to quit now)");
    })
    .context("installing the Ctrl-C handler")?;
    let s = train(&config, &stop)?;
    let first = s.losses.first().copied().unwrap_or(f32::NAN);
    let last = s.losses.last().copied().unwrap_or(f32::NAN);
    println!("steps            {} (this run: {} → {})", s.steps, s.first_step, s.steps);
    println!("train loss       {first:.4} → {last:.4}");
    if let Some(v) = s.val_loss {
        let before = s.val_loss_before.map(|b| format!("{b:.4} → ")).unwrap_or_default();
        println!("validation loss  {before}{v:.4} (perplexity {:.2})", v.exp());
    }
    println!("throughput       {:.0} tokens/s", s.tokens_per_second);
    if s.skipped_steps > 0 {
        println!("skipped          {} steps with a NaN/Inf loss or gradient", s.skipped_steps);
    }
    if !s.skipped_lines.is_empty() {
        println!("skipped          {} data lines:", s.skipped_lines.len());
        for l in s.skipped_lines.iter().take(5) {
            println!("                 {l}");
        }
    }
    if s.truncated > 0 {
        println!("truncated        {} examples were longer than --seq-len and were cut", s.truncated);
    }
    if let Some(peak) = peak_memory() {
        println!("peak memory      {:.1} MiB", peak as f64 / (1 << 20) as f64);
    }
    if let Some(c) = &s.last_checkpoint {
        println!("checkpoint       {}", c.display());
    }
    for o in &s.outputs {
        println!("output           {}", o.display());
    }
    if s.interrupted {
        println!("interrupted: continue with --resume");
    }
    for (i, sample) in s.samples.iter().enumerate() {
        println!("\nsample {}: {}", i + 1, sample.prompt);
        println!("  before: {}", sample.before);
        println!("  after:  {}", sample.after);
    }
    Ok(())
}

/// Peak resident memory of this process (Linux: VmHWM).
fn peak_memory() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<usize>().ok().map(|kb| kb * 1024)
}

fn load(model: &std::path::Path, adapter: Option<&std::path::Path>) -> Result<Model> {
    let mut m = Model::load(model)?;
    if let Some(a) = adapter {
        m.load_adapter(a)?;
    }
    Ok(m)
}

fn eval(a: EvalArgs) -> Result<()> {
    let m = load(&a.model, a.adapter.as_deref())?;
    let tok = Tokenizer::from_dir(&a.model)?;
    let data = trainer::data::Dataset::load(&a.data, &tok, a.seq_len)?;
    let (loss, tokens) = evaluate(&m, &data, a.batch_size, tok.pad_id())?;
    if a.json {
        println!("{}", serde_json::json!({"loss": loss, "perplexity": loss.exp(), "tokens": tokens}));
    } else {
        println!("loss {loss:.4}  perplexity {:.3}  over {tokens} tokens", loss.exp());
    }
    Ok(())
}

fn generate_cmd(a: GenerateArgs) -> Result<()> {
    let m = load(&a.model, a.adapter.as_deref())?;
    let tok = Tokenizer::from_dir(&a.model)?;
    let prompt = match (&a.prompt, &a.chat) {
        (Some(p), _) => tok.encode(p, true)?,
        (None, Some(c)) => {
            let text = tok.render_chat(&[Message { role: "user".into(), content: c.clone() }], true)?;
            tok.encode(&text, false)?
        }
        _ => bail!("give --prompt or --chat"),
    };
    let mut s = Sampling::from_generation_config(&a.model);
    s.max_new_tokens = a.max_new_tokens;
    s.seed = a.seed;
    s.eos.extend(tok.eos_ids.iter().copied());
    if let Some(t) = a.temperature {
        s.temperature = t;
    }
    if let Some(k) = a.top_k {
        s.top_k = k;
    }
    if let Some(p) = a.top_p {
        s.top_p = p;
    }
    if let Some(p) = &a.prompt {
        print!("{p}");
    }
    let mut out = Vec::new();
    let mut shown = 0;
    let stdout = std::io::stdout();
    generate(&m, &prompt, &s, |t| {
        out.push(t);
        // Decode everything so far and print what is new (multi-byte characters span tokens).
        if let Ok(text) = tok.decode(&out, true) {
            if text.len() > shown && text.is_char_boundary(shown) {
                let mut lock = stdout.lock();
                let _ = lock.write_all(&text.as_bytes()[shown..]);
                let _ = lock.flush();
                shown = text.len();
            }
        }
        true
    })?;
    println!();
    Ok(())
}

fn merge(a: MergeArgs) -> Result<()> {
    let mut m = load(&a.model, Some(&a.adapter))?;
    let n = m.merge_lora()?;
    trainer::export::save_full(&m, &a.out)?;
    println!("merged {n} adapted layers into {}", a.out.display());
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let config = TrainConfig {
        lora: lora_config(&a.lora, &a.model)?,
        freeze_layers: a.lora.freeze_layers,
        batch_size: a.batch_size,
        seq_len: a.seq_len,
        recompute: a.recompute,
        ..TrainConfig::for_model(a.model)
    };
    print!("{}", trainer::inspect::report(&config)?);
    Ok(())
}

/// `--model` may name a .gguf file: it is imported once into the cache
/// (`$HONE_CACHE`, else `~/.cache/hone/gguf`) and the directory used; or a
/// Hugging Face hub id (`owner/name[@revision]`), fetched into the hub cache.
fn model_dir(path: &std::path::Path) -> Result<PathBuf> {
    if let Some(id) = path.to_str().filter(|s| trainer::hub::is_hub_id(s)) {
        return trainer::hub::fetch(id);
    }
    let cache = std::env::var_os("HONE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/hone")
    });
    Ok(model::gguf_import::resolve_model(path, &cache.join("gguf"))?)
}

fn import(a: ImportArgs) -> Result<()> {
    let dtype = match a.dtype.as_str() {
        "f32" => tensor::DType::F32,
        "bf16" => tensor::DType::BF16,
        other => bail!("--dtype {other}: choose f32 or bf16"),
    };
    model::gguf_import::import_gguf(&a.file, &a.out, dtype)?;
    println!("imported {} into {}", a.file.display(), a.out.display());
    Ok(())
}

fn main() -> Result<()> {
    // Before any thread exists: a thread that has allocated keeps its own
    // malloc arena, whatever M_ARENA_MAX says later (see `memory`).
    trainer::memory::keep_resident_memory_flat();
    let mut cli = Cli::parse();
    match &mut cli.command {
        Command::Finetune(a) => a.model = model_dir(&a.model)?,
        Command::Eval(a) => a.model = model_dir(&a.model)?,
        Command::Generate(a) => a.model = model_dir(&a.model)?,
        Command::Merge(a) => a.model = model_dir(&a.model)?,
        Command::Inspect(a) => a.model = model_dir(&a.model)?,
        Command::ImportGguf(_) | Command::Bench(_) => {}
    }
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("setting --threads")?;
    }
    // The command runs on a worker of the pool, not beside it: then each
    // parallel op splits its work with the other workers directly, where
    // from outside the pool the main thread hands every op over and sleeps
    // until it is done (a futex wait and wake per op, and a third thread on
    // two cores). SmolLM2 LoRA, 2 threads: 80K -> 12K context switches per
    // 8-step run.
    let command = cli.command;
    rayon::scope(move |_| match command {
        Command::Finetune(a) => finetune(*a),
        Command::Eval(a) => eval(a),
        Command::Generate(a) => generate_cmd(a),
        Command::Merge(a) => merge(a),
        Command::Inspect(a) => inspect(a),
        Command::ImportGguf(a) => import(a),
        Command::Bench(a) => bench(a),
    })
}
