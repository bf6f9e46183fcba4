//! A per-op profile of forward and backward time, off unless enabled.
//!
//! Backward: each op's closure is timed exactly. Forward: an op's time is
//! the time since the previous op was recorded on this thread (its own
//! work plus the glue that called it), which is what the forward costs
//! when ops follow each other. Enabled per thread by [`enable`].
//!
//! A backward that runs ops itself (`checkpoint` recomputes its block and
//! back-propagates through it) is charged only its own time: what its inner
//! ops record is subtracted, so each millisecond is counted once.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Default)]
struct State {
    on: bool,
    last: Option<Instant>,
    /// (op, "forward"/"backward") -> (calls, seconds)
    table: BTreeMap<(&'static str, &'static str), (u64, f64)>,
    /// Per backward being timed, innermost last: seconds its inner ops recorded.
    inner: Vec<f64>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Starts (or restarts) profiling on this thread.
pub fn enable() {
    STATE.with(|s| *s.borrow_mut() = State { on: true, last: Some(Instant::now()), ..State::default() });
}

/// Marks a point after which forward time starts counting again (call after
/// work that is not an op, like the optimizer step).
pub fn mark() {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.on {
            s.last = Some(Instant::now());
        }
    });
}

pub(crate) fn forward_done(op: &'static str) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if !s.on {
            return;
        }
        let now = Instant::now();
        let dt = s.last.map_or(0.0, |l| (now - l).as_secs_f64());
        s.last = Some(now);
        if let Some(t) = s.inner.last_mut() {
            *t += dt;
        }
        let e = s.table.entry((op, "forward")).or_default();
        e.0 += 1;
        e.1 += dt;
    });
}

pub(crate) fn backward_timer() -> Option<Instant> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.on.then(|| {
            s.inner.push(0.0);
            Instant::now()
        })
    })
}

pub(crate) fn backward_done(op: &'static str, start: Option<Instant>) {
    if let Some(t) = start {
        let dt = t.elapsed().as_secs_f64();
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let inner = s.inner.pop().unwrap_or(0.0);
            if let Some(outer) = s.inner.last_mut() {
                *outer += dt;
            }
            let e = s.table.entry((op, "backward")).or_default();
            e.0 += 1;
            e.1 += (dt - inner).max(0.0);
        });
    }
}

/// The table so far: `(op, pass, calls, seconds)`, largest first.
pub fn report() -> Vec<(&'static str, &'static str, u64, f64)> {
    let mut rows: Vec<_> =
        STATE.with(|s| s.borrow().table.iter().map(|(&(op, pass), &(n, t))| (op, pass, n, t)).collect());
    rows.sort_by(|a, b| b.3.total_cmp(&a.3));
    rows
}
