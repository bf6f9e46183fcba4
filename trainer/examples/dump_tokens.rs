//! Prints, as JSON, hone's token ids for each line of a UTF-8 file (with
//! `\n` escapes expanded) and the chat rendering of a fixed conversation,
//! for `scripts/check_gguf_import.py`.
//!
//! `cargo run --release -p trainer --example dump_tokens -- MODEL_DIR STRINGS.txt`

use model::tokenizer::{Message, Tokenizer};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, strings] = &args[..] else { anyhow::bail!("usage: dump_tokens MODEL_DIR STRINGS.txt") };
    let tok = Tokenizer::from_dir(dir)?;
    let mut ids = Vec::new();
    for line in std::fs::read_to_string(strings)?.lines() {
        let text = line.replace("\\n", "\n").replace("\\t", "\t");
        ids.push(tok.encode(&text, true)?);
    }
    let chat = [
        Message { role: "user".into(), content: "Hello! Can you help me?".into() },
        Message { role: "assistant".into(), content: "Of course.".into() },
        Message { role: "user".into(), content: "What is 2 + 2?".into() },
    ];
    let rendered = tok.render_chat(&chat, true)?;
    println!("{}", serde_json::json!({"ids": ids, "chat": rendered}));
    Ok(())
}
