//! `Model::set_recompute`: blocks recomputed in the backward give the same
//! loss and the same gradients as blocks whose activations are kept, for
//! full fine-tuning (GPT-2, Llama) and for LoRA with dropout (Qwen2: the
//! recomputed masks must be the forward's).

use model::{LoraConfig, Model};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name)
}

/// (loss, every trainable gradient) of one forward and backward.
fn step(m: &Model, recompute: bool, ids: &[u32], labels: &[i64], batch: usize, seq: usize) -> (f32, Vec<Vec<f32>>) {
    m.trainable().iter().for_each(|(_, v)| v.zero_grad());
    m.set_recompute(recompute);
    m.set_dropout_seed(5);
    let l = m.loss(ids, labels, batch, seq).unwrap();
    l.backward().unwrap();
    (l.item().unwrap(), m.trainable().iter().map(|(_, v)| v.grad().unwrap().to_f32_vec()).collect())
}

#[test]
fn recomputed_blocks_give_the_same_loss_and_gradients() {
    let (batch, seq) = (2, 8);
    let ids: Vec<u32> = (0..batch * seq).map(|i| (i * 37 % 290 + 3) as u32).collect();
    let labels: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    for (name, lora) in [("gpt2", false), ("llama", false), ("qwen2", true)] {
        let mut m = Model::load(fixture(name)).unwrap();
        if lora {
            let targets = ["q_proj", "v_proj", "down_proj"].map(String::from).to_vec();
            m.add_lora(&LoraConfig { r: 4, alpha: 8.0, dropout: 0.3, target_modules: targets }, 3).unwrap();
            // B = 0 would zero A's gradients on both paths; give B values.
            for (n, v) in m.trainable() {
                if n.contains("lora_B") {
                    let k = v.value().numel();
                    let b: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin() * 0.1).collect();
                    v.set_value(tensor::Tensor::from_vec(b, &v.shape()).unwrap()).unwrap();
                }
            }
        } else {
            m.set_trainable(|_| true);
        }
        let (kept, kept_grads) = step(&m, false, &ids, &labels, batch, seq);
        let (again, again_grads) = step(&m, true, &ids, &labels, batch, seq);
        assert_eq!(kept, again, "{name}: the forward is the same computation");
        assert_eq!(kept_grads.len(), again_grads.len());
        for (i, (a, b)) in kept_grads.iter().zip(&again_grads).enumerate() {
            // Bit for bit, except a tied embedding's gradient, whose two uses
            // (inside the blocks' backward and the head's) add in another order.
            let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(diff <= 1e-6 * scale.max(1e-3), "{name} gradient {i}: {diff} (scale {scale})");
        }
        if lora {
            assert_eq!(kept_grads, again_grads, "{name}: only the blocks' adapters train, so the same bits");
        }
    }
}
