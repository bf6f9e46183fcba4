//! Forward math on tensors. Each function checks shapes, takes the elements
//! as f32 (borrowed when already contiguous f32, widened otherwise), calls a
//! kernel from `kernels::nn` and returns a new contiguous f32 tensor.
//! The backward rules live in `autograd`, which calls the same kernels.
//!
//! - [`elementwise`]: broadcasting `+ − × ÷`, scaling, reduction to a shape, sums, activations.
//! - [`rows`]: softmax, LayerNorm, RMSNorm and rotary embedding over the last axis.
//! - [`gather`]: embedding lookup and concatenation.

pub mod elementwise;
pub mod gather;
pub mod rows;
