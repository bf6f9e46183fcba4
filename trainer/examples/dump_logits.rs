//! Writes hone's logits for fixed token ids to a safetensors file, so a
//! Python session can compare an exported model or adapter with what
//! transformers/peft compute (`tests/fixtures/check_exports.py`).
//!
//! `cargo run --release -p trainer --example dump_logits -- MODEL_DIR [ADAPTER_DIR] OUT.safetensors`

use std::collections::BTreeMap;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, adapter, out) = match &args[..] {
        [m, o] => (m, None, o),
        [m, a, o] => (m, Some(a), o),
        _ => anyhow::bail!("usage: dump_logits MODEL_DIR [ADAPTER_DIR] OUT.safetensors"),
    };
    let mut m = model::Model::load(model)?;
    if let Some(a) = adapter {
        m.load_adapter(a)?;
    }
    // The same ids check_exports.py feeds transformers.
    let ids: Vec<u32> = (0..16).map(|i| (i * 37 % 290 + 3) as u32).collect();
    let logits = autograd::no_grad(|| m.forward(&ids, 2, 8))?.value();
    tensor::safetensors::save(out, &[("logits", &logits)], &BTreeMap::new())?;
    Ok(())
}
