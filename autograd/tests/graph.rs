//! The graph's bookkeeping: accumulation, no-grad mode, freeing saved
//! activations, and errors for misuse.

use autograd::gradcheck::random_tensor;
use autograd::*;
use std::sync::Arc;

#[test]
fn gradients_accumulate_until_cleared() {
    let x = Var::parameter(random_tensor(&[3], 1, 1.0));
    let loss = || sum(&mul(&x, &x).unwrap()).unwrap();
    loss().backward().unwrap();
    let once = x.grad().unwrap().to_f32_vec();
    let want: Vec<f32> = x.value().to_f32_vec().iter().map(|v| 2.0 * v).collect();
    assert_eq!(once, want);
    loss().backward().unwrap();
    let twice = x.grad().unwrap().to_f32_vec();
    assert!(twice.iter().zip(&once).all(|(t, o)| *t == 2.0 * o));
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn a_variable_used_twice_gets_both_contributions() {
    // y = x·x + 3x: dy/dx = 2x + 3, through two paths that meet at x and at an intermediate.
    let x = Var::parameter(random_tensor(&[4], 2, 1.0));
    let t = scale(&x, 3.0).unwrap();
    let y = sum(&add(&mul(&x, &x).unwrap(), &t).unwrap()).unwrap();
    y.backward().unwrap();
    let g = x.grad().unwrap().to_f32_vec();
    for (g, v) in g.iter().zip(x.value().to_f32_vec()) {
        assert!((g - (2.0 * v + 3.0)).abs() < 1e-6);
    }
}

#[test]
fn no_grad_records_nothing() {
    let x = Var::parameter(random_tensor(&[2, 2], 3, 1.0));
    let y = no_grad(|| gelu(&x).unwrap());
    assert!(!y.requires_grad() && y.is_leaf());
    assert!(is_grad_enabled(), "no_grad restores recording");
    assert!(sum(&y).unwrap().backward().is_err(), "nothing to differentiate");
    // Constants alone record nothing either.
    let c = Var::constant(random_tensor(&[2], 4, 1.0));
    assert!(!scale(&c, 2.0).unwrap().requires_grad());
}

#[test]
fn saved_activations_are_freed_by_backward() {
    let x = Var::parameter(random_tensor(&[16], 5, 1.0));
    let storage = Arc::clone(x.value().storage());
    let baseline = Arc::strong_count(&storage);
    let y = sum(&silu(&x).unwrap()).unwrap(); // silu saves x
    assert!(Arc::strong_count(&storage) > baseline, "the graph holds x for silu's backward");
    y.backward().unwrap();
    assert_eq!(Arc::strong_count(&storage), baseline, "backward released it");
    let err = y.backward().unwrap_err();
    assert!(err.to_string().contains("already consumed"), "{err}");
}

#[test]
fn the_graph_keeps_no_value_it_did_not_save() {
    let x = Var::parameter(random_tensor(&[16], 6, 1.0));
    let w = Var::parameter(random_tensor(&[16], 7, 1.0));
    // y only feeds an add, which saves nothing: once the user drops y, its
    // value must go, though the graph still routes gradients through y.
    let y = scale(&x, 3.0).unwrap();
    let y_storage = Arc::downgrade(y.value().storage());
    let z = sum(&mul(&add(&y, &w).unwrap(), &w).unwrap()).unwrap();
    drop(y);
    assert!(y_storage.upgrade().is_none(), "the graph kept a value nobody saved");
    z.backward().unwrap();
    // ∂/∂x Σ (3x + w)·w = 3w
    let want: Vec<f32> = w.value().to_f32_vec().iter().map(|v| 3.0 * v).collect();
    assert_eq!(x.grad().unwrap().to_f32_vec(), want);
}

#[test]
fn a_frozen_weight_keeps_no_input_alive() {
    let x = Var::parameter(random_tensor(&[4, 8], 3, 1.0));
    let storage = Arc::clone(x.value().storage());
    let base = Arc::strong_count(&storage);
    let (a, b) = (Var::parameter(random_tensor(&[2, 8], 4, 1.0)), Var::parameter(random_tensor(&[6, 2], 5, 1.0)));
    for trains in [false, true] {
        let w_value = random_tensor(&[6, 8], 6, 1.0);
        let w = if trains { Var::parameter(w_value) } else { Var::constant(w_value) };
        let y = linear(&x, &w, None).unwrap();
        assert_eq!(Arc::strong_count(&storage) - base, trains as usize, "linear, W trains: {trains}");
        drop(y);
        // With dropout, LoRA keeps its own masked input, so x is kept only for W.
        let mask = Some(dropout_mask(&[4, 8], 0.5, 7).unwrap());
        let layer = LoraLinear { weight: &w, conv1d: false, bias: None, a: &a, b: &b, scale: 1.0, mask };
        let y = lora_linear(&x, layer).unwrap();
        assert_eq!(Arc::strong_count(&storage) - base, trains as usize, "lora_linear, W trains: {trains}");
        drop(y);
    }
}

#[test]
fn backward_needs_a_scalar() {
    let x = Var::parameter(random_tensor(&[3], 6, 1.0));
    let err = gelu(&x).unwrap().backward().unwrap_err();
    assert!(err.to_string().contains("scalar"), "{err}");
}
