//! Process-wide GEMM statistics: totals for profiles and for tests that must
//! show a product was skipped (a frozen weight costs no weight-gradient
//! GEMM), and, when asked for, time by shape.
//!
//! The per-shape table answers "which products are slow inside a training
//! step", where operands arrive cold from memory and outputs are fresh
//! pages, which an isolated benchmark on hot operands does not show.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

struct Counters {
    calls: AtomicU64,
    flops: AtomicU64,
    /// Wall time inside GEMMs run through the thread pool's plans (those
    /// run from one caller thread).
    nanos: AtomicU64,
}

static COUNTERS: Counters = Counters { calls: AtomicU64::new(0), flops: AtomicU64::new(0), nanos: AtomicU64::new(0) };

/// Whether [`record`] also files each timed GEMM under its shape.
static BY_SHAPE_ON: AtomicBool = AtomicBool::new(false);
static BY_SHAPE: Mutex<BTreeMap<ShapeKey, ShapeTotals>> = Mutex::new(BTreeMap::new());

/// One GEMM shape as the caller passed it: `op(A)` is `m × k`, `op(B)` is
/// `k × n`; an operand is "transposed" when its rows are not contiguous
/// (`Xᵀ` views, as in `x·Wᵀ` or `dyᵀ·x`). `beta_zero`: C was overwritten,
/// not accumulated into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShapeKey {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_transposed: bool,
    pub b_transposed: bool,
    pub beta_zero: bool,
}

impl ShapeKey {
    /// `512x576x1536 A·Bᵀ` (and ` +C` when C was accumulated into).
    pub fn label(&self) -> String {
        let a = if self.a_transposed { "Aᵀ" } else { "A" };
        let b = if self.b_transposed { "Bᵀ" } else { "B" };
        let acc = if self.beta_zero { "" } else { " +C" };
        format!("{}x{}x{} {a}·{b}{acc}", self.m, self.k, self.n)
    }
}

/// Calls, FLOPs and seconds of one shape.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShapeTotals {
    pub calls: u64,
    pub flops: f64,
    pub seconds: f64,
}

/// Counts one call (every [`super::Gemm::run`], any size).
pub(crate) fn count_call() {
    COUNTERS.calls.fetch_add(1, Ordering::Relaxed);
}

/// Adds one timed GEMM to the totals, and to its shape's row when
/// [`record_by_shape`] is on.
pub(crate) fn record(key: ShapeKey, flops: usize, seconds: f64) {
    COUNTERS.flops.fetch_add(flops as u64, Ordering::Relaxed);
    COUNTERS.nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    if BY_SHAPE_ON.load(Ordering::Relaxed) {
        let mut table = BY_SHAPE.lock().unwrap_or_else(|e| e.into_inner());
        let row = table.entry(key).or_default();
        row.calls += 1;
        row.flops += flops as f64;
        row.seconds += seconds;
    }
}

/// `(calls, FLOPs, seconds)` of the GEMMs run so far that used the thread
/// pool (the big products of a training step; per-head products inside
/// fused attention run single-threaded and are not timed here).
pub fn gemm_stats() -> (u64, u64, f64) {
    (
        COUNTERS.calls.load(Ordering::Relaxed),
        COUNTERS.flops.load(Ordering::Relaxed),
        COUNTERS.nanos.load(Ordering::Relaxed) as f64 * 1e-9,
    )
}

/// How many GEMMs this process has run (every [`super::Gemm::run`], any size).
pub fn gemm_calls() -> u64 {
    COUNTERS.calls.load(Ordering::Relaxed)
}

/// Starts (and clears) or stops the per-shape table. Off by default: it
/// takes a lock per GEMM.
pub fn record_by_shape(on: bool) {
    BY_SHAPE.lock().unwrap_or_else(|e| e.into_inner()).clear();
    BY_SHAPE_ON.store(on, Ordering::Relaxed);
}

/// The per-shape table since [`record_by_shape`]`(true)`, slowest total first.
pub fn by_shape() -> Vec<(ShapeKey, ShapeTotals)> {
    let table = BY_SHAPE.lock().unwrap_or_else(|e| e.into_inner());
    let mut rows: Vec<_> = table.iter().map(|(k, v)| (*k, *v)).collect();
    rows.sort_by(|x, y| y.1.seconds.total_cmp(&x.1.seconds));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::{Gemm, MatMut, MatRef};

    #[test]
    fn shapes_are_filed_with_their_layout_and_beta() {
        record_by_shape(true);
        let a = vec![1.0f32; 6 * 4];
        let b = vec![1.0f32; 4 * 5];
        let mut c = vec![0.0f32; 6 * 5];
        let g = Gemm::new().unwrap();
        for beta in [0.0, 1.0, 1.0] {
            // A·Bᵀ: b stored 5 × 4.
            let bt = MatRef::new(&b, 5, 4, 4).unwrap().t();
            g.run(1.0, MatRef::new(&a, 6, 4, 4).unwrap(), bt, beta, MatMut::new(&mut c, 6, 5, 5).unwrap()).unwrap();
        }
        let rows = by_shape();
        record_by_shape(false);
        let find = |beta_zero| rows.iter().find(|(k, _)| k.m == 6 && k.k == 4 && k.n == 5 && k.beta_zero == beta_zero);
        let (key, once) = find(true).expect("the beta = 0 call");
        assert_eq!((key.a_transposed, key.b_transposed, once.calls), (false, true, 1));
        assert_eq!(key.label(), "6x4x5 A·Bᵀ");
        let (key, twice) = find(false).expect("the accumulating calls");
        assert_eq!((twice.calls, twice.flops), (2, 2.0 * 2.0 * 6.0 * 4.0 * 5.0));
        assert_eq!(key.label(), "6x4x5 A·Bᵀ +C");
    }
}
