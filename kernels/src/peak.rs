//! How fast can this CPU multiply-add? A measured answer, so that every
//! benchmark can report "% of this machine's peak" instead of comparing
//! against a datasheet number the machine may never reach (turbo limits,
//! AVX-512 frequency offsets, a shared virtual core).
//!
//! The probe runs `CHAINS` independent FMA dependency chains in registers.
//! An FMA has a latency of about 4 cycles and most cores issue two per cycle,
//! so at least 8 independent chains are needed to fill the pipes; 12 leave
//! margin and still fit in AVX2's 16 registers. No memory is touched.

use crate::isa::{self, Isa, Simd};
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Independent accumulator chains in the probe loop.
const CHAINS: usize = 12;

/// How long one probe measures.
const PROBE_TIME: Duration = Duration::from_millis(40);

/// The probe loop, written once over `Simd`; instantiated per ISA inside
/// each ISA's `#[target_feature]` wrapper. Returns a value that depends on
/// every FMA so that none can be optimised away.
///
/// # Safety
/// The CPU must support `S`'s instructions.
#[inline(always)]
pub(crate) unsafe fn fma_probe_body<S: Simd>(iters: usize) -> f32 {
    // SAFETY: the caller guarantees S's ISA is available.
    unsafe {
        let x = S::splat(black_box(0.999_999));
        let y = S::splat(black_box(1.0e-6));
        let mut acc = [S::splat(black_box(1.0)); CHAINS];
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = S::fma(*a, x, y);
            }
        }
        acc.iter().map(|&a| S::sum(a)).sum()
    }
}

/// Floats per register of `isa`.
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Scalar => 1,
        Isa::Avx2 => 8,
        Isa::Avx512 => 16,
        Isa::Neon => 4,
    }
}

fn run_probe(isa: Isa, iters: usize) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => isa::avx512::fma_probe(iters),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => isa::avx2::fma_probe(iters),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => isa::neon::fma_probe(iters),
        _ => isa::scalar::fma_probe(iters),
    }
}

/// GFLOP/s one thread reaches with `isa`'s FMAs (see [`measure`]).
fn probe_gflops(isa: Isa) -> f64 {
    measure(|iters| run_probe(isa, iters), CHAINS * lanes(isa) * 2)
}

/// GFLOP/s of `run(iters)`, which does `flops_per_iter` per iteration: best
/// of three runs of about [`PROBE_TIME`] each.
fn measure(run: impl Fn(usize) -> f32, flops_per_iter: usize) -> f64 {
    // Calibrate: find an iteration count that takes about PROBE_TIME.
    let mut iters = 1 << 14;
    loop {
        let t = Instant::now();
        black_box(run(iters));
        let dt = t.elapsed();
        if dt >= PROBE_TIME / 8 || iters >= 1 << 30 {
            iters = ((iters as f64) * PROBE_TIME.as_secs_f64() / dt.as_secs_f64().max(1e-9)) as usize;
            break;
        }
        iters *= 4;
    }
    let flops = (iters * flops_per_iter) as f64;
    (0..3)
        .map(|_| {
            let t = Instant::now();
            black_box(run(iters));
            flops / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// Measured FP32 FMA peak of one core, in GFLOP/s, with the best ISA this
/// CPU has (whatever `HONE_KERNEL` says). Measured once (~0.2 s), then cached.
pub fn peak_gflops_per_core() -> f64 {
    static PEAK: OnceLock<f64> = OnceLock::new();
    *PEAK.get_or_init(|| probe_gflops(Isa::best()))
}

/// Measured FP32 FMA peak of `threads` cores working at once, in GFLOP/s:
/// the probe runs on `threads` OS threads together, so all-core frequency
/// limits are included. `threads = 1` is [`peak_gflops_per_core`].
pub fn peak_gflops(threads: usize) -> f64 {
    let threads = threads.max(1);
    if threads == 1 {
        return peak_gflops_per_core();
    }
    let isa = Isa::best();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || probe_gflops(isa))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    })
}

/// [`peak_gflops`] on the threads of the current rayon pool, all at once
/// (`rayon::broadcast`): the threads the parallel kernels run on, with no
/// other thread competing for the cores. Probe threads spawned beside the
/// pool share the cores with its workers, which spin for a while after
/// their last job; on a 2-core machine that read as low as 56% of the peak.
pub fn pool_peak_gflops() -> f64 {
    let isa = Isa::best();
    rayon::broadcast(|_| probe_gflops(isa)).into_iter().sum()
}

/// A probe loop (`run(iters)`) and the FLOPs of one of its iterations.
type Probe = (fn(usize) -> f32, usize);

/// The bf16 probe of the bf16 kernel hone uses, and its FLOPs per iteration.
#[cfg(target_arch = "x86_64")]
fn bf16_probe() -> Option<Probe> {
    let kernel = crate::gemm::Microkernel::bf16_selected().ok().flatten()?;
    Some(if kernel.name == "amx-bf16" {
        (isa::amx::tile_probe as fn(usize) -> f32, isa::amx::PROBE_FLOPS_PER_ITER)
    } else {
        (isa::avx512_bf16::dpbf16_probe as fn(usize) -> f32, isa::avx512_bf16::PROBE_FLOPS_PER_ITER)
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_probe() -> Option<Probe> {
    None
}

/// Measured peak of the bf16 kernel hone uses
/// ([`crate::gemm::Microkernel::bf16_selected`]) on `threads` cores at once,
/// in GFLOP/s: AMX tile products (`TDPBF16PS`) or `VDPBF16PS`, a
/// multiply-add counted as 2 FLOPs. `None` where bf16 products round while
/// packing and run at the FP32 FMA peak. The "100%" of `--precision bf16`.
pub fn peak_bf16_gflops(threads: usize) -> Option<f64> {
    let (run, flops) = bf16_probe()?;
    let one = move || measure(run, flops);
    Some(std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(one)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    }))
}

/// [`peak_bf16_gflops`] on the threads of the current rayon pool (see [`pool_peak_gflops`]).
pub fn pool_peak_bf16_gflops() -> Option<f64> {
    let (run, flops) = bf16_probe()?;
    Some(rayon::broadcast(|_| measure(run, flops)).into_iter().sum())
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_is_positive_and_finite() {
        let p = super::peak_gflops_per_core();
        assert!(p.is_finite() && p > 0.0, "{p}");
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let p = pool.install(super::pool_peak_gflops);
        assert!(p.is_finite() && p > 0.0, "{p}");
    }
}
