//! # tensor: the `Tensor` type and safetensors I/O
//!
//! Will own (issue 3): `Tensor` (shape, strides, dtype f32/bf16/f16, storage
//! owned or a view into a read-only memory map, shared through `Arc`), views
//! without copies (reshape, transpose, narrow), forward math that calls into
//! `kernels`, and safetensors reading (single file and sharded index, zero
//! copy through memmap2) and atomic writing.
//!
//! Must not: record gradients (that is `autograd`), know model architectures,
//! or contain SIMD intrinsics (those live in `kernels`).
