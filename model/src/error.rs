//! The one error type of the `model` crate: every variant names the file,
//! and the field or tensor where there is one.

use std::path::PathBuf;
use tensor::TensorError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    /// `config.json` (or another JSON file) is not what hone needs.
    #[error("{}: field {field:?}: {detail}", file.display())]
    Config { file: PathBuf, field: String, detail: String },

    /// `model_type` names an architecture hone does not implement.
    #[error("{}: model_type {model_type:?} is not supported (hone runs gpt2, llama and qwen2)", file.display())]
    Unsupported { file: PathBuf, model_type: String },

    /// A weight the architecture needs is missing or has the wrong shape.
    #[error("{}: tensor {tensor:?}: {detail}", dir.display())]
    Weight { dir: PathBuf, tensor: String, detail: String },

    #[error("{}: {detail}", file.display())]
    Tokenizer { file: PathBuf, detail: String },

    #[error("chat template: {0}")]
    Template(String),

    #[error(transparent)]
    Tensor(#[from] TensorError),
}

impl ModelError {
    pub(crate) fn config(file: &std::path::Path, field: &str, detail: impl Into<String>) -> Self {
        ModelError::Config { file: file.to_path_buf(), field: field.to_string(), detail: detail.into() }
    }
}
