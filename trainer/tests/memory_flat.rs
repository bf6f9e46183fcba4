//! Resident memory stays flat over a long run. Alone in its own test
//! binary: resident memory is per process, and other tests running in
//! parallel threads would move it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use trainer::train::{train, Length, TrainConfig};

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

static RSS_AT: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

#[test]
fn memory_stays_flat_over_a_long_run() {
    let out = std::env::temp_dir().join(format!("hone-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    fn watch(step: u64) {
        match step {
            50 => RSS_AT[0].store(rss(), Ordering::SeqCst),
            400 => RSS_AT[1].store(rss(), Ordering::SeqCst),
            _ => {}
        }
    }
    let c = TrainConfig {
        data: repo("examples/data/faq_train.jsonl"),
        out: out.clone(),
        length: Length::Steps(400),
        batch_size: 2,
        seq_len: 160,
        lr: 3e-3,
        on_step: Some(watch),
        ..TrainConfig::for_model(repo("tests/fixtures/llama"))
    };
    train(&c, &AtomicBool::new(false)).unwrap();
    let (early, late) = (RSS_AT[0].load(Ordering::SeqCst), RSS_AT[1].load(Ordering::SeqCst));
    let growth = late as i64 - early as i64;
    eprintln!("resident memory at step 50: {} KiB, at step 400: {} KiB", early / 1024, late / 1024);
    assert!(growth < 4 << 20, "resident memory grew by {} KiB over 350 steps", growth / 1024);
}
