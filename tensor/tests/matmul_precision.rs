//! `matmul` follows the process-wide matmul precision; `matmul_f32` does not.
//! Its own test binary, because the precision is process-wide.

use kernels::gemm::{set_matmul_precision, Precision};
use tensor::{matmul, matmul_f32, Tensor};

#[test]
fn matmul_f32_ignores_bf16_precision() {
    // 1 + 2⁻¹⁰ is not a bf16 value (7 mantissa bits): bf16 rounds it to 1.
    let x = 1.0f32 + 1.0 / 1024.0;
    // Shapes of LoRA's products: (N, in)·(in, r) and (r, N)·(N, in).
    for (m, k, n) in [(64, 40, 16), (16, 64, 40), (1, 1, 1)] {
        let a = Tensor::from_vec(vec![x; m * k], &[m, k]).unwrap();
        let b = Tensor::from_vec(vec![1.0; k * n], &[k, n]).unwrap();
        set_matmul_precision(Precision::Bf16);
        let rounded = matmul(&a, &b).unwrap();
        let exact = matmul_f32(&a, &b).unwrap();
        set_matmul_precision(Precision::F32);
        let plain = matmul(&a, &b).unwrap();
        let want = k as f32 * x;
        assert!(rounded.f32_data().iter().all(|&v| v == k as f32), "bf16 rounds each operand ({m}x{k}x{n})");
        assert!(exact.f32_data().iter().all(|&v| v == want), "matmul_f32 does not round ({m}x{k}x{n})");
        assert_eq!(exact.f32_data().to_vec(), plain.f32_data().to_vec(), "the same as f32 precision ({m}x{k}x{n})");
    }
}
