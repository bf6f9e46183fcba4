//! Shared by the GEMM tests: random operands in every layout, and the
//! comparison against the f64 reference with the derived error bound.
#![allow(dead_code)] // each test binary uses a different part

use half::{bf16, f16};
use kernels::gemm::naive::{self, error_bound};
use kernels::gemm::{Blocking, Gemm, MatMut, MatRef};
use kernels::Element;

/// Element types the tests can make from f32 values.
pub trait TestElem: Element {
    fn from_f32(x: f32) -> Self;
}
impl TestElem for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }
}
impl TestElem for bf16 {
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
}
impl TestElem for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
}

/// A small deterministic generator (xorshift64*), so the no-harness NEON
/// check needs no dependency and every failure is reproducible from its seed.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// One GEMM problem: `op(A)` is m × k, `op(B)` is k × n; a transposed
/// operand is stored transposed; every leading dimension has `pad` extra.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub pad: usize,
    pub alpha: f32,
    pub beta: f32,
    pub seed: u64,
}

/// Proptest cases: shapes from `dims`, both transposes, and `pad`, `alpha`
/// and `beta` picked from the given values (each test file picks its own).
pub fn cases(
    dims: impl proptest::strategy::Strategy<Value = (usize, usize, usize)>,
    pads: Vec<usize>,
    alphas: Vec<f32>,
    betas: Vec<f32>,
) -> impl proptest::strategy::Strategy<Value = Case> {
    use proptest::prelude::*;
    (
        dims,
        (any::<bool>(), any::<bool>()),
        prop::sample::select(pads),
        prop::sample::select(alphas),
        prop::sample::select(betas),
        any::<u64>(),
    )
        .prop_map(|((m, n, k), (trans_a, trans_b), pad, alpha, beta, seed)| Case {
            m,
            n,
            k,
            trans_a,
            trans_b,
            pad,
            alpha,
            beta,
            seed,
        })
}

/// A stored operand: `rows × cols` as used, stored transposed if `trans`.
pub struct Operand<T> {
    pub data: Vec<T>,
    rows: usize,
    cols: usize,
    ld: usize,
    trans: bool,
}

impl<T: TestElem> Operand<T> {
    pub fn random(rng: &mut Rng, rows: usize, cols: usize, trans: bool, pad: usize) -> Self {
        let (sr, sc) = if trans { (cols, rows) } else { (rows, cols) };
        let ld = sc + pad;
        let data = (0..sr * ld).map(|_| T::from_f32(rng.uniform())).collect();
        Operand { data, rows, cols, ld, trans }
    }

    /// The same operand with every element rounded to bf16.
    pub fn rounded(&self) -> Operand<bf16> {
        let data = self.data.iter().map(|x| bf16::from_f32(x.to_f32())).collect();
        Operand { data, rows: self.rows, cols: self.cols, ld: self.ld, trans: self.trans }
    }

    pub fn view(&self) -> MatRef<'_, T> {
        let (sr, sc) = if self.trans { (self.cols, self.rows) } else { (self.rows, self.cols) };
        let v = MatRef::new(&self.data, sr, sc, self.ld).expect("test operand fits");
        if self.trans {
            v.t()
        } else {
            v
        }
    }
}

/// Runs `case` with `gemm` and checks every element of C against the f64
/// reference within [`error_bound`], that the padding between rows of C is
/// untouched, and that with `beta == 0` a C full of NaN does not leak.
pub fn check<TA: TestElem, TB: TestElem>(gemm: &Gemm, case: &Case) -> Result<(), String> {
    let Case { m, n, k, trans_a, trans_b, pad, .. } = *case;
    let mut rng = Rng::new(case.seed);
    let a = Operand::<TA>::random(&mut rng, m, k, trans_a, pad);
    let b = Operand::<TB>::random(&mut rng, k, n, trans_b, pad);
    compare(gemm, case, &mut rng, (&a, &b), (&a, &b))
}

/// As [`check`], for a plan of bf16 precision: the reference multiplies the
/// operands rounded to bf16 (exactly what the kernel must multiply), and the
/// bound is the same f32 accumulation bound.
pub fn check_bf16<TA: TestElem, TB: TestElem>(gemm: &Gemm, case: &Case) -> Result<(), String> {
    let Case { m, n, k, trans_a, trans_b, pad, .. } = *case;
    let mut rng = Rng::new(case.seed);
    let a = Operand::<TA>::random(&mut rng, m, k, trans_a, pad);
    let b = Operand::<TB>::random(&mut rng, k, n, trans_b, pad);
    compare(gemm, case, &mut rng, (&a, &b), (&a.rounded(), &b.rounded()))
}

/// Runs `gemm` on `ops` and the f64 reference on `reference` (the same
/// values, or what the kernel must see of them), element by element.
fn compare<TA: TestElem, TB: TestElem, RA: TestElem, RB: TestElem>(
    gemm: &Gemm,
    case: &Case,
    rng: &mut Rng,
    (a, b): (&Operand<TA>, &Operand<TB>),
    (ra, rb): (&Operand<RA>, &Operand<RB>),
) -> Result<(), String> {
    let Case { m, n, k, pad, alpha, beta, .. } = *case;
    let ldc = n + pad;
    let sentinel = -12345.0f32;
    let mut c0: Vec<f32> = (0..m * ldc)
        .map(|idx| {
            if idx % ldc >= n {
                sentinel
            } else if beta == 0.0 {
                f32::NAN
            } else {
                rng.uniform()
            }
        })
        .collect();
    if m * ldc == 0 {
        c0.clear();
    }
    let mut got = c0.clone();
    let mut want = c0.clone();
    let err = |e: kernels::KernelError| e.to_string();
    gemm.run(alpha, a.view(), b.view(), beta, MatMut::new(&mut got, m, n, ldc).map_err(err)?).map_err(err)?;
    naive::sgemm(alpha, ra.view(), rb.view(), beta, MatMut::new(&mut want, m, n, ldc).map_err(err)?).map_err(err)?;

    let (av, bv) = (ra.view(), rb.view());
    let kc = gemm.blocking().kc;
    let u = f32::EPSILON as f64 / 2.0;
    for i in 0..m {
        for j in 0..ldc {
            let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
            if j >= n {
                if g.to_bits() != sentinel.to_bits() {
                    return Err(format!("{case:?}: wrote C padding at ({i}, {j})"));
                }
                continue;
            }
            let dot_abs: f64 = (0..k).map(|p| (av.get(i, p) as f64 * bv.get(p, j) as f64).abs()).sum();
            let c_abs = if beta == 0.0 { 0.0 } else { (beta as f64 * c0[i * ldc + j] as f64).abs() };
            let magnitude = alpha.abs() as f64 * dot_abs + c_abs;
            // The kernel's own bound plus the reference's single rounding to f32.
            let tol = error_bound(k, kc, magnitude) + u * (w as f64).abs();
            if !g.is_finite() || (g as f64 - w as f64).abs() > tol {
                return Err(format!(
                    "{case:?} [{}]: C[{i}][{j}] = {g}, reference {w}, |diff| {:e} > bound {tol:e}",
                    gemm.kernel().isa,
                    (g as f64 - w as f64).abs()
                ));
            }
        }
    }
    Ok(())
}

/// The edges of `gemm`'s own blocking: K one below, at and one above KC, M
/// one above MC, M and N just off the register tile; every transpose form.
pub fn block_edge_cases(gemm: &Gemm) -> Vec<Case> {
    let Blocking { mc, kc, .. } = gemm.blocking();
    let (mr, nr) = (gemm.kernel().mr, gemm.kernel().nr);
    let shapes = [(mr + 1, nr - 1, kc - 1), (mr, nr + 1, kc), (2 * mr - 1, nr, kc + 1), (mc + 1, nr + 1, 5)];
    let mut cases = Vec::new();
    for (i, (m, n, k)) in shapes.into_iter().enumerate() {
        for t in 0..4 {
            let (trans_a, trans_b) = (t & 1 == 1, t & 2 == 2);
            cases.push(Case { m, n, k, trans_a, trans_b, pad: 2, alpha: 1.5, beta: 0.5, seed: (4 * i + t) as u64 });
        }
    }
    cases
}
