//! The row kernels at transformer sizes (B = 4, T = 128, so 512 tokens),
//! forward and backward in one call, next to a naive reference where one
//! is cheap to run: single-threaded scalar loops with libm's `exp`, what
//! the kernels would be without vectorisation, threads and fusion.

use kernels::nn::activation::{gelu, gelu_backward, swiglu, swiglu_backward};
use kernels::nn::attention::{causal_attention, causal_attention_backward, AttentionShape};
use kernels::nn::cross_entropy::{cross_entropy_backward, cross_entropy_forward, IGNORE_INDEX};
use kernels::nn::norm::{norm_backward, norm_forward, NormKind};
use kernels::nn::online_softmax::OnlineSoftmax;
use kernels::nn::softmax::{softmax, softmax_backward};

/// Tokens per batch: B = 4 sequences of T = 128.
pub const TOKENS: usize = 512;

/// What one call moves or computes, for the throughput column.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Bytes read and written (memory-bound kernels): report GB/s.
    Bytes(u64),
    /// Floating-point operations (attention's products): report GFLOP/s.
    Flops(u64),
}

/// One benchmark: hone's forward+backward and, where cheap, the naive one.
pub struct NnCase {
    pub name: String,
    pub work: Work,
    pub hone: Box<dyn FnMut()>,
    pub naive: Option<Box<dyn FnMut()>>,
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0)
        .collect()
}

fn softmax_case(rows: usize, width: usize) -> NnCase {
    let n = rows * width;
    let (x, dy) = (data(n, 1), data(n, 2));
    let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
    let (x2, dy2) = (x.clone(), dy.clone());
    let (mut y2, mut dx2) = (vec![0.0; n], vec![0.0; n]);
    NnCase {
        name: format!("softmax {rows}x{width}"),
        work: Work::Bytes(5 * 4 * n as u64),
        hone: Box::new(move || {
            softmax(&x, width, &mut y).unwrap();
            softmax_backward(&y, &dy, width, &mut dx).unwrap();
        }),
        naive: Some(Box::new(move || {
            for r in 0..rows {
                let s = r * width..(r + 1) * width;
                let (x, y, dy, dx) = (&x2[s.clone()], &mut y2[s.clone()], &dy2[s.clone()], &mut dx2[s]);
                let m = x.iter().cloned().fold(f32::MIN, f32::max);
                let z: f32 = x.iter().map(|v| (v - m).exp()).sum();
                y.iter_mut().zip(x).for_each(|(y, v)| *y = (v - m).exp() / z);
                let d: f32 = dy.iter().zip(y.iter()).map(|(a, b)| a * b).sum();
                dx.iter_mut().zip(y.iter().zip(dy)).for_each(|(dx, (y, dy))| *dx = y * (dy - d));
            }
        })),
    }
}

fn norm_case(kind: NormKind, width: usize) -> NnCase {
    let n = TOKENS * width;
    let (x, dy, w, b) = (data(n, 3), data(n, 4), data(width, 5), data(width, 6));
    let (mut y, mut dx, mut dw, mut db) = (vec![0.0; n], vec![0.0; n], vec![0.0; width], vec![0.0; width]);
    let (x2, dy2, w2) = (x.clone(), dy.clone(), w.clone());
    let (mut y2, mut dx2, mut dw2) = (vec![0.0; n], vec![0.0; n], vec![0.0; width]);
    let layer = kind == NormKind::Layer;
    NnCase {
        name: format!("{} {TOKENS}x{width}", if layer { "layer_norm" } else { "rms_norm" }),
        work: Work::Bytes(5 * 4 * n as u64),
        hone: Box::new(move || {
            let bias = layer.then_some(&b[..]);
            let stats = norm_forward(kind, &x, &w, bias, width, 1e-5, &mut y).unwrap();
            let db = if layer { Some(&mut db[..]) } else { None };
            norm_backward(kind, &x, &w, &dy, &stats, width, &mut dx, &mut dw, db).unwrap();
        }),
        naive: Some(Box::new(move || {
            for r in 0..TOKENS {
                let s = r * width..(r + 1) * width;
                let (x, y, dy, dx) = (&x2[s.clone()], &mut y2[s.clone()], &dy2[s.clone()], &mut dx2[s]);
                let c = width as f32;
                let mu = if layer { x.iter().sum::<f32>() / c } else { 0.0 };
                let rstd = 1.0 / (x.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / c + 1e-5).sqrt();
                for i in 0..width {
                    y[i] = (x[i] - mu) * rstd * w2[i];
                }
                let gm = if layer { (0..width).map(|i| dy[i] * w2[i]).sum::<f32>() / c } else { 0.0 };
                let gx = (0..width).map(|i| dy[i] * w2[i] * (x[i] - mu) * rstd).sum::<f32>() / c;
                for i in 0..width {
                    let xh = (x[i] - mu) * rstd;
                    dx[i] = rstd * (dy[i] * w2[i] - gm - xh * gx);
                    dw2[i] += dy[i] * xh;
                }
            }
        })),
    }
}

fn cross_entropy_case(vocab: usize) -> NnCase {
    let n = TOKENS * vocab;
    let logits = data(n, 7);
    let targets: Vec<i64> =
        (0..TOKENS).map(|i| if i % 16 == 0 { IGNORE_INDEX } else { (i * 7919 % vocab) as i64 }).collect();
    let mut dz = vec![0.0; n];
    let (logits2, targets2) = (logits.clone(), targets.clone());
    let mut dz2 = vec![0.0; n];
    NnCase {
        name: format!("cross_entropy {TOKENS}x{vocab}"),
        // Forward reads the logits; backward reads them and writes the gradient.
        work: Work::Bytes(3 * 4 * n as u64),
        hone: Box::new(move || {
            let ce = cross_entropy_forward(&logits, vocab, &targets, IGNORE_INDEX).unwrap();
            cross_entropy_backward(&logits, vocab, &targets, IGNORE_INDEX, &ce, 1.0, &mut dz).unwrap();
        }),
        naive: Some(Box::new(move || {
            let count = targets2.iter().filter(|&&t| t != IGNORE_INDEX).count() as f32;
            for (r, &t) in targets2.iter().enumerate() {
                let z = &logits2[r * vocab..(r + 1) * vocab];
                let d = &mut dz2[r * vocab..(r + 1) * vocab];
                if t == IGNORE_INDEX {
                    d.fill(0.0);
                    continue;
                }
                let m = z.iter().cloned().fold(f32::MIN, f32::max);
                let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
                d.iter_mut().zip(z).for_each(|(d, v)| *d = (v - lse).exp() / count);
                d[t as usize] -= 1.0 / count;
            }
        })),
    }
}

/// The frozen LM head's online softmax: 512 rows of a `vocab` vocabulary
/// folded in chunks of `chunk` columns, as `linear_cross_entropy_online`
/// folds each chunk of logits between its two products. Each chunk is first
/// restored from a copy (the fold writes `exp` over it), and that copy is
/// counted in the bytes: it reads and writes each logit once, and so does the fold.
fn online_softmax_case(vocab: usize, chunk: usize) -> NnCase {
    let chunks: Vec<Vec<f32>> =
        (0..vocab.div_ceil(chunk)).map(|c| data(TOKENS * chunk.min(vocab - c * chunk), 20 + c as u32)).collect();
    let chunks2 = chunks.clone();
    let mut work = vec![0.0; TOKENS * chunk];
    let mut rho = vec![0.0; TOKENS];
    NnCase {
        name: format!("online_softmax {TOKENS}x{vocab} in {chunk}"),
        work: Work::Bytes(4 * 4 * (TOKENS * vocab) as u64),
        hone: Box::new(move || {
            let mut state = OnlineSoftmax::new(TOKENS);
            for c in &chunks {
                let z = &mut work[..c.len()];
                z.copy_from_slice(c);
                state.fold(z, c.len() / TOKENS, |_| false, &mut rho).unwrap();
            }
            std::hint::black_box(state.sums());
        }),
        naive: Some(Box::new(move || {
            let (mut m, mut s) = (vec![f32::NEG_INFINITY; TOKENS], vec![0.0f32; TOKENS]);
            let mut z = Vec::new();
            for c in &chunks2 {
                z.clear();
                z.extend_from_slice(c);
                let width = c.len() / TOKENS;
                for (r, row) in z.chunks_mut(width).enumerate() {
                    let m_new = row.iter().cloned().fold(m[r], f32::max);
                    let rho = if m[r] == f32::NEG_INFINITY { 0.0 } else { (m[r] - m_new).exp() };
                    row.iter_mut().for_each(|v| *v = (*v - m_new).exp());
                    s[r] = s[r] * rho + row.iter().sum::<f32>();
                    m[r] = m_new;
                }
            }
            std::hint::black_box(&s);
        })),
    }
}

fn attention_case(name: &str, q_heads: usize, kv_heads: usize) -> NnCase {
    let shape = AttentionShape { batch: 4, seq: 128, kv_seq: 128, q_heads, kv_heads, head_dim: 64 };
    let (nq, nk) = (TOKENS * q_heads * 64, TOKENS * kv_heads * 64);
    let (q, k, v, dout) = (data(nq, 8), data(nk, 9), data(nk, 10), data(nq, 11));
    let (mut out, mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nq], vec![0.0; nk], vec![0.0; nk]);
    // Backward runs five products of the forward's two sizes: 2.5× its FLOPs.
    let flops = (3.5 * shape.forward_flops()) as u64;
    NnCase {
        name: format!("attention {name} B4 T128 Hq{q_heads} Hkv{kv_heads} D64"),
        work: Work::Flops(flops),
        hone: Box::new(move || {
            let lse = causal_attention(shape, &q, &k, &v, &mut out).unwrap();
            causal_attention_backward(shape, &q, &k, &v, &out, &lse, &dout, &mut dq, &mut dk, &mut dv).unwrap();
        }),
        naive: None,
    }
}

/// GPT-2's GELU (tanh form) on its MLP activations, forward and backward.
fn gelu_case(width: usize) -> NnCase {
    let n = TOKENS * width;
    let (x, dy) = (data(n, 12), data(n, 13));
    let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
    let (x2, dy2) = (x.clone(), dy.clone());
    let (mut y2, mut dx2) = (vec![0.0; n], vec![0.0; n]);
    NnCase {
        name: format!("gelu {TOKENS}x{width}"),
        // Forward reads x, writes y; backward reads x and dy, writes dx.
        work: Work::Bytes(5 * 4 * n as u64),
        hone: Box::new(move || {
            gelu(&x, &mut y).unwrap();
            gelu_backward(&x, &dy, &mut dx).unwrap();
        }),
        naive: Some(Box::new(move || {
            let c = (2.0 / std::f32::consts::PI).sqrt();
            for i in 0..n {
                let x = x2[i];
                let t = (c * (x + 0.044715 * x * x * x)).tanh();
                y2[i] = 0.5 * x * (1.0 + t);
                dx2[i] = dy2[i] * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x));
            }
        })),
    }
}

/// Llama's SwiGLU, `silu(g) ⊙ u`, forward and backward.
fn swiglu_case(width: usize) -> NnCase {
    let n = TOKENS * width;
    let (g, u, dy) = (data(n, 14), data(n, 15), data(n, 16));
    let (mut y, mut dg, mut du) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (g2, u2, dy2) = (g.clone(), u.clone(), dy.clone());
    let (mut y2, mut dg2, mut du2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    NnCase {
        name: format!("swiglu {TOKENS}x{width}"),
        // Forward reads g, u, writes y; backward reads g, u, dy, writes dg, du.
        work: Work::Bytes(8 * 4 * n as u64),
        hone: Box::new(move || {
            swiglu(&g, &u, &mut y).unwrap();
            swiglu_backward(&g, &u, &dy, &mut dg, &mut du).unwrap();
        }),
        naive: Some(Box::new(move || {
            for i in 0..n {
                let s = 1.0 / (1.0 + (-g2[i]).exp());
                y2[i] = g2[i] * s * u2[i];
                du2[i] = dy2[i] * g2[i] * s;
                dg2[i] = dy2[i] * u2[i] * s * (1.0 + g2[i] * (1.0 - s));
            }
        })),
    }
}

/// Every case, at the sizes of SmolLM2-135M (C 576, V 49152, 9/3 heads) and GPT-2 (C 768, V 50257, 12 heads).
pub fn cases() -> Vec<NnCase> {
    vec![
        softmax_case(TOKENS * 9, 128),
        norm_case(NormKind::Layer, 768),
        norm_case(NormKind::Rms, 576),
        cross_entropy_case(49152),
        cross_entropy_case(50257),
        online_softmax_case(49152, 4096),
        attention_case("SmolLM2", 9, 3),
        attention_case("GPT-2", 12, 12),
        gelu_case(3072),
        swiglu_case(1536),
    ]
}
