//! The backward pass, one (batch, key/value head) per task, so the
//! gradients of a shared K/V head are summed by one task in a fixed order:
//! ```text
//! P = exp(S − lse)   (S rebuilt from Q, K: the forward kept only lse)
//! dP = dO Vᵀ,   dS = P ⊙ (dP − δ),  δ_i = ⟨dO_i, O_i⟩
//! dQ = s · dS K,   dK += s · dSᵀ Q,   dV += Pᵀ dO
//! ```
//! Per task, K and V are packed once (as Kᵀ, Vᵀ for the scores and dP, as K
//! for dQ); per query block, Q and dO are packed for dK and dV. The causal
//! mask bounds each product: scores and dP stop at a row panel's last
//! visible key, dQ's k range too, and dK, dV of keys from `j0` take only
//! the query rows that see `j0` (the earlier ones have dS = P = 0 there).

use super::tiles::{pack_b, sized, with_scratch, Disjoint, Scratch, Tiles};
use super::{head_rows, AttentionShape, Inputs, Rows, BLOCK_Q};
use crate::gemm::MatRef;
use crate::nn::exp::exp;
use crate::nn::{reduce, vectorized};
use crate::KernelError;
use rayon::prelude::*;

vectorized! {
    /// Turns a score row into `dS = P ⊙ (dP − δ)`, rebuilding `P = exp(S − lse)`;
    /// `s_row` becomes P, `dp_row` becomes dS. Masked entries become 0.
    fn softmax_grad_row(s_row: &mut [f32], dp_row: &mut [f32], visible: usize, lse: f32, delta: f32) {
        for j in 0..s_row.len().min(dp_row.len()) {
            let p = if j < visible { exp(s_row[j] - lse) } else { 0.0 };
            s_row[j] = p;
            dp_row[j] = p * (dp_row[j] - delta);
        }
    }
}

/// The forward's saved tensors and the output gradient, all `(B, T, Hq, D)`
/// but `lse` `(B, Hq, T)`.
#[derive(Clone, Copy)]
pub(super) struct Saved<'a> {
    pub out: &'a [f32],
    pub lse: &'a [f32],
    pub dout: &'a [f32],
}

/// Where dq, dk, dv go: their slices (one, the fused tensor, or three) and row layouts.
pub(super) type Dests<'a, 'b> = [(&'b Disjoint<'a>, Rows); 3];

/// Writes every element of dq, dk and dv.
pub(super) fn backward(shape: AttentionShape, x: Inputs, saved: Saved, dests: Dests) -> Result<(), KernelError> {
    let (nq, nlse) =
        (shape.batch * shape.seq * shape.q_heads * shape.head_dim, shape.batch * shape.q_heads * shape.seq);
    if saved.out.len() != nq || saved.dout.len() != nq || saved.lse.len() != nlse {
        return Err(KernelError::bad("attention_backward", "out and dout must be (B, T, Hq, D) and lse (B, Hq, T)"));
    }
    let tiles = Tiles::new()?;
    let tasks = shape.batch * shape.kv_heads;
    (0..tasks).into_par_iter().try_for_each(|task| {
        let group = (task / shape.kv_heads, task % shape.kv_heads);
        with_scratch(|scratch| group_backward(shape, tiles, x, saved, group, dests, scratch))
    })
}

/// One (batch, kv head) and its query heads: writes their dq rows and the head's dk, dv rows.
fn group_backward(
    shape: AttentionShape,
    tl: Tiles,
    x: Inputs,
    saved: Saved,
    (b, g): (usize, usize),
    [(dq, dqr), (dk, dkr), (dv, dvr)]: Dests,
    sc: &mut Scratch,
) -> Result<(), KernelError> {
    let AttentionShape { seq: t, kv_seq: tk, q_heads, kv_heads, head_dim: d, .. } = shape;
    let (offset, scale, group) = (tk - t, 1.0 / (d as f32).sqrt(), q_heads / kv_heads);
    let ((q, qr), (k, kr), (v, vr)) = (x.q, x.k, x.v);
    let orows = Rows::packed(q_heads, d); // out and dout, whatever the inputs' layout
    let km = head_rows(k, kr.at(b * tk, g, d), 0, tk, d, kr.stride)?; // (Tk, D)
    let vm = head_rows(v, vr.at(b * tk, g, d), 0, tk, d, vr.stride)?; // (Tk, D)
    pack_b(&tl, &km.t(), &mut sc.kt); // B of S = Q·Kᵀ: (D, Tk)
    pack_b(&tl, &vm.t(), &mut sc.vt); // B of dP = dO·Vᵀ: (D, Tk)
    pack_b(&tl, &km, &mut sc.kp); // B of dQ = dS·K: (Tk, D)
    let (mr, nr, dtiles) = (tl.mr, tl.nr, d.div_ceil(tl.nr));
    let (ld, dpad, rows) = (tk.next_multiple_of(tl.key_step()), tl.cols_padded(d), BLOCK_Q.min(t).next_multiple_of(mr));
    let krows = tk.next_multiple_of(mr);
    let (dk_acc, dv_acc) = (sized(&mut sc.dk, krows * dpad), sized(&mut sc.dv, krows * dpad));
    dk_acc.fill(0.0);
    dv_acc.fill(0.0);
    for h in g * group..(g + 1) * group {
        let (qb, ob, os) = (qr.at(b * t, h, d), orows.at(b * t, h, d), orows.stride);
        let lse = &saved.lse[(b * q_heads + h) * t..][..t];
        let delta = sized(&mut sc.delta, t);
        for (i, di) in delta.iter_mut().enumerate() {
            *di = reduce::dot(&saved.dout[ob + i * os..][..d], &saved.out[ob + i * os..][..d]);
            // δ_i = ⟨dO_i, O_i⟩
        }
        for i0 in (0..t).step_by(BLOCK_Q) {
            let bq = BLOCK_Q.min(t - i0);
            // Keys seen by the block's rows before row `r` (exclusive): the last one's.
            let seen = |r: usize| (i0 + r + offset).min(tk);
            let width = seen(bq).next_multiple_of(tl.key_step());
            let qm = head_rows(q, qb, i0, bq, d, qr.stride)?; // (bq, D)
            let dom = head_rows(saved.dout, ob, i0, bq, d, os)?; // (bq, D)
            let (s, dp, o) = (sized(&mut sc.s, rows * ld), sized(&mut sc.dp, rows * ld), sized(&mut sc.o, rows * dpad));
            for r0 in (0..bq).step_by(mr) {
                let tiles = seen((r0 + mr).min(bq)).div_ceil(nr);
                tl.row_panel((scale, &qm, r0, (0, d)), (&sc.kt, d, tiles), 0.0, &mut s[r0 * ld..], ld, &mut sc.apack);
                tl.row_panel((1.0, &dom, r0, (0, d)), (&sc.vt, d, tiles), 0.0, &mut dp[r0 * ld..], ld, &mut sc.apack);
            }
            for (i, (s_row, dp_row)) in s.chunks_exact_mut(ld).zip(dp.chunks_exact_mut(ld)).take(bq).enumerate() {
                let r = i0 + i;
                softmax_grad_row(&mut s_row[..width], &mut dp_row[..width], r + offset + 1, lse[r], delta[r]);
            }
            let (p, ds) = (MatRef::new(&*s, rows, ld, ld)?, MatRef::new(&*dp, rows, ld, ld)?); // (rows, ld)
                                                                                               // dQ = s · dS K, over the keys each row panel sees.
            for r0 in (0..bq).step_by(mr) {
                let kv = seen((r0 + mr).min(bq));
                let dst = &mut o[r0 * dpad..];
                tl.row_panel((scale, &ds, r0, (0, kv)), (&sc.kp, tk, dtiles), 0.0, dst, dpad, &mut sc.apack);
            }
            for i in 0..bq {
                // SAFETY: row i0 + i of query head h of batch b: this task's alone.
                unsafe { dq.write(dqr.at(b * t + i0 + i, h, d), &o[i * dpad..][..d]) };
            }
            // dK += s · dSᵀ Q and dV += Pᵀ dO: keys j0.. against the block's
            // rows from the first that sees j0 (i0 + p + offset >= j0).
            pack_b(&tl, &qm, &mut sc.qb); // (bq, D)
            pack_b(&tl, &dom, &mut sc.dob); // (bq, D)
            let (dst, pt) = (ds.t(), p.t()); // (ld, rows): rows are keys
            for j0 in (0..seen(bq)).step_by(mr) {
                let first = (j0.saturating_sub(offset)).saturating_sub(i0);
                let (kdst, vdst) = (&mut dk_acc[j0 * dpad..], &mut dv_acc[j0 * dpad..]);
                tl.row_panel((scale, &dst, j0, (first, bq)), (&sc.qb, bq, dtiles), 1.0, kdst, dpad, &mut sc.apack);
                tl.row_panel((1.0, &pt, j0, (first, bq)), (&sc.dob, bq, dtiles), 1.0, vdst, dpad, &mut sc.apack);
            }
        }
    }
    for j in 0..tk {
        // SAFETY: row j of kv head g of batch b: this task's alone.
        unsafe {
            dk.write(dkr.at(b * tk + j, g, d), &dk_acc[j * dpad..][..d]);
            dv.write(dvr.at(b * tk + j, g, d), &dv_acc[j * dpad..][..d]);
        }
    }
    Ok(())
}
