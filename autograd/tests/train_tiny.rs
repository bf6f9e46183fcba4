//! Tiny models trained with plain SGD on fixed toy tasks: the loss must fall.
//! Both use only the public ops, so a wrong backward anywhere on the path
//! shows up as a loss that does not fall.

use autograd::gradcheck::{pseudo_random, random_tensor};
use autograd::*;
use tensor::{Tensor, TensorError};

/// `p ← p − lr · ∂L/∂p`, then clear the gradient.
fn sgd_step(params: &[Var], lr: f32) {
    for p in params {
        let g = p.grad().expect("every parameter is on the loss's path").to_f32_vec();
        let v: Vec<f32> = p.value().to_f32_vec().iter().zip(&g).map(|(v, g)| v - lr * g).collect();
        p.set_value(Tensor::from_vec(v, &p.shape()).unwrap()).unwrap();
        p.zero_grad();
    }
}

fn init(shape: &[usize], seed: u64) -> Var {
    let fan_in = *shape.last().unwrap() as f32;
    Var::parameter(random_tensor(shape, seed, 1.0 / fan_in.sqrt()))
}

#[test]
fn two_layer_mlp_learns_xor() {
    // 64 points in [-1, 1]²; the class is whether x and y have the same sign.
    let n = 64;
    let pts = pseudo_random(2 * n, 7);
    let targets: Vec<i64> = pts.chunks(2).map(|p| ((p[0] > 0.0) ^ (p[1] > 0.0)) as i64).collect();
    let x = Var::constant(Tensor::from_vec(pts, &[n, 2]).unwrap());
    let (w1, b1) = (init(&[32, 2], 1), Var::parameter(Tensor::zeros(&[32])));
    let (w2, b2) = (init(&[2, 32], 2), Var::parameter(Tensor::zeros(&[2])));
    let params = [w1.clone(), b1.clone(), w2.clone(), b2.clone()];
    let forward = || -> Result<Var, TensorError> {
        let h = gelu(&linear(&x, &w1, Some(&b1))?)?;
        linear(&h, &w2, Some(&b2))
    };
    let mut losses = Vec::new();
    for _ in 0..400 {
        let loss = cross_entropy(&forward().unwrap(), &targets).unwrap();
        losses.push(loss.item().unwrap());
        loss.backward().unwrap();
        sgd_step(&params, 0.5);
    }
    let logits = no_grad(forward).unwrap().value().to_f32_vec();
    let correct = logits.chunks(2).zip(&targets).filter(|(l, &t)| ((l[1] > l[0]) as i64) == t).count();
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("xor: loss {first:.3} -> {last:.3}, {correct}/64 correct");
    assert!(last < 0.25 * first, "loss {first} -> {last}");
    assert!(correct >= 60, "{correct}/64 correct");
}

/// One Llama-style block: RMSNorm, grouped-query attention with RoPE,
/// SwiGLU MLP, residuals, a final norm and an LM head tied to the embedding.
struct Block {
    emb: Var,
    norm1: Var,
    wq: Var,
    wk: Var,
    wv: Var,
    wo: Var,
    norm2: Var,
    gate: Var,
    up: Var,
    down: Var,
    norm_f: Var,
}

const V: usize = 8;
const T: usize = 8;
const C: usize = 32;
const HQ: usize = 4;
const HKV: usize = 2;
const D: usize = 8;

impl Block {
    fn new() -> Block {
        let ones = || Var::parameter(Tensor::from_vec(vec![1.0; C], &[C]).unwrap());
        Block {
            emb: Var::parameter(random_tensor(&[V, C], 10, 1.0)),
            norm1: ones(),
            wq: init(&[HQ * D, C], 11),
            wk: init(&[HKV * D, C], 12),
            wv: init(&[HKV * D, C], 13),
            wo: init(&[C, HQ * D], 14),
            norm2: ones(),
            gate: init(&[64, C], 15),
            up: init(&[64, C], 16),
            down: init(&[C, 64], 17),
            norm_f: ones(),
        }
    }

    fn params(&self) -> Vec<Var> {
        [
            &self.emb,
            &self.norm1,
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.norm2,
            &self.gate,
            &self.up,
            &self.down,
            &self.norm_f,
        ]
        .into_iter()
        .cloned()
        .collect()
    }

    fn logits(&self, ids: &[u32], batch: usize) -> Result<Var, TensorError> {
        let half = D / 2;
        let angles: Vec<f32> =
            (0..T * half).map(|i| (i / half) as f32 / 100f32.powf((i % half) as f32 / half as f32)).collect();
        let cos = Tensor::from_vec(angles.iter().map(|a| a.cos()).collect(), &[T, half])?;
        let sin = Tensor::from_vec(angles.iter().map(|a| a.sin()).collect(), &[T, half])?;
        let x = reshape(&embedding(&self.emb, ids)?, &[batch, T, C])?;
        let h = rms_norm(&x, &self.norm1, 1e-5)?;
        let q = rope(&reshape(&linear(&h, &self.wq, None)?, &[batch, T, HQ, D])?, &cos, &sin)?;
        let k = rope(&reshape(&linear(&h, &self.wk, None)?, &[batch, T, HKV, D])?, &cos, &sin)?;
        let v = reshape(&linear(&h, &self.wv, None)?, &[batch, T, HKV, D])?;
        let a = reshape(&causal_attention(&q, &k, &v)?, &[batch, T, HQ * D])?;
        let x = add(&x, &linear(&a, &self.wo, None)?)?;
        let h = rms_norm(&x, &self.norm2, 1e-5)?;
        let m = swiglu(&linear(&h, &self.gate, None)?, &linear(&h, &self.up, None)?)?;
        let x = add(&x, &linear(&m, &self.down, None)?)?;
        linear(&rms_norm(&x, &self.norm_f, 1e-5)?, &self.emb, None) // (batch, T, V)
    }
}

/// A batch of the copy task: the second half of each sequence repeats the
/// first. Only second-half tokens can be predicted, so earlier targets are
/// the ignore index: the loss is on the copy alone.
fn copy_batch(batch: usize, step: u64) -> (Vec<u32>, Vec<i64>) {
    let r = pseudo_random(batch * T / 2, 1000 + step);
    let mut ids = Vec::new();
    let mut targets = Vec::new();
    for s in 0..batch {
        let first: Vec<u32> =
            (0..T / 2).map(|i| ((r[s * T / 2 + i] + 1.0) * 0.5 * V as f32) as u32 % V as u32).collect();
        let seq: Vec<u32> = first.iter().chain(&first).copied().collect();
        for t in 0..T {
            let next_is_copy = t + 1 >= T / 2 && t + 1 < T;
            targets.push(if next_is_copy { seq[t + 1] as i64 } else { IGNORE_INDEX });
        }
        ids.extend(seq);
    }
    (ids, targets)
}

fn train_block(steps: u64) -> Vec<f32> {
    let block = Block::new();
    let params = block.params();
    (0..steps)
        .map(|step| {
            let (ids, targets) = copy_batch(16, step);
            let loss = cross_entropy(&block.logits(&ids, 16).unwrap(), &targets).unwrap();
            loss.backward().unwrap();
            sgd_step(&params, 0.3);
            loss.item().unwrap()
        })
        .collect()
}

#[test]
fn one_block_transformer_learns_to_copy() {
    let losses = train_block(300);
    let early: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let late: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    eprintln!("copy task: mean loss {early:.3} over the first 10 steps, {late:.3} over the last 10");
    assert!(late < 0.5 * early, "mean loss of the first 10 steps {early}, of the last 10 {late}");
}

#[test]
fn training_is_bit_identical_across_thread_counts() {
    let run =
        |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| train_block(5));
    let (one, three) = (run(1), run(3));
    assert_eq!(
        one.iter().map(|l| l.to_bits()).collect::<Vec<_>>(),
        three.iter().map(|l| l.to_bits()).collect::<Vec<_>>()
    );
}
