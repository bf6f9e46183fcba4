//! # tensor: the `Tensor` type and safetensors I/O
//!
//! Owns:
//! - [`Tensor`]: shape, strides and dtype (f32, bf16, f16) over [`Storage`]
//!   that is either owned or a window of a read-only memory map, shared
//!   through `Arc`; views without copies (reshape, transpose, permute,
//!   narrow) and `contiguous()`, which copies only when needed.
//! - [`safetensors`]: reading `.safetensors` files and sharded
//!   `model.safetensors.index.json` models through memmap2 (tensors come back
//!   as zero-copy views, read only when used), with errors that name the file
//!   and the tensor; atomic writing (temporary file, fsync, rename).
//!
//! - [`matmul`]: 2-D and batched products through `kernels`' SGEMM, reading
//!   transposed views and bf16/f16 weights in place, in the process-wide
//!   matmul precision ([`matmul_f32`]: always f32).
//!
//! - [`ops`]: the other forward math (broadcasting arithmetic, reductions,
//!   activations, softmax, norms, rotary embedding, gather, concat) through
//!   `kernels::nn`.
//!
//! Must not: record gradients (that is `autograd`), know model architectures,
//! or contain SIMD intrinsics (those live in `kernels`).

mod dtype;
mod error;
pub mod gguf;
mod matmul;
pub mod ops;
pub mod safetensors;
mod storage;
mod tensor;

pub use dtype::DType;
pub use error::TensorError;
pub use matmul::{matmul, matmul_f32, matmul_into, matmul_plus};
pub use storage::Storage;
pub use tensor::{contiguous_strides, numel, Tensor};
