//! hone against PyTorch/transformers on the committed fixtures
//! (`tests/fixtures/make_fixtures.py`): logits, loss and gradients of a
//! fixed batch with ignored labels; greedy generation; f32 and bf16 weights;
//! a PEFT LoRA adapter.

use model::generate::{generate, Sampling};
use model::tokenizer::Tokenizer;
use model::{shift_labels, Model};
use serde_json::Value;
use std::path::PathBuf;
use tensor::safetensors::SafetensorsFile;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

struct Case {
    ids: Vec<u32>,
    labels: Vec<i64>,
    batch: usize,
    seq: usize,
    meta: Value,
    expected: SafetensorsFile,
}

fn case(name: &str) -> Case {
    let dir = fixture(name);
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let rows = meta["input_ids"].as_array().unwrap();
    let (batch, seq) = (rows.len(), rows[0].as_array().unwrap().len());
    let flat = |key: &str| -> Vec<i64> {
        meta[key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
            .collect()
    };
    let ids = flat("input_ids").into_iter().map(|x| x as u32).collect();
    let labels = flat("labels");
    Case { ids, labels, batch, seq, meta, expected: SafetensorsFile::open(dir.join("expected.safetensors")).unwrap() }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Forward, loss and backward of `model` on the case's batch, compared with
/// the fixture. `grad_name` maps a fixture gradient name to hone's name.
fn check(model: &Model, c: &Case, grad_name: impl Fn(&str) -> String) {
    let logits = model.forward(&c.ids, c.batch, c.seq).unwrap();
    let want_logits = c.expected.tensor("logits").unwrap().to_f32_vec();
    let diff = max_abs_diff(&logits.value().to_f32_vec(), &want_logits);
    eprintln!("logits max diff {diff}");
    assert!(diff <= 1e-4, "logits differ by {diff}");
    let loss = autograd::cross_entropy(&logits, &shift_labels(&c.labels, c.seq)).unwrap();
    let want_loss = c.expected.tensor("loss").unwrap().to_f32_vec()[0];
    assert!((loss.item().unwrap() - want_loss).abs() <= 1e-4, "loss {} vs {want_loss}", loss.item().unwrap());
    loss.backward().unwrap();
    let vars = model.named_vars();
    for g in c.meta["grads"].as_array().unwrap() {
        let g = g.as_str().unwrap();
        let name = grad_name(g);
        let var = &vars.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("hone has no parameter {name}")).1;
        let got = var.grad().unwrap_or_else(|| panic!("{name} got no gradient")).to_f32_vec();
        let want = c.expected.tensor(&format!("grad.{g}")).unwrap().to_f32_vec();
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let rel = max_abs_diff(&got, &want) / scale;
        assert!(rel <= 1e-3, "{name}: gradient differs by {rel} relative to its largest element {scale}");
    }
}

fn full_model(name: &str) -> Model {
    let mut m = Model::load(fixture(name)).unwrap();
    m.set_trainable(|_| true);
    m
}

#[test]
fn gpt2_matches_transformers() {
    check(&full_model("gpt2"), &case("gpt2"), |n| n.to_string());
}

#[test]
fn llama_with_gqa_tied_embeddings_and_llama3_rope_matches_transformers() {
    check(&full_model("llama"), &case("llama"), |n| n.to_string());
}

#[test]
fn llama_stored_in_bf16_matches_transformers() {
    let m = full_model("llama_bf16");
    assert!(m.named_vars().iter().all(|(_, v)| v.value().dtype() == tensor::DType::BF16), "weights stay bf16");
    check(&m, &case("llama_bf16"), |n| n.to_string());
}

#[test]
fn llama_stored_in_f16_matches_transformers() {
    let m = full_model("llama_f16");
    assert!(m.named_vars().iter().all(|(_, v)| v.value().dtype() == tensor::DType::F16), "weights stay f16");
    check(&m, &case("llama_f16"), |n| n.to_string());
}

#[test]
fn qwen2_with_biases_matches_transformers() {
    check(&full_model("qwen2"), &case("qwen2"), |n| n.to_string());
}

#[test]
fn peft_lora_adapter_matches() {
    let mut m = Model::load(fixture("llama")).unwrap();
    let config = m.load_adapter(fixture("llama_lora")).unwrap();
    assert_eq!((config.r, config.alpha), (4, 8.0));
    let trainable: Vec<String> = m.trainable().into_iter().map(|(n, _)| n).collect();
    assert_eq!(trainable.len(), 8, "A and B of q_proj and v_proj in 2 layers: {trainable:?}");
    // PEFT: base_model.model.<module>.lora_A.default.weight
    check(&m, &case("llama_lora"), |n| n.trim_start_matches("base_model.model.").replace(".default", ""));
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in ["gpt2", "llama", "llama_bf16", "llama_f16", "qwen2"] {
        let m = Model::load(fixture(name)).unwrap();
        let tok = Tokenizer::from_dir(fixture(name)).unwrap();
        let c = case(name);
        let prompt: Vec<u32> =
            c.meta["prompt"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let want: Vec<u32> = c.meta["greedy"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let sampling = Sampling { max_new_tokens: 12, eos: tok.eos_ids.clone(), ..Sampling::default() };
        let mut streamed = Vec::new();
        let got = generate(&m, &prompt, &sampling, |t| {
            streamed.push(t);
            true
        })
        .unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(streamed, got, "tokens are streamed as produced");
    }
}

#[test]
fn cached_generation_equals_full_forward() {
    // The KV-cache path (prefill + one token at a time) against recomputing the whole sequence.
    let m = Model::load(fixture("llama")).unwrap();
    let ids = [5u32, 9, 17, 33, 101, 7];
    let full = autograd::no_grad(|| m.forward(&ids, 1, ids.len())).unwrap().value().to_f32_vec();
    let mut cache = model::KvCache::default();
    let mut stepped = m.forward_cached(&ids[..3], &mut cache).unwrap().to_f32_vec();
    for &t in &ids[3..] {
        stepped.extend(m.forward_cached(&[t], &mut cache).unwrap().to_f32_vec());
    }
    assert!(max_abs_diff(&full, &stepped) < 1e-5);
}

#[test]
fn loading_maps_the_weights() {
    let m = Model::load(fixture("qwen2")).unwrap();
    let vars = m.named_vars();
    assert!(!vars.is_empty());
    for (name, v) in &vars {
        assert!(v.value().is_mapped(), "{name} was copied out of the file");
    }
}
