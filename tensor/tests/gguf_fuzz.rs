//! GGUF headers with random damage (flipped bytes, truncation, absurd
//! counts and lengths) are refused with an error naming the file, or read;
//! never a panic, an out-of-bounds read or a huge allocation.

use proptest::prelude::*;
use tensor::gguf::GgufFile;

/// A small valid GGUF v3 file: two metadata entries and one 2×3 F32 tensor.
fn valid() -> Vec<u8> {
    let s = |b: &mut Vec<u8>, x: &str| {
        b.extend((x.len() as u64).to_le_bytes());
        b.extend(x.as_bytes());
    };
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    s(&mut b, "general.architecture");
    b.extend(8u32.to_le_bytes());
    s(&mut b, "llama");
    s(&mut b, "tokenizer.ggml.tokens");
    b.extend(9u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    s(&mut b, "a");
    s(&mut b, "b");
    s(&mut b, "w");
    b.extend(2u32.to_le_bytes());
    b.extend(3u64.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    (0..6).for_each(|i| b.extend((i as f32).to_le_bytes()));
    b
}

fn path(tag: u64) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hone-gguf-fuzz-{}-{tag}.gguf", std::process::id()))
}

#[test]
fn the_valid_file_reads_back() {
    let p = path(0);
    std::fs::write(&p, valid()).unwrap();
    let g = GgufFile::open(&p).unwrap();
    assert_eq!(g.get("general.architecture").unwrap().as_str(), Some("llama"));
    assert_eq!(g.tensor("w").unwrap().shape(), [2, 3]);
    assert_eq!(g.tensor("w").unwrap().to_f32_vec(), [0., 1., 2., 3., 4., 5.]);
    let e = g.tensor("nope").unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains(".gguf"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn damaged_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                                 cut in any::<prop::sample::Index>(), truncate: bool, tag in 1u64..1_000_000) {
        let mut b = valid();
        for (i, v) in flips {
            let at = i.index(b.len());
            b[at] = v;
        }
        if truncate {
            b.truncate(cut.index(b.len() + 1));
        }
        let p = path(tag);
        std::fs::write(&p, &b).unwrap();
        match GgufFile::open(&p) {
            Ok(g) => {
                for t in g.tensors.clone() {
                    let _ = g.tensor(&t.name);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains(p.file_name().unwrap().to_str().unwrap()), "{}", e),
        }
        let _ = std::fs::remove_file(&p);
    }
}
