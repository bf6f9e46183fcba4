//! Matrix products on tensors, through `kernels`' SGEMM.
//!
//! ```text
//! (m, k)    · (k, n)    -> (m, n)
//! (B, m, k) · (B, k, n) -> (B, m, n)
//! (B, m, k) · (k, n)    -> (B, m, n)     b shared by every batch (a Linear weight)
//! ```
//! Operands may be f32, bf16 or f16, and transposed or narrowed views: any
//! matrix whose rows or columns are unit-stride goes to the GEMM as it is
//! (a memory-mapped bf16 weight is widened while packing, never copied).
//! Other layouts are made contiguous first. The result is a new f32 tensor.

use crate::{DType, Tensor, TensorError};
#[cfg(test)]
use half::bf16;
use kernels::gemm::{Gemm, MatMut, MatRef, Precision};

/// `a · b` (see the module doc for the shapes), in the process-wide matmul
/// precision ([`kernels::gemm::matmul_precision`]).
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    let gemm = Gemm::new().map_err(|e| TensorError::shape("matmul", e.to_string()))?;
    matmul_on(&gemm, a, b)
}

/// `a · b` in full f32 whatever the process-wide matmul precision: for
/// products that bf16 would make less exact and no faster, such as LoRA's
/// rank-r ones, which are bound by reading their big operand, not by FMAs
/// (see `autograd::lora_linear`).
pub fn matmul_f32(a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    let gemm = Gemm::new().map_err(|e| TensorError::shape("matmul", e.to_string()))?;
    matmul_on(&gemm.with_precision(Precision::F32), a, b)
}

/// `a · b` on the plan `gemm`.
fn matmul_on(gemm: &Gemm, a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    let bad = |detail: String| TensorError::shape("matmul", detail);
    let (batch, m, k) = match a.shape() {
        &[m, k] => (None, m, k),
        &[bt, m, k] => (Some(bt), m, k),
        s => return Err(bad(format!("a must be 2-D or 3-D, got {s:?}"))),
    };
    let (b_batched, k2, n) = match b.shape() {
        &[k2, n] => (false, k2, n),
        &[bt, k2, n] if Some(bt) == batch => (true, k2, n),
        s => return Err(bad(format!("b of shape {s:?} does not fit a of shape {:?}", a.shape()))),
    };
    if k2 != k {
        return Err(bad(format!("inner dimensions differ: {:?} · {:?}", a.shape(), b.shape())));
    }
    // A batch of row-major matrices against one shared B is one taller
    // product: (B·m, k) · (k, n). One GEMM of B·m rows blocks and threads
    // better than B GEMMs of m rows.
    if let (Some(bt), false, true) = (batch, b_batched, a.is_contiguous()) {
        let flat = matmul_on(gemm, &a.reshape(&[bt * m, k])?, b)?;
        return flat.reshape(&[bt, m, n]);
    }
    let a = gemm_ready(a);
    let b = gemm_ready(b);
    let count = batch.unwrap_or(1);
    // The output is written by the products alone (β = 0 writes every
    // element of C and reads none), so it is not zeroed first: a pass over
    // every output of the step that the products would overwrite.
    let len = count * m * n;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    for (i, c) in out.spare_capacity_mut()[..len].chunks_mut((m * n).max(1)).enumerate().take(count) {
        let a_i = if batch.is_some() { a.narrow(0, i, 1)?.reshape(&[m, k])? } else { a.clone() };
        let b_i = if b_batched { b.narrow(0, i, 1)?.reshape(&[k, n])? } else { b.clone() };
        let c = MatMut::uninit(c, m, n, n).map_err(|e| bad(e.to_string()))?;
        run(gemm, &a_i, &b_i, 0.0, c).map_err(|e| bad(e.to_string()))?;
    }
    // SAFETY: the `count` products above each wrote their whole (m, n)
    // block of the first `len` elements (β = 0); an error returned before
    // this point, leaving the vector empty.
    unsafe { out.set_len(len) };
    let shape: Vec<usize> = batch.map(|bt| vec![bt, m, n]).unwrap_or_else(|| vec![m, n]);
    Tensor::from_vec(out, &shape)
}

/// `c ← a · b + beta · c` for 2-D `a` `(m, k)` and `b` `(k, n)` (any dtypes
/// and views, as for [`matmul`]), into a caller's row-major `(m, n)` buffer:
/// for loops that reuse one buffer, or accumulate products (`beta = 1`).
/// With `beta = 0`, `c` is only written.
pub fn matmul_into(a: &Tensor, b: &Tensor, beta: f32, c: &mut [f32]) -> Result<(), TensorError> {
    let bad = |detail: String| TensorError::shape("matmul_into", detail);
    let (&[m, k], &[k2, n]) = (a.shape(), b.shape()) else {
        return Err(bad(format!("a and b must be 2-D, got {:?} and {:?}", a.shape(), b.shape())));
    };
    if k2 != k || c.len() != m * n {
        return Err(bad(format!("{:?} · {:?} into a buffer of {} elements", a.shape(), b.shape(), c.len())));
    }
    let gemm = Gemm::new().map_err(|e| bad(e.to_string()))?;
    let c = MatMut::new(c, m, n, n).map_err(|e| bad(e.to_string()))?;
    run(&gemm, &gemm_ready(a), &gemm_ready(b), beta, c).map_err(|e| bad(e.to_string()))
}

/// `a · b + a2 · b2` for 2-D operands: one product whose k are `a`'s
/// followed by `a2`'s ([`Gemm::run_plus`]), where `a2` and `b2` are f32.
/// LoRA's `x·Wᵀ + u·Bᵀ`: the low-rank product is packed into the layer's
/// last K block instead of reading and writing the whole output again.
/// Other dtypes of `a2` or `b2` run as a product and an accumulation.
pub fn matmul_plus(a: &Tensor, b: &Tensor, a2: &Tensor, b2: &Tensor) -> Result<Tensor, TensorError> {
    let bad = |detail: String| TensorError::shape("matmul_plus", detail);
    let (&[m, k], &[k_b, n], &[m2, k2], &[k2_b, n2]) = (a.shape(), b.shape(), a2.shape(), b2.shape()) else {
        return Err(bad(format!(
            "operands must be 2-D, got {:?}, {:?}, {:?}, {:?}",
            a.shape(),
            b.shape(),
            a2.shape(),
            b2.shape()
        )));
    };
    if k_b != k || m2 != m || k2_b != k2 || n2 != n {
        return Err(bad(format!(
            "{:?} · {:?} + {:?} · {:?}: the inner dimensions or the (m, n) of the two products differ",
            a.shape(),
            b.shape(),
            a2.shape(),
            b2.shape()
        )));
    }
    if a2.dtype() != DType::F32 || b2.dtype() != DType::F32 {
        let mut y = matmul(a, b)?;
        matmul_into(a2, b2, 1.0, y.f32_mut())?;
        return Ok(y);
    }
    let gemm = Gemm::new().map_err(|e| bad(e.to_string()))?;
    let mut out: Vec<f32> = Vec::with_capacity(m * n);
    let c = MatMut::uninit(&mut out.spare_capacity_mut()[..m * n], m, n, n).map_err(|e| bad(e.to_string()))?;
    let extra = (gemm_ready(a2), gemm_ready(b2));
    run_with(&gemm, &gemm_ready(a), &gemm_ready(b), Some((&extra.0, &extra.1)), 0.0, c)
        .map_err(|e| bad(e.to_string()))?;
    // SAFETY: the β = 0 product above wrote all m·n elements (or returned an error).
    unsafe { out.set_len(m * n) };
    Tensor::from_vec(out, &[m, n])
}

/// `t` itself if each of its matrices has a unit-stride row or column
/// (a view the GEMM reads directly), else a contiguous copy.
fn gemm_ready(t: &Tensor) -> Tensor {
    let r = t.rank();
    let (rs, cs) = (t.strides()[r - 2], t.strides()[r - 1]);
    let (rows, cols) = (t.shape()[r - 2], t.shape()[r - 1]);
    if cs == 1 || rs == 1 || rows <= 1 || cols <= 1 {
        t.clone()
    } else {
        t.contiguous()
    }
}

/// A 2-D tensor as a GEMM operand of its own element type.
fn mat<'a, T>(t: &Tensor, data: &'a [T]) -> Result<MatRef<'a, T>, kernels::KernelError>
where
    T: kernels::Element,
{
    let (rows, cols) = (t.shape()[0], t.shape()[1]);
    let (rs, cs) = (t.strides()[0], t.strides()[1]);
    MatRef::strided(&data[t.offset()..], rows, cols, rs, cs)
}

/// C = A·B + beta·C for 2-D views, dispatching on the two dtypes.
fn run(gemm: &Gemm, a: &Tensor, b: &Tensor, beta: f32, c: MatMut<'_>) -> Result<(), kernels::KernelError> {
    run_with(gemm, a, b, None, beta, c)
}

/// [`run`], plus `A2·B2` (f32 views) summed into the same C when given.
fn run_with(
    gemm: &Gemm,
    a: &Tensor,
    b: &Tensor,
    extra: Option<(&Tensor, &Tensor)>,
    beta: f32,
    c: MatMut<'_>,
) -> Result<(), kernels::KernelError> {
    let (sa, sb) = (a.storage(), b.storage());
    // Each arm: borrow both storages as their element type and multiply.
    macro_rules! go {
        ($as_a:ident, $as_b:ident) => {{
            let (da, db) = (sa.$as_a().expect("dtype checked"), sb.$as_b().expect("dtype checked"));
            match extra {
                None => gemm.run(1.0, mat(a, da)?, mat(b, db)?, beta, c),
                Some((a2, b2)) => {
                    let (s2, t2) = (a2.storage(), b2.storage());
                    let (d2, e2) = (s2.as_f32().expect("dtype checked"), t2.as_f32().expect("dtype checked"));
                    gemm.run_plus(1.0, mat(a, da)?, mat(b, db)?, mat(a2, d2)?, mat(b2, e2)?, beta, c)
                }
            }
        }};
    }
    match (a.dtype(), b.dtype()) {
        (DType::F32, DType::F32) => go!(as_f32, as_f32),
        (DType::F32, DType::BF16) => go!(as_f32, as_bf16),
        (DType::F32, DType::F16) => go!(as_f32, as_f16),
        (DType::BF16, DType::F32) => go!(as_bf16, as_f32),
        (DType::BF16, DType::BF16) => go!(as_bf16, as_bf16),
        (DType::BF16, DType::F16) => go!(as_bf16, as_f16),
        (DType::F16, DType::F32) => go!(as_f16, as_f32),
        (DType::F16, DType::BF16) => go!(as_f16, as_bf16),
        (DType::F16, DType::F16) => go!(as_f16, as_f16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum::<f64>() as f32;
            }
        }
        c
    }

    fn close(x: &[f32], y: &[f32]) -> bool {
        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs()))
    }

    /// `matmul_plus` is the sum of the two products, with the second one f32
    /// (one GEMM) or bf16 (a product and an accumulation), on a transposed
    /// view; operands that do not fit are an error.
    #[test]
    fn matmul_plus_sums_two_products() {
        let (m, k, k2, n) = (6, 9, 4, 5);
        let v = |len: usize, salt: f32| (0..len).map(|i| (i as f32 * 0.37 + salt).sin()).collect::<Vec<f32>>();
        let (a, b, a2, b2) = (v(m * k, 0.1), v(k * n, 0.2), v(m * k2, 0.3), v(n * k2, 0.4));
        let t = |d: &[f32], shape: &[usize]| Tensor::from_vec(d.to_vec(), shape).unwrap();
        let b2t = t(&b2, &[n, k2]).transpose(0, 1).unwrap(); // (k2, n), a view
        let b2_rows: Vec<f32> = (0..k2 * n).map(|e| b2[(e % n) * k2 + e / n]).collect();
        let sum = |b2: &[f32]| -> Vec<f32> {
            naive(&a, &b, m, k, n).iter().zip(naive(&a2, b2, m, k2, n)).map(|(x, y)| x + y).collect()
        };
        let got = matmul_plus(&t(&a, &[m, k]), &t(&b, &[k, n]), &t(&a2, &[m, k2]), &b2t).unwrap();
        assert_eq!(got.shape(), [m, n]);
        assert!(close(&got.to_f32_vec(), &sum(&b2_rows)));
        let rounded: Vec<f32> = b2_rows.iter().map(|&x| bf16::from_f32(x).to_f32()).collect();
        let b2_bf16 = Tensor::from_bf16(b2_rows.iter().map(|&x| bf16::from_f32(x)).collect(), &[k2, n]).unwrap();
        let got = matmul_plus(&t(&a, &[m, k]), &t(&b, &[k, n]), &t(&a2, &[m, k2]), &b2_bf16).unwrap();
        assert!(close(&got.to_f32_vec(), &sum(&rounded)));
        assert!(matmul_plus(&t(&a, &[m, k]), &t(&b, &[k, n]), &t(&a2, &[m, k2]), &t(&b, &[k, n])).is_err());
    }

    #[test]
    fn matches_naive_for_views_dtypes_and_batches() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let at = Tensor::from_vec(a.clone(), &[m, k]).unwrap();
        let bt = Tensor::from_vec(b.clone(), &[k, n]).unwrap();
        assert!(close(&matmul(&at, &bt).unwrap().to_f32_vec(), &want));

        // b given as the transpose of an (n, k) weight, as Linear layers store it.
        let w = bt.transpose(0, 1).unwrap().contiguous(); // (n, k)
        assert!(close(&matmul(&at, &w.transpose(0, 1).unwrap()).unwrap().to_f32_vec(), &want));

        // bf16 weights: compare with the naive product of the rounded values.
        let wb = Tensor::from_bf16(b.iter().map(|&x| bf16::from_f32(x)).collect(), &[k, n]).unwrap();
        let want_b = naive(&a, &wb.to_f32_vec(), m, k, n);
        assert!(close(&matmul(&at, &wb).unwrap().to_f32_vec(), &want_b));

        // Batched, with b shared and with b per batch.
        let a3 = Tensor::from_vec([a.clone(), a.iter().map(|x| -x).collect()].concat(), &[2, m, k]).unwrap();
        let shared = matmul(&a3, &bt).unwrap().to_f32_vec();
        assert!(close(&shared[..m * n], &want));
        assert!(close(&shared[m * n..], &want.iter().map(|x| -x).collect::<Vec<_>>()));
        let b3 = Tensor::from_vec([b.clone(), b.clone()].concat(), &[2, k, n]).unwrap();
        assert!(close(&matmul(&a3, &b3).unwrap().to_f32_vec(), &shared));

        // A narrowed view (row stride 2k, not k) is read in place.
        let wide: Vec<f32> =
            (0..m * 2 * k).map(|i| if i % (2 * k) < k { a[(i / (2 * k)) * k + i % (2 * k)] } else { 9.0 }).collect();
        let view = Tensor::from_vec(wide, &[m, 2 * k]).unwrap().narrow(1, 0, k).unwrap();
        assert!(!view.is_contiguous());
        assert!(close(&matmul(&view, &bt).unwrap().to_f32_vec(), &want));

        assert!(matmul(&at, &at).is_err());
        assert!(matmul(&Tensor::zeros(&[2]), &bt).is_err());
    }

    #[test]
    fn matmul_into_writes_then_accumulates() {
        let (m, k, n) = (4, 6, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.29).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.13).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let (at, bt) = (Tensor::from_vec(a, &[m, k]).unwrap(), Tensor::from_vec(b, &[k, n]).unwrap());
        let mut c = vec![f32::NAN; m * n];
        matmul_into(&at, &bt, 0.0, &mut c).unwrap();
        assert!(close(&c, &want), "beta = 0 never reads the NaNs");
        matmul_into(&at, &bt, 1.0, &mut c).unwrap();
        assert!(close(&c, &want.iter().map(|x| 2.0 * x).collect::<Vec<_>>()));
        assert!(matmul_into(&at, &bt, 0.0, &mut c[1..]).is_err());
        assert!(matmul_into(&at, &at, 0.0, &mut c).is_err());
    }
}
