//! Matrix products with a constant (`EinSum`): dense layers and the 1×1 convolutions tract
//! rewrote, read as 1×1 convolutions on a `[1, K, P, 1]` view.

use ndarray::{ArrayD, IxDyn};
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::{Ctx, ToLayer};
use crate::error::Result;
use crate::geometry::ConvGeometry;
use crate::graph::{ConvWeights, Layer};

impl ToLayer for EinSum {
    fn to_layer(&self, cx: &Ctx) -> Result<Layer> {
        let x = cx.single()?;
        if cx.consts.len() != 1 || self.q_params.is_some() {
            return Err(cx.unsupported("only products of an activation with a constant matrix are supported"));
        }
        let w = cx.f32(&cx.consts[0].0)?;
        let lin = parse_einsum(self, x, &w, cx.acts[0].1 == 0, cx)?;
        let geometry = ConvGeometry {
            c_in: lin.k,
            c_out: lin.o,
            in_hw: [lin.positions, 1],
            out_hw: [lin.positions, 1],
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pad_begin: [0, 0],
            pad_end: [0, 0],
            group: 1,
        };
        // a matrix product with a [1, N] result is a dense layer (Gemm, MatMul); with
        // spatial axes left it is a 1×1 convolution that tract rewrote
        let dense = cx.shape.iter().filter(|&&d| d != 1).count() <= 1;
        Ok(Layer::Conv { geometry, weights: ConvWeights::new(lin.weights), bias: vec![0.0; lin.o], dense })
    }
}

/// Interpretation of an `EinSum` that is a matrix product with a constant.
struct Linear {
    weights: ArrayD<f32>,
    k: usize,
    o: usize,
    positions: usize,
}

/// Reads an `EinSum` of activation `x` (the left operand if `x_first`) with constant `w`
/// as an `o × k` matrix applied at `positions` places, the weights as `[o, k, 1, 1]`.
fn parse_einsum(op: &EinSum, x_shape: &[usize], w: &ArrayD<f32>, x_first: bool, cx: &Ctx) -> Result<Linear> {
    let out_shape = &cx.shape;
    let (ins, outs) = op.axes.to_strs();
    let bad = |why: &str| cx.unsupported(format!("{} ({why})", op.axes));
    if ins.len() != 2 || outs.len() != 1 || w.ndim() != 2 {
        return Err(bad("not a product with a 2-D constant"));
    }
    let (xs, ws): (Vec<char>, Vec<char>) = if x_first {
        (ins[0].chars().collect(), ins[1].chars().collect())
    } else {
        (ins[1].chars().collect(), ins[0].chars().collect())
    };
    let os: Vec<char> = outs[0].chars().collect();
    // the contracted axis: in x and w, not in the output
    let k_axis = ws.iter().position(|c| xs.contains(c) && !os.contains(c)).ok_or_else(|| bad("no contracted axis"))?;
    let o_axis = 1 - k_axis;
    let (kc, oc) = (ws[k_axis], ws[o_axis]);
    if xs.contains(&oc) || !os.contains(&oc) {
        return Err(bad("output channel axis"));
    }
    // dropping size-1 axes, x must be [K, rest...] and the output [O, rest...], so that in
    // memory x is a K×P matrix and the output an O×P matrix
    let kept_x: Vec<char> = xs.iter().zip(x_shape).filter(|(c, &d)| **c == kc || d != 1).map(|(c, _)| *c).collect();
    let kept_o: Vec<char> = os.iter().zip(out_shape).filter(|(c, &d)| **c == oc || d != 1).map(|(c, _)| *c).collect();
    let ok = kept_x.first() == Some(&kc)
        && kept_o.first() == Some(&oc)
        && kept_x[1..] == kept_o[1..]
        && kept_x.iter().all(|c| *c == kc || os.contains(c));
    if !ok {
        return Err(bad("layout is not [N, C, spatial...]"));
    }
    let k = w.shape()[k_axis];
    let o = w.shape()[o_axis];
    let positions: usize = out_shape.iter().product::<usize>() / o.max(1);
    let weights = if k_axis == 1 { w.clone() } else { w.t().to_owned() };
    let weights = weights
        .as_standard_layout()
        .to_owned()
        .into_shape_with_order(IxDyn(&[o, k, 1, 1]))
        .map_err(|e| bad(&e.to_string()))?;
    Ok(Linear { weights, k, o, positions })
}
