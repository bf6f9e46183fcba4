//! The backward pass: from a scalar loss to the gradient of every parameter.
//!
//! 1. Order: a depth-first walk from the loss lists every recorded node
//!    after all of its inputs (post-order); walking that list backwards
//!    visits each node after every node that used it.
//! 2. Propagate: each node's gradient is complete when it is visited. Its
//!    backward closure is taken out of the node and called once, which drops
//!    the saved activations right after their last use. The parents'
//!    gradients are added to a pending map (for intermediate nodes) or to
//!    `.grad` (for parameters, where they accumulate across calls until
//!    [`Var::zero_grad`]).
//!
//! The walk holds nodes, never values: a node keeps only its closure (and
//! the tensors the closure saved), freed as soon as its own backward has run.

use crate::var::{Node, Var};
use kernels::nn::elementwise::{axpy, BinaryOp};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use tensor::ops::elementwise::binary;
use tensor::{Tensor, TensorError};

impl Var {
    /// Backward from a one-element loss (seeded with 1).
    pub fn backward(&self) -> Result<(), TensorError> {
        let shape = self.shape();
        if shape.iter().product::<usize>() != 1 {
            return Err(TensorError::shape("backward", format!("the loss must be a scalar, got shape {shape:?}")));
        }
        self.backward_with(Tensor::from_vec(vec![1.0], &shape)?)
    }

    /// Backward with an explicit gradient of this variable (its shape).
    pub fn backward_with(&self, seed: Tensor) -> Result<(), TensorError> {
        if seed.shape() != self.shape() {
            return Err(TensorError::shape("backward", format!("seed {:?} for {:?}", seed.shape(), self.shape())));
        }
        let root = &self.0.node;
        if root.consumed.get() {
            return Err(consumed());
        }
        if !root.requires_grad {
            return Err(TensorError::shape("backward", "nothing in this expression requires a gradient"));
        }
        if root.is_leaf() {
            return accumulate_leaf(root, seed);
        }
        let order = topological_order(root);
        let mut pending: HashMap<*const Node, (Rc<Node>, Tensor)> = HashMap::new();
        pending.insert(Rc::as_ptr(root), (root.clone(), seed));
        for key in order.iter().rev() {
            // Nodes no gradient reached (every path to them was cut) are skipped.
            let Some((node, grad)) = pending.remove(key) else { continue };
            let Some(gf) = node.grad_fn.borrow_mut().take() else { return Err(consumed()) };
            node.consumed.set(true);
            let needs: Vec<bool> = gf.parents.iter().map(|p| p.requires_grad).collect();
            let timer = crate::profile::backward_timer();
            let grads = (gf.backward)(&grad, &needs)?;
            crate::profile::backward_done(gf.op, timer);
            for (parent, g) in gf.parents.iter().zip(grads) {
                let Some(g) = g else { continue };
                if g.shape() != parent.shape.as_slice() {
                    return Err(TensorError::shape(
                        gf.op,
                        format!("backward produced a gradient of {:?} for an input of {:?}", g.shape(), parent.shape),
                    ));
                }
                if parent.is_leaf() {
                    if parent.requires_grad {
                        accumulate_leaf(parent, g)?;
                    }
                } else {
                    let key = Rc::as_ptr(parent);
                    match pending.remove(&key) {
                        Some((p, old)) => pending.insert(key, (p, binary(BinaryOp::Add, &old, &g)?)),
                        None => pending.insert(key, (parent.clone(), g)),
                    };
                }
            }
        }
        Ok(())
    }
}

fn consumed() -> TensorError {
    TensorError::shape("backward", "this graph was already consumed by an earlier backward; run the forward again")
}

/// Every recorded (non-leaf) node reachable from `root`, each after its inputs.
fn topological_order(root: &Rc<Node>) -> Vec<*const Node> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(root.clone(), false)];
    while let Some((node, inputs_done)) = stack.pop() {
        if inputs_done {
            order.push(Rc::as_ptr(&node));
            continue;
        }
        if !seen.insert(Rc::as_ptr(&node)) {
            continue;
        }
        stack.push((node.clone(), true));
        if let Some(gf) = node.grad_fn.borrow().as_ref() {
            for p in &gf.parents {
                if p.requires_grad && !p.is_leaf() && !seen.contains(&Rc::as_ptr(p)) {
                    stack.push((p.clone(), false));
                }
            }
        }
    }
    order
}

/// Adds `g` to a parameter's gradient. The first gradient of a step is
/// moved in, not copied, when nothing else holds its buffer.
fn accumulate_leaf(leaf: &Node, g: Tensor) -> Result<(), TensorError> {
    let mut slot = leaf.grad.borrow_mut();
    match slot.as_mut() {
        Some(acc) => axpy(1.0, &g.f32_data(), acc)?,
        None => *slot = Some(g.into_f32_vec()),
    }
    Ok(())
}
