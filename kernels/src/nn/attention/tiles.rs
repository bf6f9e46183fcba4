//! The products of attention, run tile by tile on the GEMM's microkernel.
//!
//! Attention's products are small (a 64-row query block against at most
//! `Tk` keys, depth `D` = 64 or `Tk`) and most of their operands are reused:
//! the keys and values of a head are read by every query block. So instead
//! of whole `Gemm` calls, which pack both operands each time, a task packs
//! K and V once per head into the microkernel's B panels ([`pack_b`]) and
//! then runs single tiles ([`Tiles::row_panel`]), reading the A side (query
//! rows, score rows) in place where the kernel can. This also lets the
//! causal structure skip work tile by tile: a row panel of scores is
//! computed only up to the last key its rows can see, and each product's
//! k range stops (or starts) where the mask makes the rest zero.
//!
//! Every C here is a task's scratch buffer padded to whole tiles, so no
//! edge tile is ever partial: padding rows and columns are computed and
//! then not copied out.

use crate::gemm::catalog::{Microkernel, Packing};
use crate::gemm::pack::pack_panel;
use crate::gemm::MatRef;
use std::cell::RefCell;

/// The kernel attention's products run on and its tile: AVX-512's 16×16
/// (attention's widths, `D` = 64 and 64-key blocks, are multiples of 16;
/// on 8×48 a 64-wide product pads to 96), else the selected f32 kernel.
#[derive(Clone, Copy)]
pub(super) struct Tiles {
    kernel: &'static Microkernel,
    pub mr: usize,
    pub nr: usize,
}

impl Tiles {
    pub fn new() -> Result<Tiles, crate::KernelError> {
        let main = Microkernel::selected()?;
        let kernel = Microkernel::narrow_for(main).unwrap_or(main);
        debug_assert!(kernel.packing == Packing::F32, "the selected kernel is an f32 one");
        Ok(Tiles { kernel, mr: kernel.mr, nr: kernel.nr })
    }

    /// The step keys are padded to, so a score row holds whole tiles both as
    /// C columns (`NR`) and as the A rows of `dSᵀ` (`MR`): `lcm(MR, NR)`.
    pub fn key_step(&self) -> usize {
        let (mut a, mut b) = (self.mr, self.nr);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        self.mr / a * self.nr
    }

    /// `n` rounded up to whole column tiles.
    pub fn cols_padded(&self, n: usize) -> usize {
        n.next_multiple_of(self.nr)
    }

    /// One row panel of `C = alpha · A · B + beta · C`: rows `r0..r0 + MR`
    /// of `a` (rows past its end count as zeros), its k `k0..k1`, against
    /// the first `tiles` packed B panels of `b` (each `depth × NR` floats,
    /// see [`pack_b`]; their k `k0..k1` are used). `c` starts at the panel's
    /// first row and holds `MR` rows of stride `ldc ≥ tiles · NR`.
    /// `apack` is scratch for A when it must be packed.
    #[allow(clippy::too_many_arguments)] // a GEMM's operands and ranges
    pub fn row_panel(
        &self,
        (alpha, a, r0, (k0, k1)): (f32, &MatRef<'_, f32>, usize, (usize, usize)),
        (b, depth, tiles): (&[f32], usize, usize),
        beta: f32,
        c: &mut [f32],
        ldc: usize,
        apack: &mut Vec<f32>,
    ) {
        let (mr, nr, kc) = (self.mr, self.nr, k1 - k0);
        assert!(k0 <= k1 && k1 <= depth && k1 <= a.cols() && r0 < a.rows().max(1));
        assert!(b.len() >= tiles * depth * nr && ldc >= tiles * nr && c.len() >= (mr - 1) * ldc + tiles * nr);
        if tiles == 0 {
            return;
        }
        let (rs, cs) = (a.row_stride(), a.col_stride());
        let in_place = self.kernel.run_in_place.filter(|_| r0 + mr <= a.rows() && kc > 0);
        let packed_ptr = if in_place.is_none() {
            if apack.len() < mr * kc {
                apack.resize(mr * kc, 0.0);
            }
            pack_panel(a, (r0, mr.min(a.rows() - r0)), (k0, kc), mr, &mut apack[..mr * kc]);
            apack.as_ptr()
        } else {
            std::ptr::null()
        };
        for t in 0..tiles {
            let bp = b[t * depth * nr + k0 * nr..].as_ptr();
            let cp = c[t * nr..].as_mut_ptr();
            // SAFETY: B holds `kc` k steps of NR floats from `bp` (asserted
            // lengths, k1 <= depth); C holds an MR × NR tile from `cp` with
            // row stride `ldc` (asserted); A is either the packed `mr * kc`
            // panel above, or MR whole rows of `a` (r0 + MR <= rows) whose
            // elements (i, p) for p in k0..k1 lie inside its slice (MatRef's
            // extent invariant); the kernel's ISA was checked when it was selected.
            unsafe {
                match in_place {
                    Some(run) => {
                        let ap = a.data()[r0 * rs + k0 * cs..].as_ptr();
                        run(kc, ap, rs, cs, bp, cp, ldc, alpha, beta)
                    }
                    None => (self.kernel.run)(kc, packed_ptr, bp, cp, ldc, alpha, beta),
                }
            }
        }
    }
}

/// Packs `src` (`k × n`) as B: `n.div_ceil(NR)` panels of `k × NR` floats,
/// column panel `t` holding columns `t·NR..`, zero-padded past `n`.
/// Returns the floats written at the start of `dst` (grown as needed).
pub(super) fn pack_b(tiles: &Tiles, src: &MatRef<'_, f32>, dst: &mut Vec<f32>) -> usize {
    let (k, n, nr) = (src.rows(), src.cols(), tiles.nr);
    let len = n.div_ceil(nr) * nr * k;
    if dst.len() < len {
        dst.resize(len, 0.0);
    }
    let bt = src.t(); // B's column panels are Bᵀ's row panels
    for t in 0..n.div_ceil(nr) {
        pack_panel(&bt, (t * nr, nr.min(n - t * nr)), (0, k), nr, &mut dst[t * nr * k..(t + 1) * nr * k]);
    }
    len
}

/// A task's buffers, kept per thread between calls (allocating them each
/// call cost page faults worth a quarter of the kernel's time).
#[derive(Default)]
pub(super) struct Scratch {
    /// Kᵀ and Vᵀ as B panels (depth `D`): the scores' and `dP`'s right operands.
    pub kt: Vec<f32>,
    pub vt: Vec<f32>,
    /// V and K as B panels (depth `Tk`): `O = P V`'s and `dQ = dS K`'s.
    pub vp: Vec<f32>,
    pub kp: Vec<f32>,
    /// A query block of Q and of dO as B panels (depth: the block's rows).
    pub qb: Vec<f32>,
    pub dob: Vec<f32>,
    /// A block of scores (then P) and of dP (then dS): `QB × ld`.
    pub s: Vec<f32>,
    pub dp: Vec<f32>,
    /// A block of O or dQ: `QB × D` padded.
    pub o: Vec<f32>,
    /// dK, dV accumulated over a group's heads: `Tk × D` padded.
    pub dk: Vec<f32>,
    pub dv: Vec<f32>,
    /// δ of one head's rows.
    pub delta: Vec<f32>,
    /// A packed A panel, where the kernel cannot read A in place.
    pub apack: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch (a fresh one if it is in use,
/// which only a nested call on the same thread could cause).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// `buf[..len]`, grown as needed (contents unspecified).
pub(super) fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// An output slice that parallel tasks write disjoint runs of.
pub(super) struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks only write through `write`, whose callers guarantee that no
// two tasks write the same element; the borrow keeps the slice alive.
unsafe impl Send for Disjoint<'_> {}
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    pub fn new(slice: &'a mut [f32]) -> Disjoint<'a> {
        Disjoint { ptr: slice.as_mut_ptr(), len: slice.len(), _slice: std::marker::PhantomData }
    }

    /// `slice[at..at + src.len()] = src`.
    ///
    /// # Safety
    /// No other task writes any element of that range during the parallel section.
    pub unsafe fn write(&self, at: usize, src: &[f32]) {
        assert!(at.checked_add(src.len()).is_some_and(|end| end <= self.len), "write past the output's end");
        // SAFETY: in bounds (asserted); exclusive by the caller's guarantee.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), src.len()) }
    }
}
