//! criterion benches for the row kernels, forward + backward in one call:
//! `cargo bench -p benches --bench nn`.
//!
//! Memory-bound kernels report bytes/s (read + written); attention reports
//! elements/s where one element is one FLOP, so "Gelem/s" reads as GFLOP/s.
//! Each has a `naive` companion where one is cheap (scalar loops, libm exp).

use benches::nn::{cases, Work};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

fn nn(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(case.name.replace(' ', "/"));
        group.throughput(match case.work {
            Work::Bytes(b) => Throughput::Bytes(b),
            Work::Flops(f) => Throughput::Elements(f),
        });
        group.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
        let mut hone = case.hone;
        group.bench_function("hone", |b| b.iter(&mut hone));
        if let Some(mut naive) = case.naive {
            group.bench_function("naive", |b| b.iter(&mut naive));
        }
        group.finish();
    }
}

criterion_group!(benches, nn);
criterion_main!(benches);
