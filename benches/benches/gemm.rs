//! criterion benches for SGEMM: `cargo bench -p benches --bench gemm`.
//!
//! Throughput is reported in elements/s where one element is one FLOP, so
//! "Gelem/s" reads as GFLOP/s. The machine's measured FMA peak is printed
//! first, for the "% of peak" reading (`gemm-compare` prints it directly).
//!
//! Groups:
//! - `sgemm/<shape>`: hone (f32 and bf16 precision) and the `gemm` crate on the kernels issue's shapes;
//! - `microkernel`: each available microkernel (f32 and bf16) alone on L1-resident panels;
//! - `packing`: bf16 and f16 weights widened while packing, against f32;
//! - `naive`: the f64 reference loop, to show what blocking buys.

use benches::{Operands, Shape, ISSUE_SHAPES};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};
use kernels::gemm::{naive, Gemm, MatMut, MatRef, Microkernel, Precision};
use kernels::Isa;
use std::time::Duration;

fn sgemm(c: &mut Criterion) {
    let threads = rayon::current_num_threads();
    eprintln!(
        "measured FMA peak: {:.1} GFLOP/s per core, {:.1} GFLOP/s on {threads} threads",
        kernels::peak_gflops_per_core(),
        kernels::peak_gflops(threads)
    );
    if let Some(p) = kernels::peak_bf16_gflops(threads) {
        eprintln!("measured bf16 peak of the selected bf16 kernel: {p:.1} GFLOP/s on {threads} threads");
    }
    let gemm = Gemm::new().expect("kernel");
    for shape in ISSUE_SHAPES {
        let mut group = c.benchmark_group(format!("sgemm/{}", shape.label().replace(' ', "_")));
        group.throughput(Throughput::Elements(shape.flops() as u64));
        group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
        let mut ops = Operands::new(shape);
        group.bench_function(format!("hone-{}", gemm.kernel().isa), |bench| bench.iter(|| ops.run_hone(&gemm)));
        group.bench_function("gemm-crate", |bench| bench.iter(|| ops.run_reference(threads)));
        // bf16 precision: AMX, VDPBF16PS or rounding while packing, whichever this CPU runs.
        let bf16 = gemm.with_precision(Precision::Bf16);
        let name = bf16.bf16_kernel().map_or("round", |k| k.name);
        group.bench_function(format!("hone-bf16-{name}"), |bench| bench.iter(|| ops.run_hone(&bf16)));
        group.finish();
    }
}

fn microkernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("microkernel");
    group.sample_size(20).measurement_time(Duration::from_secs(2));
    for isa in Isa::available() {
        let mk = Microkernel::for_isa(isa).expect("available");
        let k = 256;
        let a = vec![0.5f32; k * mk.mr];
        let b = vec![0.25f32; k * mk.nr];
        let mut tile = vec![0.0f32; mk.mr * mk.nr];
        group.throughput(Throughput::Elements((2 * k * mk.mr * mk.nr) as u64));
        let id = BenchmarkId::new(format!("{isa}-{}x{}", mk.mr, mk.nr), format!("k={k}"));
        group.bench_function(id, |bench| {
            bench.iter(|| mk.run_tile(k, black_box(&a), black_box(&b), &mut tile, mk.nr, 1.0, 1.0).expect("sizes"))
        });
    }
    // bf16 kernels: `k` counts pair slots (2 bf16 of k each), so k = 128 slots is 256 of k.
    for mk in Microkernel::bf16_kernels() {
        let slots = 128;
        let a = vec![f32::from_bits(0x3f00_3f00); slots * mk.mr]; // pairs of 0.5
        let b = vec![f32::from_bits(0x3e80_3e80); slots * mk.nr]; // pairs of 0.25
        let mut tile = vec![0.0f32; mk.mr * mk.nr];
        group.throughput(Throughput::Elements((2 * 2 * slots * mk.mr * mk.nr) as u64));
        let id = BenchmarkId::new(format!("{}-{}x{}", mk.name, mk.mr, mk.nr), format!("k={}", 2 * slots));
        group.bench_function(id, |bench| {
            bench.iter(|| mk.run_tile(slots, black_box(&a), black_box(&b), &mut tile, mk.nr, 1.0, 1.0).expect("sizes"))
        });
    }
    group.finish();
}

/// `Y = X·Wᵀ` with the weight W (n × k) stored as f32, bf16 or f16.
fn packing(c: &mut Criterion) {
    let (m, k, n) = (512, 768, 3072);
    let gemm = Gemm::new().expect("kernel");
    let x: Vec<f32> = (0..m * k).map(|i| (i % 97) as f32 * 0.01).collect();
    let w32: Vec<f32> = (0..n * k).map(|i| (i % 89) as f32 * 0.01 - 0.4).collect();
    let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
    let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
    let mut y = vec![0.0f32; m * n];
    let mut group = c.benchmark_group("packing/512x768x3072_A·Bᵀ");
    group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    let xv = MatRef::new(&x, m, k, k).unwrap();
    group.bench_function("w-f32", |bench| {
        bench.iter(|| gemm.run(1.0, xv, MatRef::new(&w32, n, k, k).unwrap().t(), 0.0, cm(&mut y, m, n)).unwrap())
    });
    group.bench_function("w-bf16", |bench| {
        bench.iter(|| gemm.run(1.0, xv, MatRef::new(&wb, n, k, k).unwrap().t(), 0.0, cm(&mut y, m, n)).unwrap())
    });
    group.bench_function("w-f16", |bench| {
        bench.iter(|| gemm.run(1.0, xv, MatRef::new(&wh, n, k, k).unwrap().t(), 0.0, cm(&mut y, m, n)).unwrap())
    });
    group.finish();
}

fn naive_reference(c: &mut Criterion) {
    let shape = Shape::new(128, 128, 128);
    let mut ops = Operands::new(shape);
    let gemm = Gemm::new().expect("kernel").single_threaded();
    let mut group = c.benchmark_group("naive/128x128x128");
    group.throughput(Throughput::Elements(shape.flops() as u64));
    group.sample_size(10);
    group.bench_function("naive-f64", |bench| {
        bench.iter(|| {
            let (a, b) = (ops.a_view(), ops.b_view());
            let mut out = vec![0.0f32; 128 * 128];
            naive::sgemm(1.0, a, b, 0.0, cm(&mut out, 128, 128)).unwrap();
            out
        })
    });
    group.bench_function("hone-1-thread", |bench| bench.iter(|| ops.run_hone(&gemm)));
    group.finish();
}

fn cm(y: &mut [f32], m: usize, n: usize) -> MatMut<'_> {
    MatMut::new(y, m, n, n).unwrap()
}

criterion_group!(benches, sgemm, microkernel, packing, naive_reference);
criterion_main!(benches);
