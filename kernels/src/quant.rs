//! Dequantisation of llama.cpp's block formats (GGUF tensor types), exactly
//! as `ggml-quants.c` defines them. Each block holds a fixed number of
//! weights with one or two f16 scales; `x` is the weight, `q` the stored integer.
//!
//! ```text
//! Q8_0   32 weights, 34 bytes:  d:f16, q[32]:i8                 x = d·q
//! Q4_0   32 weights, 18 bytes:  d:f16, qs[16] (two 4-bit q)     x = d·(q − 8)
//! Q4_1   32 weights, 20 bytes:  d:f16, m:f16, qs[16]            x = d·q + m
//!        (in Q4_0/Q4_1, weight j < 16 is the low nibble of qs[j], weight j + 16 the high one)
//! Q4_K  256 weights, 144 bytes: d:f16, dmin:f16, scales[12], qs[128]
//!        8 sub-blocks of 32 with 6-bit scale s and min m:  x = d·s·q − dmin·m
//! Q6_K  256 weights, 210 bytes: ql[128], qh[64], scales[16]:i8, d:f16
//!        16 sub-blocks of 16, 6-bit q = 4 low bits from ql, 2 high from qh:  x = d·scale·(q − 32)
//! ```

use crate::KernelError;
use half::{bf16, f16};

/// The GGUF tensor types hone reads (the ggml type ids in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    F32,  // 0
    F16,  // 1
    Q4_0, // 2
    Q4_1, // 3
    Q8_0, // 8
    Q4K,  // 12
    Q6K,  // 14
    BF16, // 30
}

impl QuantType {
    /// The type of a ggml type id, or `None` for one hone does not read.
    pub fn from_ggml(id: u32) -> Option<QuantType> {
        Some(match id {
            0 => QuantType::F32,
            1 => QuantType::F16,
            2 => QuantType::Q4_0,
            3 => QuantType::Q4_1,
            8 => QuantType::Q8_0,
            12 => QuantType::Q4K,
            14 => QuantType::Q6K,
            30 => QuantType::BF16,
            _ => return None,
        })
    }

    /// `(weights per block, bytes per block)`.
    pub fn block(self) -> (usize, usize) {
        match self {
            QuantType::F32 => (1, 4),
            QuantType::F16 | QuantType::BF16 => (1, 2),
            QuantType::Q4_0 => (32, 18),
            QuantType::Q4_1 => (32, 20),
            QuantType::Q8_0 => (32, 34),
            QuantType::Q4K => (256, 144),
            QuantType::Q6K => (256, 210),
        }
    }

    /// Bytes holding `n` weights, or `None` if `n` is not whole blocks (or overflows).
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        let (w, b) = self.block();
        n.is_multiple_of(w).then(|| (n / w).checked_mul(b)).flatten()
    }
}

fn half(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K block (`get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

fn block(t: QuantType, b: &[u8], y: &mut [f32]) {
    match t {
        QuantType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        QuantType::F16 => y[0] = half(b, 0),
        QuantType::BF16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        QuantType::Q8_0 => {
            let d = half(b, 0);
            for (y, &q) in y.iter_mut().zip(&b[2..34]) {
                *y = d * (q as i8) as f32;
            }
        }
        QuantType::Q4_0 | QuantType::Q4_1 => {
            let d = half(b, 0);
            let (m, qs, offset) = if t == QuantType::Q4_1 { (half(b, 2), &b[4..20], 0) } else { (0.0, &b[2..18], 8) };
            for j in 0..16 {
                y[j] = ((qs[j] & 0xF) as i32 - offset) as f32 * d + m;
                y[j + 16] = ((qs[j] >> 4) as i32 - offset) as f32 * d + m;
            }
        }
        QuantType::Q4K => {
            let (d, dmin) = (half(b, 0), half(b, 2));
            let (scales, qs) = (&b[4..16], &b[16..144]);
            for (chunk, (ys, q)) in y.chunks_exact_mut(64).zip(qs.chunks_exact(32)).enumerate() {
                let (s1, m1) = scale_min_k4(2 * chunk, scales);
                let (s2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let (d1, min1, d2, min2) = (d * s1 as f32, dmin * m1 as f32, d * s2 as f32, dmin * m2 as f32);
                for l in 0..32 {
                    ys[l] = d1 * (q[l] & 0xF) as f32 - min1;
                    ys[l + 32] = d2 * (q[l] >> 4) as f32 - min2;
                }
            }
        }
        QuantType::Q6K => {
            let (ql, qh, sc, d) = (&b[0..128], &b[128..192], &b[192..208], half(b, 208));
            for half_block in 0..2 {
                let (ql, qh, sc) = (&ql[64 * half_block..], &qh[32 * half_block..], &sc[8 * half_block..]);
                let ys = &mut y[128 * half_block..128 * (half_block + 1)];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    ys[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                    ys[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                    ys[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                    ys[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                }
            }
        }
    }
}

/// Dequantises `bytes` of type `t` into `out` (whose length is the weight count).
pub fn dequantize(t: QuantType, bytes: &[u8], out: &mut [f32]) -> Result<(), KernelError> {
    let (w, b) = t.block();
    if t.bytes_for(out.len()) != Some(bytes.len()) {
        return Err(KernelError::bad(
            "dequantize",
            format!("{t:?}: {} bytes do not hold {} weights in blocks of {w} ({b} bytes each)", bytes.len(), out.len()),
        ));
    }
    use rayon::prelude::*;
    out.par_chunks_mut(w * 1024).zip(bytes.par_chunks(b * 1024)).for_each(|(ys, bs)| {
        for (y, blk) in ys.chunks_exact_mut(w).zip(bs.chunks_exact(b)) {
            block(t, blk, y);
        }
    });
    Ok(())
}
