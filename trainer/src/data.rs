//! Training data: files to token ids and labels, and labels to batches.
//!
//! - `.txt`: documents separated by blank lines, each followed by EOS, all
//!   concatenated and cut into blocks of `seq_len` tokens (every token trains).
//! - `.jsonl`, one object per line:
//!   - `{"text": ...}`: the text (with the tokenizer's special tokens) and EOS;
//!   - `{"prompt": ..., "completion": ...}`: loss on the completion (and its EOS) only;
//!   - `{"messages": [{"role", "content"}, ...]}`: rendered with the model's chat
//!     template; loss on the assistant turns only.
//!
//! Labels of −100 carry no loss. An example longer than `seq_len` is cut to
//! `seq_len` and counted in [`Dataset::truncated`] (reported, never silent).
//! A malformed line is an error naming the file and the line.

use anyhow::{anyhow, bail, Context, Result};
use model::tokenizer::{Message, Tokenizer};
use serde_json::Value;
use std::path::{Path, PathBuf};

const IGNORE: i64 = -100;

/// One training sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<u32>,
    pub labels: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub source: PathBuf,
    pub examples: Vec<Example>,
    /// Examples cut to `seq_len`.
    pub truncated: usize,
    /// Lines skipped, with why (for example a chat with no assistant turn).
    pub skipped: Vec<(usize, String)>,
}

impl Dataset {
    /// Reads `path` (`.txt` or `.jsonl`) into examples of at most `seq_len` tokens.
    pub fn load(path: &Path, tok: &Tokenizer, seq_len: usize) -> Result<Dataset> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            anyhow!("{}:{line}: not valid UTF-8 (byte {at} of the file); hone reads UTF-8 text", path.display())
        })?;
        let mut ds = Dataset { source: path.to_path_buf(), examples: Vec::new(), truncated: 0, skipped: Vec::new() };
        let eos = tok.eos_id().ok_or_else(|| anyhow!("{}: the tokenizer has no EOS token", path.display()))?;
        match path.extension().and_then(|e| e.to_str()) {
            Some("txt") => {
                let mut stream = Vec::new();
                for doc in split_documents(&text) {
                    stream.extend(tok.encode(doc, false)?);
                    stream.push(eos);
                }
                for block in stream.chunks(seq_len) {
                    ds.examples
                        .push(Example { ids: block.to_vec(), labels: block.iter().map(|&t| t as i64).collect() });
                }
            }
            Some("jsonl") => {
                for (n, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let at = || format!("{}:{}", path.display(), n + 1);
                    let v: Value = serde_json::from_str(line).with_context(|| format!("{}: not valid JSON", at()))?;
                    let mut ex = match example(&v, tok, eos).with_context(at)? {
                        Parsed::Example(ex) => ex,
                        Parsed::Skip(why) => {
                            ds.skipped.push((n + 1, why));
                            continue;
                        }
                    };
                    if ex.ids.len() > seq_len {
                        ex.ids.truncate(seq_len);
                        ex.labels.truncate(seq_len);
                        ds.truncated += 1;
                    }
                    ds.examples.push(ex);
                }
            }
            _ => bail!("{}: hone reads .txt and .jsonl training files", path.display()),
        }
        if ds.examples.is_empty() {
            let why = ds.skipped.first().map(|(l, w)| format!(" (line {l}: {w})")).unwrap_or_default();
            bail!("{}: no training examples in the file{why}", path.display());
        }
        Ok(ds)
    }

    /// Splits off a validation set: a `fraction` of the examples, chosen with `seed`.
    pub fn split(mut self, fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&fraction) {
            bail!("--val-split must be in [0, 1), got {fraction}");
        }
        let order = shuffled(self.examples.len(), seed ^ 0x5EED_5EED);
        let n_val = ((self.examples.len() as f32 * fraction).round() as usize).min(self.examples.len() - 1);
        let mut all: Vec<Option<Example>> = self.examples.drain(..).map(Some).collect();
        let take =
            |idx: &[usize], all: &mut Vec<Option<Example>>| idx.iter().map(|&i| all[i].take().expect("once")).collect();
        let val = Dataset {
            source: self.source.clone(),
            examples: take(&order[..n_val], &mut all),
            truncated: 0,
            skipped: Vec::new(),
        };
        let train = Dataset { examples: take(&order[n_val..], &mut all), ..self };
        Ok((train, val))
    }

    /// Tokens that carry a loss.
    pub fn trained_tokens(&self) -> usize {
        self.examples.iter().map(|e| e.labels.iter().filter(|&&l| l != IGNORE).count()).sum()
    }
}

/// Documents of a text file: separated by lines that are empty or only whitespace.
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                docs.push(text[s..end].trim_end_matches(['\n', '\r']));
            }
        } else {
            start.get_or_insert(offset);
            end = offset + line.len();
        }
        offset += line.len();
    }
    if let Some(s) = start {
        docs.push(text[s..end].trim_end_matches(['\n', '\r']));
    }
    docs
}

fn string<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| anyhow!("field {key:?} must be a string"))
}

/// What one JSONL line gives: an example, or a reason to skip it.
enum Parsed {
    Example(Example),
    Skip(String),
}

/// One JSONL object to an example.
fn example(v: &Value, tok: &Tokenizer, eos: u32) -> Result<Parsed> {
    if let Some(msgs) = v.get("messages") {
        let msgs = msgs.as_array().ok_or_else(|| anyhow!("\"messages\" must be a list"))?;
        let messages: Vec<Message> = msgs
            .iter()
            .map(|m| Ok(Message { role: string(m, "role")?.to_string(), content: string(m, "content")?.to_string() }))
            .collect::<Result<_>>()?;
        if !messages.iter().any(|m| m.role == "assistant") {
            return Ok(Parsed::Skip("a conversation without an assistant turn has nothing to learn".into()));
        }
        return chat_example(&messages, tok).map(Parsed::Example);
    }
    if v.get("prompt").is_some() || v.get("completion").is_some() {
        let prompt = tok.encode(string(v, "prompt")?, true)?;
        let mut completion = tok.encode(string(v, "completion")?, false)?;
        completion.push(eos);
        let labels = prompt.iter().map(|_| IGNORE).chain(completion.iter().map(|&t| t as i64)).collect();
        return Ok(Parsed::Example(Example { ids: [prompt, completion].concat(), labels }));
    }
    if v.get("text").is_some() {
        let mut ids = tok.encode(string(v, "text")?, true)?;
        ids.push(eos);
        return Ok(Parsed::Example(Example { labels: ids.iter().map(|&t| t as i64).collect(), ids }));
    }
    bail!("expected {{\"text\"}}, {{\"prompt\", \"completion\"}} or {{\"messages\"}}")
}

/// A conversation rendered with the chat template; tokens inside an
/// assistant turn train, the rest do not. Turn boundaries are found by
/// rendering the conversation up to each assistant message (with and without
/// it) and mapping those byte positions to tokens through their offsets.
fn chat_example(messages: &[Message], tok: &Tokenizer) -> Result<Example> {
    let full = tok.render_chat(messages, false)?;
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role == "assistant" {
            let start = tok.render_chat(&messages[..i], true)?.len();
            let end = tok.render_chat(&messages[..=i], false)?.len();
            if !full.starts_with(&tok.render_chat(&messages[..=i], false)?) {
                bail!("the chat template renders earlier turns differently when later ones follow");
            }
            spans.push((start, end));
        }
    }
    // The template writes the special tokens itself: add none.
    let (ids, offsets) = tok.encode_with_offsets(&full, false)?;
    let labels = ids
        .iter()
        .zip(&offsets)
        .map(|(&id, &(s, _))| if spans.iter().any(|&(a, b)| s >= a && s < b) { id as i64 } else { IGNORE })
        .collect();
    Ok(Example { ids, labels })
}

/// `0..n` shuffled by Fisher-Yates with a SplitMix64 stream from `seed`.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

/// A batch: examples padded with `pad` (labels −100) to the longest; `(ids, labels, seq)`.
pub fn collate(examples: &[&Example], pad: u32) -> (Vec<u32>, Vec<i64>, usize) {
    let seq = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(examples.len() * seq);
    let mut labels = Vec::with_capacity(examples.len() * seq);
    for e in examples {
        ids.extend(&e.ids);
        labels.extend(&e.labels);
        ids.extend(std::iter::repeat_n(pad, seq - e.ids.len()));
        labels.extend(std::iter::repeat_n(IGNORE, seq - e.ids.len()));
    }
    (ids, labels, seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_on_blank_lines() {
        assert_eq!(split_documents("a\nb\n\n  \nc\n\n\nd"), ["a\nb", "c", "d"]);
        assert!(split_documents("\n\n").is_empty());
    }

    #[test]
    fn shuffles_are_permutations_and_repeatable() {
        let a = shuffled(50, 7);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, shuffled(50, 7));
        assert_ne!(a, shuffled(50, 8));
    }

    #[test]
    fn collate_pads_without_loss() {
        let a = Example { ids: vec![1, 2, 3], labels: vec![1, 2, 3] };
        let b = Example { ids: vec![4], labels: vec![-100] };
        let (ids, labels, seq) = collate(&[&a, &b], 0);
        assert_eq!((ids, labels, seq), (vec![1, 2, 3, 4, 0, 0], vec![1, 2, 3, -100, -100, -100], 3));
    }
}
