//! A frozen weight gets no gradient and costs no weight-gradient GEMM.
//!
//! Alone in its own test binary: it counts the process's GEMM calls, which
//! other tests running in parallel threads would disturb.

use autograd::gradcheck::random_tensor;
use autograd::{linear, sum, Var};
use half::bf16;
use kernels::gemm::gemm_calls;
use tensor::Tensor;

#[test]
fn frozen_weights_cost_no_weight_gradient_product() {
    let x = Var::parameter(random_tensor(&[4, 8], 1, 1.0));
    let w_values = random_tensor(&[6, 8], 2, 1.0);

    let gemms_for_backward = |w: &Var| {
        let loss = sum(&linear(&x, w, None).unwrap()).unwrap();
        let before = gemm_calls();
        loss.backward().unwrap();
        gemm_calls() - before
    };

    let trainable = Var::parameter(w_values.clone());
    assert_eq!(gemms_for_backward(&trainable), 2, "dx = g·W and dW = gᵀ·x");
    assert!(trainable.grad().is_some());

    // Frozen, and stored as bf16 as a memory-mapped checkpoint would be.
    let frozen_bf16 =
        Tensor::from_bf16(w_values.to_f32_vec().into_iter().map(bf16::from_f32).collect(), &[6, 8]).unwrap();
    let frozen = Var::constant(frozen_bf16);
    x.zero_grad();
    assert_eq!(gemms_for_backward(&frozen), 1, "only dx = g·W");
    assert!(frozen.grad().is_none());
    assert!(x.grad().is_some(), "the gradient still flows through the frozen weight to x");
}
