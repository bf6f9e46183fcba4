//! # autograd: reverse-mode automatic differentiation
//!
//! Owns:
//! - [`Var`]: a tensor in the graph (a parameter, a constant, or an op's
//!   result) and its accumulated gradient; [`no_grad`] for evaluation.
//! - the backward pass ([`Var::backward`]): reverse topological order,
//!   saved activations freed as soon as their backward has run, gradients
//!   accumulated into parameters until [`Var::zero_grad`].
//! - [`ops`]: one file per differentiable op, forward and backward side by
//!   side, the derivative in the doc comment.
//! - [`gradcheck`]: the finite-difference checker every op is tested with.
//! - [`profile`]: per-op forward/backward times for `hone bench --profile`.
//!
//! Must not: know model architectures or file formats, or contain SIMD
//! intrinsics (the math is in `tensor` and `kernels`).

mod backward;
pub mod gradcheck;
pub mod ops;
pub mod profile;
mod var;

pub use ops::add::add;
pub use ops::attention::{causal_attention, causal_attention_qkv};
pub use ops::checkpoint::checkpoint;
pub use ops::concat::concat;
pub use ops::cross_entropy::{cross_entropy, IGNORE_INDEX};
pub use ops::div::div;
pub use ops::dropout::{dropout, dropout_mask};
pub use ops::embedding::embedding;
pub use ops::gelu::gelu;
pub use ops::layer_norm::layer_norm;
pub use ops::linear::linear;
pub use ops::linear_cross_entropy::{linear_cross_entropy, linear_cross_entropy_blocked, linear_cross_entropy_online};
pub use ops::lora_linear::{lora_linear, LoraLinear};
pub use ops::matmul::matmul;
pub use ops::mean::mean;
pub use ops::mul::mul;
pub use ops::narrow::narrow;
pub use ops::reshape::reshape;
pub use ops::rms_norm::rms_norm;
pub use ops::rope::rope;
pub use ops::scale::scale;
pub use ops::silu::silu;
pub use ops::softmax::softmax;
pub use ops::sub::sub;
pub use ops::sum::sum;
pub use ops::swiglu::swiglu;
pub use ops::swiglu_linear::swiglu_linear;
pub use ops::transpose::{permute, transpose};
pub use var::{is_grad_enabled, no_grad, Var, KEEP_GRAD_BYTES};
