//! The precision of matrix products: f32, or bf16 inputs with f32 accumulation.
//!
//! Mixed precision the way PyTorch's CPU autocast does it for matmuls: both
//! operands are rounded to bf16 (nearest, ties to even), every product of
//! two bf16 values is exact in f32, and the sums are f32. Weights, their
//! gradients and the optimizer state stay f32; only what enters a product is
//! rounded.
//!
//! Where the CPU has AVX512_BF16, the packed operands are bf16 pairs and the
//! microkernel's `VDPBF16PS` does two multiply-adds per f32 lane per
//! instruction, twice the FP32 FMA rate (`isa::avx512_bf16`). Elsewhere the
//! packing step rounds to bf16 and widens back, and the f32 microkernel runs:
//! the same rounding of the inputs, at f32 speed.
//!
//! The setting is process-wide, like `torch.set_float32_matmul_precision`:
//! the training loop sets it once and every product of the step, forward and
//! backward, follows. [`super::Gemm::with_precision`] overrides it per plan.

use std::sync::atomic::{AtomicU8, Ordering};

/// What the operands of a product are rounded to before multiplying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// Full f32 products.
    #[default]
    F32,
    /// Operands rounded to bf16; products and sums in f32.
    Bf16,
}

impl Precision {
    /// `"f32"` or `"bf16"`, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses `"f32"` or `"bf16"`.
    pub fn from_name(name: &str) -> Option<Precision> {
        match name.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Some(Precision::F32),
            "bf16" => Some(Precision::Bf16),
            _ => None,
        }
    }
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Sets the precision of every later [`super::Gemm::new`] plan in this process.
pub fn set_matmul_precision(p: Precision) {
    PRECISION.store(p as u8, Ordering::Relaxed);
}

/// The process-wide matmul precision (f32 unless set).
pub fn matmul_precision() -> Precision {
    if PRECISION.load(Ordering::Relaxed) == Precision::Bf16 as u8 {
        Precision::Bf16
    } else {
        Precision::F32
    }
}
