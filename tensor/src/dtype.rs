//! Element types a tensor can hold.

use crate::TensorError;

/// The dtype of a tensor's elements. Weights come as any of the three;
/// computation happens in f32 (bf16/f16 are widened in the GEMM packing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    BF16,
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::BF16 | DType::F16 => 2,
        }
    }

    /// The name safetensors headers use ("F32", "BF16", "F16").
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::BF16 => "BF16",
            DType::F16 => "F16",
        }
    }

    /// Parses a safetensors dtype name; `what` names the file and tensor for the error.
    pub fn from_safetensors_name(name: &str, what: impl FnOnce() -> (String, String)) -> Result<DType, TensorError> {
        match name {
            "F32" => Ok(DType::F32),
            "BF16" => Ok(DType::BF16),
            "F16" => Ok(DType::F16),
            other => {
                let (file, tensor) = what();
                Err(TensorError::UnsupportedDtype { file, tensor, dtype: other.to_string() })
            }
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.safetensors_name())
    }
}
