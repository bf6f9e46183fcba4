//! Token ids and rendered chat templates against transformers'
//! (`tests/fixtures/tokenizer/tokenizer_cases.json`, made by `make_fixtures.py`).

use model::tokenizer::{Message, Tokenizer};
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer")
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("tokenizer_cases.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

#[test]
fn encodings_match_transformers() {
    let tok = Tokenizer::from_dir(dir()).unwrap();
    let cases = cases();
    for (key, special) in [("encode", true), ("encode_no_special", false)] {
        for c in cases[key].as_array().unwrap() {
            let text = c["text"].as_str().unwrap();
            assert_eq!(tok.encode(text, special).unwrap(), ids(&c["ids"]), "{key}: {text:?}");
        }
    }
    // Byte-level BPE round-trips any text, Unicode and whitespace runs included.
    let text = "Größe café 東京 🙂\t\t  x";
    assert_eq!(tok.decode(&tok.encode(text, false).unwrap(), false).unwrap(), text);
    assert_eq!(tok.bos.as_ref().unwrap().text, "<|endoftext|>");
    assert_eq!(tok.eos.as_ref().unwrap().text, "<|im_end|>");
}

fn messages(c: &Value) -> Vec<Message> {
    c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Message { role: m["role"].as_str().unwrap().into(), content: m["content"].as_str().unwrap().into() })
        .collect()
}

#[test]
fn chat_templates_render_as_transformers_does() {
    let tok = Tokenizer::from_dir(dir()).unwrap();
    let cases = cases();
    for c in cases["chat"].as_array().unwrap() {
        let got = tok.render_chat(&messages(c), c["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(got, c["text"].as_str().unwrap());
    }
    // A template using namespaces, loop variables, Python string methods, tojson and raise_exception.
    let rich = cases["rich_template"].as_str().unwrap();
    for c in cases["rich"].as_array().unwrap() {
        let got = tok.render_chat_with(rich, &messages(c), c["add_generation_prompt"].as_bool().unwrap()).unwrap();
        assert_eq!(got, c["text"].as_str().unwrap());
    }
    let bad = [Message { role: "robot".into(), content: "hi".into() }];
    let err = tok.render_chat_with(rich, &bad, false).unwrap_err().to_string();
    assert!(err.contains("bad role"), "raise_exception's message reaches the user: {err}");
}

#[test]
fn missing_tokenizer_is_a_clear_error() {
    let err = Tokenizer::from_dir(std::env::temp_dir()).err().unwrap().to_string();
    assert!(err.contains("tokenizer.json") && err.contains("missing"), "{err}");
}

#[test]
fn a_template_in_tokenizer_config_is_found() {
    // Older checkpoints keep the template in tokenizer_config.json instead of chat_template.jinja.
    let d = std::env::temp_dir().join(format!("hone-tok-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(dir().join("tokenizer.json"), d.join("tokenizer.json")).unwrap();
    let config = serde_json::json!({
        "bos_token": {"content": "<|endoftext|>", "lstrip": false},
        "eos_token": "<|im_end|>",
        "chat_template": "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}",
    });
    std::fs::write(d.join("tokenizer_config.json"), config.to_string()).unwrap();
    let tok = Tokenizer::from_dir(&d).unwrap();
    assert_eq!(tok.bos.as_ref().unwrap().id, 0, "an AddedToken object is read by its content");
    let text = tok.render_chat(&[Message { role: "user".into(), content: "hi".into() }], false).unwrap();
    assert_eq!(text, "[user] hi\n");
}
