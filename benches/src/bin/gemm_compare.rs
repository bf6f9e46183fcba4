//! Quick table: hone's SGEMM against the `gemm` crate on the issue's shapes,
//! with rayon's default thread count and with one thread, in GFLOP/s and %
//! of this machine's measured FMA peak. Runs in well under a minute.
//!
//! `cargo run --release -p benches --bin gemm-compare [-- --blocking MC,KC,NC] [--bf16]`
//!
//! `--blocking` overrides the kernel's cache blocking, for tuning. `--bf16`
//! times hone's bf16-precision products (`VDPBF16PS` where the CPU has it)
//! against the same f32 reference, and reports % of the measured bf16 peak.
//!
//! Timings alternate hone and reference call by call, so drift (turbo,
//! a noisy neighbour) hits both alike; each figure is a median.

use benches::{median, time, Operands, ISSUE_SHAPES};
use kernels::gemm::{Gemm, Precision};
use kernels::{peak_bf16_gflops, peak_gflops, peak_gflops_per_core};

/// Shapes of at least this many FLOPs count as "large" for the peak target.
const LARGE_FLOPS: f64 = 1e9;
/// Time spent per (shape, thread count), split between hone and the reference.
const BUDGET_S: f64 = 1.2;

fn main() {
    let default_threads = rayon::current_num_threads();
    let gemm = plan_from_args().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    let b = gemm.blocking();
    println!(
        "hone SGEMM, {} microkernel {}x{} (MC={} KC={} NC={}), vs the gemm crate (same operands, same run)",
        gemm.kernel().isa,
        gemm.kernel().mr,
        gemm.kernel().nr,
        b.mc,
        b.kc,
        b.nc
    );
    let bf16 = gemm.precision() == Precision::Bf16;
    let peak = |t: usize| match (bf16, peak_bf16_gflops(t)) {
        (true, Some(p)) => p,
        _ if t == 1 => peak_gflops_per_core(),
        _ => peak_gflops(t),
    };
    if bf16 {
        println!("precision bf16: kernel {}", gemm.bf16_kernel().map_or("round while packing", |k| k.name));
    }
    let peaks = [(default_threads, peak(default_threads)), (1, peak(1))];
    for (t, p) in peaks {
        println!("measured {} peak, {t} thread(s): {p:.1} GFLOP/s", if bf16 { "bf16 dot" } else { "FMA" });
    }
    println!();
    println!(
        "{:<24} {:>3} {:>10} {:>7} {:>10} {:>7}",
        "shape (MxKxN)", "thr", "hone GF/s", "% peak", "gemm GF/s", "ratio"
    );

    let (mut min_ratio, mut min_pct_large) = (f64::INFINITY, f64::INFINITY);
    for shape in ISSUE_SHAPES {
        let mut ops = Operands::new(shape);
        for (threads, peak) in peaks {
            let (hone, reference) = measure(&mut ops, &gemm, threads);
            let gf = |s: f64| shape.flops() / s / 1e9;
            let pct = 100.0 * gf(hone) / peak;
            let ratio = reference / hone;
            min_ratio = min_ratio.min(ratio);
            if shape.flops() >= LARGE_FLOPS {
                min_pct_large = min_pct_large.min(pct);
            }
            println!(
                "{:<24} {threads:>3} {:>10.1} {pct:>6.1}% {:>10.1} {ratio:>6.2}x",
                shape.label(),
                gf(hone),
                gf(reference)
            );
        }
    }
    println!();
    println!("ratio = hone GFLOP/s / gemm GFLOP/s; min_pct_peak is over shapes of >= {LARGE_FLOPS:e} FLOPs");
    println!("min_ratio_vs_gemm={min_ratio:.2} min_pct_peak={min_pct_large:.0}");
}

/// Median seconds per call of hone and of the reference, interleaved.
fn measure(ops: &mut Operands, gemm: &Gemm, threads: usize) -> (f64, f64) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let hone_gemm = if threads == 1 { gemm.single_threaded() } else { *gemm };
    pool.install(|| {
        // Warm up both (page faults, packing buffers, caches), then size the run.
        let first = time(|| ops.run_hone(&hone_gemm)) + time(|| ops.run_reference(threads));
        let reps = ((BUDGET_S / first) as usize).clamp(3, 15);
        let (mut h, mut r) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            h.push(time(|| ops.run_hone(&hone_gemm)));
            r.push(time(|| ops.run_reference(threads)));
        }
        (median(&mut h), median(&mut r))
    })
}

/// The selected kernel, with `--blocking MC,KC,NC` and `--bf16` applied if given.
fn plan_from_args() -> Result<Gemm, String> {
    let mut gemm = Gemm::new().map_err(|e| e.to_string())?;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--bf16" => gemm = gemm.with_precision(Precision::Bf16),
            "--blocking" => {
                let value = args.next().ok_or("--blocking wants MC,KC,NC")?;
                let v: Vec<usize> = value
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--blocking {value}: {e}"))?;
                let [mc, kc, nc] = v[..] else { return Err(format!("--blocking wants MC,KC,NC, got {value}")) };
                gemm = gemm.with_blocking(kernels::gemm::Blocking { mc, kc, nc }).map_err(|e| e.to_string())?;
            }
            _ => return Err("usage: gemm-compare [--blocking MC,KC,NC] [--bf16]".into()),
        }
    }
    Ok(gemm)
}
