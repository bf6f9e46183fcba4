//! `import_gguf` end to end without Python: the fixture models are written
//! as GGUF files the way llama.cpp's converter writes them (llama.cpp tensor
//! names, q/k rows permuted for rotary, tokenizer as `tokenizer.ggml.*`
//! metadata), imported back, and must give the same logits and token ids.

use model::gguf_import::import_gguf;
use model::tokenizer::Tokenizer;
use model::Model;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use tensor::safetensors::SafetensorsFile;
use tensor::{DType, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hone-gguf-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A metadata value as the writer emits it.
enum Meta {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
    U32s(Vec<u32>),
}

/// Writes a GGUF v3 file: metadata, then F32 tensors (row-major `shape`).
fn write_gguf(path: &Path, meta: &[(&str, Meta)], tensors: &[(String, Tensor)]) {
    fn s(b: &mut Vec<u8>, x: &str) {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    }
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((meta.len() as u64).to_le_bytes());
    for (k, v) in meta {
        s(&mut b, k);
        match v {
            Meta::U32(x) => {
                b.extend(4u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
            Meta::F32(x) => {
                b.extend(6u32.to_le_bytes());
                b.extend(x.to_le_bytes());
            }
            Meta::Bool(x) => {
                b.extend(7u32.to_le_bytes());
                b.push(*x as u8);
            }
            Meta::Str(x) => {
                b.extend(8u32.to_le_bytes());
                s(&mut b, x);
            }
            Meta::Strs(xs) => {
                b.extend(9u32.to_le_bytes());
                b.extend(8u32.to_le_bytes());
                b.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| s(&mut b, x));
            }
            Meta::U32s(xs) => {
                b.extend(9u32.to_le_bytes());
                b.extend(4u32.to_le_bytes());
                b.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| b.extend(x.to_le_bytes()));
            }
        }
    }
    let mut offset = 0u64;
    for (name, t) in tensors {
        s(&mut b, name);
        b.extend((t.rank() as u32).to_le_bytes());
        t.shape().iter().rev().for_each(|&d| b.extend((d as u64).to_le_bytes()));
        b.extend(0u32.to_le_bytes()); // F32
        b.extend(offset.to_le_bytes());
        offset += (t.numel() as u64 * 4).div_ceil(32) * 32;
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    for (_, t) in tensors {
        let start = b.len();
        t.to_f32_vec().iter().for_each(|x| b.extend(x.to_le_bytes()));
        while !(b.len() - start).is_multiple_of(32) {
            b.push(0);
        }
    }
    std::fs::write(path, b).unwrap();
}

/// llama.cpp's converter permutation of q/k rows: (H, 2, D/2, C) -> (H, D/2, 2, C).
fn permute(t: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = (t.shape()[0], t.shape()[1]);
    t.reshape(&[heads, 2, rows / heads / 2, cols])
        .unwrap()
        .permute(&[0, 2, 1, 3])
        .unwrap()
        .contiguous()
        .reshape(&[rows, cols])
        .unwrap()
}

/// llama.cpp's name for a transformers tensor name.
fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
        ("transformer.wte.weight", "token_embd.weight"),
        ("transformer.wpe.weight", "position_embd.weight"),
        ("transformer.ln_f.weight", "output_norm.weight"),
        ("transformer.ln_f.bias", "output_norm.bias"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").or_else(|| hf.strip_prefix("transformer.h.")).unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let (module, kind) = part.rsplit_once('.').unwrap();
    let g = match module {
        "input_layernorm" | "ln_1" => "attn_norm",
        "post_attention_layernorm" | "ln_2" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" | "attn.c_proj" => "attn_output",
        "attn.c_attn" => "attn_qkv",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" | "mlp.c_fc" => "ffn_up",
        "mlp.down_proj" | "mlp.c_proj" => "ffn_down",
        m => panic!("{m}"),
    };
    format!("blk.{layer}.{g}.{kind}")
}

/// llama.cpp's `rope_freqs` for a Llama 3 `rope_parameters` object, as its
/// converter computes it (in f64 here).
fn rope_freqs(p: &Json, theta: f64, head_dim: usize) -> Tensor {
    let f = |k: &str| p[k].as_f64().unwrap();
    let (factor, low, high, old) =
        (f("factor"), f("low_freq_factor"), f("high_freq_factor"), f("original_max_position_embeddings"));
    let factors: Vec<f32> = (0..head_dim / 2)
        .map(|i| {
            let wavelen = 2.0 * std::f64::consts::PI * theta.powf(2.0 * i as f64 / head_dim as f64);
            if wavelen < old / high {
                1.0
            } else if wavelen > old / low {
                factor as f32
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect();
    Tensor::from_vec(factors, &[head_dim / 2]).unwrap()
}

/// The fixture `name` as llama.cpp would convert it.
fn to_gguf(name: &str, arch: &str, path: &Path) {
    let dir = fixture(name);
    let config: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tok: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    let u = |k: &str| config[k].as_u64().unwrap() as u32;
    let st = SafetensorsFile::open(dir.join("model.safetensors")).unwrap();
    let mut tensors = Vec::new();
    for n in st.names() {
        let mut t = st.tensor(n).unwrap();
        if arch == "llama" && n.ends_with("q_proj.weight") {
            t = permute(&t, u("num_attention_heads") as usize);
        } else if arch == "llama" && n.ends_with("k_proj.weight") {
            t = permute(&t, u("num_key_value_heads") as usize);
        } else if arch == "gpt2" && t.rank() == 2 && n.contains(".h.") {
            t = t.transpose(0, 1).unwrap().contiguous(); // Conv1D (in, out) -> (out, in)
        }
        tensors.push((gguf_name(n), t));
    }
    if arch == "gpt2" {
        // The converter repeats the tied embedding as the head.
        let wte = tensors.iter().find(|(n, _)| n == "token_embd.weight").unwrap().1.clone();
        tensors.push(("output.weight".into(), wte));
    }
    let rope = config.get("rope_parameters").cloned().unwrap_or(Json::Null);
    let theta = rope["rope_theta"].as_f64().or(config["rope_theta"].as_f64()).unwrap_or(10000.0);
    if rope["rope_type"] == "llama3" {
        tensors.push(("rope_freqs.weight".into(), rope_freqs(&rope, theta, u("head_dim") as usize)));
    }
    let vocab = tok["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    vocab.iter().for_each(|(t, id)| tokens[id.as_u64().unwrap() as usize] = t.clone());
    let merges = tok["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()))
        .collect();
    let types = (0..tokens.len() as u32).map(|i| if i < 3 { 3 } else { 1 }).collect();
    let a = |k: &str| -> &'static str { format!("{arch}.{k}").leak() };
    let mut meta = if arch == "gpt2" {
        vec![
            (a("block_count"), Meta::U32(u("n_layer"))),
            (a("context_length"), Meta::U32(u("n_positions"))),
            (a("embedding_length"), Meta::U32(u("n_embd"))),
            (a("feed_forward_length"), Meta::U32(4 * u("n_embd"))),
            (a("attention.head_count"), Meta::U32(u("n_head"))),
            (a("attention.layer_norm_epsilon"), Meta::F32(config["layer_norm_epsilon"].as_f64().unwrap() as f32)),
        ]
    } else {
        vec![
            (a("block_count"), Meta::U32(u("num_hidden_layers"))),
            (a("context_length"), Meta::U32(u("max_position_embeddings"))),
            (a("embedding_length"), Meta::U32(u("hidden_size"))),
            (a("feed_forward_length"), Meta::U32(u("intermediate_size"))),
            (a("attention.head_count"), Meta::U32(u("num_attention_heads"))),
            (a("attention.head_count_kv"), Meta::U32(u("num_key_value_heads"))),
            (a("rope.freq_base"), Meta::F32(theta as f32)),
            (a("attention.layer_norm_rms_epsilon"), Meta::F32(config["rms_norm_eps"].as_f64().unwrap() as f32)),
        ]
    };
    meta.extend([
        ("general.architecture", Meta::Str(arch.into())),
        ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens)),
        ("tokenizer.ggml.token_type", Meta::U32s(types)),
        ("tokenizer.ggml.merges", Meta::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(0)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        ("tokenizer.ggml.padding_token_id", Meta::U32(0)),
        ("tokenizer.ggml.add_bos_token", Meta::Bool(true)), // all fixtures start with BOS
        ("tokenizer.chat_template", Meta::Str(std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap())),
    ]);
    write_gguf(path, &meta, &tensors);
}

fn logits(m: &Model) -> Vec<f32> {
    let ids: Vec<u32> = (0..16).map(|i| (i * 37 % 290 + 3) as u32).collect();
    autograd::no_grad(|| m.forward(&ids, 2, 8)).unwrap().value().to_f32_vec()
}

fn check_tokenizer(imported: &Path, original: &Path) {
    let (a, b) = (Tokenizer::from_dir(imported).unwrap(), Tokenizer::from_dir(original).unwrap());
    for s in ["Hello world", "  spaces\tand\ttabs\n\n", "Größe 東京 🙂", "<|im_start|>user\nhi<|im_end|>", ""] {
        assert_eq!(a.encode(s, true).unwrap(), b.encode(s, true).unwrap(), "{s:?}");
    }
    let msgs = [model::tokenizer::Message { role: "user".into(), content: "hi".into() }];
    assert_eq!(a.render_chat(&msgs, true).unwrap(), b.render_chat(&msgs, true).unwrap());
}

#[test]
fn qwen2_round_trips_through_gguf() {
    let d = temp("qwen2");
    to_gguf("qwen2", "qwen2", &d.join("m.gguf"));
    import_gguf(&d.join("m.gguf"), &d.join("out"), DType::F32).unwrap();
    let (imported, original) = (Model::load(d.join("out")).unwrap(), Model::load(fixture("qwen2")).unwrap());
    assert_eq!(logits(&imported), logits(&original), "same weights, biases, untied head: identical logits");
    check_tokenizer(&d.join("out"), &fixture("qwen2"));
}

#[test]
fn llama_rotary_permutation_and_scaling_are_undone() {
    // The fixture has Llama 3 rotary scaling: the GGUF carries it as rope_freqs.
    let d = temp("llama");
    to_gguf("llama", "llama", &d.join("m.gguf"));
    import_gguf(&d.join("m.gguf"), &d.join("out"), DType::F32).unwrap();
    let config = model::Config::from_dir(&d.join("out")).unwrap();
    let original = model::Config::from_dir(&fixture("llama")).unwrap();
    assert_eq!(config.rope_scaling.map(|s| s.original_max_position_embeddings), Some(16));
    let (a, b) = (logits(&Model::load(d.join("out")).unwrap()), logits(&Model::load(fixture("llama")).unwrap()));
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "max logit difference {diff} ({:?} vs {:?})", config.rope_scaling, original.rope_scaling);
    // Without the scaling the logits differ: the test can see the rope_freqs path.
    let mut plain = config.clone();
    plain.rope_scaling = None;
    assert_ne!(
        model::rope::Rope::new(&plain).tables(0, 8).unwrap().0.to_f32_vec(),
        model::rope::Rope::new(&config).tables(0, 8).unwrap().0.to_f32_vec()
    );
    check_tokenizer(&d.join("out"), &fixture("llama"));
    // bf16 import stores bf16.
    import_gguf(&d.join("m.gguf"), &d.join("bf16"), DType::BF16).unwrap();
    assert!(Model::load(d.join("bf16")).unwrap().named_vars().iter().all(|(_, v)| v.value().dtype() == DType::BF16));
}

#[test]
fn gpt2_conv1d_and_fused_qkv_round_trip() {
    let d = temp("gpt2");
    to_gguf("gpt2", "gpt2", &d.join("m.gguf"));
    import_gguf(&d.join("m.gguf"), &d.join("out"), DType::F32).unwrap();
    let config = model::Config::from_dir(&d.join("out")).unwrap();
    assert!(config.tie_word_embeddings, "the repeated head is recognised as tied");
    let (imported, original) = (Model::load(d.join("out")).unwrap(), Model::load(fixture("gpt2")).unwrap());
    assert_eq!(logits(&imported), logits(&original));
    check_tokenizer(&d.join("out"), &fixture("gpt2"));
}

#[test]
fn bad_gguf_files_are_named_errors() {
    let d = temp("bad");
    let p = d.join("x.gguf");
    std::fs::write(&p, b"GGML\x03\0\0\0").unwrap();
    let e = import_gguf(&p, &d.join("o"), DType::F32).unwrap_err().to_string();
    assert!(e.contains("x.gguf") && e.contains("magic"), "{e}");
    std::fs::write(&p, b"GGUF\x03\0\0\0\x01\0").unwrap();
    let e = import_gguf(&p, &d.join("o"), DType::F32).unwrap_err().to_string();
    assert!(e.contains("x.gguf") && e.contains("truncated"), "{e}");
    write_gguf(&p, &[("general.architecture", Meta::Str("mamba".into()))], &[]);
    let e = import_gguf(&p, &d.join("o"), DType::F32).unwrap_err().to_string();
    assert!(e.contains("general.architecture") && e.contains("mamba"), "{e}");
}
