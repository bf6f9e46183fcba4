//! Activation recomputation (gradient checkpointing): `y = f(x)` without
//! keeping what `f`'s backward needs; the backward runs `f` again.
//!
//! For a function of `x` and of parameters `θ` (whatever Vars `f` closes
//! over), the chain rule is unchanged, only where the activations come from:
//! ```text
//! forward:  y = f(x, θ)                 the graph of f is dropped; x is kept
//! backward: y' = f(x', θ)               x' a fresh leaf holding x's value
//!           backward of y' seeded with ∂L/∂y
//!             -> ∂L/∂θ accumulated into θ's gradients directly (leaves)
//!             -> ∂L/∂x = the gradient x' received
//! ```
//! Memory: one `f`'s activations at a time, plus each checkpoint's input,
//! instead of every `f`'s activations for the whole backward. Time: `f`'s
//! forward twice.
//!
//! `f` must compute the same values both times: the same dropout masks
//! (the model's are seeded, not drawn from a running generator) and no
//! state it updates. The forward records `f` as usual and then drops its
//! graph, rather than running it under [`crate::no_grad`], so that anything
//! `f` does only when recording (dropout) happens in both runs alike.
//!
//! The values are the same bits as without recomputation; a parameter's
//! gradient is the same sum of the same terms, except where a parameter is
//! used inside and outside `f` (a tied embedding): then its terms are added
//! in another order, which agrees to rounding.

use crate::{is_grad_enabled, Var};
use tensor::{Tensor, TensorError};

/// `f(x)` recomputed in the backward. `params` are the Vars `f` uses that
/// may need a gradient (so that the op is recorded even when `x` needs
/// none, as when only a block's adapters train). Besides `x`, `f` may use
/// leaves (parameters, constants) and tensors, not results of other ops:
/// the backward inside would consume their graph.
pub fn checkpoint<F>(x: &Var, params: &[Var], f: F) -> Result<Var, TensorError>
where
    F: Fn(&Var) -> Result<Var, TensorError> + 'static,
{
    let needs_any = x.requires_grad() || params.iter().any(|p| p.requires_grad());
    if !is_grad_enabled() || !needs_any {
        return f(x);
    }
    let x_value = x.value();
    // Run f on a detached copy of x, keep the value, drop the graph.
    let value = f(&Var::constant(x_value.clone()))?.value();
    let mut parents: Vec<&Var> = vec![x];
    parents.extend(params.iter());
    let count = parents.len();
    Ok(Var::from_op(
        "checkpoint",
        value,
        &parents,
        Box::new(move |g, needs| {
            // The recomputed forward's ops time themselves from here.
            crate::profile::mark();
            let x_again = if needs[0] { Var::parameter(x_value) } else { Var::constant(x_value) };
            let y = f(&x_again)?;
            if y.requires_grad() {
                y.backward_with(g.clone())?;
            }
            let mut grads: Vec<Option<Tensor>> = vec![None; count];
            if needs[0] {
                grads[0] = match x_again.take_grad() {
                    Some(v) => Some(Tensor::from_vec(v, &x_again.shape())?),
                    None => Some(Tensor::zeros(&x_again.shape())),
                };
            }
            Ok(grads)
        }),
    ))
}
