//! `Var`: a tensor in the graph, with its gradient and how it was made.
//!
//! A `Var` is a reference-counted handle holding a value and a [`Node`]. A
//! leaf is a tensor the user made: a parameter (`requires_grad`) or a
//! constant. Every op on `Var`s returns a new handle whose node remembers the
//! parents' nodes and a backward closure holding what the backward needs
//! (the "saved activations"). Nothing else is recorded: the graph is the set
//! of nodes reachable from the loss.
//!
//! The graph links nodes, not values. An intermediate result's value lives
//! as long as the user's handles to it, or a closure that saved it, and no
//! longer: the output of a projection that only feeds an add is freed as
//! soon as the add has run, as in PyTorch, where a graph edge does not keep
//! a tensor alive either.
//!
//! An op records nothing when no input requires a gradient or inside
//! [`no_grad`]: its result is a plain constant and its saved tensors are
//! dropped at once.

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::rc::Rc;
use tensor::{Tensor, TensorError};

/// The backward of one op: given the gradient of its output and which
/// parents need a gradient, the gradient of each parent (`None` where not
/// needed). Called at most once; consuming it frees the saved tensors.
pub(crate) type BackwardFn = Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>, TensorError>>;

pub(crate) struct GradFn {
    pub(crate) op: &'static str,
    pub(crate) parents: Vec<Rc<Node>>,
    pub(crate) backward: BackwardFn,
}

/// What the graph keeps of a variable: everything but its value.
pub(crate) struct Node {
    /// The value's shape, which never changes (see [`Var::set_value`]).
    pub(crate) shape: Vec<usize>,
    pub(crate) requires_grad: bool,
    /// Accumulated gradient of a leaf that requires one (f32, the value's shape).
    pub(crate) grad: RefCell<Option<Vec<f32>>>,
    /// How a non-leaf was made; taken (and so freed) by the backward pass.
    pub(crate) grad_fn: RefCell<Option<GradFn>>,
    /// Set when a backward pass has taken `grad_fn`: the node was made by an
    /// op (not a leaf) but its graph is gone.
    pub(crate) consumed: Cell<bool>,
}

impl Node {
    pub(crate) fn is_leaf(&self) -> bool {
        self.grad_fn.borrow().is_none() && !self.consumed.get()
    }
}

pub(crate) struct Handle {
    value: RefCell<Tensor>,
    pub(crate) node: Rc<Node>,
}

/// A tensor in the autograd graph. Cloning is cheap (a reference count);
/// clones share the value and the gradient.
#[derive(Clone)]
pub struct Var(pub(crate) Rc<Handle>);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    /// Gradient buffers [`Var::zero_grad`] kept for the next step (see [`KEEP_GRAD_BYTES`]).
    static SPARE_GRADS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Gradients of at least this many bytes keep their buffer across
/// [`Var::zero_grad`], for the next step's gradient of the same size.
///
/// That is glibc's largest mmap threshold (`trainer::memory`, which checks
/// that the two agree when it compiles): a larger buffer is a fresh mapping
/// on every allocation, whose pages the kernel faults in and zeroes on
/// first write, and unmaps again when it is freed.
/// The vocabulary-sized gradient of a tied embedding and LM head is such a
/// buffer (113 MB for SmolLM2, 28K page faults per step). Kept, it costs
/// its size between steps; the step's peak holds it anyway.
pub const KEEP_GRAD_BYTES: usize = 32 << 20;

/// At most this many buffers are kept (a tied head has one; an untied one two).
const KEEP_COUNT: usize = 2;

/// A buffer of `len` floats, contents unspecified, kept by an earlier
/// [`Var::zero_grad`] if there is one of that size.
pub(crate) fn spare_buffer(len: usize) -> Option<Vec<f32>> {
    SPARE_GRADS.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|v| v.len() == len)?;
        Some(s.swap_remove(i))
    })
}

/// A gradient buffer of `len` zeros: a kept one, zeroed, or a new one.
pub(crate) fn zeroed_buffer(len: usize) -> Vec<f32> {
    match spare_buffer(len) {
        Some(mut v) => {
            v.fill(0.0);
            v
        }
        None => vec![0.0; len],
    }
}

/// Whether ops on this thread record the graph (false inside [`no_grad`]).
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Runs `f` with recording off: for evaluation and generation, where no
/// backward will follow. Restores the previous mode afterwards, even on panic.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

impl Var {
    fn leaf(value: Tensor, requires_grad: bool) -> Var {
        let node = Node {
            shape: value.shape().to_vec(),
            requires_grad,
            grad: RefCell::new(None),
            grad_fn: RefCell::new(None),
            consumed: Cell::new(false),
        };
        Var(Rc::new(Handle { value: RefCell::new(value), node: Rc::new(node) }))
    }

    /// A trainable leaf: backward fills its gradient.
    pub fn parameter(value: Tensor) -> Var {
        Var::leaf(value, true)
    }

    /// A leaf that gets no gradient: inputs, and frozen weights (which then
    /// cost no weight-gradient product).
    pub fn constant(value: Tensor) -> Var {
        Var::leaf(value, false)
    }

    /// The result of an op: records `backward` if any parent needs a
    /// gradient and recording is on, otherwise returns a constant.
    pub(crate) fn from_op(op: &'static str, value: Tensor, parents: &[&Var], backward: BackwardFn) -> Var {
        crate::profile::forward_done(op);
        let requires_grad = is_grad_enabled() && parents.iter().any(|p| p.requires_grad());
        if !requires_grad {
            return Var::constant(value);
        }
        let var = Var::leaf(value, true);
        let parents = parents.iter().map(|p| p.0.node.clone()).collect();
        *var.0.node.grad_fn.borrow_mut() = Some(GradFn { op, parents, backward });
        var
    }

    /// The value (a cheap clone: tensors share storage).
    pub fn value(&self) -> Tensor {
        self.0.value.borrow().clone()
    }

    /// Borrows the value without cloning it.
    pub fn value_ref(&self) -> Ref<'_, Tensor> {
        self.0.value.borrow()
    }

    /// Replaces the value of a leaf (an optimizer step). The shape must not change.
    pub fn set_value(&self, value: Tensor) -> Result<(), TensorError> {
        if value.shape() != self.shape() {
            return Err(TensorError::shape(
                "set_value",
                format!("new value {:?} for a variable of shape {:?}", value.shape(), self.shape()),
            ));
        }
        *self.0.value.borrow_mut() = value;
        Ok(())
    }

    /// Runs `f` on the value as a mutable f32 slice (an optimizer step).
    /// The first call on a mapped or half-precision weight makes a resident
    /// f32 copy (see `Tensor::f32_mut`); later calls update in place.
    pub fn update_value<R>(&self, f: impl FnOnce(&mut [f32]) -> R) -> R {
        f(self.0.value.borrow_mut().f32_mut())
    }

    pub fn shape(&self) -> Vec<usize> {
        self.0.node.shape.clone()
    }

    /// Whether a gradient flows to (or through) this variable.
    pub fn requires_grad(&self) -> bool {
        self.0.node.requires_grad
    }

    /// Whether this is a leaf (made by the user, not by an op).
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_leaf()
    }

    /// The accumulated gradient of a parameter (`None` before any backward, or for a non-leaf).
    pub fn grad(&self) -> Option<Tensor> {
        let g = self.0.node.grad.borrow();
        g.as_ref().map(|g| Tensor::from_vec(g.clone(), &self.shape()).expect("gradient has the value's size"))
    }

    /// Moves the accumulated gradient out, leaving none.
    pub(crate) fn take_grad(&self) -> Option<Vec<f32>> {
        self.0.node.grad.borrow_mut().take()
    }

    /// Runs `f` on the accumulated gradient without copying it.
    pub fn with_grad<R>(&self, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
        f(self.0.node.grad.borrow().as_deref())
    }

    /// Multiplies the accumulated gradient by `s` (gradient clipping).
    pub fn scale_grad(&self, s: f32) {
        if let Some(g) = self.0.node.grad.borrow_mut().as_mut() {
            g.iter_mut().for_each(|x| *x *= s);
        }
    }

    /// Adds straight into this parameter's accumulated gradient, for an op
    /// whose gradient touches few rows (the embedding's scatter-add): `f`
    /// gets the accumulator, zeros if it is the step's first gradient. Then
    /// no dense gradient of the parameter's size is made, filled with zeros
    /// and added. Returns `Ok(false)` without calling `f` when this is not a
    /// leaf that requires a gradient; the op returns its gradient as usual.
    pub(crate) fn add_to_grad<E>(node: &Node, f: impl FnOnce(&mut [f32]) -> Result<(), E>) -> Result<bool, E> {
        if !(node.requires_grad && node.is_leaf()) {
            return Ok(false);
        }
        let mut slot = node.grad.borrow_mut();
        let numel = node.shape.iter().product();
        f(slot.get_or_insert_with(|| zeroed_buffer(numel)))?;
        Ok(true)
    }

    /// Forgets the accumulated gradient (the next backward starts from zero).
    /// A large gradient's buffer is kept for the next step (see [`KEEP_GRAD_BYTES`]).
    pub fn zero_grad(&self) {
        let Some(g) = self.0.node.grad.borrow_mut().take() else { return };
        if g.len() * std::mem::size_of::<f32>() >= KEEP_GRAD_BYTES {
            SPARE_GRADS.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() == KEEP_COUNT {
                    s.remove(0);
                }
                s.push(g);
            });
        }
    }

    /// The value of a one-element variable (a loss).
    pub fn item(&self) -> Result<f32, TensorError> {
        self.0.value.borrow().item()
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.0.node.grad_fn.borrow().as_ref().map(|g| g.op);
        f.debug_struct("Var")
            .field("shape", &self.shape())
            .field("requires_grad", &self.requires_grad())
            .field("op", &op)
            .finish()
    }
}
