//! Every microkernel this CPU runs, single-threaded, against the f64
//! reference over a few thousand shapes. No test harness (libtest spawns
//! threads, which hang under qemu-aarch64): it prints `N passed, N failed`
//! and exits non-zero on any failure.
//!
//! This is how the NEON kernel is tested on x86-64 hosts: `.ci/neon`
//! cross-compiles it for aarch64 and runs it under qemu. On aarch64 it fails
//! if NEON is not among the kernels it checked.

mod common;

use common::{block_edge_cases, check, Case, Rng};
use half::{bf16, f16};
use kernels::gemm::{Blocking, Gemm};
use kernels::Isa;

fn main() {
    let (mut passed, mut failed) = (0usize, 0usize);
    let isas = Isa::available();
    println!("kernels on this CPU: {}", isas.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "));
    if cfg!(target_arch = "aarch64") && !isas.contains(&Isa::Neon) {
        println!("FAIL: aarch64 without NEON detected");
        failed += 1;
    }
    for isa in isas {
        let default = Gemm::with_isa(isa).expect("available").single_threaded();
        let (mr, nr) = (default.kernel().mr, default.kernel().nr);
        // Tiny blocks, so that small shapes cross every MC, KC and NC edge.
        let tiny = default.with_blocking(Blocking { mc: 2 * mr, kc: 5, nc: 2 * nr }).expect("valid blocking");
        let edges = [1, 2, 3, mr - 1, mr, mr + 1, nr - 1, nr, nr + 1, 2 * mr + 3, 2 * nr + 1, 7, 13, 31];
        let mut rng = Rng::new(isa as u64 + 1);
        let mut run = |gemm: &Gemm, case: Case, dtypes: usize| {
            let result = match dtypes {
                0 => check::<f32, f32>(gemm, &case),
                1 => check::<bf16, f32>(gemm, &case),
                2 => check::<f32, f16>(gemm, &case),
                _ => check::<f16, bf16>(gemm, &case),
            };
            match result {
                Ok(()) => passed += 1,
                Err(msg) => {
                    failed += 1;
                    println!("FAIL {msg}");
                }
            }
        };
        for i in 0..600 {
            let pick = |rng: &mut Rng| {
                if rng.below(3) == 0 {
                    1 + rng.below(40)
                } else {
                    edges[rng.below(edges.len())]
                }
            };
            let case = Case {
                m: pick(&mut rng),
                n: pick(&mut rng),
                k: [1, 4, 5, 6, 10, 11, 16, 33][rng.below(8)],
                trans_a: rng.below(2) == 1,
                trans_b: rng.below(2) == 1,
                pad: [0, 0, 3][rng.below(3)],
                alpha: [1.0, -0.5, 2.25][rng.below(3)],
                beta: [0.0, 0.0, 1.0, 0.7][rng.below(4)],
                seed: rng.next_u64(),
            };
            run(if i % 2 == 0 { &tiny } else { &default }, case, i % 4);
        }
        // The default blocking's own edges.
        for (i, case) in block_edge_cases(&default).into_iter().enumerate() {
            run(&default, case, i % 4);
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
