//! Element types the kernels read, and their widening to f32.
//!
//! Weights on disk are often bf16 or f16. The GEMM packing step widens them
//! to f32 as it copies them into its cache-sized buffers, so a memory-mapped
//! bf16 weight is multiplied without ever being copied whole into f32.
//!
//! Both widenings are exact (every bf16 and f16 value is an f32 value) and
//! branch-free, so loops over them vectorise.

/// An element type a kernel can read and widen to f32.
pub trait Element: Copy + Send + Sync + 'static {
    /// The dtype's name as safetensors spells it ("F32", "BF16", "F16").
    const DTYPE: &'static str;
    /// The exact f32 value of `self`.
    fn to_f32(self) -> f32;
    /// `self` rounded to bf16 (nearest, ties to even), as bits; exact for bf16.
    #[inline(always)]
    fn to_bf16_bits(self) -> u16 {
        f32_to_bf16(self.to_f32())
    }
    /// The slice as f32, when `Self` is f32 (for vectorised fast paths).
    fn as_f32_slice(_s: &[Self]) -> Option<&[f32]> {
        None
    }
}

impl Element for f32 {
    const DTYPE: &'static str = "F32";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn as_f32_slice(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }
}

impl Element for half::bf16 {
    const DTYPE: &'static str = "BF16";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self.to_bits())
    }
    #[inline(always)]
    fn to_bf16_bits(self) -> u16 {
        self.to_bits()
    }
}

impl Element for half::f16 {
    const DTYPE: &'static str = "F16";
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_to_f32(self.to_bits())
    }
}

/// bf16 -> f32: bf16 is the top half of an f32 (1 sign, 8 exponent, 7
/// mantissa bits), so widening is a 16-bit shift. Exact for every value,
/// NaN and infinities included.
#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// f32 -> bf16, rounding to nearest with ties to even (as PyTorch does).
/// NaN stays NaN (quiet); overflow rounds to infinity.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        // Keep the sign and force a quiet-NaN mantissa bit so truncation cannot make it Inf.
        return ((bits >> 16) as u16) | 0x0040;
    }
    // Add 0x7FFF plus the lowest kept bit: rounds half to even in one add.
    let round = 0x7FFF + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

crate::nn::vectorized! {
    /// Each value rounded to bf16 and widened back, in place (bf16-precision
    /// packing rounds every packed float through this). Compiled per ISA by
    /// `vectorized!`: the NaN test becomes a vector select, and the loop ran
    /// 2.6x faster than the same loop at the baseline target (0.52 against
    /// 1.36 ms per 4M floats on Zen 4).
    pub fn round_to_bf16(values: &mut [f32]) {
        for x in values.iter_mut() {
            *x = bf16_to_f32(f32_to_bf16(*x));
        }
    }
}

/// f16 -> f32 without branches on the value class.
///
/// f16 is 1 sign, 5 exponent (bias 15), 10 mantissa bits; f32 has 8
/// exponent bits (bias 127). Shifting exponent and mantissa left by 13 puts
/// them in f32 position with the wrong bias; as an f32 that number is the
/// true value times 2^-112, for normals and (because f32 subnormals have the
/// same spacing) for subnormals alike. One multiply by 2^112 fixes the bias.
/// The all-ones exponent (Inf, NaN) must instead map to f32's all-ones
/// exponent, which the select below does.
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    let h = bits as u32;
    let sign = (h & 0x8000) << 16;
    let exp_mant = (h & 0x7FFF) << 13;
    const F16_INF_SHIFTED: u32 = 0x7C00 << 13;
    let magnitude = if exp_mant >= F16_INF_SHIFTED {
        exp_mant | 0x7F80_0000 // Inf or NaN: exponent all ones, payload kept
    } else {
        (f32::from_bits(exp_mant) * f32::from_bits(0x7780_0000)).to_bits() // * 2^112
    };
    f32::from_bits(sign | magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Exhaustive: all 65,536 bit patterns against the `half` crate.
    #[test]
    fn bf16_widening_matches_half_for_every_value() {
        for bits in 0..=u16::MAX {
            let want = half::bf16::from_bits(bits).to_f32();
            let got = bf16_to_f32(bits);
            assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "{bits:#06x}");
        }
    }

    #[test]
    fn f16_widening_matches_half_for_every_value() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32();
            let got = f16_to_f32(bits);
            assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "{bits:#06x}: {want} vs {got}");
        }
    }

    #[test]
    fn rounding_in_place_is_rounding_then_widening() {
        // Every bf16 value's neighbourhood (midpoints, both sides), NaNs of
        // both signs and payloads, infinities and zeros.
        let mut xs: Vec<f32> = (0..=u16::MAX)
            .flat_map(|b| [0u32, 0x7FFF, 0x8000, 0x8001, 0xFFFF].map(|low| f32::from_bits((b as u32) << 16 | low)))
            .collect();
        let want: Vec<u32> = xs.iter().map(|&x| bf16_to_f32(f32_to_bf16(x)).to_bits()).collect();
        round_to_bf16(&mut xs);
        let got: Vec<u32> = xs.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bf16_rounding_matches_half() {
        // Every bf16 value, plus the midpoints and near-midpoints between neighbours.
        for bits in 0..=u16::MAX {
            let base = (bits as u32) << 16;
            for low in [0u32, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
                let x = f32::from_bits(base | low);
                let want = half::bf16::from_f32(x);
                let got = f32_to_bf16(x);
                if x.is_nan() {
                    assert!(half::bf16::from_bits(got).is_nan(), "{x:?}");
                } else {
                    assert_eq!(want.to_bits(), got, "{:#010x}", base | low);
                }
            }
        }
    }
}
