//! Llama 3.1+'s rotary scaling, from llama.cpp's `rope_freqs` vector back to
//! transformers' `rope_scaling` parameters.
//!
//! llama.cpp's converter does not store `factor`, `low_freq_factor`,
//! `high_freq_factor` and `original_max_position_embeddings`; it stores what
//! they compute, one divisor per frequency, `f_i = θ_i / θ'_i`:
//! ```text
//! λ_i = 2π / θ_i
//! f_i = 1                          λ_i < L / high              (high frequencies)
//! f_i = factor                     λ_i > L / low               (low frequencies)
//! 1/f_i = (1 − s_i)/factor + s_i   s_i = (L/λ_i − low) / (high − low)   otherwise
//! ```
//! Only the ratios `L/low` and `L/high` matter, so `low = 1` is fixed. Then
//! `factor = max f_i`, and every middle frequency gives one equation
//! `s_i·(high − 1) = L/λ_i − 1`: two of them fix `L` and `high`; with one,
//! `high = 4` (Llama 3's own value) is taken; with none, any `L` and `high`
//! that put the boundary between the two groups do. The parameters found are
//! checked by recomputing every `f_i`: a vector that does not follow the rule
//! is an error, not a guess.

use crate::config::Llama3Scaling;
use crate::rope::llama3;

/// Relative tolerance between the file's factors and the recomputed ones.
const TOLERANCE: f32 = 1e-4;

/// The `rope_scaling` that reproduces `factors` (`None` when all are 1).
pub(super) fn llama3_from_factors(
    factors: &[f32],
    theta: f32,
    head_dim: usize,
) -> Result<Option<Llama3Scaling>, String> {
    if factors.len() != head_dim / 2 {
        return Err(format!("holds {} factors; a head of {head_dim} has {} frequencies", factors.len(), head_dim / 2));
    }
    if let Some(bad) = factors.iter().find(|f| !(f.is_finite() && **f >= 1.0 - TOLERANCE)) {
        return Err(format!("holds the factor {bad}; Llama 3 scaling divides frequencies by factors ≥ 1"));
    }
    let factor = factors.iter().copied().fold(1.0f32, f32::max);
    if factor <= 1.0 + TOLERANCE {
        return Ok(None);
    }
    // θ_i as `rope::Rope` computes them, and their wavelengths.
    let d = head_dim as f32;
    let wavelen: Vec<f64> =
        (0..head_dim / 2).map(|i| 2.0 * std::f64::consts::PI / (1.0 / theta.powf((2 * i) as f32 / d)) as f64).collect();
    let is_one = |f: f32| f <= 1.0 + TOLERANCE;
    let is_full = |f: f32| f >= factor * (1.0 - TOLERANCE);
    // (λ_i, s_i) of the middle frequencies.
    let middle: Vec<(f64, f64)> = factors
        .iter()
        .zip(&wavelen)
        .filter(|(&f, _)| !is_one(f) && !is_full(f))
        .map(|(&f, &l)| (l, ((1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor)) as f64))
        .collect();
    let (length, high) = match middle.as_slice() {
        [] => {
            // Any boundary between the longest unscaled and the shortest fully scaled wavelength.
            let longest_one =
                factors.iter().zip(&wavelen).filter(|(&f, _)| is_one(f)).map(|(_, &l)| l).fold(0.0, f64::max);
            let shortest_full = factors
                .iter()
                .zip(&wavelen)
                .filter(|(&f, _)| is_full(f))
                .map(|(_, &l)| l)
                .fold(f64::INFINITY, f64::min);
            let length = (shortest_full * 0.999).floor().max(1.0);
            let high = if longest_one > 0.0 { (length / longest_one).sqrt().min(4.0) } else { 4.0 };
            (length, high)
        }
        [(l, s)] => {
            let length = (l * (3.0 * s + 1.0)).round();
            (length, 1.0 + (length / l - 1.0) / s)
        }
        [(l1, s1), .., (l2, s2)] => {
            // s1·u = L/λ1 − 1 and s2·u = L/λ2 − 1 with u = high − 1; L is an integer in the config.
            let r = 1.0 - l1 / l2;
            let u = r / (s1 - s2 - s1 * r);
            let length = (l1 * (s1 * u + 1.0)).round();
            (length, 1.0 + (length / l1 - 1.0) / s1)
        }
    };
    let scaling = Llama3Scaling {
        factor,
        low_freq_factor: 1.0,
        high_freq_factor: high as f32,
        original_max_position_embeddings: length as usize,
    };
    for (i, &f) in factors.iter().enumerate() {
        let t = 1.0 / theta.powf((2 * i) as f32 / d);
        let recomputed = t / llama3(t, &scaling);
        if !(recomputed.is_finite() && ((recomputed - f) / f).abs() <= TOLERANCE) {
            return Err(format!(
                "factor {i} is {f}, but the Llama 3 rule that fits the others gives {recomputed}: \
                 this rotary scaling is not one transformers can express"
            ));
        }
    }
    Ok(Some(scaling))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The factors llama.cpp's converter writes for `s`.
    fn factors(s: &Llama3Scaling, theta: f32, head_dim: usize) -> Vec<f32> {
        (0..head_dim / 2)
            .map(|i| {
                let t = 1.0 / theta.powf((2 * i) as f32 / head_dim as f32);
                t / llama3(t, s)
            })
            .collect()
    }

    fn assert_reproduces(s: Llama3Scaling, theta: f32, head_dim: usize) {
        let f = factors(&s, theta, head_dim);
        let fit = llama3_from_factors(&f, theta, head_dim).unwrap().unwrap();
        let g = factors(&fit, theta, head_dim);
        for (a, b) in f.iter().zip(&g) {
            assert!(((a - b) / a).abs() < 1e-5, "{s:?} -> {fit:?}: {a} vs {b}");
        }
    }

    #[test]
    fn llama_3_1_and_3_2_parameters_are_recovered() {
        // Llama 3.1 8B (head 128, factor 8) and Llama 3.2 1B (head 64, factor 32).
        let s31 = Llama3Scaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let fit = llama3_from_factors(&factors(&s31, 500000.0, 128), 500000.0, 128).unwrap().unwrap();
        assert_eq!(fit.original_max_position_embeddings, 8192);
        assert!((fit.high_freq_factor - 4.0).abs() < 1e-3 && fit.factor == 8.0, "{fit:?}");
        assert_reproduces(Llama3Scaling { factor: 32.0, ..s31 }, 500000.0, 64);
    }

    #[test]
    fn few_middle_frequencies_still_reproduce() {
        // head 8: one middle frequency; head 4 with a wide gap: none.
        let s = Llama3Scaling {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 16,
        };
        assert_reproduces(s, 10000.0, 8);
        assert_reproduces(Llama3Scaling { original_max_position_embeddings: 40, ..s }, 10000.0, 4);
        assert_reproduces(Llama3Scaling { low_freq_factor: 2.0, high_freq_factor: 6.0, ..s }, 10000.0, 16);
    }

    #[test]
    fn vectors_that_break_the_rule_are_refused() {
        assert_eq!(llama3_from_factors(&[1.0; 4], 10000.0, 8).unwrap(), None);
        assert!(llama3_from_factors(&[1.0; 3], 10000.0, 8).unwrap_err().contains("3 factors"));
        assert!(llama3_from_factors(&[1.0, 0.5, 1.0, 1.0], 10000.0, 8).unwrap_err().contains("0.5"));
        // Not monotone in wavelength: no single boundary explains it.
        assert!(llama3_from_factors(&[8.0, 1.0, 8.0, 1.0], 10000.0, 8).is_err());
    }
}
