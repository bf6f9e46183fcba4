//! Rotary position embedding tables: `cos(p·θ_i)` and `sin(p·θ_i)`.
//!
//! `θ_i = rope_theta^(−2i/D)` for `i < D/2`, computed in f32 as
//! transformers does. Llama 3 rescales them by wavelength
//! (`rope_scaling.rope_type = "llama3"`), with `L` the original context:
//! ```text
//! λ_i = 2π / θ_i
//! λ_i < L / high_freq_factor   keep θ_i                      (high frequencies)
//! λ_i > L / low_freq_factor    θ_i / factor                  (low frequencies)
//! otherwise                    (1 − s)·θ_i/factor + s·θ_i,   s = (L/λ_i − low) / (high − low)
//! ```

use crate::config::{Config, Llama3Scaling};
use tensor::{Tensor, TensorError};

/// The inverse frequencies of one model.
#[derive(Clone, Debug)]
pub struct Rope {
    inv_freq: Vec<f32>,
}

impl Rope {
    pub fn new(config: &Config) -> Rope {
        let d = config.head_dim;
        let mut inv_freq: Vec<f32> =
            (0..d / 2).map(|i| 1.0 / config.rope_theta.powf((2 * i) as f32 / d as f32)).collect();
        if let Some(s) = config.rope_scaling {
            inv_freq = inv_freq.into_iter().map(|f| llama3(f, &s)).collect();
        }
        Rope { inv_freq }
    }

    /// `(cos, sin)`, each `(len, D/2)`, for positions `start..start + len`.
    pub fn tables(&self, start: usize, len: usize) -> Result<(Tensor, Tensor), TensorError> {
        let half = self.inv_freq.len();
        let (mut cos, mut sin) = (Vec::with_capacity(len * half), Vec::with_capacity(len * half));
        for p in start..start + len {
            for &f in &self.inv_freq {
                // The angle is rounded to f32 first, as transformers' f32 matmul does.
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Ok((Tensor::from_vec(cos, &[len, half])?, Tensor::from_vec(sin, &[len, half])?))
    }
}

pub(crate) fn llama3(f: f32, s: &Llama3Scaling) -> f32 {
    let old = s.original_max_position_embeddings as f32;
    let (low_wavelen, high_wavelen) = (old / s.low_freq_factor, old / s.high_freq_factor);
    let wavelen = 2.0 * std::f32::consts::PI / f;
    if wavelen < high_wavelen {
        f
    } else if wavelen > low_wavelen {
        f / s.factor
    } else {
        let smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        (1.0 - smooth) * f / s.factor + smooth * f
    }
}
