//! hone's AdamW against `torch.optim.AdamW` (fixture `tests/fixtures/adamw`):
//! 1 and 10 steps with a decay/no-decay split chosen by name, gradients
//! accumulated over two micro-batches through autograd, and clipping to norm 1.

use autograd::{mul, scale, sum, Var};
use std::path::PathBuf;
use tensor::safetensors::SafetensorsFile;
use trainer::optim::{clip_grad_norm, AdamW, AdamWConfig};

#[test]
fn matches_torch_adamw_after_1_and_10_steps() {
    let f = SafetensorsFile::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/adamw/adamw.safetensors"),
    )
    .unwrap();
    let names = ["layer.weight", "layer.bias", "model.norm.weight"];
    let params: Vec<(String, Var)> = names
        .iter()
        .map(|n| (n.to_string(), Var::parameter(f.tensor(&format!("init.{n}")).unwrap().contiguous())))
        .collect();
    let mut opt = AdamW::new(params.clone(), AdamWConfig { betas: (0.9, 0.95), eps: 1e-8, weight_decay: 0.1 });
    assert_eq!(opt.params.iter().map(|p| p.decay).collect::<Vec<_>>(), [true, false, false]);
    for step in 1..=10 {
        for micro in 0..2 {
            // loss = ½ Σ p ⊙ G: its gradient is ½ G, accumulated over the two micro-batches.
            for (n, p) in &params {
                let g = Var::constant(f.tensor(&format!("grad.{step}.{micro}.{n}")).unwrap());
                scale(&sum(&mul(p, &g).unwrap()).unwrap(), 0.5).unwrap().backward().unwrap();
            }
        }
        let norm = clip_grad_norm(&opt.params, 1.0);
        assert!(norm > 0.0);
        opt.step(1e-2).unwrap();
        if step == 1 || step == 10 {
            for (n, p) in &params {
                let want = f.tensor(&format!("after{step}.{n}")).unwrap().to_f32_vec();
                let got = p.value().to_f32_vec();
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(diff <= 2e-6, "{n} after step {step}: differs by {diff}");
            }
        }
    }
}
