//! Broadcasting elementwise arithmetic, reductions and activations.
//!
//! Broadcasting follows NumPy/PyTorch: shapes are aligned at the last axis;
//! an axis of size 1 (or a missing leading axis) repeats to match the other.
//! [`sum_to_shape`] is the reverse, what the backward of a broadcast needs:
//! it sums a gradient over every axis that was repeated.

use crate::{contiguous_strides, Tensor, TensorError};
use kernels::nn::activation;
use kernels::nn::elementwise::{self as ew, BinaryOp};

/// The shape `a` and `b` broadcast to, or an error naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, TensorError> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(TensorError::shape("broadcast", format!("shapes {a:?} and {b:?} do not broadcast"))),
        })
        .collect()
}

/// Strides that read a row-major tensor of `shape` as if broadcast to `out`.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len()).map(|i| if i < lead || shape[i - lead] == 1 { 0 } else { own[i - lead] }).collect()
}

/// `a op b` with broadcasting.
pub fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, TensorError> {
    let shape = broadcast_shape(a.shape(), b.shape())?;
    let (ad, bd) = (a.f32_data(), b.f32_data());
    let n = crate::numel(&shape).unwrap_or(0);
    let mut out = vec![0.0f32; n];
    if a.shape() == b.shape() {
        ew::binary(op, &ad, &bd, &mut out)?;
        return Tensor::from_vec(out, &shape);
    }
    let (sa, sb) = (broadcast_strides(a.shape(), &shape), broadcast_strides(b.shape(), &shape));
    let width = *shape.last().unwrap_or(&1);
    let rank = shape.len();
    let mut index = vec![0usize; rank.saturating_sub(1)];
    for row in out.chunks_mut(width.max(1)) {
        // Offsets of this row in a and b, from the index over the leading axes.
        let oa: usize = index.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ob: usize = index.iter().zip(&sb).map(|(i, s)| i * s).sum();
        let (la, lb) = (sa.last().copied().unwrap_or(0), sb.last().copied().unwrap_or(0));
        match (la, lb) {
            (1, 1) => ew::binary(op, &ad[oa..oa + width], &bd[ob..ob + width], row)?,
            (1, 0) => ew::binary_scalar(op, &ad[oa..oa + width], bd[ob], row)?,
            _ => row.iter_mut().enumerate().for_each(|(j, o)| *o = op.apply(ad[oa + j * la], bd[ob + j * lb])),
        }
        for ax in (0..index.len()).rev() {
            index[ax] += 1;
            if index[ax] < shape[ax] {
                break;
            }
            index[ax] = 0;
        }
    }
    Tensor::from_vec(out, &shape)
}

/// `x · s`.
pub fn scale(x: &Tensor, s: f32) -> Result<Tensor, TensorError> {
    let xd = x.f32_data();
    let mut out = vec![0.0; xd.len()];
    ew::binary_scalar(BinaryOp::Mul, &xd, s, &mut out)?;
    Tensor::from_vec(out, x.shape())
}

/// Sums `x` over the axes along which `shape` was broadcast to `x.shape()`,
/// giving a tensor of `shape` (the backward of broadcasting). Sums run in
/// element order, one thread: deterministic.
pub fn sum_to_shape(x: &Tensor, shape: &[usize]) -> Result<Tensor, TensorError> {
    if x.shape() == shape {
        return Ok(x.contiguous());
    }
    if broadcast_shape(shape, x.shape())? != x.shape() {
        return Err(TensorError::shape("sum_to_shape", format!("{shape:?} does not broadcast to {:?}", x.shape())));
    }
    let xd = x.f32_data();
    let mut out = vec![0.0f32; crate::numel(shape).unwrap_or(0)];
    // Broadcast along leading axes only (a bias summed over rows): add whole
    // rows, vectorised. Same order as the element walk below: row by row.
    let kept: Vec<usize> = shape.iter().copied().skip_while(|&d| d == 1).collect();
    if x.shape().ends_with(&kept) && !out.is_empty() {
        for row in xd.chunks_exact(out.len()) {
            ew::axpy(1.0, row, &mut out)?;
        }
        return Tensor::from_vec(out, shape);
    }
    let strides = broadcast_strides(shape, x.shape());
    let mut index = vec![0usize; x.rank()];
    let mut pos = 0usize;
    for &v in xd.iter() {
        out[pos] += v;
        for ax in (0..index.len()).rev() {
            index[ax] += 1;
            pos += strides[ax];
            if index[ax] < x.shape()[ax] {
                break;
            }
            pos -= strides[ax] * x.shape()[ax];
            index[ax] = 0;
        }
    }
    Tensor::from_vec(out, shape)
}

/// `Σ x`, a scalar (shape `[]`), accumulated in f64 in element order.
pub fn sum_all(x: &Tensor) -> Tensor {
    Tensor::from_vec(vec![ew::sum_f64(&x.f32_data()) as f32], &[]).expect("one element")
}

/// An activation applied elementwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (GPT-2).
    Gelu,
    /// SiLU / swish (Llama's MLP gate).
    Silu,
}

/// `f(x)` elementwise.
pub fn activate(f: Activation, x: &Tensor) -> Result<Tensor, TensorError> {
    let xd = x.f32_data();
    let mut out = vec![0.0; xd.len()];
    match f {
        Activation::Gelu => activation::gelu(&xd, &mut out)?,
        Activation::Silu => activation::silu(&xd, &mut out)?,
    }
    Tensor::from_vec(out, x.shape())
}

/// `silu(gate) · up`, Llama's gated MLP activation.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor, TensorError> {
    if gate.shape() != up.shape() {
        return Err(TensorError::shape("swiglu", format!("gate {:?} and up {:?} differ", gate.shape(), up.shape())));
    }
    let (g, u) = (gate.f32_data(), up.f32_data());
    let mut out = vec![0.0; g.len()];
    activation::swiglu(&g, &u, &mut out)?;
    Tensor::from_vec(out, gate.shape())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], s: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), s).unwrap()
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]).unwrap(), [2, 4, 3]);
        assert!(broadcast_shape(&[2, 3], &[3, 2]).is_err());
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let row = t(&[10., 20., 30.], &[3]);
        let col = t(&[100., 200.], &[2, 1]);
        assert_eq!(binary(BinaryOp::Add, &a, &row).unwrap().to_f32_vec(), [11., 22., 33., 14., 25., 36.]);
        assert_eq!(binary(BinaryOp::Sub, &a, &col).unwrap().to_f32_vec(), [-99., -98., -97., -196., -195., -194.]);
        assert_eq!(binary(BinaryOp::Mul, &col, &row).unwrap().shape(), [2, 3]);
        let s = binary(BinaryOp::Div, &a, &t(&[2.], &[])).unwrap();
        assert_eq!(s.to_f32_vec(), [0.5, 1., 1.5, 2., 2.5, 3.]);
        // A transposed view is read as its logical layout.
        let at = a.transpose(0, 1).unwrap(); // (3, 2)
        let sum = binary(BinaryOp::Add, &at, &t(&[0., 1.], &[2])).unwrap();
        assert_eq!(sum.to_f32_vec(), [1., 5., 2., 6., 3., 7.]);
    }

    #[test]
    fn sum_to_shape_reverses_broadcast() {
        let g = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        assert_eq!(sum_to_shape(&g, &[3]).unwrap().to_f32_vec(), [5., 7., 9.]);
        assert_eq!(sum_to_shape(&g, &[2, 1]).unwrap().to_f32_vec(), [6., 15.]);
        assert_eq!(sum_to_shape(&g, &[]).unwrap().to_f32_vec(), [21.]);
        assert!(sum_to_shape(&g, &[2]).is_err());
        assert_eq!(sum_all(&g).item().unwrap(), 21.0);
    }

    #[test]
    fn row_sums_add_rows_in_order_like_the_element_walk() {
        // (2, 3, 37) summed to (37,), (1, 37) and (1, 1, 37) takes the row
        // path; (3, 1) the element walk. Values whose sums round, so a
        // different order would show in the bits.
        let data: Vec<f32> = (0..2 * 3 * 37).map(|i| 1.0 + (i as f32 * 0.731).sin() * 1e-3 + i as f32 * 1e4).collect();
        let g = t(&data, &[2, 3, 37]);
        let mut want = vec![0.0f32; 37];
        for row in data.chunks_exact(37) {
            for (w, &v) in want.iter_mut().zip(row) {
                *w += v;
            }
        }
        for shape in [&[37][..], &[1, 37], &[1, 1, 37]] {
            assert_eq!(sum_to_shape(&g, shape).unwrap().to_f32_vec(), want, "{shape:?}");
        }
        let by_row: Vec<f32> = data.chunks_exact(37).map(|r| r.iter().sum()).collect();
        assert_eq!(sum_to_shape(&g, &[2, 3, 1]).unwrap().to_f32_vec(), by_row);
    }
}
