//! `checkpoint`: the same loss and gradients as running `f` plainly, with
//! `f`'s graph dropped after the forward and rebuilt in the backward.

use autograd::gradcheck::{check, random_tensor, Tolerance};
use autograd::*;

/// A residual block with dropout: `x + gelu(dropout(x) · W1ᵀ) · W2ᵀ`.
fn block(x: &Var, w1: &Var, w2: &Var) -> Result<Var, tensor::TensorError> {
    let h = gelu(&linear(&dropout(x, 0.25, 7)?, w1, None)?)?;
    add(x, &linear(&h, w2, None)?)
}

struct Run {
    loss: f32,
    grads: Vec<Vec<f32>>,
}

/// `mean(block(block(emb · 0.5)) ⊙ c)` with each block checkpointed or not,
/// through a first layer `w0` so the blocks' input needs a gradient.
fn run(recompute: bool, train_w0: bool) -> Run {
    let (rows, c) = (5, 6);
    let t = |shape: &[usize], seed| random_tensor(shape, seed, 1.0);
    let x0 = Var::constant(t(&[rows, c], 1));
    let w0 = if train_w0 { Var::parameter(t(&[c, c], 2)) } else { Var::constant(t(&[c, c], 2)) };
    let blocks: Vec<(Var, Var)> =
        (0..2).map(|i| (Var::parameter(t(&[2 * c, c], 10 + i)), Var::parameter(t(&[c, 2 * c], 20 + i)))).collect();
    let mut x = linear(&x0, &w0, None).unwrap();
    for (w1, w2) in &blocks {
        x = match recompute {
            true => {
                let (a, b) = (w1.clone(), w2.clone());
                checkpoint(&x, &[w1.clone(), w2.clone()], move |x| block(x, &a, &b)).unwrap()
            }
            false => block(&x, w1, w2).unwrap(),
        };
    }
    let loss = mean(&mul(&x, &Var::constant(t(&[rows, c], 3))).unwrap()).unwrap();
    loss.backward().unwrap();
    let mut params: Vec<&Var> = blocks.iter().flat_map(|(a, b)| [a, b]).collect();
    if train_w0 {
        params.push(&w0);
    }
    Run { loss: loss.item().unwrap(), grads: params.iter().map(|p| p.grad().unwrap().to_f32_vec()).collect() }
}

#[test]
fn recomputed_blocks_give_the_same_bits() {
    for train_w0 in [true, false] {
        let (plain, again) = (run(false, train_w0), run(true, train_w0));
        assert_eq!(plain.loss, again.loss);
        assert_eq!(plain.grads.len(), again.grads.len());
        for (i, (p, a)) in plain.grads.iter().zip(&again.grads).enumerate() {
            assert_eq!(p, a, "parameter {i}, w0 trains: {train_w0}");
        }
    }
}

#[test]
fn checkpoint_matches_finite_differences() {
    let tensors = [random_tensor(&[3, 4], 1, 1.0), random_tensor(&[5, 4], 2, 0.7), random_tensor(&[4, 5], 3, 0.7)];
    let report = check(&tensors, Tolerance::default(), |v| {
        let (a, b) = (v[1].clone(), v[2].clone());
        // Without dropout: finite differences evaluate under no_grad, where dropout is off.
        checkpoint(&v[0], &v[1..], move |x| add(x, &linear(&gelu(&linear(x, &a, None)?)?, &b, None)?))
    })
    .unwrap();
    assert!(report.elements_checked > 0);
}

/// A parameter used inside and outside the checkpoint (a tied embedding)
/// gets both uses' gradients, to rounding; under `no_grad` nothing is recorded.
#[test]
fn a_parameter_used_inside_and_outside_gets_both_gradients() {
    let w = random_tensor(&[4, 4], 5, 0.8);
    let x = random_tensor(&[3, 4], 6, 1.0);
    let grad = |recompute: bool| {
        let (wv, xv) = (Var::parameter(w.clone()), Var::constant(x.clone()));
        let h = linear(&xv, &wv, None).unwrap();
        let f = {
            let wv = wv.clone();
            move |h: &Var| gelu(&linear(h, &wv, None)?)
        };
        let y = if recompute { checkpoint(&h, std::slice::from_ref(&wv), f).unwrap() } else { f(&h).unwrap() };
        sum(&y).unwrap().backward().unwrap();
        wv.grad().unwrap().to_f32_vec()
    };
    let (plain, again) = (grad(false), grad(true));
    assert!(plain.iter().zip(&again).all(|(a, b)| (a - b).abs() <= 1e-6 * (1.0 + a.abs())));
    let wv = Var::parameter(w.clone());
    let y = no_grad(|| {
        let wv2 = wv.clone();
        checkpoint(&Var::constant(x.clone()), std::slice::from_ref(&wv), move |h| linear(h, &wv2, None)).unwrap()
    });
    assert!(!y.requires_grad());
    let plain = tensor::matmul(&x, &w.transpose(0, 1).unwrap()).unwrap();
    assert_eq!(y.value().to_f32_vec(), plain.to_f32_vec());
}
