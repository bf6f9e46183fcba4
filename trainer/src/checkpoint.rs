//! Checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! `OUT/checkpoints/step-000120/` holds
//! - `trainable.safetensors`: the trainable parameters (f32 master values);
//! - `optimizer.safetensors`: AdamW's first and second moments (`m.<name>`, `v.<name>`);
//! - `state.json`: optimizer step, data position (epoch, batch), and the run's settings.
//!
//! A checkpoint is written into a temporary directory beside the final one,
//! each file flushed to disk, and then renamed into place: a crash leaves the
//! previous checkpoints intact and never a half-written one under a final name.

use crate::optim::AdamW;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tensor::safetensors::{save, SafetensorsFile};
use tensor::Tensor;

/// Where the data stream stands: the next batch to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cursor {
    pub epoch: u64,
    pub batch: usize,
}

/// What `state.json` records besides the tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub step: u64,
    pub cursor: Cursor,
    /// The settings of the run, compared on resume.
    pub settings: Value,
}

pub fn checkpoints_dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Writes a checkpoint of `opt` (parameters and moments) and `state` atomically;
/// keeps only the `keep` newest. Returns its directory.
pub fn save_checkpoint(out: &Path, opt: &AdamW, state: &State, keep: usize) -> Result<PathBuf> {
    let root = checkpoints_dir(out);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let name = format!("step-{:06}", state.step);
    let tmp = root.join(format!(".{name}.tmp"));
    let dst = root.join(&name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let values: Vec<(String, Tensor)> = opt.params.iter().map(|p| (p.name.clone(), p.var.value())).collect();
    let refs: Vec<(&str, &Tensor)> = values.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save(tmp.join("trainable.safetensors"), &refs, &BTreeMap::new())?;
    let mut moments = Vec::new();
    for p in &opt.params {
        let shape = p.var.shape();
        moments.push((format!("m.{}", p.name), Tensor::from_vec(p.m.clone(), &shape)?));
        moments.push((format!("v.{}", p.name), Tensor::from_vec(p.v.clone(), &shape)?));
    }
    let refs: Vec<(&str, &Tensor)> = moments.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save(tmp.join("optimizer.safetensors"), &refs, &BTreeMap::new())?;
    let state_json = json!({
        "step": state.step,
        "epoch": state.cursor.epoch,
        "batch": state.cursor.batch,
        "settings": state.settings,
    });
    write_synced(&tmp.join("state.json"), serde_json::to_string_pretty(&state_json)?.as_bytes())?;
    if dst.exists() {
        std::fs::remove_dir_all(&dst).with_context(|| format!("replacing {}", dst.display()))?;
    }
    std::fs::rename(&tmp, &dst).with_context(|| format!("renaming {} to {}", tmp.display(), dst.display()))?;
    std::fs::File::open(&root)?.sync_all()?;
    // Prune the oldest beyond `keep`.
    let mut all = list(out)?;
    while all.len() > keep.max(1) {
        // Rename first (atomic), then delete: a crash mid-delete leaves a
        // `.step-N.tmp` that `remove_partial` cleans up, never a checkpoint
        // with some of its files gone.
        let old = all.remove(0);
        let name = old.file_name().and_then(|n| n.to_str()).unwrap_or("old").to_string();
        let doomed = root.join(format!(".{name}.tmp"));
        std::fs::rename(&old, &doomed).with_context(|| format!("retiring old checkpoint {}", old.display()))?;
        std::fs::remove_dir_all(&doomed).with_context(|| format!("removing old checkpoint {}", doomed.display()))?;
    }
    Ok(dst)
}

/// Removes checkpoints that were being written when a process died
/// (`checkpoints/.step-N.tmp`); finished checkpoints are never touched.
pub fn remove_partial(out: &Path) -> Result<()> {
    let root = checkpoints_dir(out);
    if !root.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(&root)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') && name.ends_with(".tmp") {
            if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }
                .with_context(|| format!("removing the partial checkpoint {}", p.display()))?;
        }
    }
    Ok(())
}

/// Finished checkpoints of a run, oldest first.
pub fn list(out: &Path) -> Result<Vec<PathBuf>> {
    let root = checkpoints_dir(out);
    if !root.is_dir() {
        return Ok(vec![]);
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("step-")))
        .filter(|p| p.join("state.json").is_file())
        .collect();
    all.sort();
    Ok(all)
}

/// Restores parameters and moments into `opt` from `dir`; returns the saved state.
pub fn load_checkpoint(dir: &Path, opt: &mut AdamW) -> Result<State> {
    let text = std::fs::read_to_string(dir.join("state.json"))
        .with_context(|| format!("reading {}/state.json", dir.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}/state.json is not valid JSON", dir.display()))?;
    let num = |k: &str| {
        v.get(k).and_then(Value::as_u64).with_context(|| format!("{}/state.json: {k} missing", dir.display()))
    };
    let state = State {
        step: num("step")?,
        cursor: Cursor { epoch: num("epoch")?, batch: num("batch")? as usize },
        settings: v.get("settings").cloned().unwrap_or(Value::Null),
    };
    let params = SafetensorsFile::open(dir.join("trainable.safetensors"))?;
    let moments = SafetensorsFile::open(dir.join("optimizer.safetensors"))?;
    for p in &mut opt.params {
        let t = params.tensor(&p.name).with_context(|| format!("checkpoint {} lacks {}", dir.display(), p.name))?;
        if t.shape() != p.var.shape() {
            bail!("checkpoint {}: {} has shape {:?}, the model {:?}", dir.display(), p.name, t.shape(), p.var.shape());
        }
        let values = t.to_f32_vec();
        p.var.update_value(|w| w.copy_from_slice(&values));
        p.m = moments.tensor(&format!("m.{}", p.name))?.to_f32_vec();
        p.v = moments.tensor(&format!("v.{}", p.name))?.to_f32_vec();
    }
    opt.step = state.step;
    Ok(state)
}

/// Writes `bytes` to `path` and flushes them to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
