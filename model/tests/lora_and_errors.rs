//! LoRA from scratch, and the errors a user meets with a bad model directory.

use model::{LoraConfig, Model, ModelError};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

#[test]
fn a_fresh_adapter_changes_nothing_and_trains_only_its_factors() {
    let ids: Vec<u32> = (0..16).map(|i| (i * 37 % 290 + 3) as u32).collect();
    for (name, targets) in [("llama", vec!["q_proj", "v_proj"]), ("gpt2", vec!["c_attn"])] {
        let base = Model::load(fixture(name)).unwrap();
        let before = autograd::no_grad(|| base.forward(&ids, 2, 8)).unwrap().value().to_f32_vec();
        let mut m = Model::load(fixture(name)).unwrap();
        let config = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            target_modules: targets.iter().map(|s| s.to_string()).collect(),
        };
        let wrapped = m.add_lora(&config, 7).unwrap();
        assert_eq!(wrapped, 2 * targets.len(), "{name}: every target in both layers");
        let after = autograd::no_grad(|| m.forward(&ids, 2, 8)).unwrap().value().to_f32_vec();
        assert_eq!(before, after, "{name}: B = 0, so the adapter adds exactly zero");
        // A is Kaiming-uniform: U(-1/sqrt(in), 1/sqrt(in)) with in = 32.
        let vars = m.trainable();
        assert!(vars.iter().all(|(n, _)| n.contains(".lora_")), "only LoRA factors train");
        let a = vars.iter().find(|(n, _)| n.ends_with("lora_A.weight")).unwrap().1.value().to_f32_vec();
        let bound = 1.0 / 32f32.sqrt();
        assert!(a.iter().all(|x| x.abs() <= bound) && a.iter().any(|x| x.abs() > 0.5 * bound));
        // Training mode (dropout on): a backward reaches A only through B, which is zero,
        // so B gets a gradient and A gets exactly zero, as in PEFT's first step.
        let labels: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        m.loss(&ids, &labels, 2, 8).unwrap().backward().unwrap();
        for (n, v) in m.trainable() {
            let g = v.grad().unwrap().to_f32_vec();
            let nonzero = g.iter().any(|&x| x != 0.0);
            assert_eq!(nonzero, n.contains("lora_B"), "{name}: {n}");
        }
    }
}

fn copy_fixture(name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("hone-model-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for f in std::fs::read_dir(fixture(name)).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
    }
    edit(&dst);
    dst
}

fn edit_config(dir: &Path, f: impl Fn(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn bad_directories_name_the_file_field_or_tensor() {
    let d = copy_fixture("llama", |d| edit_config(d, |v| v["model_type"] = "mamba".into()));
    let e = Model::load(&d).unwrap_err();
    assert!(matches!(e, ModelError::Unsupported { .. }) && e.to_string().contains("config.json"), "{e}");

    let d = copy_fixture("llama", |d| edit_config(d, |v| drop(v.as_object_mut().unwrap().remove("intermediate_size"))));
    let e = Model::load(&d).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("intermediate_size") && e.contains("missing"), "{e}");

    let d = copy_fixture("llama", |d| edit_config(d, |v| v["intermediate_size"] = 48.into()));
    let e = Model::load(&d).unwrap_err().to_string();
    assert!(e.contains("model.layers.0.mlp.gate_proj.weight") && e.contains("[48, 32]"), "{e}");

    let d = copy_fixture("qwen2", |d| edit_config(d, |v| v["tie_word_embeddings"] = false.into()));
    std::fs::write(d.join("model.safetensors"), b"short").unwrap();
    let e = Model::load(&d).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");

    let d = copy_fixture("qwen2", |d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    assert!(Model::load(&d).is_err());
}
