//! A linear layer with its LoRA update, as one op:
//! `y = x · Wᵀ + b + s · (x_d · Aᵀ) · Bᵀ` (`x · W` for GPT-2's Conv1D, which
//! stores `W` as `(in, out)`; the rules below transpose accordingly), with `x_d = x ⊙ m` (dropout's
//! mask `m`, already divided by `1 − p`, or no mask), `A` `(r, in)`,
//! `B` `(out, r)` and `s = α / r`.
//!
//! With `x` as `(N, in)`, `u = s · (x_d · Aᵀ)` `(N, r)` and `G = ∂L/∂y` `(N, out)`:
//! ```text
//! ∂L/∂B = Gᵀ · u                       (out, N)·(N, r)
//! ∂L/∂A = (s · G·B)ᵀ · x_d             (r, N)·(N, in)
//! ∂L/∂x = G · W + ((s · G·B) · A) ⊙ m  (N, out)·(out, in) + (N, r)·(r, in)
//! ∂L/∂W = Gᵀ · x                       skipped for a frozen W, as always
//! ∂L/∂b = Σ_rows G
//! ```
//! The same products as `linear` + `dropout` + `linear` + `scale` +
//! `linear` + `add`, but the low-rank product is summed into the layer's own:
//! `y = [x | u] · [Wᵀ; Bᵀ]` and, with no mask, `∂L/∂x = [G | s·G·B] · [W; A]`,
//! each one GEMM whose last K block carries the rank's k
//! (`tensor::matmul_plus`). No `(N, out)` update or `(N, in)` gradient is
//! allocated, added or kept, and no pass over `y` or `∂L/∂x` is spent on
//! the low-rank part. (With a mask, `∂L/∂x`'s low-rank part is masked, so
//! it is added separately.) The sums are grouped differently from the
//! unfused ops', so values and gradients agree with theirs to rounding.
//!
//! With bf16 matmul precision, the layer's own products (`x·Wᵀ`, `G·W`, `Gᵀ·x`,
//! with the rank's k appended) are rounded like any other, but the
//! adapter's rank-r products (`x_d·Aᵀ`, `G·B`, `dhᵀ·x_d`, `Gᵀ·u`, `dh·A`)
//! stay f32 (`tensor::matmul_f32`): each reads an `(N, in)` or `(N, out)`
//! operand for `2·r` FLOPs per element, so it is bound by reading that
//! operand, not by FMAs. Rounding it to bf16 is one more pass over it (and
//! stops the kernel reading it in place), for no faster a product and a
//! less exact one. Measured on SmolLM2 LoRA r=16, bf16 on AMX (Xeon, 2
//! threads), 3 alternated pairs: 1.255-1.304 -> 1.157-1.175 s/step; the
//! rank-16 GEMMs in `hone bench --profile` 260 -> 173 ms per step.

use super::{grad_for, saved};
use crate::Var;
use kernels::nn::elementwise::axpy;
use tensor::ops::elementwise::{scale as scale_tensor, sum_to_shape};
use tensor::{matmul, matmul_f32, matmul_plus, Tensor, TensorError};

/// The parts of one LoRA-adapted linear layer (see the module doc).
pub struct LoraLinear<'a> {
    /// `(out, in)`, or `(in, out)` when `conv1d`; usually frozen.
    pub weight: &'a Var,
    pub conv1d: bool,
    pub bias: Option<&'a Var>,
    /// `(r, in)`.
    pub a: &'a Var,
    /// `(out, r)`.
    pub b: &'a Var,
    /// `α / r`.
    pub scale: f32,
    /// Dropout's mask on the adapter's input, with kept entries `1/(1 − p)`,
    /// the shape of `x` (see [`super::dropout::dropout_mask`]).
    pub mask: Option<Tensor>,
}

pub fn lora_linear(x: &Var, layer: LoraLinear<'_>) -> Result<Var, TensorError> {
    let bad = |detail: String| TensorError::shape("lora_linear", detail);
    let (xv, wv, av, bv) = (x.value(), layer.weight.value(), layer.a.value(), layer.b.value());
    let shape = xv.shape().to_vec();
    let (&inputs, lead) = shape.split_last().ok_or_else(|| bad("x is a scalar".into()))?;
    let (&[w0, w1], &[r, a_in], &[b_out, b_r]) = (wv.shape(), av.shape(), bv.shape()) else {
        return Err(bad(format!("W {:?}, A {:?}, B {:?} must be 2-D", wv.shape(), av.shape(), bv.shape())));
    };
    let conv1d = layer.conv1d;
    let (out, w_in) = if conv1d { (w1, w0) } else { (w0, w1) };
    // W as the (in, out) right operand of x·W, a view either way.
    let w_right = if conv1d { wv.clone() } else { wv.transpose(0, 1)? };
    if w_in != inputs || a_in != inputs || b_out != out || b_r != r || layer.bias.is_some_and(|b| b.shape() != [out]) {
        return Err(bad(format!(
            "x {shape:?}, W {:?}, A {:?}, B {:?}, bias {:?} do not fit",
            wv.shape(),
            av.shape(),
            bv.shape(),
            layer.bias.map(|b| b.shape())
        )));
    }
    if layer.mask.as_ref().is_some_and(|m| m.shape() != shape.as_slice()) {
        return Err(bad(format!("dropout mask {:?} for x {shape:?}", layer.mask.as_ref().map(|m| m.shape()))));
    }
    let rows: usize = lead.iter().product();
    let x2 = xv.reshape(&[rows, inputs])?; // (N, in)
    let mask = match layer.mask {
        Some(m) => Some(m.reshape(&[rows, inputs])?),
        None => None,
    };
    let xd = match &mask {
        Some(m) => tensor::ops::elementwise::binary(kernels::nn::elementwise::BinaryOp::Mul, &x2, m)?,
        None => x2.clone(),
    }; // (N, in)
    let u = scale_tensor(&matmul_f32(&xd, &av.transpose(0, 1)?)?, layer.scale)?; // (N, r)
    let mut y = matmul_plus(&x2, &w_right, &u, &bv.transpose(0, 1)?)?; // x·Wᵀ + u·Bᵀ  (N, out)
    if let Some(b) = layer.bias {
        let bias = b.value();
        let bias = bias.f32_data();
        for row in y.f32_mut().chunks_mut(out) {
            axpy(1.0, &bias, row)?;
        }
    }
    let mut out_shape = lead.to_vec();
    out_shape.push(out);
    let value = y.reshape(&out_shape)?;
    let s = layer.scale;
    // x is kept for W's gradient only when W trains (LoRA keeps it frozen);
    // the adapter's input x_d is kept for A's (the same tensor without dropout).
    let saved_x = layer.weight.requires_grad().then_some(x2);
    let mut parents = vec![x, layer.weight, layer.a, layer.b];
    parents.extend(layer.bias);
    Ok(Var::from_op(
        "lora_linear",
        value,
        &parents,
        Box::new(move |g, needs| {
            let g2 = g.reshape(&[rows, out])?; // (N, out)
            let dh = scale_tensor(&matmul_f32(&g2, &bv)?, s)?; // s·G·B  (N, r)
            let gx = grad_for(needs, 0, || {
                let gx = match &mask {
                    None => matmul_plus(&g2, &w_right.transpose(0, 1)?, &dh, &av)?, // G·W + dh·A  (N, in)
                    Some(m) => {
                        let mut gx = matmul(&g2, &w_right.transpose(0, 1)?)?; // G·W  (N, in)
                        let through = matmul_f32(&dh, &av)?;
                        let (through, m) = (through.f32_data(), m.f32_data());
                        let acc = gx.f32_mut();
                        acc.iter_mut().zip(through.iter().zip(m.iter())).for_each(|(d, (t, k))| *d += t * k);
                        gx
                    }
                };
                gx.reshape(&shape)
            })?;
            let gw = grad_for(needs, 1, || match conv1d {
                false => matmul(&g2.transpose(0, 1)?, saved(&saved_x, "lora_linear")?), // (out, in)
                true => matmul(&saved(&saved_x, "lora_linear")?.transpose(0, 1)?, &g2), // (in, out)
            })?;
            let ga = grad_for(needs, 2, || matmul_f32(&dh.transpose(0, 1)?, &xd))?;
            let gb = grad_for(needs, 3, || matmul_f32(&g2.transpose(0, 1)?, &u))?;
            let mut grads = vec![gx, gw, ga, gb];
            if needs.len() == 5 {
                grads.push(grad_for(needs, 4, || sum_to_shape(&g2, &[out]))?);
            }
            Ok(grads)
        }),
    ))
}
