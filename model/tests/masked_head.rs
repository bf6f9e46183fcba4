//! `Model::loss` runs the LM head only on positions whose target counts.
//! With most targets ignored (a chat prompt), the loss and every gradient
//! must equal the plain path: all logits, then cross-entropy with −100s.

use autograd::{cross_entropy, IGNORE_INDEX};
use model::{shift_labels, LoraConfig, Model};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

/// (loss, every trainable gradient) after one backward of `loss`.
fn run(m: &Model, loss: impl Fn(&Model) -> autograd::Var) -> (f32, Vec<Vec<f32>>) {
    m.trainable().iter().for_each(|(_, v)| v.zero_grad());
    let l = loss(m);
    l.backward().unwrap();
    (l.item().unwrap(), m.trainable().iter().map(|(_, v)| v.grad().unwrap().to_f32_vec()).collect())
}

#[test]
fn skipping_ignored_positions_changes_no_loss_and_no_gradient() {
    let (batch, seq) = (3, 8);
    let ids: Vec<u32> = (0..batch * seq).map(|i| (i * 37 % 290 + 3) as u32).collect();
    // Prompt-style labels: only the last few positions of each row count;
    // the middle row counts nothing at all.
    let labels: Vec<i64> =
        (0..batch * seq).map(|i| if i % seq >= 5 && i / seq != 1 { ids[i] as i64 } else { IGNORE_INDEX }).collect();
    for (name, lora) in [("llama", false), ("gpt2", false), ("qwen2", true)] {
        let mut m = Model::load(fixture(name)).unwrap();
        if lora {
            let config =
                LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, target_modules: vec!["q_proj".into(), "lm_head".into()] };
            m.add_lora(&config, 3).unwrap();
            // B = 0 would make the A gradients zero on both paths; give B values.
            for (n, v) in m.trainable() {
                if n.contains("lora_B") {
                    let k = v.value().numel();
                    v.set_value(
                        tensor::Tensor::from_vec((0..k).map(|i| (i as f32 * 0.37).sin() * 0.1).collect(), &v.shape())
                            .unwrap(),
                    )
                    .unwrap();
                }
            }
        } else {
            m.set_trainable(|_| true);
        }
        let (fast, fast_grads) = run(&m, |m| m.loss(&ids, &labels, batch, seq).unwrap());
        let (plain, plain_grads) =
            run(&m, |m| cross_entropy(&m.forward(&ids, batch, seq).unwrap(), &shift_labels(&labels, seq)).unwrap());
        assert!((fast - plain).abs() <= 1e-6 * plain.abs(), "{name}: {fast} vs {plain}");
        for (i, (a, b)) in fast_grads.iter().zip(&plain_grads).enumerate() {
            let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(diff <= 1e-5 * scale.max(1e-3), "{name} gradient {i}: {diff} (scale {scale})");
        }
    }
}
