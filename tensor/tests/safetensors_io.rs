//! safetensors reading and writing: round trips (checked by the reference
//! `safetensors` crate), zero-copy mapping, sharded models, and every kind
//! of bad file, each asserting the specific error and that it names the
//! file and tensor.

use half::{bf16, f16};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use tensor::safetensors::{save, SafetensorsFile, Weights};
use tensor::{DType, Tensor, TensorError};

/// A fresh empty directory under the system temp dir.
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir =
        std::env::temp_dir().join(format!("hone-st-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file made of an explicit header (as written, no padding) and data bytes.
fn raw_file(header: &str, data: &[u8]) -> PathBuf {
    let path = temp_dir().join("raw.safetensors");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_err(path: &PathBuf) -> TensorError {
    SafetensorsFile::open(path).expect_err("should be refused")
}

#[test]
fn round_trip_of_every_dtype_and_a_strided_view() {
    let dir = temp_dir();
    let a = Tensor::from_vec((0..12).map(|x| x as f32 * 0.5).collect(), &[3, 4]).unwrap();
    let at = a.transpose(0, 1).unwrap(); // saved as its contiguous copy
    let b = Tensor::from_bf16([1.0f32, -2.5, 3.25].map(bf16::from_f32).to_vec(), &[3]).unwrap();
    let h = Tensor::from_f16([0.5f32, 65504.0].map(f16::from_f32).to_vec(), &[1, 2]).unwrap();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let path = dir.join("model.safetensors");
    save(&path, &[("a", &a), ("a.t", &at), ("b", &b), ("h", &h)], &meta).unwrap();

    let file = SafetensorsFile::open(&path).unwrap();
    assert_eq!(file.names().collect::<Vec<_>>(), ["a", "a.t", "b", "h"]);
    assert_eq!(file.metadata(), &meta);
    for (name, want) in [("a", &a), ("a.t", &at), ("b", &b), ("h", &h)] {
        let got = file.tensor(name).unwrap();
        assert!(got.is_mapped(), "{name} should be a view into the map");
        assert_eq!((got.shape(), got.dtype()), (want.shape(), want.dtype()));
        assert_eq!(got.to_f32_vec(), want.to_f32_vec(), "{name}");
    }
    // The reference reader accepts what we wrote and sees the same bytes.
    let bytes = std::fs::read(&path).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let at_ref = reference.tensor("a.t").unwrap();
    assert_eq!(at_ref.shape(), [4, 3]);
    assert_eq!(at_ref.data(), bytemuck::cast_slice::<f32, u8>(&at.to_f32_vec()));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn misaligned_data_is_copied_not_mapped() {
    // Pad the header so the data section starts at an odd byte.
    let mut header = r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.to_string();
    while (8 + header.len()).is_multiple_of(2) {
        header.push(' ');
    }
    let data: Vec<u8> = [1.5f32, -3.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let t = SafetensorsFile::open(raw_file(&header, &data)).unwrap().tensor("x").unwrap();
    assert!(!t.is_mapped());
    assert_eq!(t.to_f32_vec(), [1.5, -3.0]);
}

#[test]
fn truncated_files() {
    let dir = temp_dir();
    let short = dir.join("short.safetensors");
    std::fs::write(&short, [1, 2, 3]).unwrap();
    let e = open_err(&short);
    assert!(matches!(e, TensorError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("short.safetensors"));

    // Header length larger than the file.
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&short, &bytes).unwrap();
    assert!(matches!(open_err(&short), TensorError::Truncated { .. }));

    // A good file with its last bytes cut off: the last tensor reaches past the end.
    let path = dir.join("cut.safetensors");
    let t = Tensor::from_vec(vec![1.0; 16], &[4, 4]).unwrap();
    save(&path, &[("w", &t)], &BTreeMap::new()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let e = open_err(&path);
    assert!(matches!(&e, TensorError::BadOffsets { tensor, .. } if tensor == "w"), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn header_errors() {
    let mut huge = (200_000_000u64).to_le_bytes().to_vec();
    huge.extend_from_slice(&[b' '; 16]);
    let path = temp_dir().join("huge.safetensors");
    std::fs::write(&path, huge).unwrap();
    assert!(matches!(open_err(&path), TensorError::BadHeader { detail, .. } if detail.contains("limit")));

    assert!(matches!(open_err(&raw_file("{not json", &[])), TensorError::BadHeader { .. }));
    assert!(matches!(open_err(&raw_file("[1, 2]", &[])), TensorError::BadHeader { .. }));
    let no_shape = r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#;
    let e = open_err(&raw_file(no_shape, &[0; 4]));
    assert!(
        matches!(&e, TensorError::BadHeader { detail, .. } if detail.contains("\"w\"") && detail.contains("shape")),
        "{e}"
    );
    let negative = r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#;
    assert!(matches!(open_err(&raw_file(negative, &[0; 4])), TensorError::BadHeader { .. }));
}

#[test]
fn offset_errors_name_the_tensor() {
    let out_of_range = r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let e = open_err(&raw_file(out_of_range, &[0; 8]));
    assert!(matches!(&e, TensorError::BadOffsets { tensor, .. } if tensor == "w"), "{e}");

    let backwards = r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#;
    assert!(matches!(open_err(&raw_file(backwards, &[0; 8])), TensorError::BadOffsets { .. }));

    let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let e = open_err(&raw_file(overlap, &[0; 12]));
    assert!(
        matches!(&e, TensorError::BadOffsets { tensor, detail, .. } if tensor == "b" && detail.contains("overlap")),
        "{e}"
    );

    let mismatch = r#"{"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}}"#;
    let e = open_err(&raw_file(mismatch, &[0; 8]));
    assert!(matches!(&e, TensorError::SizeMismatch { tensor, expected: 12, actual: 8, .. } if tensor == "w"), "{e}");
    let overflow = r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
    assert!(matches!(open_err(&raw_file(overflow, &[0; 8])), TensorError::SizeMismatch { .. }));
}

#[test]
fn dtype_errors() {
    let unknown = r#"{"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,8]}}"#;
    let e = open_err(&raw_file(unknown, &[0; 8]));
    assert!(
        matches!(&e, TensorError::UnsupportedDtype { tensor, dtype, .. } if tensor == "w" && dtype == "Q4_K"),
        "{e}"
    );

    // A known but non-float dtype opens (the file is valid) and is refused when asked for.
    let ints = r#"{"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#;
    let file = SafetensorsFile::open(raw_file(ints, &[0; 20])).unwrap();
    assert_eq!(file.tensor("w").unwrap().dtype(), DType::F32);
    assert!(matches!(file.tensor("ids"), Err(TensorError::UnsupportedDtype { .. })));
    let e = file.tensor("nope").unwrap_err();
    assert!(matches!(&e, TensorError::MissingTensor { tensor, .. } if tensor == "nope"), "{e}");
}

#[test]
fn sharded_models() {
    let dir = temp_dir();
    let a = Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap();
    let b = Tensor::from_vec(vec![3.0], &[1]).unwrap();
    save(dir.join("model-00001-of-00002.safetensors"), &[("a", &a)], &BTreeMap::new()).unwrap();
    save(dir.join("model-00002-of-00002.safetensors"), &[("b", &b)], &BTreeMap::new()).unwrap();
    let index = |map: &str| {
        let json = format!(r#"{{"metadata":{{}},"weight_map":{{{map}}}}}"#);
        std::fs::write(dir.join("model.safetensors.index.json"), json).unwrap()
    };

    index(r#""a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors""#);
    let w = Weights::open(&dir).unwrap();
    assert_eq!(w.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(w.tensor("b").unwrap().to_f32_vec(), [3.0]);
    assert!(matches!(w.tensor("c"), Err(TensorError::MissingTensor { file, .. }) if file.contains("index.json")));

    index(r#""a":"model-00001-of-00002.safetensors","b":"model-00003-of-00003.safetensors""#);
    let e = Weights::open(&dir).unwrap_err();
    assert!(matches!(&e, TensorError::BadIndex { detail, .. } if detail.contains("model-00003-of-00003")), "{e}");

    index(r#""a":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors""#);
    let e = Weights::open(&dir).unwrap_err();
    assert!(
        matches!(&e, TensorError::MissingTensor { file, tensor } if tensor == "c" && file.contains("00002")),
        "{e}"
    );

    std::fs::write(dir.join("model.safetensors.index.json"), "{").unwrap();
    assert!(matches!(Weights::open(&dir), Err(TensorError::BadIndex { .. })));
    assert!(matches!(Weights::open(dir.join("nothing-here")), Err(TensorError::Io { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any corruption of a valid file's bytes gives Ok or a clean error, never a
    /// panic or an out-of-bounds read; tensors of a file that opens read back.
    #[test]
    fn corrupted_files_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let t = Tensor::from_vec(vec![0.5; 6], &[2, 3]).unwrap();
        let u = Tensor::from_bf16(vec![bf16::ONE; 4], &[4]).unwrap();
        let dir = temp_dir();
        let path = dir.join("m.safetensors");
        save(&path, &[("t", &t), ("u", &u)], &BTreeMap::new()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(file) = SafetensorsFile::open(&path) {
            for name in file.names().map(str::to_string).collect::<Vec<_>>() {
                if let Ok(t) = file.tensor(&name) {
                    let _ = t.to_f32_vec();
                }
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
