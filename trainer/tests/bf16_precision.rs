//! `--precision bf16` end to end. Its own test binary: the matmul precision
//! is process-wide, and other tests in the same process must not see it.
//!
//! The fixture model trains 30 steps in f32 and in bf16 from the same seed:
//! bf16 changes the losses (the rounding is really applied), the curves stay
//! within 2% of each other step by step, and both learn. Two bf16 runs give
//! the same losses bit for bit.

use kernels::gemm::Precision;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use trainer::train::{train, Length, TrainConfig};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn run(precision: Precision, out: &Path) -> Vec<f32> {
    let _ = std::fs::remove_dir_all(out);
    let c = TrainConfig {
        data: repo("examples/data/faq_train.jsonl"),
        out: out.to_path_buf(),
        length: Length::Steps(30),
        batch_size: 4,
        seq_len: 128,
        lr: 3e-3,
        precision,
        ..TrainConfig::for_model(repo("tests/fixtures/llama"))
    };
    train(&c, &AtomicBool::new(false)).unwrap().losses
}

#[test]
fn bf16_tracks_f32_and_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("hone-bf16-{}", std::process::id()));
    let f32_losses = run(Precision::F32, &dir.join("f32"));
    let bf16_losses = run(Precision::Bf16, &dir.join("bf16"));
    assert_ne!(f32_losses, bf16_losses, "bf16 rounding changes the arithmetic");
    for (i, (a, b)) in f32_losses.iter().zip(&bf16_losses).enumerate() {
        assert!((a - b).abs() <= 0.02 * a, "step {i}: f32 {a} vs bf16 {b}");
    }
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len() as f32;
    assert!(mean(&bf16_losses[25..]) < 0.8 * mean(&bf16_losses[..3]), "bf16 learns: {bf16_losses:?}");
    assert_eq!(bf16_losses, run(Precision::Bf16, &dir.join("again")), "same seed, same losses");
    let _ = std::fs::remove_dir_all(&dir);
}
