//! The forward pass, one (batch, query head) per task:
//! `S = s · Q Kᵀ`, `P = softmax(S + causal mask)`, `O = P V`, keeping only
//! each row's log-sum-exp.
//!
//! Per task, K and V are packed once as B panels; then for each block of
//! 64 query rows, every row panel (MR rows) computes its scores only up to
//! the last key its rows see, the rows go through the masked softmax, and
//! `O = P V` runs over that same k range (P is 0 beyond it).

use super::tiles::{pack_b, sized, with_scratch, Disjoint, Scratch, Tiles};
use super::{head_rows, AttentionShape, Inputs, Rows, BLOCK_Q};
use crate::gemm::MatRef;
use crate::nn::exp::exp;
use crate::nn::{reduce, vectorized};
use crate::KernelError;
use rayon::prelude::*;

vectorized! {
    /// Softmax of `row[..visible]` in place, zeros after; returns the row's log-sum-exp.
    ///
    /// The masked entries are set to −∞, which `exp` turns into exact zeros
    /// (adding them to the sum changes no bit), so every pass runs over the
    /// whole row: a whole number of tiles, 16 floats each on AVX-512, with
    /// no scalar tail. Over the visible part alone, each row's ragged end
    /// took up to 15 scalar `exp`s: a quarter of the forward's time.
    fn masked_softmax(row: &mut [f32], visible: usize) -> f32 {
        row[visible..].fill(f32::NEG_INFINITY);
        let m = reduce::max(row);
        row.iter_mut().for_each(|v| *v = exp(*v - m));
        let sum = reduce::sum(row);
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
        m + sum.ln()
    }
}

/// `out = attention(x)`; returns `lse` `(B, Hq, T)`.
pub(super) fn forward(shape: AttentionShape, x: Inputs, out: &mut [f32]) -> Result<Vec<f32>, KernelError> {
    let (seq, q_heads) = (shape.seq, shape.q_heads);
    let tiles = Tiles::new()?;
    let mut lse = vec![0.0f32; shape.batch * q_heads * seq];
    let out = Disjoint::new(out);
    // lse is (B, Hq, T): task (b, h) owns the run of T at b·Hq + h.
    lse.par_chunks_mut(seq.max(1)).enumerate().try_for_each(|(task, lse_h)| {
        let head = (task / q_heads, task % q_heads);
        with_scratch(|scratch| head_forward(shape, tiles, x, head, lse_h, &out, scratch))
    })?;
    Ok(lse)
}

/// One (batch, head): writes its rows of `out` and its `lse`.
fn head_forward(
    shape: AttentionShape,
    tl: Tiles,
    x: Inputs,
    (b, h): (usize, usize),
    lse: &mut [f32],
    out: &Disjoint,
    sc: &mut Scratch,
) -> Result<(), KernelError> {
    let AttentionShape { seq: t, kv_seq: tk, q_heads, kv_heads, head_dim: d, .. } = shape;
    let (offset, scale, g) = (tk - t, 1.0 / (d as f32).sqrt(), h / (q_heads / kv_heads));
    let ((q, qr), (k, kr), (v, vr)) = (x.q, x.k, x.v);
    let km = head_rows(k, kr.at(b * tk, g, d), 0, tk, d, kr.stride)?; // (Tk, D)
    let vm = head_rows(v, vr.at(b * tk, g, d), 0, tk, d, vr.stride)?; // (Tk, D)
    pack_b(&tl, &km.t(), &mut sc.kt); // B of S = Q·Kᵀ: (D, Tk)
    pack_b(&tl, &vm, &mut sc.vp); // B of O = P·V: (Tk, D)
    let (mr, nr) = (tl.mr, tl.nr);
    // Score rows hold whole tiles; blocks hold whole row panels.
    let (ld, dpad, rows) = (tk.next_multiple_of(tl.key_step()), tl.cols_padded(d), BLOCK_Q.min(t).next_multiple_of(mr));
    let out_rows = Rows::packed(q_heads, d);
    for i0 in (0..t).step_by(BLOCK_Q) {
        let bq = BLOCK_Q.min(t - i0);
        // Keys seen by the block's rows before row `r` (exclusive): the last one's.
        let seen = |r: usize| (i0 + r + offset).min(tk);
        let width = seen(bq).next_multiple_of(tl.key_step());
        let qm = head_rows(q, qr.at(b * t, h, d), i0, bq, d, qr.stride)?; // (bq, D)
        let (s, o) = (sized(&mut sc.s, rows * ld), sized(&mut sc.o, rows * dpad));
        for r0 in (0..bq).step_by(mr) {
            let tiles = seen((r0 + mr).min(bq)).div_ceil(nr);
            tl.row_panel((scale, &qm, r0, (0, d)), (&sc.kt, d, tiles), 0.0, &mut s[r0 * ld..], ld, &mut sc.apack);
        }
        for (i, row) in s.chunks_exact_mut(ld).take(bq).enumerate() {
            lse[i0 + i] = masked_softmax(&mut row[..width], i0 + i + offset + 1);
        }
        let p = MatRef::new(&*s, rows, ld, ld)?; // (rows, ld)
        for r0 in (0..bq).step_by(mr) {
            let kv = seen((r0 + mr).min(bq));
            tl.row_panel(
                (1.0, &p, r0, (0, kv)),
                (&sc.vp, tk, d.div_ceil(nr)),
                0.0,
                &mut o[r0 * dpad..],
                dpad,
                &mut sc.apack,
            );
        }
        for i in 0..bq {
            // SAFETY: row i0 + i of head h of batch b is this task's alone.
            unsafe { out.write(out_rows.at(b * t + i0 + i, h, d), &o[i * dpad..][..d]) };
        }
    }
    Ok(())
}
