//! # kernels: hone's raw-slice math
//!
//! Owns the arithmetic that dominates a training step, written for speed and
//! for reading:
//! - [`gemm`]: SGEMM (`C <- alpha * op(A) * op(B) + beta * C`), BLIS-style:
//!   packing into cache-sized blocks, register-blocked microkernels for
//!   AVX-512, AVX2+FMA, NEON and a scalar fallback, threads over blocks of C.
//!   A and B may be f32, bf16 or f16 (widened while packing).
//! - [`isa`]: which instruction set to use, chosen once at run time
//!   (`HONE_KERNEL=scalar|avx2|avx512|neon` forces one).
//! - [`nn`]: the row kernels of a transformer, forward and backward:
//!   softmax, LayerNorm/RMSNorm, GELU/SiLU/SwiGLU, rotary embedding,
//!   embedding gather, fused cross-entropy and fused causal attention.
//! - [`convert`]: bf16/f16 <-> f32.
//! - [`peak`]: a measured FMA-throughput probe, the "100%" of every benchmark.
//! - [`quant`]: dequantisation of llama.cpp's GGUF block formats.
//!
//! Must not: know about tensors (a kernel takes slices and the few sizes its
//! layout needs: a matrix view, a row width, an attention shape), autograd or
//! models (it depends on nothing in the workspace); or expose `unsafe`.
//! All SIMD intrinsics of the project live here, behind safe functions.

pub mod convert;
mod error;
pub mod gemm;
pub mod isa;
pub mod nn;
pub mod peak;
pub mod quant;

pub use convert::Element;
pub use error::KernelError;
pub use isa::Isa;
pub use peak::{peak_bf16_gflops, peak_gflops, peak_gflops_per_core, pool_peak_bf16_gflops, pool_peak_gflops};
