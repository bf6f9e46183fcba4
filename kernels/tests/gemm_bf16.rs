//! bf16-precision GEMM (`Precision::Bf16`) against the f64 reference over
//! the bf16-rounded operands, with proptest choosing shapes.
//!
//! Every implementation this CPU has is tested: AMX tiles, the `VDPBF16PS`
//! pair kernel, and rounding while packing for each f32 kernel. Shapes
//! include odd k (a pair padded with zero), k not a multiple of 32 (a tile
//! block padded with zeros), and tiny blockings whose KC is odd (rounded up
//! to the kernel's k step).

mod common;

use common::{cases, check_bf16, Case};
use half::bf16;
use kernels::gemm::{Blocking, Gemm, MatMut, MatRef, Microkernel, Precision};
use kernels::Isa;
use proptest::prelude::*;

/// Every bf16 kernel (on the AVX-512 plan), and rounding on every f32 kernel.
fn bf16_plans() -> Vec<Gemm> {
    let mut plans: Vec<Gemm> = Microkernel::bf16_kernels()
        .into_iter()
        .map(|k| Gemm::with_isa(Isa::Avx512).unwrap().with_bf16_kernel(Some(k)))
        .collect();
    for isa in Isa::available() {
        plans.push(Gemm::with_isa(isa).unwrap().with_bf16_kernel(None));
    }
    plans.into_iter().map(|g| g.with_precision(Precision::Bf16)).collect()
}

fn plans() -> Vec<Gemm> {
    let mut plans = Vec::new();
    for g in bf16_plans() {
        let (mr, nr) = (g.kernel().mr, g.kernel().nr);
        plans.push(g.single_threaded());
        plans.push(g.single_threaded().with_blocking(Blocking { mc: mr, kc: 3, nc: nr }).unwrap());
        plans.push(g.single_threaded().with_blocking(Blocking { mc: 2 * mr, kc: 40, nc: 2 * nr }).unwrap());
    }
    plans
}

fn case() -> impl Strategy<Value = Case> {
    cases((1usize..80, 1usize..110, 1usize..100), vec![0, 3], vec![1.0, -0.75], vec![0.0, 1.0, 0.3])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn bf16_products_match_the_reference_on_rounded_operands(
        case in case(), plan in any::<prop::sample::Index>(), which in 0usize..3,
    ) {
        let plans = plans();
        let gemm = plans[plan.index(plans.len())];
        let result = match which {
            0 => check_bf16::<f32, f32>(&gemm, &case),
            1 => check_bf16::<bf16, f32>(&gemm, &case),
            _ => check_bf16::<f32, bf16>(&gemm, &case),
        };
        result.map_err(TestCaseError::fail)?;
    }
}

#[test]
fn threaded_bf16_matches_one_thread_bit_for_bit() {
    for g in bf16_plans() {
        let name = g.bf16_kernel().map_or(g.kernel().name, |k| k.name);
        let case =
            Case { m: 150, n: 170, k: 301, trans_a: false, trans_b: true, pad: 1, alpha: 1.0, beta: 0.5, seed: 9 };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| check_bf16::<f32, f32>(&g, &case)).unwrap();
        let run = |plan: Gemm| {
            let a: Vec<f32> = (0..150 * 301).map(|i| ((i as u64 * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
            let b: Vec<f32> = (0..170 * 301).map(|i| ((i as u64 * 104729) % 1000) as f32 / 500.0 - 1.0).collect();
            let mut c = vec![0.0f32; 150 * 170];
            let (av, bv) = (MatRef::new(&a, 150, 301, 301).unwrap(), MatRef::new(&b, 170, 301, 301).unwrap().t());
            plan.run(1.0, av, bv, 0.0, MatMut::new(&mut c, 150, 170, 170).unwrap()).unwrap();
            c.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        };
        let one = run(g.single_threaded());
        assert_eq!(one, pool.install(|| run(g)), "{name}");
    }
}

#[test]
fn bf16_rounding_is_visible_and_f32_is_not_rounded() {
    // 1 + 2⁻¹⁰ is not a bf16 value (7 mantissa bits): bf16 precision rounds it to 1.
    let a = [1.0f32 + 1.0 / 1024.0];
    let b = [1.0f32];
    for (precision, want) in [(Precision::F32, 1.0 + 1.0 / 1024.0), (Precision::Bf16, 1.0)] {
        for g in bf16_plans() {
            let mut c = [0.0f32];
            let g = g.with_precision(precision);
            g.run(
                1.0,
                MatRef::new(&a, 1, 1, 1).unwrap(),
                MatRef::new(&b, 1, 1, 1).unwrap(),
                0.0,
                MatMut::new(&mut c, 1, 1, 1).unwrap(),
            )
            .unwrap();
            assert_eq!(c[0], want, "{:?} {precision:?}", g.bf16_kernel().map(|k| k.name));
        }
    }
}

#[test]
fn every_bf16_kernel_the_cpu_has_is_listed() {
    let names: Vec<&str> = Microkernel::bf16_kernels().iter().map(|k| k.name).collect();
    let has = |f: &str| std::env::var("HONE_REQUIRE_KERNELS").is_ok_and(|v| v.split(',').any(|x| x.trim() == f));
    for name in ["amx-bf16", "avx512-bf16"] {
        assert!(
            !has(name) || names.contains(&name),
            "HONE_REQUIRE_KERNELS names {name}, but this CPU offers {names:?}"
        );
    }
    assert_eq!(names.contains(&"avx512-bf16"), std::arch::is_x86_feature_detected!("avx512bf16"));
}
