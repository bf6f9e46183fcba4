//! The fused attention kernel against a plain f64 implementation of the
//! definition (full score matrix, explicit mask, explicit softmax backward),
//! over shapes that cross the 64-row query blocks, with grouped heads and a
//! key/value sequence longer than the queries (a KV cache).

use kernels::nn::attention::{
    causal_attention, causal_attention_backward, causal_attention_qkv, causal_attention_qkv_backward, AttentionShape,
};
use proptest::prelude::*;

struct Reference {
    out: Vec<f64>,
    dq: Vec<f64>,
    dk: Vec<f64>,
    dv: Vec<f64>,
}

fn reference(s: AttentionShape, q: &[f32], k: &[f32], v: &[f32], dout: &[f32]) -> Reference {
    let (b_, t_, tk, hq, hk, d) = (s.batch, s.seq, s.kv_seq, s.q_heads, s.kv_heads, s.head_dim);
    let qi = |b: usize, t: usize, h: usize, x: usize| ((b * t_ + t) * hq + h) * d + x;
    let ki = |b: usize, t: usize, h: usize, x: usize| ((b * tk + t) * hk + h) * d + x;
    let scale = 1.0 / (d as f64).sqrt();
    let mut r =
        Reference { out: vec![0.0; q.len()], dq: vec![0.0; q.len()], dk: vec![0.0; k.len()], dv: vec![0.0; v.len()] };
    for b in 0..b_ {
        for h in 0..hq {
            let g = h / (hq / hk);
            for i in 0..t_ {
                let visible = i + (tk - t_) + 1;
                let scores: Vec<f64> = (0..visible)
                    .map(|j| (0..d).map(|x| q[qi(b, i, h, x)] as f64 * k[ki(b, j, g, x)] as f64).sum::<f64>() * scale)
                    .collect();
                let m = scores.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                let p: Vec<f64> = scores.iter().map(|s| (s - m).exp() / z).collect();
                for x in 0..d {
                    r.out[qi(b, i, h, x)] = (0..visible).map(|j| p[j] * v[ki(b, j, g, x)] as f64).sum();
                }
                // dP_j = ⟨dO_i, V_j⟩; dS_j = P_j (dP_j − Σ_l P_l dP_l)
                let dp: Vec<f64> = (0..visible)
                    .map(|j| (0..d).map(|x| dout[qi(b, i, h, x)] as f64 * v[ki(b, j, g, x)] as f64).sum())
                    .collect();
                let pdp: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for j in 0..visible {
                    let ds = p[j] * (dp[j] - pdp);
                    for x in 0..d {
                        r.dq[qi(b, i, h, x)] += scale * ds * k[ki(b, j, g, x)] as f64;
                        r.dk[ki(b, j, g, x)] += scale * ds * q[qi(b, i, h, x)] as f64;
                        r.dv[ki(b, j, g, x)] += p[j] * dout[qi(b, i, h, x)] as f64;
                    }
                }
            }
        }
    }
    r
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= 2e-5 * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
    }
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn check(s: AttentionShape, seed: u64) {
    let nq = s.batch * s.seq * s.q_heads * s.head_dim;
    let nk = s.batch * s.kv_seq * s.kv_heads * s.head_dim;
    let (q, k, v, dout) = (values(nq, seed), values(nk, seed + 1), values(nk, seed + 2), values(nq, seed + 3));
    let r = reference(s, &q, &k, &v, &dout);
    let mut out = vec![f32::NAN; nq];
    let lse = causal_attention(s, &q, &k, &v, &mut out).unwrap();
    assert_close("out", &out, &r.out);
    let (mut dq, mut dk, mut dv) = (vec![f32::NAN; nq], vec![f32::NAN; nk], vec![f32::NAN; nk]);
    causal_attention_backward(s, &q, &k, &v, &out, &lse, &dout, &mut dq, &mut dk, &mut dv).unwrap();
    assert_close("dq", &dq, &r.dq);
    assert_close("dk", &dk, &r.dk);
    assert_close("dv", &dv, &r.dv);
}

#[test]
fn crosses_query_blocks_with_grouped_heads() {
    // 130 rows: two full 64-row blocks and a 2-row tail.
    check(AttentionShape { batch: 2, seq: 130, kv_seq: 130, q_heads: 6, kv_heads: 2, head_dim: 8 }, 1);
    // A KV cache: 3 new queries over 67 keys.
    check(AttentionShape { batch: 1, seq: 3, kv_seq: 67, q_heads: 4, kv_heads: 1, head_dim: 16 }, 2);
    // The training shape's head size, across blocks and a partial row panel.
    check(AttentionShape { batch: 1, seq: 130, kv_seq: 130, q_heads: 2, kv_heads: 1, head_dim: 64 }, 3);
    // A cache whose offset (63) is no multiple of a tile, keys over several
    // tiles, and a head size of two and a bit column tiles.
    check(AttentionShape { batch: 2, seq: 37, kv_seq: 100, q_heads: 3, kv_heads: 3, head_dim: 33 }, 4);
}

/// The products run on the selected kernel's tile (16×16 on AVX-512, else
/// the main kernel's) and read A in place only where the kernel can: run the
/// tests above again in child processes, once per other kernel this CPU has
/// (`HONE_KERNEL`), so the AVX2 (6×16, in place) and scalar (4×4, packed A)
/// paths are checked against the definition too.
#[test]
fn every_kernel_matches_the_definition() {
    if std::env::var_os("HONE_KERNEL").is_some() {
        return; // a child run: the parent chose the kernel
    }
    let exe = std::env::current_exe().unwrap();
    for isa in kernels::Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        for test in
            ["crosses_query_blocks_with_grouped_heads", "matches_the_definition", "same_bits_for_any_thread_count"]
        {
            let out = std::process::Command::new(&exe)
                .args(["--exact", test, "--test-threads", "1"])
                .env("HONE_KERNEL", isa.name())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success() && text.contains("1 passed"), "{} {test}:\n{text}", isa.name());
        }
    }
}

/// Each output element is one task's, in a fixed order: the same bits
/// from a pool of one thread and of three.
#[test]
fn same_bits_for_any_thread_count() {
    let s = AttentionShape { batch: 2, seq: 70, kv_seq: 70, q_heads: 4, kv_heads: 2, head_dim: 24 };
    let (nq, nk) = (2 * 70 * 4 * 24, 2 * 70 * 2 * 24);
    let (q, k, v, dout) = (values(nq, 9), values(nk, 10), values(nk, 11), values(nq, 12));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut out = vec![0.0; nq];
            let lse = causal_attention(s, &q, &k, &v, &mut out).unwrap();
            let (mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nk], vec![0.0; nk]);
            causal_attention_backward(s, &q, &k, &v, &out, &lse, &dout, &mut dq, &mut dk, &mut dv).unwrap();
            [out, lse, dq, dk, dv].concat().iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(3));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn matches_the_definition(batch in 1usize..3, seq in 1usize..80, extra in 0usize..5, kv_heads in 1usize..3,
                              group in 1usize..4, head_dim in 1usize..20, seed in 0u64..1000) {
        check(AttentionShape { batch, seq, kv_seq: seq + extra, q_heads: kv_heads * group, kv_heads, head_dim }, seed);
    }
}

/// The fused `[q | k | v]` layout gives the three-tensor call's bits: the
/// output, and the gradient split back into its three parts.
fn check_fused_matches_split(s: AttentionShape, seed: u64) {
    let (rows, qw, kw) = (s.batch * s.seq, s.q_heads * s.head_dim, s.kv_heads * s.head_dim);
    let (q, k, v, dout) = (
        values(rows * qw, seed),
        values(rows * kw, seed + 1),
        values(rows * kw, seed + 2),
        values(rows * qw, seed + 3),
    );
    let qkv: Vec<f32> =
        (0..rows).flat_map(|r| [&q[r * qw..][..qw], &k[r * kw..][..kw], &v[r * kw..][..kw]].concat()).collect();
    let (mut out, mut out_fused) = (vec![f32::NAN; rows * qw], vec![f32::NAN; rows * qw]);
    let lse = causal_attention(s, &q, &k, &v, &mut out).unwrap();
    let lse_fused = causal_attention_qkv(s, &qkv, &mut out_fused).unwrap();
    assert_eq!(
        out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        out_fused.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(lse, lse_fused);
    let (mut dq, mut dk, mut dv) = (vec![f32::NAN; rows * qw], vec![f32::NAN; rows * kw], vec![f32::NAN; rows * kw]);
    causal_attention_backward(s, &q, &k, &v, &out, &lse, &dout, &mut dq, &mut dk, &mut dv).unwrap();
    let mut dqkv = vec![f32::NAN; qkv.len()];
    causal_attention_qkv_backward(s, &qkv, &out, &lse, &dout, &mut dqkv).unwrap();
    let want: Vec<f32> =
        (0..rows).flat_map(|r| [&dq[r * qw..][..qw], &dk[r * kw..][..kw], &dv[r * kw..][..kw]].concat()).collect();
    // Bits, so NaN (an element never written) fails too.
    assert_eq!(
        dqkv.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn fused_qkv_layout_matches_three_tensors() {
    // GPT-2's layout (Hq = Hkv), crossing a query block; grouped heads; one row.
    check_fused_matches_split(
        AttentionShape { batch: 2, seq: 70, kv_seq: 70, q_heads: 3, kv_heads: 3, head_dim: 8 },
        5,
    );
    check_fused_matches_split(AttentionShape { batch: 1, seq: 9, kv_seq: 9, q_heads: 6, kv_heads: 2, head_dim: 5 }, 6);
    check_fused_matches_split(AttentionShape { batch: 1, seq: 1, kv_seq: 1, q_heads: 1, kv_heads: 1, head_dim: 3 }, 7);
    // The fused layout has no KV cache: keys are the queries' positions.
    let s = AttentionShape { batch: 1, seq: 2, kv_seq: 3, q_heads: 1, kv_heads: 1, head_dim: 2 };
    assert!(causal_attention_qkv(s, &[0.0; 18], &mut [0.0; 4]).is_err());
    let s = AttentionShape { kv_seq: 2, ..s };
    assert!(causal_attention_qkv(s, &[0.0; 11], &mut [0.0; 4]).is_err());
    assert!(causal_attention_qkv(s, &[0.0; 12], &mut [0.0; 5]).is_err());
    assert!(causal_attention_qkv_backward(s, &[0.0; 12], &[0.0; 4], &[0.0; 2], &[0.0; 4], &mut [0.0; 11]).is_err());
}

#[test]
fn bad_shapes_are_errors() {
    let s = AttentionShape { batch: 1, seq: 4, kv_seq: 4, q_heads: 3, kv_heads: 2, head_dim: 2 };
    let x = vec![0.0; 24];
    assert!(causal_attention(s, &x, &x[..16], &x[..16], &mut x.clone()).is_err());
}
