//! `Tensor`: a shape and strides over shared storage.
//!
//! Views (reshape of a contiguous tensor, transpose, permute, narrow) share
//! the storage and cost no copy; [`Tensor::contiguous`] copies only when the
//! layout is not already row-major. Strides and offsets count elements.

use crate::{DType, Storage, TensorError};
use half::{bf16, f16};
use std::sync::Arc;

/// An n-dimensional array of f32, bf16 or f16 elements.
#[derive(Clone, Debug)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Number of elements of `shape`, or `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

impl Tensor {
    /// A contiguous tensor over `storage`, which must hold exactly `shape`'s elements.
    pub fn from_storage(storage: Storage, shape: &[usize]) -> Result<Tensor, TensorError> {
        let n = numel(shape).ok_or_else(|| TensorError::shape("from_storage", format!("{shape:?} overflows")))?;
        if n != storage.len() {
            return Err(TensorError::shape(
                "from_storage",
                format!("shape {shape:?} has {n} elements but the data has {}", storage.len()),
            ));
        }
        Ok(Tensor { storage: Arc::new(storage), shape: shape.to_vec(), strides: contiguous_strides(shape), offset: 0 })
    }

    /// An f32 tensor owning `data`.
    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor, TensorError> {
        Tensor::from_storage(Storage::F32(data), shape)
    }

    /// A bf16 tensor owning `data`.
    pub fn from_bf16(data: Vec<bf16>, shape: &[usize]) -> Result<Tensor, TensorError> {
        Tensor::from_storage(Storage::BF16(data), shape)
    }

    /// An f16 tensor owning `data`.
    pub fn from_f16(data: Vec<f16>, shape: &[usize]) -> Result<Tensor, TensorError> {
        Tensor::from_storage(Storage::F16(data), shape)
    }

    /// An f32 tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Tensor {
        let n = numel(shape).expect("zeros: shape overflows usize");
        Tensor {
            storage: Arc::new(Storage::F32(vec![0.0; n])),
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    /// Offset of element `[0, 0, ...]` in the storage, in elements.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// Whether the elements live in a memory map (a frozen weight, not copied).
    pub fn is_mapped(&self) -> bool {
        self.storage.is_mapped()
    }

    /// Whether the elements are row-major with no gaps (size-1 axes ignored).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    fn with_layout(&self, shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Tensor {
        Tensor { storage: Arc::clone(&self.storage), shape, strides, offset }
    }

    /// The same elements with another shape of the same size. A view when
    /// the tensor is contiguous, otherwise a contiguous copy first.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor, TensorError> {
        if numel(shape) != Some(self.numel()) {
            return Err(TensorError::shape(
                "reshape",
                format!("{:?} ({} elements) to {shape:?}", self.shape, self.numel()),
            ));
        }
        let base = if self.is_contiguous() { self.clone() } else { self.contiguous() };
        Ok(base.with_layout(shape.to_vec(), contiguous_strides(shape), base.offset))
    }

    /// Swaps axes `a` and `b` (a view).
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor, TensorError> {
        let mut order: Vec<usize> = (0..self.rank()).collect();
        if a >= self.rank() || b >= self.rank() {
            return Err(TensorError::shape("transpose", format!("axes {a}, {b} of a rank-{} tensor", self.rank())));
        }
        order.swap(a, b);
        self.permute(&order)
    }

    /// Reorders the axes: axis `i` of the result is axis `order[i]` of `self` (a view).
    pub fn permute(&self, order: &[usize]) -> Result<Tensor, TensorError> {
        let mut seen = vec![false; self.rank()];
        let valid = order.len() == self.rank()
            && order.iter().all(|&i| i < seen.len() && !std::mem::replace(&mut seen[i], true));
        if !valid {
            return Err(TensorError::shape(
                "permute",
                format!("{order:?} is not a permutation of {} axes", self.rank()),
            ));
        }
        let shape = order.iter().map(|&i| self.shape[i]).collect();
        let strides = order.iter().map(|&i| self.strides[i]).collect();
        Ok(self.with_layout(shape, strides, self.offset))
    }

    /// Elements `start..start + len` along axis `dim` (a view).
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Tensor, TensorError> {
        match self.shape.get(dim) {
            Some(&d) if start.checked_add(len).is_some_and(|end| end <= d) => {
                let mut shape = self.shape.clone();
                shape[dim] = len;
                Ok(self.with_layout(shape, self.strides.clone(), self.offset + start * self.strides[dim]))
            }
            _ => Err(TensorError::shape("narrow", format!("{start}..{start}+{len} of axis {dim} of {:?}", self.shape))),
        }
    }

    /// A view of `self` broadcast to `shape` (NumPy rules: leading axes are
    /// added, size-1 axes repeat with stride 0). No copy.
    pub fn expand(&self, shape: &[usize]) -> Result<Tensor, TensorError> {
        let bad = || TensorError::shape("expand", format!("{:?} cannot broadcast to {shape:?}", self.shape));
        if shape.len() < self.rank() {
            return Err(bad());
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for (i, (&d, &s)) in self.shape.iter().zip(&self.strides).enumerate() {
            strides[lead + i] = match (d, shape[lead + i]) {
                (d, t) if d == t => s,
                (1, _) => 0,
                _ => return Err(bad()),
            };
        }
        Ok(self.with_layout(shape.to_vec(), strides, self.offset))
    }

    /// The elements as f32 in row-major order: borrowed when the tensor is a
    /// contiguous f32 tensor, otherwise widened or gathered into a copy.
    pub fn f32_data(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.as_f32_slice() {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => std::borrow::Cow::Owned(self.to_f32_vec()),
        }
    }

    /// The elements as a mutable f32 slice, for in-place updates (an
    /// optimizer step). A tensor that is not already a contiguous, unshared,
    /// owned f32 tensor is first replaced by one (a mapped bf16 weight becomes
    /// a resident f32 master copy); after that, updates cost no copy.
    pub fn f32_mut(&mut self) -> &mut [f32] {
        let n = self.numel();
        let owned = matches!(*self.storage, Storage::F32(ref v) if v.len() == n)
            && self.offset == 0
            && self.is_contiguous()
            && Arc::strong_count(&self.storage) == 1;
        if !owned {
            *self = Tensor::from_vec(self.to_f32_vec(), &self.shape.clone()).expect("same element count");
        }
        match Arc::get_mut(&mut self.storage) {
            Some(Storage::F32(v)) => v.as_mut_slice(),
            _ => unreachable!("just made an unshared owned f32 tensor"),
        }
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32, TensorError> {
        if self.numel() != 1 {
            return Err(TensorError::shape("item", format!("a tensor of shape {:?} is not a scalar", self.shape)));
        }
        Ok(self.to_f32_vec()[0])
    }

    /// Storage indices of every element, in row-major order of the view.
    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.numel();
        let mut index = vec![0usize; self.rank()];
        let mut pos = self.offset;
        (0..n).map(move |_| {
            let here = pos;
            // Odometer increment, last axis fastest.
            for ax in (0..index.len()).rev() {
                index[ax] += 1;
                pos += self.strides[ax];
                if index[ax] < self.shape[ax] {
                    break;
                }
                pos -= self.strides[ax] * self.shape[ax];
                index[ax] = 0;
            }
            here
        })
    }

    /// The elements of `self` in row-major order, read from its storage
    /// `src`. When the last axis is contiguous (a narrowed, permuted or
    /// sliced view whose rows are runs), whole runs are copied; otherwise
    /// element by element.
    fn gather<T: Copy>(&self, src: &[T]) -> Vec<T> {
        let rank = self.rank();
        if rank == 0 || self.numel() == 0 || self.strides[rank - 1] != 1 {
            return self.indices().map(|i| src[i]).collect();
        }
        let width = self.shape[rank - 1];
        let mut out = Vec::with_capacity(self.numel());
        // The first element of every row: the view narrowed to one column.
        let row_starts = self.narrow(rank - 1, 0, 1).expect("a non-empty last axis");
        for pos in row_starts.indices() {
            out.extend_from_slice(&src[pos..pos + width]);
        }
        out
    }

    /// A row-major tensor with the same elements and dtype: `self` when it
    /// already is one (no copy), otherwise a fresh owned copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.clone();
        }
        let storage = match self.dtype() {
            DType::F32 => Storage::F32(self.gather(self.storage.as_f32().expect("f32 storage"))),
            DType::BF16 => Storage::BF16(self.gather(self.storage.as_bf16().expect("bf16 storage"))),
            DType::F16 => Storage::F16(self.gather(self.storage.as_f16().expect("f16 storage"))),
        };
        Tensor::from_storage(storage, &self.shape).expect("same element count")
    }

    /// All elements widened to f32, in row-major order.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        if let (true, Some(src)) = (self.is_contiguous(), self.storage.as_f32()) {
            return src[self.offset..self.offset + self.numel()].to_vec();
        }
        // Dispatch on the dtype once, not per element.
        let s = &self.storage;
        match self.dtype() {
            DType::F32 => self.gather(s.as_f32().expect("f32 storage")),
            DType::BF16 => {
                let src = s.as_bf16().expect("bf16 storage");
                self.indices().map(|i| kernels::Element::to_f32(src[i])).collect()
            }
            DType::F16 => {
                let src = s.as_f16().expect("f16 storage");
                self.indices().map(|i| kernels::Element::to_f32(src[i])).collect()
            }
        }
    }

    /// The elements as an owned f32 vector: the tensor's own buffer, moved
    /// out without a copy, when it is the only owner of a whole contiguous f32
    /// storage; otherwise a copy as [`Tensor::to_f32_vec`] makes.
    pub fn into_f32_vec(self) -> Vec<f32> {
        let whole = self.offset == 0
            && self.is_contiguous()
            && matches!(*self.storage, Storage::F32(ref v) if v.len() == self.numel());
        if !whole {
            return self.to_f32_vec();
        }
        let n = self.numel();
        match Arc::try_unwrap(self.storage) {
            Ok(Storage::F32(v)) => v,
            Ok(_) => unreachable!("checked to be f32 storage"),
            Err(shared) => shared.as_f32().expect("checked to be f32 storage")[..n].to_vec(),
        }
    }

    /// The elements of a contiguous f32 tensor, without copying.
    pub fn as_f32_slice(&self) -> Result<&[f32], TensorError> {
        let src = self
            .storage
            .as_f32()
            .ok_or_else(|| TensorError::DtypeMismatch { expected: "F32".into(), found: self.dtype().to_string() })?;
        if !self.is_contiguous() {
            return Err(TensorError::shape("as_f32_slice", "the tensor is a strided view; call contiguous() first"));
        }
        Ok(&src[self.offset..self.offset + self.numel()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange(shape: &[usize]) -> Tensor {
        let n = numel(shape).unwrap();
        Tensor::from_vec((0..n).map(|x| x as f32).collect(), shape).unwrap()
    }

    #[test]
    fn views_share_storage_and_index_correctly() {
        let t = arange(&[2, 3, 4]);
        let p = t.permute(&[2, 0, 1]).unwrap(); // (4, 2, 3)
        assert!(Arc::ptr_eq(t.storage(), p.storage()));
        assert!(!p.is_contiguous());
        let v = p.to_f32_vec();
        for a in 0..4 {
            for b in 0..2 {
                for c in 0..3 {
                    assert_eq!(v[(a * 2 + b) * 3 + c], (b * 12 + c * 4 + a) as f32);
                }
            }
        }
        let n = t.narrow(2, 1, 2).unwrap(); // (2, 3, 2): elements 1, 2 of the last axis
        assert_eq!(n.to_f32_vec(), [1., 2., 5., 6., 9., 10., 13., 14., 17., 18., 21., 22.]);
        let c = p.contiguous();
        assert!(c.is_contiguous() && !Arc::ptr_eq(t.storage(), c.storage()));
        assert_eq!(c.to_f32_vec(), v);
        // A contiguous tensor's contiguous() and reshape() are views.
        assert!(Arc::ptr_eq(t.storage(), t.contiguous().storage()));
        assert!(Arc::ptr_eq(t.storage(), t.reshape(&[6, 4]).unwrap().storage()));
        assert_eq!(p.reshape(&[24]).unwrap().to_f32_vec(), v);
        // Views whose rows are runs (last axis contiguous) copy run by run.
        let m = t.narrow(1, 1, 2).unwrap().permute(&[1, 0, 2]).unwrap(); // (2, 2, 4)
        let want: Vec<f32> = [4., 5., 6., 7., 16., 17., 18., 19., 8., 9., 10., 11., 20., 21., 22., 23.].to_vec();
        assert_eq!(m.to_f32_vec(), want);
        assert_eq!(m.contiguous().to_f32_vec(), want);
    }

    #[test]
    fn into_f32_vec_moves_a_sole_buffer_and_copies_otherwise() {
        let t = arange(&[2, 3]);
        let ptr = t.as_f32_slice().unwrap().as_ptr();
        let v = t.into_f32_vec();
        assert_eq!(v.as_ptr(), ptr, "the only owner gives its buffer up");
        let t = arange(&[2, 3]);
        let view = t.reshape(&[3, 2]).unwrap();
        assert_eq!(view.into_f32_vec(), t.to_f32_vec(), "a shared buffer is copied");
        assert_eq!(t.transpose(0, 1).unwrap().into_f32_vec(), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(t.narrow(1, 1, 2).unwrap().into_f32_vec(), [1., 2., 4., 5.]);
    }

    #[test]
    fn bad_shape_operations_are_errors() {
        let t = arange(&[2, 3]);
        assert!(t.reshape(&[4, 2]).is_err());
        assert!(t.transpose(0, 2).is_err());
        assert!(t.permute(&[0, 0]).is_err());
        assert!(t.narrow(1, 2, 2).is_err());
        assert!(t.narrow(1, usize::MAX, 2).is_err());
        assert!(Tensor::from_vec(vec![0.0; 5], &[2, 3]).is_err());
        assert!(t.transpose(0, 1).unwrap().as_f32_slice().is_err());
    }

    #[test]
    fn half_precision_widens() {
        let t = Tensor::from_bf16([1.5f32, -2.0, 0.25].map(bf16::from_f32).to_vec(), &[3]).unwrap();
        assert_eq!(t.dtype(), DType::BF16);
        assert_eq!(t.to_f32_vec(), [1.5, -2.0, 0.25]);
        assert!(t.as_f32_slice().is_err());
    }
}
