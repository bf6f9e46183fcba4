//! Data files built from random pieces (valid and broken JSON, wrong types,
//! odd Unicode, control bytes, invalid UTF-8, blank lines) load or fail with
//! a message; they never panic, and every error names the file.

use model::tokenizer::Tokenizer;
use proptest::prelude::*;
use std::path::PathBuf;
use trainer::data::Dataset;

const PIECES: &[&str] = &[
    r#"{"text": "hello world"}"#,
    r#"{"prompt": "Q: where?", "completion": " here"}"#,
    r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#,
    r#"{"messages": [{"role": "user", "content": "no answer"}]}"#,
    r#"{"messages": "not a list"}"#,
    r#"{"messages": [{"role": 3, "content": "x"}]}"#,
    r#"{"prompt": "only a prompt"}"#,
    r#"{"text": null}"#,
    r#"{"text": "東京 🙂 \u0000 nul"}"#,
    r#"[1, 2, 3]"#,
    r#"{"text": "unterminated"#,
    "",
    "   ",
    "\u{feff}{\"text\": \"bom\"}",
    "just words, not json",
];

fn tok() -> Tokenizer {
    Tokenizer::from_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/llama")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn jsonl_from_random_pieces_never_panics(picks in prop::collection::vec(0..PIECES.len(), 0..12), bad_byte in any::<bool>(),
                                             seq_len in 1usize..64, txt in any::<bool>()) {
        let mut bytes: Vec<u8> = picks.iter().flat_map(|&i| format!("{}\n", PIECES[i]).into_bytes()).collect();
        if bad_byte {
            bytes.insert(bytes.len() / 2, 0xff);
        }
        let ext = if txt { "txt" } else { "jsonl" };
        let path = std::env::temp_dir().join(format!("hone-fuzz-{}-{}.{ext}", std::process::id(), picks.len()));
        std::fs::write(&path, &bytes).unwrap();
        match Dataset::load(&path, &tok(), seq_len) {
            Ok(ds) => {
                prop_assert!(!ds.examples.is_empty());
                prop_assert!(ds.examples.iter().all(|e| e.ids.len() <= seq_len && e.ids.len() == e.labels.len()));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains(path.file_name().unwrap().to_str().unwrap()), "{}", msg);
            }
        }
    }
}
