//! Every op's backward against central finite differences
//! (`autograd::gradcheck`), with proptest choosing shapes and values.

#![allow(clippy::cloned_ref_to_slice_refs)] // `&[x.clone()]` reads better in a list of checks

use autograd::gradcheck::{check, random_tensor, Tolerance};
use autograd::*;
use proptest::prelude::*;
use tensor::Tensor;

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    }
}

fn ok(r: Result<autograd::gradcheck::Report, String>) -> Result<(), TestCaseError> {
    r.map(|_| ()).map_err(TestCaseError::fail)
}

/// A shape and one that broadcasts against it: some axes set to 1, maybe leading axes dropped.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (prop::collection::vec(1usize..4, 1..4), any::<u8>(), 0usize..3).prop_map(|(a, mask, drop)| {
        let mut b: Vec<usize> = a.iter().enumerate().map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d }).collect();
        let drop = drop.min(b.len() - 1);
        b.drain(..drop);
        if mask & 0x80 != 0 {
            (b, a) // broadcast on the left operand too
        } else {
            (a, b)
        }
    })
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn add_sub_mul_broadcast((sa, sb) in broadcast_pair(), seed in 0u64..1000) {
        let (a, b) = (random_tensor(&sa, seed, 1.0), random_tensor(&sb, seed + 1, 1.0));
        ok(check(&[a.clone(), b.clone()], Tolerance::default(), |x| add(&x[0], &x[1])))?;
        ok(check(&[a.clone(), b.clone()], Tolerance::default(), |x| sub(&x[0], &x[1])))?;
        ok(check(&[a, b], Tolerance::default(), |x| mul(&x[0], &x[1])))?;
    }

    #[test]
    fn div_broadcast((sa, sb) in broadcast_pair(), seed in 0u64..1000) {
        let a = random_tensor(&sa, seed, 1.0);
        // Denominators in [1, 2): away from the pole.
        let b = Tensor::from_vec(random_tensor(&sb, seed + 1, 0.5).to_f32_vec().iter().map(|v| v + 1.5).collect(), &sb).unwrap();
        ok(check(&[a, b], Tolerance::default(), |x| div(&x[0], &x[1])))?;
    }

    #[test]
    fn scale_sum_mean(shape in prop::collection::vec(1usize..5, 0..4), s in -3.0f32..3.0, seed in 0u64..1000) {
        let x = random_tensor(&shape, seed, 1.0);
        ok(check(&[x.clone()], Tolerance::default(), |v| scale(&v[0], s)))?;
        ok(check(&[x.clone()], Tolerance::default(), |v| sum(&v[0])))?;
        ok(check(&[x], Tolerance::default(), |v| mean(&v[0])))?;
    }

    #[test]
    fn views_and_concat(d0 in 1usize..4, d1 in 1usize..4, d2 in 1usize..5, start in 0usize..4, seed in 0u64..1000) {
        let x = random_tensor(&[d0, d1, d2], seed, 1.0);
        let y = random_tensor(&[d0, 2, d2], seed + 1, 1.0);
        let t = Tolerance::default();
        ok(check(&[x.clone()], t, |v| reshape(&v[0], &[d2, d0 * d1])))?;
        ok(check(&[x.clone()], t, |v| transpose(&v[0], 0, 2)))?;
        ok(check(&[x.clone()], t, |v| permute(&v[0], &[1, 2, 0])))?;
        let start = start.min(d2 - 1);
        ok(check(&[x.clone()], t, |v| narrow(&v[0], 2, start, d2 - start)))?;
        let start1 = start.min(d1 - 1);
        ok(check(&[x.clone()], t, |v| narrow(&v[0], 1, start1, d1 - start1)))?; // runs of d2 elements
        ok(check(&[x, y], t, |v| concat(&[&v[0], &v[1]], 1)))?;
    }

    #[test]
    fn matmul_all_transpose_forms(m in 1usize..6, k in 1usize..6, n in 1usize..6, ta: bool, tb: bool, seed in 0u64..1000) {
        // Stored transposed when asked, and transposed back by the op graph: the GEMM reads the view.
        let a = random_tensor(&if ta { [k, m] } else { [m, k] }, seed, 1.0);
        let b = random_tensor(&if tb { [n, k] } else { [k, n] }, seed + 1, 1.0);
        ok(check(&[a, b], Tolerance::default(), |v| {
            let a = if ta { transpose(&v[0], 0, 1)? } else { v[0].clone() };
            let b = if tb { transpose(&v[1], 0, 1)? } else { v[1].clone() };
            matmul(&a, &b)
        }))?;
    }

    #[test]
    fn matmul_batched_and_shared(bt in 1usize..4, m in 1usize..5, k in 1usize..5, n in 1usize..5, seed in 0u64..1000) {
        let a = random_tensor(&[bt, m, k], seed, 1.0);
        let b3 = random_tensor(&[bt, k, n], seed + 1, 1.0);
        let b2 = random_tensor(&[k, n], seed + 2, 1.0);
        ok(check(&[a.clone(), b3], Tolerance::default(), |v| matmul(&v[0], &v[1])))?;
        ok(check(&[a, b2], Tolerance::default(), |v| matmul(&v[0], &v[1])))?;
    }

    #[test]
    fn swiglu_linear_all_inputs(rows in 1usize..4, t in 1usize..4, h in 1usize..6, o in 1usize..6, seed in 0u64..1000) {
        let gate = random_tensor(&[rows, t, h], seed, 2.0);
        let up = random_tensor(&[rows, t, h], seed + 1, 1.0);
        let w = random_tensor(&[o, h], seed + 2, 1.0);
        ok(check(&[gate, up, w], Tolerance::default(), |v| swiglu_linear(&v[0], &v[1], &v[2])))?;
    }

    #[test]
    fn linear_with_and_without_bias(rows in 1usize..4, t in 1usize..4, i in 1usize..6, o in 1usize..6, seed in 0u64..1000) {
        let x = random_tensor(&[rows, t, i], seed, 1.0);
        let w = random_tensor(&[o, i], seed + 1, 1.0);
        let b = random_tensor(&[o], seed + 2, 1.0);
        ok(check(&[x.clone(), w.clone(), b], Tolerance::default(), |v| linear(&v[0], &v[1], Some(&v[2]))))?;
        ok(check(&[x, w], Tolerance::default(), |v| linear(&v[0], &v[1], None)))?;
    }

    #[test]
    fn embedding_scatter_adds_repeats(vocab in 1usize..6, width in 1usize..5, ids in prop::collection::vec(0u32..6, 1..8), seed in 0u64..1000) {
        let ids: Vec<u32> = ids.into_iter().map(|i| i % vocab as u32).collect();
        let table = random_tensor(&[vocab, width], seed, 1.0);
        ok(check(&[table], Tolerance::default(), |v| embedding(&v[0], &ids)))?;
    }

    #[test]
    fn norms(rows in 1usize..4, width in 2usize..9, seed in 0u64..1000) {
        // Rows spread over a range (a ramp plus noise), so no row is nearly
        // constant: there the normalisation is ill-conditioned and any
        // finite difference is meaningless.
        let noise = random_tensor(&[rows, width], seed, 0.3).to_f32_vec();
        let x = Tensor::from_vec(noise.iter().enumerate().map(|(i, v)| v + (i % width) as f32 - 1.0).collect(), &[rows, width]).unwrap();
        let w = Tensor::from_vec(random_tensor(&[width], seed + 1, 0.5).to_f32_vec().iter().map(|v| v + 1.0).collect(), &[width]).unwrap();
        let b = random_tensor(&[width], seed + 2, 1.0);
        // A smaller step: normalisation has larger higher derivatives.
        let t = Tolerance { step: 3e-3, ..Tolerance::default() };
        ok(check(&[x.clone(), w.clone(), b], t, |v| layer_norm(&v[0], &v[1], &v[2], 1e-5)))?;
        ok(check(&[x, w], t, |v| rms_norm(&v[0], &v[1], 1e-6)))?;
    }

    #[test]
    fn activations_and_softmax(shape in prop::collection::vec(1usize..5, 1..4), seed in 0u64..1000) {
        let x = random_tensor(&shape, seed, 3.0);
        let u = random_tensor(&shape, seed + 1, 1.0);
        let t = Tolerance::default();
        ok(check(&[x.clone()], t, |v| gelu(&v[0])))?;
        ok(check(&[x.clone()], t, |v| silu(&v[0])))?;
        ok(check(&[x.clone(), u], t, |v| swiglu(&v[0], &v[1])))?;
        ok(check(&[x], t, |v| softmax(&v[0])))?;
    }

    #[test]
    fn dropout_with_a_fixed_mask(shape in prop::collection::vec(1usize..6, 1..3), p in 0.0f32..0.9, seed in 0u64..1000) {
        let x = random_tensor(&shape, seed, 1.0);
        ok(check(&[x], Tolerance::default(), |v| dropout(&v[0], p, seed)))?;
    }

    #[test]
    fn rotary(b in 1usize..3, t in 1usize..5, h in 1usize..3, half in 1usize..4, seed in 0u64..1000) {
        let x = random_tensor(&[b, t, h, 2 * half], seed, 1.0);
        let angles: Vec<f32> = (0..t * half).map(|i| (i / half) as f32 / 10000f32.powf((i % half) as f32 / half as f32)).collect();
        let cos = Tensor::from_vec(angles.iter().map(|a| a.cos()).collect(), &[t, half]).unwrap();
        let sin = Tensor::from_vec(angles.iter().map(|a| a.sin()).collect(), &[t, half]).unwrap();
        ok(check(&[x], Tolerance::default(), |v| rope(&v[0], &cos, &sin)))?;
    }

    #[test]
    fn attention_grouped_causal(b in 1usize..3, t in 1usize..7, kv in 1usize..3, group in 1usize..4, d in 1usize..5, seed in 0u64..1000) {
        let q = random_tensor(&[b, t, kv * group, d], seed, 1.0);
        let k = random_tensor(&[b, t, kv, d], seed + 1, 1.0);
        let v = random_tensor(&[b, t, kv, d], seed + 2, 1.0);
        ok(check(&[q, k, v], Tolerance::default(), |x| causal_attention(&x[0], &x[1], &x[2])))?;
    }

    #[test]
    fn attention_on_fused_qkv(b in 1usize..3, t in 1usize..7, kv in 1usize..3, group in 1usize..4, d in 1usize..5, seed in 0u64..1000) {
        let qkv = random_tensor(&[b, t, (kv * group + 2 * kv) * d], seed, 1.0);
        ok(check(&[qkv], Tolerance::default(), |x| causal_attention_qkv(&x[0], kv * group, kv)))?;
    }

    #[test]
    fn cross_entropy_with_ignored_rows(rows in 1usize..7, vocab in 2usize..10, picks in prop::collection::vec(0i64..12, 7), seed in 0u64..1000) {
        // Targets past the vocabulary become the ignore index, so some rows are skipped.
        let targets: Vec<i64> = picks[..rows].iter().map(|&p| if p >= vocab as i64 { IGNORE_INDEX } else { p }).collect();
        let logits = random_tensor(&[rows, vocab], seed, 3.0);
        ok(check(&[logits], Tolerance::default(), |v| cross_entropy(&v[0], &targets)))?;
    }

    #[test]
    fn linear_cross_entropy_in_blocks(rows in 1usize..9, hidden in 1usize..6, vocab in 2usize..10, block in 1usize..4, picks in prop::collection::vec(0i64..12, 8), seed in 0u64..1000) {
        let targets: Vec<i64> = picks[..rows].iter().map(|&p| if p >= vocab as i64 { IGNORE_INDEX } else { p }).collect();
        let x = random_tensor(&[rows, hidden], seed, 1.5);
        let w = random_tensor(&[vocab, hidden], seed + 1, 1.5);
        ok(check(&[x, w], Tolerance::default(), |v| linear_cross_entropy_blocked(&v[0], &v[1], &targets, block)))?;
    }

    #[test]
    fn linear_cross_entropy_in_vocabulary_chunks(rows in 1usize..9, hidden in 1usize..6, vocab in 2usize..12, chunk in 1usize..5, picks in prop::collection::vec(0i64..14, 8), seed in 0u64..1000) {
        let targets: Vec<i64> = picks[..rows].iter().map(|&p| if p >= vocab as i64 { IGNORE_INDEX } else { p }).collect();
        let x = random_tensor(&[rows, hidden], seed, 1.5);
        // The chunked path is for a W that does not train: a constant here.
        let w = Var::constant(random_tensor(&[vocab, hidden], seed + 1, 1.5));
        ok(check(&[x], Tolerance::default(), |v| linear_cross_entropy_online(&v[0], &w, &targets, chunk)))?;
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn lora_linear_all_inputs(rows in 1usize..6, inputs in 1usize..6, out in 1usize..6, r in 1usize..4, bias in any::<bool>(), dropped in any::<bool>(), conv1d in any::<bool>(), seed in 0u64..1000) {
        let mask = dropped.then(|| dropout_mask(&[rows, inputs], 0.3, seed).unwrap());
        let w_shape = if conv1d { [inputs, out] } else { [out, inputs] };
        let mut tensors = vec![
            random_tensor(&[rows, inputs], seed, 1.0),
            random_tensor(&w_shape, seed + 1, 1.0),
            random_tensor(&[r, inputs], seed + 2, 1.0),
            random_tensor(&[out, r], seed + 3, 1.0),
        ];
        if bias {
            tensors.push(random_tensor(&[out], seed + 4, 1.0));
        }
        ok(check(&tensors, Tolerance::default(), |v| {
            let layer = LoraLinear { weight: &v[1], conv1d, bias: v.get(4), a: &v[2], b: &v[3], scale: 1.7, mask: mask.clone() };
            lora_linear(&v[0], layer)
        }))?;
    }
}

/// `lora_linear` against the ops it replaces (`linear` or Conv1D's
/// `matmul` + `add`, then `dropout` + `linear` + `scale` + `linear` +
/// `add`): to rounding, with and without dropout (the low-rank product is
/// summed inside the layer's GEMM, a different grouping of the same sums),
/// with W frozen as LoRA trains it.
#[test]
fn lora_linear_equals_the_unfused_ops() {
    let (batch, seq, inputs, out, r) = (2, 5, 12, 9, 4);
    let t = |shape: &[usize], seed| random_tensor(shape, seed, 1.0);
    let (xt, at, bt, biast) = (t(&[batch, seq, inputs], 1), t(&[r, inputs], 3), t(&[out, r], 4), t(&[out], 5));
    for (p, conv1d) in [(0.0, false), (0.25, false), (0.0, true), (0.25, true)] {
        let wt = if conv1d { t(&[inputs, out], 2) } else { t(&[out, inputs], 2) };
        let run = |fused: bool| {
            let (x, w, bias) = (Var::parameter(xt.clone()), Var::constant(wt.clone()), Var::parameter(biast.clone()));
            let (a, b) = (Var::parameter(at.clone()), Var::parameter(bt.clone()));
            let y = if fused {
                let mask = (p > 0.0).then(|| dropout_mask(&[batch, seq, inputs], p, 9).unwrap());
                let layer = LoraLinear { weight: &w, conv1d, bias: Some(&bias), a: &a, b: &b, scale: 2.0, mask };
                lora_linear(&x, layer).unwrap()
            } else {
                let xd = if p > 0.0 { dropout(&x, p, 9).unwrap() } else { x.clone() };
                let delta = linear(&scale(&linear(&xd, &a, None).unwrap(), 2.0).unwrap(), &b, None).unwrap();
                let base = match conv1d {
                    true => add(&matmul(&x, &w).unwrap(), &bias).unwrap(),
                    false => linear(&x, &w, Some(&bias)).unwrap(),
                };
                add(&base, &delta).unwrap()
            };
            let loss = sum(&mul(&y, &Var::constant(t(&[batch, seq, out], 6))).unwrap()).unwrap();
            loss.backward().unwrap();
            let grads = [&x, &bias, &a, &b].map(|v| v.grad().unwrap().to_f32_vec());
            (y.value().to_f32_vec(), grads, w.grad().is_none())
        };
        let (fused, plain) = (run(true), run(false));
        assert!(fused.2, "a frozen W gets no gradient");
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs()));
        assert!(close(&fused.0, &plain.0), "output, dropout {p}, conv1d {conv1d}");
        assert!(fused.1.iter().zip(&plain.1).all(|(f, p)| close(f, p)), "gradients, dropout {p}, conv1d {conv1d}");
    }
}

/// The fused op against `cross_entropy(linear(x, W))`: the same loss bit
/// for bit, the same gradients to rounding, for any block size, for a
/// frozen W, and under `no_grad`; the chunked path of a frozen W to rounding.
#[test]
fn linear_cross_entropy_equals_the_unfused_ops() {
    let (rows, hidden, vocab) = (13, 7, 29);
    let targets: Vec<i64> = (0..rows as i64).map(|i| if i % 4 == 1 { IGNORE_INDEX } else { i * 7 % 29 }).collect();
    let (xt, wt) = (random_tensor(&[rows, hidden], 5, 2.0), random_tensor(&[vocab, hidden], 6, 2.0));
    let run = |fused: Option<usize>, train_w: bool| {
        let x = Var::parameter(xt.clone());
        let w = if train_w { Var::parameter(wt.clone()) } else { Var::constant(wt.clone()) };
        let loss = match fused {
            Some(block) => linear_cross_entropy_blocked(&x, &w, &targets, block).unwrap(),
            None => cross_entropy(&linear(&x, &w, None).unwrap(), &targets).unwrap(),
        };
        // An upstream gradient other than 1 (a scaled loss) must scale both results.
        loss.backward_with(Tensor::from_vec(vec![0.75], &[]).unwrap()).unwrap();
        (loss.item().unwrap(), x.grad().unwrap().to_f32_vec(), w.grad().map(|g| g.to_f32_vec()))
    };
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + y.abs()));
    for train_w in [true, false] {
        let (loss, gx, gw) = run(None, train_w);
        for block in [1, 4, 5, 13, 64] {
            let (f_loss, f_gx, f_gw) = run(Some(block), train_w);
            assert_eq!(f_loss, loss, "block {block}");
            assert!(close(&f_gx, &gx), "dx, block {block}");
            assert_eq!(f_gw.is_some(), train_w);
            if let (Some(a), Some(b)) = (f_gw, &gw) {
                assert!(close(&a, b), "dW, block {block}");
            }
        }
    }
    // The chunked path (a W that does not train): the loss to rounding, as
    // its log-sum-exp is summed a chunk at a time.
    let (loss, gx, _) = run(None, false);
    for chunk in [1, 4, 5, 28, 29, 64] {
        let x = Var::parameter(xt.clone());
        let w = Var::constant(wt.clone());
        let c_loss = linear_cross_entropy_online(&x, &w, &targets, chunk).unwrap();
        c_loss.backward_with(Tensor::from_vec(vec![0.75], &[]).unwrap()).unwrap();
        assert!((c_loss.item().unwrap() - loss).abs() <= 1e-6 * (1.0 + loss.abs()), "loss, chunk {chunk}");
        assert!(close(&x.grad().unwrap().to_f32_vec(), &gx), "dx, chunk {chunk}");
        assert!(w.grad().is_none());
    }
    let x = Var::parameter(xt.clone());
    let w = Var::parameter(wt.clone());
    let evaluated = no_grad(|| linear_cross_entropy_blocked(&x, &w, &targets, 3).unwrap());
    assert!(!evaluated.requires_grad());
    assert_eq!(evaluated.item().unwrap(), run(None, true).0);
    // Evaluation of a trained W goes through the chunked path.
    let evaluated = no_grad(|| linear_cross_entropy(&x, &w, &targets).unwrap()).item().unwrap();
    assert!((evaluated - loss).abs() <= 1e-6 * (1.0 + loss.abs()));
    let err = linear_cross_entropy_online(&x, &w, &targets, 4).unwrap_err();
    assert!(err.to_string().contains("W trains"), "{err}");
    let mut bad_targets = targets.clone();
    bad_targets[2] = 29;
    let err = no_grad(|| linear_cross_entropy(&x, &w, &bad_targets)).unwrap_err();
    assert!(err.to_string().contains("target 29 at row 2"), "{err}");
    let err = linear_cross_entropy(&x, &w, &targets[1..]).unwrap_err();
    assert!(err.to_string().contains("12 rows"), "{err}");
}

#[test]
fn cross_entropy_with_every_row_ignored_is_zero_with_zero_gradient() {
    let logits = Var::parameter(random_tensor(&[2, 3], 1, 1.0));
    let loss = cross_entropy(&logits, &[IGNORE_INDEX, IGNORE_INDEX]).unwrap();
    assert_eq!(loss.item().unwrap(), 0.0);
    loss.backward().unwrap();
    assert!(logits.grad().unwrap().to_f32_vec().iter().all(|&g| g == 0.0));
}

#[test]
fn the_checker_catches_a_wrong_gradient() {
    // A deliberately wrong "op": forward x², backward claims x (not 2x).
    let x = random_tensor(&[4], 3, 1.0);
    let wrong = check(&[x.clone()], Tolerance::default(), |v| {
        let sq = mul(&v[0], &v[0])?;
        // sq − ½·(x·x) with the second product detached: value x²/2, gradient 2x.
        let detached = Var::constant(v[0].value());
        let half = scale(&mul(&v[0], &detached)?, 0.5)?;
        sub(&sq, &half)
    });
    assert!(wrong.is_err(), "the checker must reject a backward that disagrees with the values");
}

/// `swiglu_linear` against `linear(swiglu(gate, up), W)`: the same output
/// and gradients bit for bit, with W trained and frozen.
#[test]
fn swiglu_linear_equals_the_unfused_ops() {
    let (batch, seq, hidden, out) = (2, 5, 19, 7);
    let t = |shape: &[usize], seed| random_tensor(shape, seed, 1.5);
    let (gt, ut, wt, weights) =
        (t(&[batch, seq, hidden], 1), t(&[batch, seq, hidden], 2), t(&[out, hidden], 3), t(&[batch, seq, out], 4));
    for train_w in [true, false] {
        let run = |fused: bool| {
            let (gate, up) = (Var::parameter(gt.clone()), Var::parameter(ut.clone()));
            let w = if train_w { Var::parameter(wt.clone()) } else { Var::constant(wt.clone()) };
            let y = match fused {
                true => swiglu_linear(&gate, &up, &w).unwrap(),
                false => linear(&swiglu(&gate, &up).unwrap(), &w, None).unwrap(),
            };
            sum(&mul(&y, &Var::constant(weights.clone())).unwrap()).unwrap().backward().unwrap();
            let mut grads = vec![gate.grad().unwrap().to_f32_vec(), up.grad().unwrap().to_f32_vec()];
            grads.extend(w.grad().map(|g| g.to_f32_vec()));
            (y.value().to_f32_vec(), grads)
        };
        let (fused, plain) = (run(true), run(false));
        assert_eq!(fused.0, plain.0, "output, W trains: {train_w}");
        assert_eq!(fused.1.len(), if train_w { 3 } else { 2 });
        assert_eq!(fused.1, plain.1, "gradients, W trains: {train_w}");
    }
}
