//! The tokenizer of a model directory and its chat template.
//!
//! - `tokenizer.json` through the `tokenizers` crate (the same Rust code
//!   transformers' fast tokenizers run), so ids match transformers'.
//! - BOS/EOS/PAD from `tokenizer_config.json` (a string, or an
//!   `{"content": ...}` object in older files), with `generation_config.json`
//!   and `config.json` ids as fallbacks for EOS.
//! - The chat template from `tokenizer_config.json`'s `chat_template` or
//!   `chat_template.jinja`, rendered with minijinja configured as
//!   transformers configures jinja2: `trim_blocks`, `lstrip_blocks`, loop
//!   controls, `raise_exception`, `tojson`, and Python string methods
//!   (`.strip()`, `.startswith()`, ...).

use crate::ModelError;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A token's `(start, end)` byte positions in the encoded text.
pub type ByteRange = (usize, usize);

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A special token: its text and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Special {
    pub text: String,
    pub id: u32,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    file: PathBuf,
    pub bos: Option<Special>,
    pub eos: Option<Special>,
    pub pad: Option<Special>,
    /// Every id that ends generation (EOS, and generation_config's list).
    pub eos_ids: Vec<u32>,
    chat_template: Option<String>,
}

fn read_json(path: &Path) -> Result<Option<Value>, ModelError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ModelError::config(path, "(file)", format!("not valid JSON: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ModelError::Io { path: path.to_path_buf(), source }),
    }
}

impl Tokenizer {
    /// Reads `tokenizer.json`, `tokenizer_config.json` (optional),
    /// `chat_template.jinja` (optional) and `generation_config.json` (optional) from `dir`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Tokenizer, ModelError> {
        let dir = dir.as_ref();
        let file = dir.join("tokenizer.json");
        if !file.is_file() {
            return Err(ModelError::Tokenizer {
                file,
                detail: "missing (hone reads fast tokenizers' tokenizer.json)".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| ModelError::Tokenizer { file: file.clone(), detail: e.to_string() })?;
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let special = |key: &str| -> Option<Special> {
            let text = match config.get(key)? {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("content")?.as_str()?.to_string(),
                _ => return None,
            };
            inner.token_to_id(&text).map(|id| Special { text, id })
        };
        let (bos, eos, pad) = (special("bos_token"), special("eos_token"), special("pad_token"));
        let mut eos_ids: Vec<u32> = eos.iter().map(|e| e.id).collect();
        for extra in ["generation_config.json", "config.json"] {
            if let Some(v) = read_json(&dir.join(extra))? {
                match v.get("eos_token_id") {
                    Some(Value::Number(n)) => eos_ids.extend(n.as_u64().map(|x| x as u32)),
                    Some(Value::Array(a)) => eos_ids.extend(a.iter().filter_map(|x| x.as_u64().map(|x| x as u32))),
                    _ => {}
                }
            }
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let chat_template = match config.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            // A list of named templates: take "default".
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => std::fs::read_to_string(dir.join("chat_template.jinja")).ok(),
        };
        Ok(Tokenizer { inner, file, bos, eos, pad, eos_ids, chat_template })
    }

    /// Token ids of `text`; `add_special` adds what the tokenizer's
    /// post-processor adds (BOS for Llama-style tokenizers), as transformers does by default.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, ModelError> {
        let enc = self.inner.encode(text, add_special).map_err(|e| self.err(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of `text` and each token's byte range in `text` (special
    /// tokens added by the post-processor get an empty range).
    pub fn encode_with_offsets(&self, text: &str, add_special: bool) -> Result<(Vec<u32>, Vec<ByteRange>), ModelError> {
        let enc = self.inner.encode(text, add_special).map_err(|e| self.err(e.to_string()))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// The id that ends a document in packed text and a training example:
    /// EOS, else the first of `eos_ids`.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos.as_ref().map(|e| e.id).or_else(|| self.eos_ids.first().copied())
    }

    /// The id padding fills batches with (never trained on): PAD, else EOS, else 0.
    pub fn pad_id(&self) -> u32 {
        self.pad.as_ref().map(|p| p.id).or_else(|| self.eos_id()).unwrap_or(0)
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, ModelError> {
        self.inner.decode(ids, skip_special).map_err(|e| self.err(e.to_string()))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// The chat template applied to `messages`, as `apply_chat_template(..., tokenize=False)`.
    pub fn render_chat(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ModelError> {
        let source = self
            .chat_template
            .as_deref()
            .ok_or_else(|| ModelError::Template(format!("{}: the model has no chat template", self.file.display())))?;
        self.render_chat_with(source, messages, add_generation_prompt)
    }

    /// Like [`Tokenizer::render_chat`] with another template (`chat_template=` in transformers).
    pub fn render_chat_with(
        &self,
        source: &str,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, ModelError> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_filter("tojson", tojson);
        env.add_template("chat", source).map_err(|e| ModelError::Template(e.to_string()))?;
        let msgs: Vec<Value> =
            messages.iter().map(|m| serde_json::json!({ "role": m.role, "content": m.content })).collect();
        let text = |s: &Option<Special>| s.as_ref().map(|s| s.text.clone()).unwrap_or_default();
        let ctx = minijinja::context! {
            messages => msgs,
            add_generation_prompt => add_generation_prompt,
            bos_token => text(&self.bos),
            eos_token => text(&self.eos),
            pad_token => text(&self.pad),
        };
        env.get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(|e| ModelError::Template(format!("{}: {e}", self.file.display())))
    }

    fn err(&self, detail: String) -> ModelError {
        ModelError::Tokenizer { file: self.file.clone(), detail }
    }
}

/// `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False,
/// indent=indent)`, so `", "` and `": "` separators (minijinja's own is compact).
fn tojson(value: minijinja::Value, kwargs: minijinja::value::Kwargs) -> Result<minijinja::Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let v = serde_json::to_value(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_json(&v, indent, 0, &mut out);
    Ok(minijinja::Value::from_safe_string(out))
}

fn write_json(v: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let (open_sep, item_sep, close_sep) = match indent {
        Some(n) => (
            format!("\n{}", " ".repeat(n * (depth + 1))),
            format!(",\n{}", " ".repeat(n * (depth + 1))),
            format!("\n{}", " ".repeat(n * depth)),
        ),
        None => (String::new(), ", ".to_string(), String::new()),
    };
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            out.push_str(&open_sep);
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(&item_sep);
                }
                write_json(x, indent, depth + 1, out);
            }
            out.push_str(&close_sep);
            out.push(']');
        }
        Value::Object(o) if !o.is_empty() => {
            out.push('{');
            out.push_str(&open_sep);
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(&item_sep);
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_json(x, indent, depth + 1, out);
            }
            out.push_str(&close_sep);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}
