//! Reusable, 64-byte-aligned packing buffers, one pair per thread.
//!
//! A GEMM packs several MiB; allocating that on every call would cost page
//! faults comparable to a small GEMM's whole run time. Each thread keeps its
//! buffers between calls instead. A nested call on the same thread (a rayon
//! worker that steals another GEMM while waiting) finds the buffer borrowed
//! and falls back to a fresh allocation rather than panicking.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Which of the thread's two buffers.
pub(crate) enum Buffer {
    /// Packed A blocks (MC × KC), used inside each task.
    A,
    /// Packed B blocks (KC × NC), owned by the thread that runs the
    /// product's loops (the caller, or each thread of a split into parts).
    B,
}

thread_local! {
    static A_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static B_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Floats of slack so an aligned window of `len` always fits.
const ALIGN_SLACK: usize = 16;

/// Calls `f` with a 64-byte-aligned slice of `len` floats (contents unspecified).
pub(crate) fn with_buffer<R>(which: Buffer, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let key: &'static LocalKey<RefCell<Vec<f32>>> = match which {
        Buffer::A => &A_BUF,
        Buffer::B => &B_BUF,
    };
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => aligned(&mut buf, len, f),
        Err(_) => aligned(&mut Vec::new(), len, f),
    })
}

fn aligned<R>(buf: &mut Vec<f32>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    if buf.len() < len + ALIGN_SLACK {
        buf.resize(len + ALIGN_SLACK, 0.0);
    }
    // Elements to skip so the window starts on a 64-byte boundary (< 16).
    let offset = buf.as_ptr().align_offset(64).min(ALIGN_SLACK);
    f(&mut buf[offset..offset + len])
}
