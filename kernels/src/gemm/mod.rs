//! SGEMM: `C <- alpha * op(A) * op(B) + beta * C`, built the BLIS way.
//!
//! - [`matrix`]: the operand views; `op(X) = Xᵀ` is [`MatRef::t`], a stride swap.
//! - [`plan`]: the microkernel choice, cache blocking and threading.
//! - `driver`: the five loops around the microkernel and the split across threads.
//! - `pack`: copies blocks of A and B into the microkernel's layout (widening bf16/f16);
//!   `pack_bf16` rounds them to bf16 for [`precision`] `Bf16`, as pairs for `VDPBF16PS`.
//! - [`precision`]: f32 products, or bf16 operands with f32 accumulation.
//! - `transposed`: products of few rows and many columns, run as `Cᵀ = Bᵀ·Aᵀ`.
//! - [`microkernel`]: the register-blocked inner kernel, written once over
//!   [`crate::isa`]'s `Simd` trait and instantiated per instruction set.
//! - [`naive`]: the triple loop every fast path is tested against.
//!
//! ```
//! use kernels::gemm::{sgemm, MatMut, MatRef};
//! // y = x · Wᵀ, with W stored (out × in) as PyTorch's Linear stores it.
//! let x = [1.0f32, 2.0, 3.0]; // (1, 3)
//! let w = [1.0f32, 0.0, 0.0, /**/ 0.0, 1.0, 1.0]; // (2, 3)
//! let mut y = [0.0f32; 2];
//! sgemm(1.0, MatRef::new(&x, 1, 3, 3)?, MatRef::new(&w, 2, 3, 3)?.t(), 0.0,
//!       MatMut::new(&mut y, 1, 2, 2)?)?;
//! assert_eq!(y, [1.0, 5.0]);
//! # Ok::<(), kernels::KernelError>(())
//! ```

mod buffers;
pub mod catalog;
mod driver;
pub mod matrix;
pub mod microkernel;
pub mod naive;
pub(crate) mod pack;
mod pack_bf16;
pub mod plan;
pub mod precision;
mod split;
pub mod stats;
mod transposed;

pub use matrix::{MatMut, MatRef};
pub use plan::{Blocking, Gemm, Microkernel, Packing};
pub use precision::{matmul_precision, set_matmul_precision, Precision};
pub use stats::{gemm_calls, gemm_stats};

use crate::{Element, KernelError};

/// `C <- alpha * A * B + beta * C` with the selected kernel on rayon's pool.
/// See [`Gemm::run`].
pub fn sgemm<A: Element, B: Element>(
    alpha: f32,
    a: MatRef<'_, A>,
    b: MatRef<'_, B>,
    beta: f32,
    c: MatMut<'_>,
) -> Result<(), KernelError> {
    Gemm::new()?.run(alpha, a, b, beta, c)
}

/// `(m, k, n)` if `a` (m × k), `b` (k × n) and `c` (m × n) chain, else the
/// error naming all three; an error too if `beta` would read an uninitialised C.
pub(crate) fn check_shapes<A, B>(
    a: &MatRef<'_, A>,
    b: &MatRef<'_, B>,
    beta: f32,
    c: &MatMut<'_>,
) -> Result<(usize, usize, usize), KernelError>
where
    A: Element,
    B: Element,
{
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if !c.is_init() && beta != 0.0 {
        return Err(KernelError::bad(
            "gemm",
            format!("beta = {beta} reads C, which is uninitialised (MatMut::uninit)"),
        ));
    }
    if b.rows() != k || c.rows() != m || c.cols() != n {
        return Err(KernelError::ShapeMismatch {
            a: (a.rows(), a.cols()),
            b: (b.rows(), b.cols()),
            c: (c.rows(), c.cols()),
        });
    }
    Ok((m, k, n))
}
