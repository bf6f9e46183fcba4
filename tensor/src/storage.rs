//! Where a tensor's elements live: an owned vector, or a window of a
//! read-only memory map (frozen weights, never copied).

use crate::DType;
use half::{bf16, f16};
use memmap2::Mmap;
use std::sync::Arc;

/// The elements behind one or more tensors (shared through `Arc`).
#[derive(Debug)]
pub enum Storage {
    F32(Vec<f32>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    /// `len` bytes at byte `start` of a read-only map, holding `dtype`
    /// elements. `start` is aligned for `dtype` (checked when made).
    Mapped {
        map: Arc<Mmap>,
        start: usize,
        len: usize,
        dtype: DType,
    },
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::BF16(_) => DType::BF16,
            Storage::F16(_) => DType::F16,
            Storage::Mapped { dtype, .. } => *dtype,
        }
    }

    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::BF16(v) => v.len(),
            Storage::F16(v) => v.len(),
            Storage::Mapped { len, dtype, .. } => len / dtype.size(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the elements are in a memory map rather than on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Mapped { .. })
    }

    fn mapped_bytes(&self) -> Option<&[u8]> {
        match self {
            Storage::Mapped { map, start, len, .. } => Some(&map[*start..*start + *len]),
            _ => None,
        }
    }

    /// The elements as f32, if that is the dtype.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Storage::F32(v) => Some(v),
            Storage::Mapped { dtype: DType::F32, .. } => bytemuck::try_cast_slice(self.mapped_bytes()?).ok(),
            _ => None,
        }
    }

    /// The elements as bf16, if that is the dtype.
    pub fn as_bf16(&self) -> Option<&[bf16]> {
        match self {
            Storage::BF16(v) => Some(v),
            Storage::Mapped { dtype: DType::BF16, .. } => bytemuck::try_cast_slice(self.mapped_bytes()?).ok(),
            _ => None,
        }
    }

    /// The elements as f16, if that is the dtype.
    pub fn as_f16(&self) -> Option<&[f16]> {
        match self {
            Storage::F16(v) => Some(v),
            Storage::Mapped { dtype: DType::F16, .. } => bytemuck::try_cast_slice(self.mapped_bytes()?).ok(),
            _ => None,
        }
    }

    /// The raw little-endian bytes (what a safetensors file stores).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Storage::F32(v) => bytemuck::cast_slice(v),
            Storage::BF16(v) => bytemuck::cast_slice(v),
            Storage::F16(v) => bytemuck::cast_slice(v),
            Storage::Mapped { map, start, len, .. } => &map[*start..*start + *len],
        }
    }
}
