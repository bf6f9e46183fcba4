//! `--model owner/name`: a model fetched from the Hugging Face hub (the
//! `hf-hub` crate), into the same cache `huggingface_hub` uses
//! (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`), so a model downloaded
//! by Python is found without the network, and the other way round.
//!
//! What is fetched: `config.json`, the tokenizer and generation files, and
//! the safetensors weights (one file, or the shards named by
//! `model.safetensors.index.json`). A repository with only PyTorch `.bin`
//! weights is refused by name. `HF_TOKEN` (or the token file
//! `huggingface-cli login` writes) opens gated repositories; `HF_ENDPOINT`
//! points at a mirror; `HF_HUB_OFFLINE=1` uses the cache only. Without
//! network, a model already in the cache is used; otherwise the error says
//! what could not be reached and what to pass instead.

use crate::export::MODEL_FILES;
use anyhow::{anyhow, bail, Context, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};

/// Is `arg` a hub id (`owner/name`, optionally `@revision`) rather than a path?
/// Anything that exists on disk, starts like a path, or has another shape is a path.
pub fn is_hub_id(arg: &str) -> bool {
    if Path::new(arg).exists() || arg.starts_with(['.', '/', '~']) || arg.ends_with(".gguf") {
        return false;
    }
    let id = arg.split_once('@').map_or(arg, |(id, _)| id);
    let mut parts = id.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn repo(arg: &str) -> Repo {
    match arg.split_once('@') {
        Some((id, rev)) => Repo::with_revision(id.to_string(), RepoType::Model, rev.to_string()),
        None => Repo::new(arg.to_string(), RepoType::Model),
    }
}

/// The local snapshot directory of the hub model `arg`, downloading what is missing.
pub fn fetch(arg: &str) -> Result<PathBuf> {
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if offline {
        return from_cache(arg).with_context(|| format!("HF_HUB_OFFLINE is set and {arg} is not in the hub cache"));
    }
    match download(arg) {
        Ok(dir) => Ok(dir),
        Err(e) => match from_cache(arg) {
            Ok(dir) => {
                eprintln!("note: could not reach the hub ({e:#}); using the cached copy of {arg}");
                Ok(dir)
            }
            Err(_) => Err(e.context(format!(
                "could not fetch the model {arg:?} from the Hugging Face hub; without network access, \
                 pass a local model directory or a .gguf file to --model"
            ))),
        },
    }
}

fn download(arg: &str) -> Result<PathBuf> {
    let mut builder = ApiBuilder::from_env().with_progress(true);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(|e| anyhow!("hub client: {e}"))?;
    let remote = api.repo(repo(arg));
    let info = remote.info().map_err(|e| anyhow!("{arg}: listing the repository: {e}"))?;
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let weights = weight_files(arg, &names, |f| remote.get(f).map_err(|e| anyhow!("{arg}/{f}: {e}")))?;
    let mut config = None;
    for f in MODEL_FILES.iter().copied().filter(|f| names.contains(f)).chain(weights.iter().map(String::as_str)) {
        let path = remote.get(f).map_err(|e| anyhow!("{arg}/{f}: {e}"))?;
        if f == "config.json" {
            config = Some(path);
        }
    }
    let config = config.ok_or_else(|| anyhow!("{arg} has no config.json: not a transformers model"))?;
    Ok(config.parent().expect("a file in a snapshot directory").to_path_buf())
}

/// The safetensors files of a repository listing `names`; `get` fetches the
/// shard index when there is one.
fn weight_files(arg: &str, names: &[&str], get: impl Fn(&str) -> Result<PathBuf>) -> Result<Vec<String>> {
    if names.contains(&"model.safetensors") {
        return Ok(vec!["model.safetensors".into()]);
    }
    if names.contains(&"model.safetensors.index.json") {
        let index = get("model.safetensors.index.json")?;
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index)?)
            .with_context(|| format!("{}: not JSON", index.display()))?;
        let map = json["weight_map"].as_object().ok_or_else(|| anyhow!("{}: no weight_map", index.display()))?;
        let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(str::to_string)).collect();
        shards.sort();
        shards.dedup();
        shards.insert(0, "model.safetensors.index.json".into());
        return Ok(shards);
    }
    if names.iter().any(|n| n.ends_with(".bin") || n.ends_with(".pth")) {
        bail!("{arg} has only PyTorch pickle weights (.bin); hone reads safetensors (convert them, or pick a repository with model.safetensors)");
    }
    bail!("{arg} has no model.safetensors or model.safetensors.index.json")
}

/// The snapshot of `arg` already in the cache, when it holds a config and weights.
fn from_cache(arg: &str) -> Result<PathBuf> {
    let cached = Cache::from_env().repo(repo(arg));
    let config = cached.get("config.json").ok_or_else(|| anyhow!("{arg}: no cached config.json"))?;
    let dir = config.parent().expect("a file in a snapshot directory").to_path_buf();
    let has = |f: &str| dir.join(f).exists();
    if !(has("model.safetensors") || has("model.safetensors.index.json")) {
        bail!("{arg}: the cached snapshot {} has no safetensors weights", dir.display());
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        for id in ["HuggingFaceTB/SmolLM2-135M", "openai-community/gpt2@main", "Qwen/Qwen2.5-0.5B-Instruct"] {
            assert!(is_hub_id(id), "{id}");
        }
        for path in ["./models/x", "/abs/path", "runs/a/b", "model.gguf", "x", "a/b c", "~/m", "a//b"] {
            assert!(!is_hub_id(path), "{path}");
        }
    }

    #[test]
    fn weights_are_chosen_from_the_listing() {
        let none = |_: &str| -> Result<PathBuf> { bail!("not fetched") };
        assert_eq!(weight_files("a/b", &["config.json", "model.safetensors"], none).unwrap(), ["model.safetensors"]);
        let e = weight_files("a/b", &["config.json", "pytorch_model.bin"], none).unwrap_err().to_string();
        assert!(e.contains("a/b") && e.contains("safetensors"), "{e}");
        let dir = std::env::temp_dir().join(format!("hone-hub-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let index = dir.join("model.safetensors.index.json");
        std::fs::write(
            &index,
            r#"{"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-2.safetensors"}}"#,
        )
        .unwrap();
        let got = weight_files("a/b", &["model.safetensors.index.json"], |_| Ok(index.clone())).unwrap();
        assert_eq!(got, ["model.safetensors.index.json", "m-1.safetensors", "m-2.safetensors"]);
    }
}
