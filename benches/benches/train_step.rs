//! criterion bench of whole training steps (forward, backward, AdamW), so
//! regressions anywhere in the stack show up: `cargo bench -p benches --bench train_step`.
//!
//! A random-init Llama of 4 layers, hidden 256, vocab 8192 (about 8M
//! parameters), B = 4, T = 128, full fine-tuning and LoRA r = 16.
//! Throughput is tokens per step, so "elem/s" reads as tokens/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;
use std::time::Duration;

fn config() -> model::Config {
    let v = serde_json::json!({"model_type": "llama", "vocab_size": 8192, "hidden_size": 256, "intermediate_size": 768,
        "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 512,
        "tie_word_embeddings": true});
    model::Config::from_json(Path::new("bench"), &v).unwrap()
}

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step/llama-8m-B4-T128");
    group.throughput(Throughput::Elements(4 * 128));
    group.sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    for mode in ["full", "lora"] {
        group.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                let lora = (mode == "lora").then(|| model::LoraConfig {
                    r: 16,
                    alpha: 32.0,
                    dropout: 0.0,
                    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
                        .map(String::from)
                        .to_vec(),
                });
                let m = model::Model::random(config(), 1).unwrap();
                let r = trainer::bench::run(m, lora, &trainer::bench::BenchJob::new(4, 128, iters as usize)).unwrap();
                Duration::from_secs_f64(r.step_seconds_median * iters as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
