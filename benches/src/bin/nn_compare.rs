//! A table of the row kernels (forward + backward) against their naive
//! references, timed alternately in the same run: `cargo run --release -p benches --bin nn-compare`.

use benches::nn::{cases, Work};
use benches::{median, time};

fn main() {
    let threads = rayon::current_num_threads();
    let peak = kernels::peak_gflops(threads);
    println!("threads: {threads}, measured FMA peak {peak:.1} GFLOP/s, kernel isa: {}", kernels::Isa::best());
    // The bandwidth ceiling for the memory-bound rows: a 256 MiB copy (bytes read + written).
    let src = vec![1.0f32; 64 << 20];
    let mut dst = vec![0.0f32; 64 << 20];
    let mut copies: Vec<f64> =
        (0..5).map(|_| time(|| std::hint::black_box(&mut dst).copy_from_slice(std::hint::black_box(&src)))).collect();
    let copy_gbs = 2.0 * 4.0 * src.len() as f64 / median(&mut copies) / 1e9;
    println!("memory copy (one thread): {copy_gbs:.1} GB/s read + written");
    drop((src, dst));
    println!("| kernel (fwd+bwd) | hone ms | throughput | naive ms | naive/hone |");
    println!("|---|---|---|---|---|");
    for mut case in cases() {
        (case.hone)();
        let (mut h, mut n) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            h.push(time(&mut case.hone));
            if let Some(naive) = case.naive.as_mut() {
                n.push(time(naive));
            }
        }
        let hs = median(&mut h);
        let rate = match case.work {
            Work::Bytes(b) => format!("{:.1} GB/s", b as f64 / hs / 1e9),
            Work::Flops(f) => {
                format!("{:.1} GFLOP/s ({:.0}% of peak)", f as f64 / hs / 1e9, 100.0 * f as f64 / hs / 1e9 / peak)
            }
        };
        let (ns, ratio) = if n.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            let ns = median(&mut n);
            (format!("{:.2}", ns * 1e3), format!("{:.1}×", ns / hs))
        };
        println!("| {} | {:.2} | {rate} | {ns} | {ratio} |", case.name, hs * 1e3);
    }
}
