//! Every GGUF block type against known blocks: random bytes (with sane f16
//! scales) and the values the `gguf` package's reference dequantisation
//! gives for them (`tests/fixtures/quant/make_blocks.py`).

use kernels::quant::{dequantize, QuantType};

#[test]
fn known_blocks_dequantize_exactly() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/quant/blocks.json");
    let cases: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut seen = Vec::new();
    for c in cases.as_array().unwrap() {
        let name = c["type"].as_str().unwrap();
        let t = QuantType::from_ggml(c["ggml_id"].as_u64().unwrap() as u32).unwrap_or_else(|| panic!("{name}"));
        let hex = c["bytes"].as_str().unwrap();
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let want: Vec<f32> = c["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let mut got = vec![f32::NAN; want.len()];
        dequantize(t, &bytes, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // The reference computes in f32 too; allow one rounding of difference.
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-3), "{name}[{i}]: {g} vs {w}");
        }
        seen.push(t);
        // A byte count that is not whole blocks is an error, not a panic.
        assert!(dequantize(t, &bytes[1..], &mut got).is_err());
    }
    for t in [
        QuantType::Q8_0,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q4K,
        QuantType::Q6K,
        QuantType::F16,
        QuantType::BF16,
    ] {
        assert!(seen.contains(&t), "{t:?} has a known block");
    }
}
