//! SGEMM against the f64 reference, with proptest choosing the shapes.
//!
//! Every microkernel this CPU can run is tested (set `HONE_REQUIRE_KERNELS`
//! to make a missing one an error instead of a skip), over: sizes 1, primes,
//! and one below/at/above each register-tile size and block size; all four
//! transpose combinations; leading dimensions wider than the matrix; alpha
//! and beta in {0, 1, other} with beta = 0 over a C full of NaN; f32, bf16
//! and f16 operands; one thread and several. The tolerance is the derived
//! rounding-error bound of `kernels::gemm::naive::error_bound`.

mod common;

use common::{block_edge_cases, cases, check, Case, Rng};
use half::{bf16, f16};
use kernels::gemm::{Blocking, Gemm, MatMut, MatRef, Microkernel};
use kernels::{Isa, KernelError};
use proptest::prelude::*;

/// Sizes worth hitting: small, primes, and MR/NR/2·MR/2·NR of every kernel ± 1.
fn interesting_sizes() -> Vec<usize> {
    let mut sizes = vec![1, 2, 3, 5, 7, 11, 13, 17, 29, 31, 37, 61];
    for isa in Isa::available() {
        let mk = Microkernel::for_isa(isa).unwrap();
        for k in std::iter::once(mk).chain(Microkernel::narrow_for(mk)) {
            for base in [k.mr, k.nr, 2 * k.mr, 2 * k.nr] {
                sizes.extend([base - 1, base, base + 1]);
            }
        }
    }
    sizes.sort();
    sizes.dedup();
    sizes
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![prop::sample::select(interesting_sizes()), 1usize..80]
}

/// The plans under test: each available kernel with its own blocking and
/// with tiny blocks (so that small shapes cross MC, KC and NC edges too).
fn plans() -> Vec<Gemm> {
    let mut plans = Vec::new();
    for isa in Isa::available() {
        let g = Gemm::with_isa(isa).unwrap();
        let (mr, nr) = (g.kernel().mr, g.kernel().nr);
        plans.push(g.single_threaded());
        plans.push(g.single_threaded().with_blocking(Blocking { mc: mr, kc: 3, nc: nr }).unwrap());
        plans.push(g.single_threaded().with_blocking(Blocking { mc: 3 * mr, kc: 7, nc: 2 * nr }).unwrap());
        // The kernel for few columns, on every shape (the default plans above
        // reach it only when n <= its NR).
        if let Some(narrow) = Microkernel::narrow_for(g.kernel()) {
            let g = Gemm::with_microkernel(narrow).unwrap().single_threaded();
            let (mr, nr) = (narrow.mr, narrow.nr);
            plans.push(g);
            plans.push(g.with_blocking(Blocking { mc: 2 * mr, kc: 5, nc: 2 * nr }).unwrap());
        }
    }
    plans
}

fn case() -> impl Strategy<Value = Case> {
    cases((dim(), dim(), dim()), vec![0, 1, 5], vec![0.0, 1.0, -0.75, 3.5], vec![0.0, 1.0, -2.0, 0.3])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn f32_matches_reference(case in case(), plan in any::<prop::sample::Index>()) {
        let plans = plans();
        let gemm = plans[plan.index(plans.len())];
        check::<f32, f32>(&gemm, &case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn half_precision_operands_match_reference(case in case(), plan in any::<prop::sample::Index>(), which in 0usize..4) {
        let plans = plans();
        let gemm = plans[plan.index(plans.len())];
        let result = match which {
            0 => check::<bf16, bf16>(&gemm, &case),
            1 => check::<f32, bf16>(&gemm, &case),
            2 => check::<f16, f32>(&gemm, &case),
            _ => check::<bf16, f16>(&gemm, &case),
        };
        result.map_err(TestCaseError::fail)?;
    }
}

/// Shapes big enough for the threaded path (2·m·n·k >= 2·100·100·110 > 2^21
/// FLOPs); with small blocks, many tasks and K blocks are involved.
fn threaded_case() -> impl Strategy<Value = Case> {
    (case(), 100usize..220, 100usize..220, 110usize..160).prop_map(|(c, m, n, k)| Case { m, n, k, ..c })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The threaded path is right, and gives the same bits as one thread.
    #[test]
    fn threads_match_reference_and_each_other(case in threaded_case()) {
        for isa in Isa::available() {
            let g = Gemm::with_isa(isa).unwrap();
            let small = Blocking { mc: 2 * g.kernel().mr, kc: 32, nc: 3 * g.kernel().nr };
            let plans = [g, g.with_blocking(small).unwrap()];
            for plan in plans {
                let mut results = Vec::new();
                for threads in [1usize, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let plan = if threads == 1 { plan.single_threaded() } else { plan };
                    pool.install(|| check::<f32, f32>(&plan, &case)).map_err(TestCaseError::fail)?;
                    results.push(pool.install(|| run_bits(&plan, &case)));
                }
                prop_assert!(results.windows(2).all(|w| w[0] == w[1]), "{isa}: results differ across thread counts");
            }
        }
    }
}

/// C's bits after running `case` with `plan` (operands from the case's seed).
fn run_bits(plan: &Gemm, case: &Case) -> Vec<u32> {
    let mut rng = Rng::new(case.seed);
    let a = common::Operand::<f32>::random(&mut rng, case.m, case.k, case.trans_a, case.pad);
    let b = common::Operand::<f32>::random(&mut rng, case.k, case.n, case.trans_b, case.pad);
    let mut c: Vec<f32> = (0..case.m * case.n).map(|i| i as f32 * 0.01).collect();
    let cm = MatMut::new(&mut c, case.m, case.n, case.n).unwrap();
    plan.run(case.alpha, a.view(), b.view(), case.beta, cm).unwrap();
    c.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn block_edges_of_the_default_blocking() {
    for isa in Isa::available() {
        let gemm = Gemm::with_isa(isa).unwrap().single_threaded();
        for case in block_edge_cases(&gemm) {
            check::<f32, f32>(&gemm, &case).unwrap();
        }
    }
}

#[test]
fn wide_product_crosses_nc() {
    // n just above NC: two jc blocks, the second one a single column.
    for isa in Isa::available() {
        let gemm = Gemm::with_isa(isa).unwrap();
        let nc = gemm.blocking().nc;
        let case =
            Case { m: 3, n: nc + 1, k: 9, trans_a: false, trans_b: true, pad: 0, alpha: 1.0, beta: 0.0, seed: 7 };
        check::<f32, bf16>(&gemm, &case).unwrap();
    }
}

#[test]
fn beta_zero_ignores_nan_and_k_zero_scales_c() {
    let gemm = Gemm::new().unwrap();
    let a = [1.0f32; 6];
    let b = [2.0f32; 6];
    let mut c = [f32::NAN; 4];
    gemm.run(
        1.0,
        MatRef::new(&a, 2, 3, 3).unwrap(),
        MatRef::new(&b, 3, 2, 2).unwrap(),
        0.0,
        MatMut::new(&mut c, 2, 2, 2).unwrap(),
    )
    .unwrap();
    assert_eq!(c, [6.0; 4]);
    // k = 0: C <- beta * C, and with beta = 0 the NaN is overwritten, not kept.
    let mut c = [f32::NAN, 1.0];
    let empty: [f32; 0] = [];
    let (a0, b0) = (MatRef::new(&empty, 1, 0, 0).unwrap(), MatRef::new(&empty, 0, 2, 2).unwrap());
    gemm.run(1.0, a0, b0, 0.0, MatMut::new(&mut c, 1, 2, 2).unwrap()).unwrap();
    assert_eq!(c, [0.0, 0.0]);
    let mut c = [4.0f32, 1.0];
    gemm.run(1.0, a0, b0, 0.5, MatMut::new(&mut c, 1, 2, 2).unwrap()).unwrap();
    assert_eq!(c, [2.0, 0.5]);
}

#[test]
fn mismatched_shapes_are_an_error_not_a_panic() {
    let gemm = Gemm::new().unwrap();
    let x = [0.0f32; 12];
    let mut c = [0.0f32; 12];
    let err = gemm
        .run(
            1.0,
            MatRef::new(&x, 3, 4, 4).unwrap(),
            MatRef::new(&x, 3, 4, 4).unwrap(),
            0.0,
            MatMut::new(&mut c, 3, 4, 4).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err, KernelError::ShapeMismatch { a: (3, 4), b: (3, 4), c: (3, 4) });
    assert!(err.to_string().contains("op(A) is 3x4, op(B) is 3x4"));
    let (mr, nr) = (gemm.kernel().mr, gemm.kernel().nr);
    let bad = gemm.with_blocking(Blocking { mc: mr + 1, kc: 8, nc: nr });
    assert!(matches!(bad, Err(KernelError::BadBlocking { .. })));
    assert!(matches!(gemm.with_blocking(Blocking { mc: mr, kc: 0, nc: nr }), Err(KernelError::BadBlocking { .. })));
}

#[test]
fn kernel_names_and_support() {
    assert!(matches!(Isa::from_name("sse9"), Err(KernelError::UnknownKernel { .. })));
    assert_eq!(Isa::from_name(" AVX512 ").unwrap(), Isa::Avx512);
    for isa in Isa::ALL {
        assert_eq!(Microkernel::for_isa(isa).is_ok(), isa.is_supported(), "{isa}");
    }
    #[cfg(target_arch = "x86_64")]
    assert_eq!(Microkernel::for_isa(Isa::Neon).err(), Some(KernelError::UnsupportedKernel { isa: "neon" }));
}

/// CI names the kernels its CPU must run (from /proc/cpuinfo), so a broken
/// feature detection cannot quietly reduce the suite to the scalar kernel.
#[test]
fn required_kernels_are_available() {
    let Ok(required) = std::env::var("HONE_REQUIRE_KERNELS") else { return };
    for name in required.split(',').filter(|s| !s.trim().is_empty()) {
        let isa = Isa::from_name(name).unwrap();
        assert!(isa.is_supported(), "HONE_REQUIRE_KERNELS names {isa}, which this CPU does not run");
    }
}

/// A product into uninitialised memory (`MatMut::uninit`, β = 0) writes
/// every element of C: the same bits as into a C of NaNs, for every plan
/// (edge tiles, several K and N blocks, the narrow kernel) and on two
/// threads; a β that would read C is refused.
#[test]
fn uninitialised_c_is_written_whole_and_never_read() {
    use std::mem::MaybeUninit;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let threaded: Vec<Gemm> = Isa::available().into_iter().map(|isa| Gemm::with_isa(isa).unwrap()).collect();
    for plan in plans().into_iter().chain(threaded) {
        for (m, k, n) in [(1, 1, 1), (37, 50, 61), (130, 140, 170), (9, 0, 5)] {
            let case = Case { m, n, k, trans_a: m % 2 == 0, trans_b: true, pad: 1, alpha: -0.75, beta: 0.0, seed: 3 };
            let mut rng = Rng::new(case.seed);
            let a = common::Operand::<f32>::random(&mut rng, m, k, case.trans_a, case.pad);
            let b = common::Operand::<f32>::random(&mut rng, k, n, case.trans_b, case.pad);
            let mut nan = vec![f32::NAN; m * n];
            pool.install(|| plan.run(case.alpha, a.view(), b.view(), 0.0, MatMut::new(&mut nan, m, n, n).unwrap()))
                .unwrap();
            let mut out: Vec<f32> = Vec::with_capacity(m * n);
            let c = MatMut::uninit(&mut out.spare_capacity_mut()[..m * n], m, n, n).unwrap();
            pool.install(|| plan.run(case.alpha, a.view(), b.view(), 0.0, c)).unwrap();
            // SAFETY: the product wrote all m * n elements (what this test checks
            // is that the values are those of the initialised run).
            unsafe { out.set_len(m * n) };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&out), bits(&nan), "{} {m}x{k}x{n}", plan.kernel().name);
        }
    }
    let mut spare = [MaybeUninit::<f32>::uninit(); 4];
    let x = [1.0f32; 4];
    let (a, b) = (MatRef::new(&x, 2, 2, 2).unwrap(), MatRef::new(&x, 2, 2, 2).unwrap());
    let err = Gemm::new().unwrap().run(1.0, a, b, 1.0, MatMut::uninit(&mut spare, 2, 2, 2).unwrap()).unwrap_err();
    assert!(err.to_string().contains("uninitialised"), "{err}");
}

/// `run_plus`: two products into one C, the second's k appended to the
/// first's, against the f64 sum of both, for every plan, on two threads, in
/// f32 and in bf16 precision (on operands rounded to bf16), with C
/// initialised (any beta) or not (beta = 0), and with a first k that is not
/// a multiple of a bf16 kernel's k step (the fallback of two products).
#[test]
fn run_plus_sums_both_products() {
    use half::bf16;
    use kernels::gemm::Precision;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let mut plans: Vec<Gemm> = plans();
    plans.extend(Isa::available().into_iter().map(|isa| Gemm::with_isa(isa).unwrap()));
    plans.push(Gemm::new().unwrap().with_precision(Precision::Bf16));
    plans.push(Gemm::new().unwrap().with_precision(Precision::Bf16).single_threaded());
    let mut rng = Rng::new(11);
    for plan in plans {
        let bf = plan.precision() == Precision::Bf16;
        let round = |x: f32| if bf { bf16::from_f32(x).to_f32() } else { x };
        // (9, 33, 5, 170): an odd k on a bf16 pair kernel (n > 128 takes the
        // wide tile), so the two products run apart.
        let shapes =
            [(1, 1, 1, 1), (37, 64, 16, 61), (130, 576, 16, 170), (9, 33, 5, 50), (20, 7, 3, 16), (9, 33, 5, 170)];
        for (m, k1, k2, n) in shapes {
            let v = |rng: &mut Rng, len: usize| (0..len).map(|_| rng.uniform() - 0.5).collect::<Vec<f32>>();
            let (a, b, a2, b2) = (v(&mut rng, m * k1), v(&mut rng, k1 * n), v(&mut rng, m * k2), v(&mut rng, k2 * n));
            let c0 = v(&mut rng, m * n);
            for (beta, init) in [(0.0f32, false), (0.0, true), (1.0, true), (0.5, true)] {
                let (alpha, mut mag) = (0.75f32, vec![0.0f64; m * n]);
                let want: Vec<f64> = (0..m * n)
                    .map(|e| {
                        let (i, j) = (e / n, e % n);
                        let t1 = (0..k1).map(|p| round(a[i * k1 + p]) as f64 * round(b[p * n + j]) as f64);
                        let t2 = (0..k2).map(|p| round(a2[i * k2 + p]) as f64 * round(b2[p * n + j]) as f64);
                        let terms: Vec<f64> = t1.chain(t2).collect();
                        mag[e] =
                            alpha as f64 * terms.iter().map(|t| t.abs()).sum::<f64>() + (beta * c0[e]).abs() as f64;
                        alpha as f64 * terms.iter().sum::<f64>() + beta as f64 * c0[e] as f64
                    })
                    .collect();
                let (av, bv) = (MatRef::new(&a, m, k1, k1).unwrap(), MatRef::new(&b, k1, n, n).unwrap());
                let (a2v, b2v) = (MatRef::new(&a2, m, k2, k2).unwrap(), MatRef::new(&b2, k2, n, n).unwrap());
                let got: Vec<f32> = if init {
                    let mut c = c0.clone();
                    let cm = MatMut::new(&mut c, m, n, n).unwrap();
                    pool.install(|| plan.run_plus(alpha, av, bv, a2v, b2v, beta, cm)).unwrap();
                    c
                } else {
                    let mut out: Vec<f32> = Vec::with_capacity(m * n);
                    let cm = MatMut::uninit(&mut out.spare_capacity_mut()[..m * n], m, n, n).unwrap();
                    pool.install(|| plan.run_plus(alpha, av, bv, a2v, b2v, beta, cm)).unwrap();
                    // SAFETY: a beta = 0 product writes all m * n elements.
                    unsafe { out.set_len(m * n) };
                    out
                };
                for e in 0..m * n {
                    let bound = kernels::gemm::naive::error_bound(k1 + k2, 1, mag[e]) + f32::MIN_POSITIVE as f64;
                    assert!(
                        (got[e] as f64 - want[e]).abs() <= bound,
                        "{} bf16={bf} {m}x({k1}+{k2})x{n} beta={beta} init={init} at {e}: {} vs {}",
                        plan.kernel().name,
                        got[e],
                        want[e]
                    );
                }
            }
        }
    }
}
