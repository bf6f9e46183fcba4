//! # autograd: reverse-mode automatic differentiation
//!
//! Will own (issue 3): the tape that records operations on tensors that
//! require gradients, `backward()` from a scalar loss, no-grad mode, and one
//! file per op with its forward and backward side by side (matmul, norms,
//! activations, fused causal attention with grouped-query heads, fused
//! cross-entropy, ...), each checked against finite differences.
//!
//! Must not: know model architectures or file formats, or call SIMD
//! intrinsics directly (it calls `tensor`, which calls `kernels`).
