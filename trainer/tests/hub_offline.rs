//! `--model owner/name` without the network (CI has none): a model already
//! in the hub cache is used, and a missing one is a clear error that says
//! what to pass instead. The hub's own downloads are not tested here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn hone(hf_home: &Path, args: &[&str], offline: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hone"));
    cmd.args(args).env("HF_HOME", hf_home).env("HF_ENDPOINT", "http://127.0.0.1:9").env_remove("HF_TOKEN");
    if offline {
        cmd.env("HF_HUB_OFFLINE", "1");
    } else {
        cmd.env_remove("HF_HUB_OFFLINE");
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hone-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn an_uncached_model_without_network_is_a_clear_error() {
    let home = temp("missing");
    for offline in [false, true] {
        let (ok, out) = hone(&home, &["inspect", "--model", "someone/some-model"], offline);
        assert!(!ok);
        assert!(out.contains("someone/some-model"), "{out}");
        assert!(out.contains(if offline { "HF_HUB_OFFLINE" } else { "pass a local model directory" }), "{out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}

#[test]
fn a_cached_model_is_used_without_network() {
    // The layout huggingface_hub and hf-hub share: refs/main names the snapshot.
    let home = temp("cached");
    let repo = home.join("hub/models--someone--tiny-llama");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/llama");
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, snapshot.join(f.file_name().unwrap())).unwrap();
    }
    for offline in [true, false] {
        let (ok, out) = hone(&home, &["inspect", "--model", "someone/tiny-llama"], offline);
        assert!(ok, "{out}");
        assert!(out.contains("parameters"), "{out}");
    }
}
