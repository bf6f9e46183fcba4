//! `hone finetune` end to end on the tiny fixture models and the sample data:
//! the loss falls, evaluation runs, the outputs load back with the same
//! results, a resumed run repeats the uninterrupted one bit for bit, and
//! Ctrl-C leaves a checkpoint.

use model::Model;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use trainer::data::Dataset;
use trainer::train::{evaluate, train, Length, TrainConfig};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hone-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(model: &str, out: &Path) -> TrainConfig {
    TrainConfig {
        data: repo("examples/data/faq_train.jsonl"),
        val: Some(repo("examples/data/faq_val.jsonl")),
        out: out.to_path_buf(),
        length: Length::Steps(20),
        batch_size: 4,
        seq_len: 160,
        lr: 3e-3,
        log: Some(out.join("log.jsonl")),
        ..TrainConfig::for_model(repo(&format!("tests/fixtures/{model}")))
    }
}

fn mean(x: &[f32]) -> f32 {
    x.iter().sum::<f32>() / x.len() as f32
}

fn val_loss_of(model: &Model, c: &TrainConfig) -> f64 {
    let tok = model::tokenizer::Tokenizer::from_dir(&c.model).unwrap();
    let val = Dataset::load(c.val.as_ref().unwrap(), &tok, c.seq_len).unwrap();
    evaluate(model, &val, c.batch_size, tok.pad_id()).unwrap().0
}

#[test]
fn full_fine_tuning_learns_and_writes_a_model_that_loads_back() {
    let out = out_dir("full");
    std::fs::create_dir_all(&out).unwrap();
    let c = config("llama", &out);
    let s = train(&c, &AtomicBool::new(false)).unwrap();
    assert_eq!(s.losses.len(), 20);
    assert!(mean(&s.losses[17..]) < 0.8 * mean(&s.losses[..3]), "losses {:?}", s.losses);
    let val = s.val_loss.expect("validation loss reported");
    let dir = &s.outputs[0];
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    let reloaded = Model::load(dir).unwrap();
    assert!((val_loss_of(&reloaded, &c) - val).abs() < 1e-6, "the exported weights are the trained ones");
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 21, "one line per step and the final evaluation");
}

#[test]
fn lora_learns_and_writes_a_peft_adapter() {
    let out = out_dir("lora");
    std::fs::create_dir_all(&out).unwrap();
    let lora =
        model::LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, target_modules: vec!["c_attn".into(), "c_fc".into()] };
    // GPT-2 here has 64 learned positions: train on plain text packed into 64-token blocks.
    let text: String = std::fs::read_to_string(repo("examples/data/faq_train.jsonl"))
        .unwrap()
        .lines()
        .take(60)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["messages"][2]["content"]
                .as_str()
                .unwrap()
                .to_string()
                + "\n\n"
        })
        .collect();
    let (train_txt, val_txt) = (out.join("train.txt"), out.join("val.txt"));
    std::fs::write(&train_txt, &text).unwrap();
    std::fs::write(&val_txt, &text[..text.len() / 4]).unwrap();
    let c = TrainConfig {
        lora: Some(lora),
        lr: 1e-2,
        data: train_txt,
        val: Some(val_txt),
        seq_len: 64,
        ..config("gpt2", &out)
    };
    let s = train(&c, &AtomicBool::new(false)).unwrap();
    assert!(mean(&s.losses[17..]) < 0.9 * mean(&s.losses[..3]), "losses {:?}", s.losses);
    let dir = &s.outputs[0];
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((cfg["peft_type"].as_str(), cfg["r"].as_u64()), (Some("LORA"), Some(8)));
    let mut reloaded = Model::load(&c.model).unwrap();
    reloaded.load_adapter(dir).unwrap();
    assert!((val_loss_of(&reloaded, &c) - s.val_loss.unwrap()).abs() < 1e-6);
    // Merged, the same model without an adapter.
    reloaded.merge_lora().unwrap();
    assert!((val_loss_of(&reloaded, &c) - s.val_loss.unwrap()).abs() < 1e-4);
}

#[test]
fn a_resumed_run_repeats_the_uninterrupted_one_bit_for_bit() {
    let (a, b) = (out_dir("straight"), out_dir("resumed"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let base = |out: &Path| TrainConfig {
        save_every: Some(10),
        keep_checkpoints: 5,
        grad_accum: 2,
        lora: Some(model::LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            target_modules: vec!["q_proj".into(), "v_proj".into()],
        }),
        lr: 1e-2,
        ..config("llama", out)
    };
    let straight = train(&base(&a), &AtomicBool::new(false)).unwrap();
    // The same run in another directory, then resumed from its step-10 checkpoint.
    let first = train(&base(&b), &AtomicBool::new(false)).unwrap();
    assert_eq!(first.losses, straight.losses);
    let resumed =
        train(&TrainConfig { resume: Some(b.join("checkpoints/step-000010")), ..base(&b) }, &AtomicBool::new(false))
            .unwrap();
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(resumed.first_step, 10);
    assert_eq!(bits(&resumed.losses), bits(&straight.losses[10..]), "steps 11-20 repeat exactly");
    let read = |d: &Path| std::fs::read(d.join("adapter/adapter_model.safetensors")).unwrap();
    assert_eq!(read(&a), read(&b), "identical final adapter weights");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_stops() {
    let out = out_dir("interrupt");
    std::fs::create_dir_all(&out).unwrap();
    let s = train(&config("qwen2", &out), &AtomicBool::new(true)).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.steps, 1);
    assert!(s.last_checkpoint.unwrap().join("state.json").is_file());
    assert!(s.outputs.is_empty());
}

#[test]
fn bad_data_lines_are_named() {
    let out = out_dir("bad");
    std::fs::create_dir_all(&out).unwrap();
    let data = out.join("bad.jsonl");
    std::fs::write(&data, "{\"text\": \"fine\"}\n{\"text\": 3}\n").unwrap();
    let c = TrainConfig { data: data.clone(), val: None, ..config("llama", &out) };
    let err = format!("{:#}", train(&c, &AtomicBool::new(false)).unwrap_err());
    assert!(err.contains("bad.jsonl:2") && err.contains("\"text\""), "{err}");
}

#[test]
fn accumulation_equals_the_larger_batch() {
    // One step of batch 4 against one step of 2 micro-batches of 2: the same
    // examples, weighted by counted tokens, so the same update (to rounding).
    let (a, b) = (out_dir("acc1"), out_dir("acc2"));
    let run = |out: &Path, batch, accum| {
        std::fs::create_dir_all(out).unwrap();
        let c = TrainConfig {
            length: Length::Steps(1),
            batch_size: batch,
            grad_accum: accum,
            val: None,
            ..config("llama", out)
        };
        train(&c, &AtomicBool::new(false)).unwrap();
        Model::load(out.join("model")).unwrap().weight_tensors()
    };
    let (one, two) = (run(&a, 4, 1), run(&b, 2, 2));
    for ((n, x), (_, y)) in one.iter().zip(&two) {
        let d = x.to_f32_vec().iter().zip(y.to_f32_vec()).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(d < 1e-6, "{n} differs by {d}");
    }
}

/// `--recompute` trains the same run: LoRA (with dropout) gives the same
/// losses bit for bit, since only the blocks' adapters train.
#[test]
fn recompute_gives_the_same_lora_run() {
    let run = |recompute: bool| {
        let out = out_dir(&format!("recompute-{recompute}"));
        let lora = Some(model::LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        });
        let c = TrainConfig { lora, recompute, length: Length::Steps(4), val: None, ..config("llama", &out) };
        let s = train(&c, &AtomicBool::new(false)).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        s.losses
    };
    let (kept, again) = (run(false), run(true));
    assert_eq!(kept.len(), 4);
    assert_eq!(kept, again);
}
