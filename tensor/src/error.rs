//! The one error type of the `tensor` crate. Every variant that comes from a
//! file names the file, and the tensor where there is one.

use std::path::PathBuf;

/// What can go wrong with tensors and the files they come from.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Opening, mapping, reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// The file is shorter than the 8-byte header length, or than the header it announces.
    #[error("{file}: truncated: {detail}")]
    Truncated { file: String, detail: String },

    /// The safetensors header is not valid UTF-8 JSON of the expected form.
    #[error("{file}: bad safetensors header: {detail}")]
    BadHeader { file: String, detail: String },

    /// A tensor's `data_offsets` point outside the data section, run backwards,
    /// or overlap another tensor.
    #[error("{file}: tensor {tensor:?}: {detail}")]
    BadOffsets { file: String, tensor: String, detail: String },

    /// A tensor's shape and dtype need a different number of bytes than its offsets span.
    #[error("{file}: tensor {tensor:?}: shape {shape:?} of {dtype} needs {expected} bytes, but its data_offsets span {actual}")]
    SizeMismatch { file: String, tensor: String, shape: Vec<usize>, dtype: String, expected: usize, actual: usize },

    /// A dtype hone cannot compute with (hone reads F32, BF16, F16).
    #[error("{file}: tensor {tensor:?}: dtype {dtype} is not supported (hone reads F32, BF16 and F16)")]
    UnsupportedDtype { file: String, tensor: String, dtype: String },

    /// A tensor asked for by name is not in the file (or in any shard).
    #[error("{file}: no tensor named {tensor:?}")]
    MissingTensor { file: String, tensor: String },

    /// A sharded index is malformed or names a shard that does not exist.
    #[error("{file}: {detail}")]
    BadIndex { file: String, detail: String },

    /// A shape operation that does not fit the tensor (reshape to another size, bad axis, ...).
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },

    /// A kernel refused its arguments (the message names the op and the sizes).
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),

    /// The tensor holds another dtype than the one asked for.
    #[error("expected a {expected} tensor, found {found}")]
    DtypeMismatch { expected: String, found: String },
}

impl TensorError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TensorError::Io { path: path.into(), source }
    }

    /// A [`TensorError::Shape`] for `op`.
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        TensorError::Shape { op, detail: detail.into() }
    }
}
