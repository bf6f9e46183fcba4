//! The one error type of the `kernels` crate.

use std::fmt;

/// What can go wrong when calling a kernel. Every variant carries the sizes
/// involved, so the message alone tells what the caller passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// A matrix view reaches past the end of its slice, or its size overflows `usize`.
    OutOfBounds {
        /// Which operand ("A", "B", "C", or a caller's name).
        what: &'static str,
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
        /// Length of the slice the view was made over.
        len: usize,
    },
    /// A row-major view whose leading dimension is smaller than its width.
    LeadingDimTooSmall { what: &'static str, cols: usize, ld: usize },
    /// `op(A)` is `m × k`, `op(B)` is `k2 × n`, C is `cm × cn`, and they do not chain.
    ShapeMismatch { a: (usize, usize), b: (usize, usize), c: (usize, usize) },
    /// `HONE_KERNEL` names no kernel hone has.
    UnknownKernel { requested: String },
    /// The kernel asked for exists but this CPU cannot run it.
    UnsupportedKernel { isa: &'static str },
    /// Cache-blocking sizes that the driver cannot use.
    BadBlocking { reason: String },
    /// Arguments of a row kernel (norm, softmax, attention, ...) that do not fit together.
    BadArgument { op: &'static str, detail: String },
}

impl KernelError {
    pub(crate) fn bad(op: &'static str, detail: impl Into<String>) -> Self {
        KernelError::BadArgument { op, detail: detail.into() }
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::OutOfBounds { what, rows, cols, row_stride, col_stride, len } => write!(
                f,
                "matrix {what}: a {rows}x{cols} view with strides ({row_stride}, {col_stride}) \
                 does not fit in a slice of {len} elements"
            ),
            KernelError::LeadingDimTooSmall { what, cols, ld } => {
                write!(f, "matrix {what}: leading dimension {ld} is smaller than its {cols} columns")
            }
            KernelError::ShapeMismatch { a, b, c } => write!(
                f,
                "gemm shapes do not chain: op(A) is {}x{}, op(B) is {}x{}, C is {}x{}",
                a.0, a.1, b.0, b.1, c.0, c.1
            ),
            KernelError::UnknownKernel { requested } => {
                write!(f, "HONE_KERNEL={requested:?} is not a kernel; choose one of scalar, avx2, avx512, neon")
            }
            KernelError::UnsupportedKernel { isa } => write!(
                f,
                "the {isa} kernel was requested but this CPU does not support it \
                 (supported here: {})",
                crate::Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            ),
            KernelError::BadBlocking { reason } => write!(f, "bad gemm blocking: {reason}"),
            KernelError::BadArgument { op, detail } => write!(f, "{op}: {detail}"),
        }
    }
}

impl std::error::Error for KernelError {}
