//! Matrix views over slices: the operands of [`crate::gemm`].
//!
//! A view is a slice plus `rows`, `cols` and two strides: element `(i, j)`
//! lives at `data[i * row_stride + j * col_stride]`. A row-major matrix with
//! leading dimension `ld` has strides `(ld, 1)`; its transpose is the same
//! slice with the strides swapped, which is all [`MatRef::t`] does. So
//! `op(A) = Aᵀ` costs nothing: the packing step reads either layout.
//!
//! Constructors check, with overflow-checked arithmetic, that the furthest
//! element is inside the slice. That invariant is what lets the packing and
//! the microkernels use raw pointers safely.

use crate::{Element, KernelError};

/// A read-only `rows × cols` matrix view of elements `T` (f32, bf16 or f16).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// Index one past the furthest element of a view, or `None` on overflow.
/// An empty view needs no element at all.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(rs)?.checked_add((cols - 1).checked_mul(cs)?)?.checked_add(1)
}

impl<'a, T: Element> MatRef<'a, T> {
    /// A row-major view: row `i` starts at `data[i * ld]`.
    pub fn new(data: &'a [T], rows: usize, cols: usize, ld: usize) -> Result<Self, KernelError> {
        if rows > 1 && ld < cols {
            return Err(KernelError::LeadingDimTooSmall { what: "operand", cols, ld });
        }
        Self::strided(data, rows, cols, ld, 1)
    }

    /// A view with arbitrary strides (in elements).
    pub fn strided(
        data: &'a [T],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, KernelError> {
        match extent(rows, cols, row_stride, col_stride) {
            Some(end) if end <= data.len() => Ok(MatRef { data, rows, cols, rs: row_stride, cs: col_stride }),
            _ => Err(KernelError::OutOfBounds { what: "operand", rows, cols, row_stride, col_stride, len: data.len() }),
        }
    }

    /// The transpose: same data, rows and columns (and strides) swapped.
    pub fn t(self) -> Self {
        MatRef { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Distance between rows, in elements.
    pub fn row_stride(&self) -> usize {
        self.rs
    }

    /// Distance between columns, in elements.
    pub fn col_stride(&self) -> usize {
        self.cs
    }

    /// The underlying slice.
    pub fn data(&self) -> &'a [T] {
        self.data
    }

    /// Element `(i, j)` widened to f32. Panics only if `(i, j)` is outside the view.
    #[inline(always)]
    pub fn get(&self, i: usize, j: usize) -> f32 {
        debug_assert!(i < self.rows && j < self.cols);
        self.data[i * self.rs + j * self.cs].to_f32()
    }
}

/// A mutable row-major `rows × cols` f32 matrix with leading dimension `ld`:
/// the C of a GEMM.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major view: row `i` starts at `data[i * ld]`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Result<Self, KernelError> {
        if rows > 1 && ld < cols {
            return Err(KernelError::LeadingDimTooSmall { what: "C", cols, ld });
        }
        match extent(rows, cols, ld, 1) {
            Some(end) if end <= data.len() => Ok(MatMut { data, rows, cols, ld }),
            _ => {
                Err(KernelError::OutOfBounds { what: "C", rows, cols, row_stride: ld, col_stride: 1, len: data.len() })
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn ld(&self) -> usize {
        self.ld
    }

    /// Row `i`, `cols` long.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        let start = i * self.ld;
        &mut self.data[start..start + self.cols]
    }

    /// A read-only view of the same matrix.
    pub fn as_ref(&self) -> MatRef<'_, f32> {
        MatRef { data: self.data, rows: self.rows, cols: self.cols, rs: self.ld, cs: 1 }
    }

    /// Raw pointer to element (0, 0), for the driver's tile writes.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.data.as_mut_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_that_do_not_fit_are_refused() {
        let data = vec![0.0f32; 11];
        assert!(MatRef::new(&data, 3, 3, 4).is_ok()); // last element at 2*4 + 2 = 10
        assert!(matches!(MatRef::new(&data, 3, 4, 4), Err(KernelError::OutOfBounds { .. })));
        assert!(matches!(MatRef::new(&data, 2, 4, 3), Err(KernelError::LeadingDimTooSmall { .. })));
        assert!(MatRef::new(&data[..0], 0, 5, 5).is_ok());
        assert!(matches!(MatRef::strided(&data, usize::MAX, 2, usize::MAX, 1), Err(KernelError::OutOfBounds { .. })));
        let mut c = vec![0.0f32; 5];
        assert!(matches!(MatMut::new(&mut c, 2, 3, 3), Err(KernelError::OutOfBounds { .. })));
    }

    #[test]
    fn transpose_swaps_indices() {
        let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
        let a = MatRef::new(&data, 2, 3, 3).unwrap();
        let at = a.t();
        assert_eq!((at.rows(), at.cols()), (3, 2));
        for i in 0..2 {
            for j in 0..3 {
                assert_eq!(a.get(i, j), at.get(j, i));
            }
        }
    }
}
