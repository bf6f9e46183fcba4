//! Faults and bad input: each case asserts the specific outcome, and that
//! nothing already saved is lost.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use trainer::checkpoint;
use trainer::train::{train, Length, TrainConfig};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hone-fault-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(out: &Path) -> TrainConfig {
    TrainConfig {
        data: repo("examples/data/faq_train.jsonl"),
        out: out.to_path_buf(),
        length: Length::Steps(6),
        batch_size: 4,
        seq_len: 160,
        lr: 3e-3,
        save_every: Some(1),
        keep_checkpoints: 10,
        ..TrainConfig::for_model(repo("tests/fixtures/llama"))
    }
}

fn err(c: &TrainConfig) -> String {
    format!("{:#}", train(c, &AtomicBool::new(false)).unwrap_err())
}

/// Every finished checkpoint opens and holds all three files.
fn assert_checkpoints_whole(out: &Path) -> Vec<PathBuf> {
    let all = checkpoint::list(out).unwrap();
    for c in &all {
        tensor::safetensors::SafetensorsFile::open(c.join("trainable.safetensors")).unwrap();
        tensor::safetensors::SafetensorsFile::open(c.join("optimizer.safetensors")).unwrap();
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(c.join("state.json")).unwrap()).unwrap();
        assert!(s["step"].as_u64().is_some(), "{}", c.display());
    }
    all
}

#[test]
fn non_finite_losses_are_skipped_then_stop_the_run_keeping_the_last_checkpoint() {
    let out = out_dir("nan");
    // A learning rate so large that the first update sends the weights to ±1e30.
    let e = err(&TrainConfig { lr: 1e30, clip_grad_norm: None, ..config(&out) });
    assert!(e.contains("non-finite") && e.contains("learning rate"), "{e}");
    assert!(e.contains("step-000001") && e.contains("untouched"), "{e}");
    let all = assert_checkpoints_whole(&out);
    assert_eq!(all.len(), 1, "the step-1 checkpoint, and nothing from the failed steps");
}

#[test]
fn a_second_run_on_the_same_output_refuses() {
    let out = out_dir("lock");
    std::fs::write(out.join(".hone.lock"), format!("{}\n", std::process::id())).unwrap();
    let e = err(&config(&out));
    assert!(e.contains("in use by another hone run") && e.contains(&std::process::id().to_string()), "{e}");
    // A lock left by a dead process is taken over.
    std::fs::write(out.join(".hone.lock"), "4000000\n").unwrap();
    let s = train(&TrainConfig { length: Length::Steps(2), ..config(&out) }, &AtomicBool::new(false)).unwrap();
    assert_eq!(s.steps, 2);
    assert!(!out.join(".hone.lock").exists(), "released at the end");
}

#[test]
fn a_failed_checkpoint_write_is_reported_and_the_previous_one_survives() {
    let out = out_dir("write");
    // Something in the way of step 2's checkpoint: a plain file where its directory goes.
    std::fs::create_dir_all(out.join("checkpoints")).unwrap();
    std::fs::write(out.join("checkpoints/step-000002"), b"in the way").unwrap();
    let e = err(&config(&out));
    assert!(e.contains("step-000002"), "{e}");
    let all = assert_checkpoints_whole(&out);
    assert_eq!(
        all.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect::<Vec<_>>(),
        ["step-000001"]
    );
}

#[test]
fn bad_data_gets_clear_messages() {
    let out = out_dir("data");
    let write = |name: &str, bytes: &[u8]| {
        let p = out.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let with = |data: PathBuf| TrainConfig { data, ..config(&out) };
    let e = err(&with(write("empty.jsonl", b"")));
    assert!(e.contains("empty.jsonl") && e.contains("no training examples"), "{e}");
    let e = err(&with(write("broken.jsonl", b"{\"text\": \"a\"}\n{\"text\": \"b\"\n")));
    assert!(e.contains("broken.jsonl:2") && e.contains("not valid JSON"), "{e}");
    let e = err(&with(write("fields.jsonl", b"{\"body\": \"a\"}\n")));
    assert!(e.contains("fields.jsonl:1") && e.contains("expected {\"text\"}"), "{e}");
    let e = err(&with(write("latin1.txt", b"fine line\nbad \xe9 byte\n")));
    assert!(e.contains("latin1.txt:2") && e.contains("UTF-8"), "{e}");
    let e = err(&with(write("unknown.csv", b"a,b\n")));
    assert!(e.contains(".txt and .jsonl"), "{e}");

    // Skipped and truncated examples are counted and reported, not silent.
    let chat = |assistant: bool| {
        let mut m = vec![serde_json::json!({"role": "user", "content": "Where is my order?"})];
        if assistant {
            m.push(serde_json::json!({"role": "assistant", "content": "It left the workshop today. ".repeat(20)}));
        }
        serde_json::json!({ "messages": m }).to_string()
    };
    let data = write("mixed.jsonl", format!("{}\n{}\n{}\n", chat(true), chat(false), chat(true)).as_bytes());
    // Two usable examples and a batch of 4: smaller than one batch still trains.
    let s =
        train(&TrainConfig { seq_len: 64, length: Length::Steps(2), ..with(data) }, &AtomicBool::new(false)).unwrap();
    assert_eq!(s.truncated, 2, "both long conversations were cut to --seq-len");
    assert_eq!(s.skipped_lines.len(), 1);
    assert!(
        s.skipped_lines[0].contains("mixed.jsonl:2") && s.skipped_lines[0].contains("assistant"),
        "{:?}",
        s.skipped_lines
    );
}

fn hone() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hone"))
}

fn finetune_args(out: &Path, steps: u64) -> Vec<String> {
    [
        "finetune",
        "--model",
        repo("tests/fixtures/llama").to_str().unwrap(),
        "--data",
        repo("examples/data/faq_train.jsonl").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        &steps.to_string(),
        "--batch-size",
        "4",
        "--seq-len",
        "160",
        "--lr",
        "3e-3",
        "--save-every",
        "1",
        "--keep-checkpoints",
        "3",
        "--quiet",
        "--threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn kill_9_at_any_moment_loses_nothing_and_resume_finishes_identically() {
    let steps = 60;
    // The reference: one uninterrupted run.
    let straight = out_dir("straight");
    assert!(hone().args(finetune_args(&straight, steps)).stdout(Stdio::null()).status().unwrap().success());
    // The same run, killed with SIGKILL at several moments, resumed each time.
    let out = out_dir("killed");
    let mut killed_mid_run = 0;
    for (i, delay_ms) in [40u64, 90, 150, 230, 330].into_iter().enumerate() {
        let mut args = finetune_args(&out, steps);
        if i > 0 && !checkpoint::list(&out).unwrap().is_empty() {
            args.push("--resume".into());
        }
        let mut child = hone().args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        child.wait().unwrap();
        let _ = std::fs::remove_file(out.join(".hone.lock")); // a dead process's lock would be taken over anyway
        assert_checkpoints_whole(&out);
    }
    assert!(killed_mid_run >= 2, "the kills landed during training");
    let mut args = finetune_args(&out, steps);
    if !checkpoint::list(&out).unwrap().is_empty() {
        args.push("--resume".into());
    }
    assert!(hone().args(args).stdout(Stdio::null()).status().unwrap().success());
    let read = |d: &Path| std::fs::read(d.join("model/model.safetensors")).unwrap();
    assert_eq!(read(&out), read(&straight), "the killed-and-resumed run ends with the same weights, bit for bit");
}

#[test]
fn sigterm_and_sigint_save_a_checkpoint_and_exit_0() {
    for signal in ["TERM", "INT"] {
        interrupt_with(signal);
    }
}

fn interrupt_with(signal: &str) {
    let out = out_dir(&format!("sig{signal}"));
    let child = hone().args(finetune_args(&out, 100_000)).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    // Wait until training is under way (the first checkpoint exists).
    for _ in 0..200 {
        if !checkpoint::list(&out).unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stdout).contains("interrupted: continue with --resume"));
    assert!(!assert_checkpoints_whole(&out).is_empty());
}

#[test]
fn bad_model_directories_exit_non_zero_with_the_file_named() {
    let dir = out_dir("nomodel");
    let out = hone().args(["eval", "--model", dir.to_str().unwrap(), "--data", "x.jsonl"]).output().unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("config.json"), "{msg}");
    std::fs::copy(repo("tests/fixtures/llama/config.json"), dir.join("config.json")).unwrap();
    std::fs::copy(repo("tests/fixtures/llama/model.safetensors"), dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{ not json").unwrap();
    let out = hone().args(["eval", "--model", dir.to_str().unwrap(), "--data", "x.jsonl"]).output().unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("tokenizer.json"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
}
