//! Architecture invariant: `kernels <- tensor <- autograd <- model <- trainer`.
//! A crate may depend on crates below it, never on one at its level or above,
//! and `kernels` depends on nothing in the workspace. Read from each crate's
//! Cargo.toml, so a violating dependency fails here before it spreads.

use std::path::Path;

/// The layers, bottom first.
const LAYERS: [&str; 5] = ["kernels", "tensor", "autograd", "model", "trainer"];

/// Names in the `[dependencies]` table of a Cargo.toml (not dev-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && !line.is_empty() && !line.starts_with('#') {
            let key = line.split(['=', '.']).next().unwrap_or("").trim();
            deps.push(key.to_string());
        }
    }
    deps
}

#[test]
fn lower_crates_never_depend_on_higher_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    for (level, name) in LAYERS.iter().enumerate() {
        let path = root.join(name).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for dep in dependencies(&manifest) {
            if let Some(dep_level) = LAYERS.iter().position(|l| *l == dep) {
                assert!(dep_level < level, "{name} depends on {dep}, which is not below it in {LAYERS:?}");
            }
        }
    }
}

#[test]
fn the_parser_sees_workspace_dependencies() {
    let deps = dependencies("[package]\nname = \"x\"\n[dependencies]\nkernels.workspace = true\nrayon = \"1\"\n[dev-dependencies]\nmodel = {}\n");
    assert_eq!(deps, ["kernels", "rayon"]);
}
