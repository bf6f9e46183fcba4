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
use std::marker::PhantomData;
use std::mem::MaybeUninit;

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

    /// Columns `j0..j1` as a view of their own. Panics unless `j0 <= j1 <= cols`.
    pub(crate) fn columns(&self, j0: usize, j1: usize) -> MatRef<'a, T> {
        assert!(j0 <= j1 && j1 <= self.cols, "columns {j0}..{j1} of a {}-column view", self.cols);
        // Column j0 starts j0 * cs in; the furthest element of the part is no
        // further than the whole view's, so the constructor's check still holds.
        let data = if j0 < j1 && self.rows > 0 { &self.data[j0 * self.cs..] } else { &self.data[..0] };
        MatRef { data, rows: self.rows, cols: j1 - j0, rs: self.rs, cs: self.cs }
    }

    /// Rows `i0..i1` as a view of their own. Panics unless `i0 <= i1 <= rows`.
    pub(crate) fn row_range(&self, i0: usize, i1: usize) -> MatRef<'a, T> {
        self.t().columns(i0, i1).t()
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
///
/// Made from initialised floats ([`MatMut::new`]), or from uninitialised
/// memory ([`MatMut::uninit`]), which a product with `beta = 0` only
/// writes: a new output then needs no zeros written first (a pass over C
/// that the product would overwrite).
#[derive(Debug)]
pub struct MatMut<'a> {
    /// Element `(0, 0)`; the `len` elements from here are the borrowed slice's.
    ptr: *mut f32,
    len: usize,
    rows: usize,
    cols: usize,
    ld: usize,
    /// Whether the elements hold values (false for [`MatMut::uninit`]):
    /// only then may they be read.
    init: bool,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a MatMut is the unique borrow of its slice, like the `&mut [f32]`
// (or `&mut [MaybeUninit<f32>]`) it was made from, which is Send.
unsafe impl Send for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// A row-major view: row `i` starts at `data[i * ld]`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Result<Self, KernelError> {
        MatMut::checked(data.as_mut_ptr(), data.len(), (rows, cols, ld), true)
    }

    /// A row-major view of memory not yet written, for a product with
    /// `beta = 0`, which writes every element of C and reads none
    /// ([`super::Gemm::run`] refuses any other `beta` for it).
    pub fn uninit(data: &'a mut [MaybeUninit<f32>], rows: usize, cols: usize, ld: usize) -> Result<Self, KernelError> {
        MatMut::checked(data.as_mut_ptr().cast(), data.len(), (rows, cols, ld), false)
    }

    fn checked(
        ptr: *mut f32,
        len: usize,
        (rows, cols, ld): (usize, usize, usize),
        init: bool,
    ) -> Result<Self, KernelError> {
        if rows > 1 && ld < cols {
            return Err(KernelError::LeadingDimTooSmall { what: "C", cols, ld });
        }
        match extent(rows, cols, ld, 1) {
            Some(end) if end <= len => Ok(MatMut { ptr, len, rows, cols, ld, init, _borrow: PhantomData }),
            _ => Err(KernelError::OutOfBounds { what: "C", rows, cols, row_stride: ld, col_stride: 1, len }),
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

    /// Whether the elements may be read (false for [`MatMut::uninit`]).
    pub fn is_init(&self) -> bool {
        self.init
    }

    /// Row `i`, `cols` long. Panics on a view of uninitialised memory.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        assert!(self.init && i < self.rows, "row {i} of an uninitialised or {}-row C", self.rows);
        // SAFETY: the constructor checked that row i (i < rows) is inside the
        // borrowed slice, whose elements are initialised (`init`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.ld), self.cols) }
    }

    /// Writes element `(i, j)` (initialised or not). Panics outside the view.
    pub fn write(&mut self, i: usize, j: usize, value: f32) {
        assert!(i < self.rows && j < self.cols, "({i}, {j}) outside a {}x{} C", self.rows, self.cols);
        // SAFETY: inside the view, so inside the borrowed slice (constructor check).
        unsafe { self.ptr.add(i * self.ld + j).write(value) }
    }

    /// A read-only view of the same matrix. Panics on uninitialised memory.
    pub fn as_ref(&self) -> MatRef<'_, f32> {
        assert!(self.init, "an uninitialised C cannot be read");
        // SAFETY: the borrowed slice, initialised.
        let data = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        MatRef { data, rows: self.rows, cols: self.cols, rs: self.ld, cs: 1 }
    }

    /// Marks an uninitialised view as written, after a `beta = 0` product
    /// wrote every element (so a second product may accumulate into it).
    pub(crate) fn mark_written(&mut self) {
        self.init = true;
    }

    /// The same view for a shorter borrow (to run two products into one C).
    pub fn reborrow(&mut self) -> MatMut<'_> {
        MatMut { _borrow: PhantomData, ..*self }
    }

    /// A handle from which tasks on other threads take views of disjoint
    /// blocks of this C (see [`SharedC::block`]).
    pub(crate) fn shared(&mut self) -> SharedC<'_> {
        SharedC { whole: MatMut { _borrow: PhantomData, ..*self } }
    }

    /// Raw pointer to element (0, 0), for the driver's tile writes.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut f32 {
        self.ptr
    }
}

/// A C that several threads write at once, each its own block: the
/// driver's split into parts that threads compute alone (see `driver`).
pub(crate) struct SharedC<'a> {
    whole: MatMut<'a>,
}

// SAFETY: the handle only hands out views through the unsafe `block`,
// whose callers promise that no two live views share an element, so threads
// holding them never touch the same one.
unsafe impl Sync for SharedC<'_> {}

impl SharedC<'_> {
    /// Rows `i0..i1` and columns `j0..j1` of C as a view of their own.
    /// Panics unless `i0 <= i1 <= rows` and `j0 <= j1 <= cols`.
    ///
    /// # Safety
    /// While the view lives, no other view from this split may include any
    /// of its elements. The view must only be written and read element by
    /// element or row by row (`write`, `row_mut`, the driver's tiles), never
    /// through `as_ref`, whose slice would span the other views' elements.
    pub(crate) unsafe fn block(&self, (i0, i1): (usize, usize), (j0, j1): (usize, usize)) -> MatMut<'_> {
        let w = &self.whole;
        assert!(j0 <= j1 && j1 <= w.cols, "columns {j0}..{j1} of a {}-column C", w.cols);
        assert!(i0 <= i1 && i1 <= w.rows, "rows {i0}..{i1} of a {}-row C", w.rows);
        let (rows, cols) = (i1 - i0, j1 - j0);
        if rows == 0 || cols == 0 {
            return MatMut { ptr: w.ptr, len: 0, rows, cols, ld: w.ld, init: w.init, _borrow: PhantomData };
        }
        // Element (i0, j0) is inside the borrowed slice (i0 < rows, j0 < cols,
        // the constructor's check), and so is the block's furthest element,
        // (i1 - 1, j1 - 1) of the whole view.
        let offset = i0 * w.ld + j0;
        // SAFETY: offset < len, see above.
        let ptr = unsafe { w.ptr.add(offset) };
        MatMut { ptr, len: w.len - offset, rows, cols, ld: w.ld, init: w.init, _borrow: PhantomData }
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
