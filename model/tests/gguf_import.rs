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

fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let (module, kind) = part.rsplit_once('.').unwrap();
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        m => panic!("{m}"),
    };
    format!("blk.{layer}.{g}.{kind}")
}

/// The fixture `name` as llama.cpp would convert it.
fn to_gguf(name: &str, arch: &str, path: &Path) {
    let dir = fixture(name);
    let config: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tok: Json = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    let u = |k: &str| config[k].as_u64().unwrap() as u32;
    let (heads, kv) = (u("num_attention_heads") as usize, u("num_key_value_heads") as usize);
    let st = SafetensorsFile::open(dir.join("model.safetensors")).unwrap();
    let mut tensors = Vec::new();
    for n in st.names() {
        let mut t = st.tensor(n).unwrap();
        if arch == "llama" && n.ends_with("q_proj.weight") {
            t = permute(&t, heads);
        } else if arch == "llama" && n.ends_with("k_proj.weight") {
            t = permute(&t, kv);
        }
        tensors.push((gguf_name(n), t));
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
    let theta = config["rope_parameters"]["rope_theta"].as_f64().or(config["rope_theta"].as_f64()).unwrap() as f32;
    let a = |k: &str| format!("{arch}.{k}");
    let meta = vec![
        ("general.architecture", Meta::Str(arch.into())),
        (a("block_count").leak() as &str, Meta::U32(u("num_hidden_layers"))),
        (a("context_length").leak(), Meta::U32(u("max_position_embeddings"))),
        (a("embedding_length").leak(), Meta::U32(u("hidden_size"))),
        (a("feed_forward_length").leak(), Meta::U32(u("intermediate_size"))),
        (a("attention.head_count").leak(), Meta::U32(heads as u32)),
        (a("attention.head_count_kv").leak(), Meta::U32(kv as u32)),
        (a("rope.freq_base").leak(), Meta::F32(theta)),
        (a("attention.layer_norm_rms_epsilon").leak(), Meta::F32(config["rms_norm_eps"].as_f64().unwrap() as f32)),
        ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens)),
        ("tokenizer.ggml.token_type", Meta::U32s(types)),
        ("tokenizer.ggml.merges", Meta::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(0)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        ("tokenizer.ggml.padding_token_id", Meta::U32(0)),
        ("tokenizer.ggml.add_bos_token", Meta::Bool(true)),
        ("tokenizer.chat_template", Meta::Str(std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap())),
    ];
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
fn llama_rotary_permutation_is_undone() {
    // The llama fixture without its Llama-3 rope scaling (GGUF carries that as a
    // rope_freqs tensor, which the importer refuses for now).
    let d = temp("llama");
    let plain = d.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    for f in std::fs::read_dir(fixture("llama")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, plain.join(f.file_name().unwrap())).unwrap();
    }
    let mut config: Json = serde_json::from_str(&std::fs::read_to_string(plain.join("config.json")).unwrap()).unwrap();
    config["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 10000.0});
    std::fs::write(plain.join("config.json"), config.to_string()).unwrap();
    to_gguf("llama", "llama", &d.join("m.gguf"));
    import_gguf(&d.join("m.gguf"), &d.join("out"), DType::F32).unwrap();
    assert_eq!(logits(&Model::load(d.join("out")).unwrap()), logits(&Model::load(&plain).unwrap()));
    check_tokenizer(&d.join("out"), &plain);
    // bf16 import stores bf16.
    import_gguf(&d.join("m.gguf"), &d.join("bf16"), DType::BF16).unwrap();
    assert!(Model::load(d.join("bf16")).unwrap().named_vars().iter().all(|(_, v)| v.value().dtype() == DType::BF16));
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
