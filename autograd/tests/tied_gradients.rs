//! A tied embedding and LM head (one parameter used by `embedding` and by
//! `linear_cross_entropy`), and the gradient buffers `zero_grad` keeps for
//! the next step.
//!
//! The embedding scatter-adds its rows straight into the parameter's
//! gradient, so the tied gradient must be the sum of the two uses'
//! gradients, computed on separate parameters. A kept buffer holds the last
//! step's values: the next gradient must not see them.

use autograd::gradcheck::random_tensor;
use autograd::*;
use tensor::Tensor;

/// `linear_cross_entropy(embedding(table, ids) * 0.5, head, targets)`,
/// backward; `table` and `head` may be the same parameter.
fn step(table: &Var, head: &Var, ids: &[u32], targets: &[i64]) {
    let x = embedding(table, ids).unwrap();
    let x = scale(&x, 0.5).unwrap();
    linear_cross_entropy(&x, head, targets).unwrap().backward().unwrap();
}

fn grad(v: &Var) -> Vec<f32> {
    v.grad().unwrap().to_f32_vec()
}

#[test]
fn a_tied_parameter_gets_the_sum_of_both_uses_gradients() {
    let (vocab, hidden) = (11, 6);
    let w = random_tensor(&[vocab, hidden], 3, 1.0);
    let targets = [4i64, 0, 7, IGNORE_INDEX, 2];
    // Distinct ids: each row gets one embedding gradient, added to the head's
    // once, in the same order as the separate sum, so the bits agree. With
    // repeats the sums are grouped differently, so they agree to rounding.
    for (ids, exact) in [(vec![1u32, 5, 9, 0, 3], true), (vec![5u32, 5, 9, 5, 0], false)] {
        let tied = Var::parameter(w.clone());
        step(&tied, &tied, &ids, &targets);
        let (table, head) = (Var::parameter(w.clone()), Var::parameter(w.clone()));
        step(&table, &head, &ids, &targets);
        let want: Vec<f32> = grad(&head).iter().zip(grad(&table)).map(|(h, e)| h + e).collect();
        let got = grad(&tied);
        if exact {
            assert_eq!(got, want);
        } else {
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-6 * (1.0 + b.abs())), "{got:?} {want:?}");
        }
        // Rows no id touched carry the head's gradient alone.
        let untouched = (0..vocab).find(|v| !ids.contains(&(*v as u32))).unwrap();
        assert_eq!(got[untouched * hidden..][..hidden], grad(&head)[untouched * hidden..][..hidden]);
    }
}

#[test]
fn a_kept_gradient_buffer_does_not_leak_into_the_next_step() {
    // 8192 x 1024 floats: 32 MiB, the size from which zero_grad keeps a buffer.
    let (vocab, hidden) = (8192, 1024);
    let w = random_tensor(&[vocab, hidden], 7, 0.02);
    fn run_second(tied: &Var) -> Vec<f32> {
        step(tied, tied, &[9, 100, 8191], &[5, 4095, 8191]);
        grad(tied)
    }
    let tied = Var::parameter(w.clone());
    step(&tied, &tied, &[3, 8000, 17], &[1, 2, 3]);
    let first_ptr = tied.with_grad(|g| g.unwrap().as_ptr() as usize);
    tied.zero_grad();
    assert!(tied.grad().is_none());
    let kept = run_second(&tied);
    assert_eq!(tied.with_grad(|g| g.unwrap().as_ptr() as usize), first_ptr, "the buffer is reused");
    // The same step on a thread with no kept buffers (they are per thread).
    let fresh = std::thread::spawn(move || run_second(&Var::parameter(w))).join().unwrap();
    assert_eq!(kept, fresh);

    // An untied table's gradient starts from a kept buffer filled with zeros.
    let table = Var::parameter(Tensor::from_vec(vec![0.5; vocab * hidden], &[vocab, hidden]).unwrap());
    let rows_sum = |ids: &[u32]| {
        sum(&embedding(&table, ids).unwrap()).unwrap().backward().unwrap();
        grad(&table)
    };
    rows_sum(&[1, 2]);
    table.zero_grad();
    let g = rows_sum(&[2, 4]);
    let ones: Vec<usize> = (0..vocab).filter(|&v| g[v * hidden] != 0.0).collect();
    assert_eq!(ones, [2, 4]);
    assert!(g.iter().all(|&x| x == 0.0 || x == 1.0));
}
