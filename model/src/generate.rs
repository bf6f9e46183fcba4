//! Text generation with a KV cache: the prompt is run once (prefill), then
//! one token at a time, each step attending to the cached keys and values.
//!
//! Sampling follows transformers' order: logits / temperature, then top-k,
//! then top-p (the smallest set of tokens whose probability reaches p), then
//! a draw from the renormalised distribution with a seeded generator.
//! `temperature = 0` is greedy (argmax; the first maximum on ties, as torch).

use crate::{KvCache, Model, ModelError};

/// How to pick each next token.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = no top-k filter.
    pub top_k: usize,
    /// 1 = no top-p filter.
    pub top_p: f32,
    pub seed: u64,
    /// Stop when one of these is produced (it is included in the output).
    pub eos: Vec<u32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { max_new_tokens: 64, temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0, eos: vec![] }
    }
}

impl Sampling {
    /// The model's defaults from `generation_config.json` (`do_sample`,
    /// `temperature`, `top_k`, `top_p`, `eos_token_id`) over [`Sampling::default`];
    /// a missing file gives the defaults. `do_sample: false` means greedy.
    pub fn from_generation_config(dir: &std::path::Path) -> Sampling {
        let mut s = Sampling::default();
        let Some(v) = std::fs::read_to_string(dir.join("generation_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            return s;
        };
        let sample = v.get("do_sample").and_then(|x| x.as_bool()).unwrap_or(false);
        if sample {
            s.temperature = v.get("temperature").and_then(|x| x.as_f64()).unwrap_or(1.0) as f32;
            s.top_k = v.get("top_k").and_then(|x| x.as_u64()).unwrap_or(50) as usize;
            s.top_p = v.get("top_p").and_then(|x| x.as_f64()).unwrap_or(1.0) as f32;
        }
        match v.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => s.eos.extend(n.as_u64().map(|x| x as u32)),
            Some(serde_json::Value::Array(a)) => s.eos.extend(a.iter().filter_map(|x| x.as_u64().map(|x| x as u32))),
            _ => {}
        }
        s
    }
}

/// A small, seedable generator (SplitMix64): the same seed gives the same text.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Chooses the next token from one row of logits.
fn pick(logits: &[f32], s: &Sampling, rng: &mut Rng) -> u32 {
    if s.temperature <= 0.0 {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let mut cand: Vec<(usize, f32)> = logits.iter().map(|&v| v / s.temperature).enumerate().collect();
    cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if s.top_k > 0 {
        cand.truncate(s.top_k);
    }
    let m = cand[0].1;
    let mut probs: Vec<f64> = cand.iter().map(|&(_, v)| ((v - m) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        // Keep tokens while the mass before them is below p (the first is always kept).
        let mut mass = 0.0;
        let keep = probs.iter().take_while(|&&p| {
            let before = mass;
            mass += p;
            before < s.top_p as f64
        });
        let n = keep.count().max(1);
        cand.truncate(n);
        probs.truncate(n);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = rng.next_f64();
    for (i, p) in probs.iter().enumerate() {
        if u < *p {
            return cand[i].0 as u32;
        }
        u -= p;
    }
    cand[cand.len() - 1].0 as u32
}

/// Continues `prompt`, calling `on_token` with each new token as soon as it
/// is chosen (return `false` to stop). Returns the new tokens.
pub fn generate(
    model: &Model,
    prompt: &[u32],
    sampling: &Sampling,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Vec<u32>, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Template("generation needs a non-empty prompt".into()));
    }
    let vocab = model.config.vocab_size;
    let mut cache = KvCache::default();
    let mut rng = Rng(sampling.seed);
    let mut logits = model.forward_cached(prompt, &mut cache)?.to_f32_vec();
    let mut out = Vec::new();
    for _ in 0..sampling.max_new_tokens {
        let last = &logits[logits.len() - vocab..];
        let next = pick(last, sampling, &mut rng);
        out.push(next);
        if !on_token(next) || sampling.eos.contains(&next) {
            break;
        }
        if cache.len + 1 > model.config.max_positions {
            break;
        }
        logits = model.forward_cached(&[next], &mut cache)?.to_f32_vec();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_top_k_and_top_p() {
        let logits = [0.0, 3.0, 1.0, 3.0, 2.0];
        let mut rng = Rng(1);
        assert_eq!(pick(&logits, &Sampling::default(), &mut rng), 1, "first maximum");
        let top1 = Sampling { temperature: 1.0, top_k: 1, ..Sampling::default() };
        assert_eq!(pick(&logits, &top1, &mut rng), 1);
        // top_p tiny keeps only the most likely token.
        let p = Sampling { temperature: 0.7, top_p: 0.01, ..Sampling::default() };
        for _ in 0..20 {
            assert_eq!(pick(&logits, &p, &mut rng), 1);
        }
        // With top-k 3, only tokens 1, 3 and 4 can appear; the seed makes it repeatable.
        let k3 = Sampling { temperature: 1.0, top_k: 3, seed: 5, ..Sampling::default() };
        let draw = |seed| {
            let mut r = Rng(seed);
            (0..50).map(|_| pick(&logits, &k3, &mut r)).collect::<Vec<_>>()
        };
        assert!(draw(5).iter().all(|t| [1, 3, 4].contains(t)));
        assert_eq!(draw(5), draw(5));
    }
}
