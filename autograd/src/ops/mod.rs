//! The differentiable ops, one per file. Each file holds the forward (a
//! function on [`Var`]s) and, right below it in the same function, the
//! backward closure, with the derivative written in the doc comment.
//!
//! A backward closure receives the gradient of the op's output `g` and a
//! flag per input saying whether that input needs a gradient; it returns
//! `None` for inputs that do not. That flag is what makes a frozen weight
//! free: `linear` and `matmul` skip the weight-gradient product entirely.

pub mod add;
pub mod attention;
pub mod checkpoint;
pub mod concat;
pub mod cross_entropy;
pub mod div;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub mod layer_norm;
pub mod linear;
pub mod linear_cross_entropy;
pub mod lora_linear;
pub mod matmul;
pub mod mean;
pub mod mul;
pub mod narrow;
pub mod reshape;
pub mod rms_norm;
pub mod rope;
pub mod scale;
pub mod silu;
pub mod softmax;
pub mod sub;
pub mod sum;
pub mod swiglu;
pub mod swiglu_linear;
pub mod transpose;

use tensor::{Tensor, TensorError};

/// Runs `f` only for an input that needs its gradient.
pub(crate) fn grad_for(
    needs: &[bool],
    i: usize,
    f: impl FnOnce() -> Result<Tensor, TensorError>,
) -> Result<Option<Tensor>, TensorError> {
    if needs.get(i).copied().unwrap_or(false) {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// A tensor an op kept only for an input that needs a gradient. The engine
/// asks for that gradient only then, so `None` here is a broken invariant,
/// reported as an error rather than a panic.
pub(crate) fn saved<'a>(t: &'a Option<Tensor>, op: &'static str) -> Result<&'a Tensor, TensorError> {
    t.as_ref().ok_or_else(|| TensorError::shape(op, "a gradient was asked for an input that was not saved for one"))
}

/// An f32 tensor of `shape` filled with `value`.
pub(crate) fn full(shape: &[usize], value: f32) -> Result<Tensor, TensorError> {
    Tensor::from_vec(vec![value; shape.iter().product()], shape)
}
