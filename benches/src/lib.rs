//! # benches: measuring hone's kernels
//!
//! Shared by the criterion benches (`benches/`) and the quick tables
//! (`src/bin/`): the shapes the issues name, operands in the right layout,
//! and a runner for hone's SGEMM and the reference `gemm` crate on the same
//! operands. Timing thresholds live here and in the benches, never in tests.

pub mod nn;

use kernels::gemm::{Gemm, MatMut, MatRef};
use std::time::Instant;

/// One GEMM shape: `op(A)` is `m × k`, `op(B)` is `k × n`.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// A is stored `k × m` and used transposed (a weight-gradient `Xᵀ·dY`).
    pub trans_a: bool,
    /// B is stored `n × k` and used transposed (a Linear layer `X·Wᵀ`).
    pub trans_b: bool,
}

impl Shape {
    pub const fn new(m: usize, k: usize, n: usize) -> Shape {
        Shape { m, k, n, trans_a: false, trans_b: false }
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// `512x768x3072`, with ` Aᵀ·B` or ` A·Bᵀ` where an operand is transposed.
    pub fn label(&self) -> String {
        let op = match (self.trans_a, self.trans_b) {
            (false, false) => "A·B",
            (true, false) => "Aᵀ·B",
            (false, true) => "A·Bᵀ",
            (true, true) => "Aᵀ·Bᵀ",
        };
        format!("{}x{}x{} {op}", self.m, self.k, self.n)
    }
}

/// The shapes of the kernels issue (M×K×N): GPT-2 and SmolLM2 projections
/// at B·T = 512 tokens, the SmolLM2 LM head, the two backward forms, and a
/// square reference.
pub const ISSUE_SHAPES: [Shape; 7] = [
    Shape::new(512, 768, 768),
    Shape::new(512, 768, 3072),
    Shape::new(512, 3072, 768),
    Shape::new(512, 576, 49152),
    Shape { m: 768, k: 512, n: 3072, trans_a: true, trans_b: false },
    Shape { m: 512, k: 3072, n: 768, trans_a: false, trans_b: true },
    Shape::new(2048, 2048, 2048),
];

/// Operands of one shape, stored as the shape says, filled with small values.
pub struct Operands {
    pub shape: Shape,
    pub a: Vec<f32>,
    pub b: Vec<f32>,
    pub c: Vec<f32>,
}

impl Operands {
    pub fn new(shape: Shape) -> Operands {
        let fill =
            |len: usize, salt: usize| (0..len).map(|i| ((i * 7919 + salt) % 1000) as f32 / 1000.0 - 0.5).collect();
        Operands {
            shape,
            a: fill(shape.m * shape.k, 1),
            b: fill(shape.k * shape.n, 2),
            c: vec![0.0; shape.m * shape.n],
        }
    }

    /// `op(A)` as a view.
    pub fn a_view(&self) -> MatRef<'_, f32> {
        let Shape { m, k, trans_a, .. } = self.shape;
        if trans_a {
            MatRef::new(&self.a, k, m, m).unwrap().t()
        } else {
            MatRef::new(&self.a, m, k, k).unwrap()
        }
    }

    /// `op(B)` as a view.
    pub fn b_view(&self) -> MatRef<'_, f32> {
        let Shape { k, n, trans_b, .. } = self.shape;
        if trans_b {
            MatRef::new(&self.b, n, k, k).unwrap().t()
        } else {
            MatRef::new(&self.b, k, n, n).unwrap()
        }
    }

    /// `C = A·B` with hone's SGEMM.
    pub fn run_hone(&mut self, gemm: &Gemm) {
        let Shape { m, n, .. } = self.shape;
        let mut c = std::mem::take(&mut self.c);
        gemm.run(1.0, self.a_view(), self.b_view(), 0.0, MatMut::new(&mut c, m, n, n).unwrap()).unwrap();
        self.c = c;
    }

    /// `C = A·B` with the `gemm` crate, on `threads` threads (1 = none).
    pub fn run_reference(&mut self, threads: usize) {
        let Shape { m, k, n, trans_a, trans_b } = self.shape;
        // (row stride, column stride) of op(A) and op(B) in elements.
        let (a_rs, a_cs) = if trans_a { (1, m as isize) } else { (k as isize, 1) };
        let (b_rs, b_cs) = if trans_b { (1, k as isize) } else { (n as isize, 1) };
        let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        // SAFETY: the pointers cover m*k, k*n and m*n elements with the strides given.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                self.c.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.a.as_ptr(),
                a_cs,
                a_rs,
                self.b.as_ptr(),
                b_cs,
                b_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
    }
}

/// Median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Seconds one call of `f` takes.
pub fn time<F: FnMut()>(mut f: F) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}
