//! BatchNorm kept apart from the convolution before it.
//!
//! tract turns an ONNX `BatchNormalization` into `x · k + b` (k = γ/√(σ²+ε), b = β − μ·k) and its
//! declutter folds that into the convolution before it. For the forward pass that is what we want;
//! for the authors' rule it is not: z⁺ clamps the *raw* convolution weights and BatchNorm passes
//! relevance unchanged, and where γ < 0 the folded kernel k·W has its positive entries where W
//! has its negative ones, so z⁺ on it is a different rule. While the layer graph is read, each
//! BatchNorm that follows a convolution is therefore held in one op of ours, [`KeptBatchNorm`],
//! which tract cannot fold; the import makes it a [`crate::graph::Layer::BatchNorm`]. Before
//! tract optimises the forward plan, `release` turns it back into tract's own multiply and
//! add, so the forward pass is the same folded computation as without it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::math::{add, mul};
use tract_onnx::tract_hir::infer::InferenceModel;

/// `x · slope + intercept`, per channel, with `slope` and `intercept` as constant inputs 1 and 2
/// (shaped to broadcast along the channel axis, as tract wires a BatchNorm).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeptBatchNorm;

impl Op for KeptBatchNorm {
    fn name(&self) -> StaticName {
        "KeptBatchNorm".into()
    }

    op_as_typed_op!();
}

impl EvalOp for KeptBatchNorm {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let [x, slope, intercept] = &*inputs else { bail!("KeptBatchNorm takes three inputs") };
        let x = x.to_plain_array_view::<f32>()?;
        let y = &x * &slope.to_plain_array_view::<f32>()? + &intercept.to_plain_array_view::<f32>()?;
        Ok(tvec!(y.into_tensor().into_tvalue()))
    }
}

impl TypedOp for KeptBatchNorm {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }

    as_op!();
}

/// Names of the BatchNorm nodes of `model` that read a convolution's output directly: those
/// tract would fold.
pub(crate) fn after_conv(model: &InferenceModel) -> Vec<String> {
    model
        .nodes()
        .iter()
        .filter(|n| n.op.name() == "BatchNorm")
        .filter(|n| n.inputs.first().is_some_and(|i| matches!(&*model.node(i.node).op.name(), "Conv" | "ConvHir")))
        .map(|n| n.name.clone())
        .collect()
}

/// Replaces the multiply and add tract wired for each BatchNorm named in `names` (nodes
/// `<name>.mul` and `<name>`) by one [`KeptBatchNorm`]. Returns how many were replaced; a name
/// whose nodes are not in that form is left to tract.
pub(crate) fn keep(model: &mut TypedModel, names: &[String]) -> TractResult<usize> {
    let mut patch = TypedModelPatch::new("keep BatchNorm apart from its convolution");
    let mut kept = 0;
    for name in names {
        let (Some(m), Some(a)) = (find(model, &format!("{name}.mul")), find(model, name)) else { continue };
        let (mul_node, add_node) = (model.node(m), model.node(a));
        // tract wires mul(slope, x) and add(intercept, mul): one constant and one activation each
        let (Some((slope, x)), Some((intercept, y))) = (split(model, mul_node)?, split(model, add_node)?) else {
            continue;
        };
        if y.node != m || model.node(m).outputs[0].successors.len() != 1 {
            continue;
        }
        let inputs = patch.taps(model, &[x, slope, intercept])?;
        let out = patch.wire_node(name.clone(), KeptBatchNorm, &inputs)?[0];
        patch.shunt_outside(model, a.into(), out)?;
        patch.obliterate(m)?;
        patch.obliterate(a)?;
        kept += 1;
    }
    patch.apply(model)?;
    Ok(kept)
}

/// Turns every [`KeptBatchNorm`] back into tract's multiply and add, which tract's optimiser
/// then folds into the convolution.
pub(crate) fn release(model: &mut TypedModel) -> TractResult<()> {
    let mut patch = TypedModelPatch::new("release kept BatchNorms");
    for node in model.nodes().iter().filter(|n| n.op_is::<KeptBatchNorm>()) {
        let [x, slope, intercept] = *patch.taps(model, &node.inputs)? else { bail!("KeptBatchNorm arity") };
        let y = patch.wire_node(format!("{}.mul", node.name), mul(), &[slope, x])?[0];
        let y = patch.wire_node(format!("{}.add", node.name), add(), &[intercept, y])?[0];
        patch.shunt_outside(model, node.id.into(), y)?;
    }
    patch.apply(model)?;
    model.compact()?;
    Ok(())
}

fn find(model: &TypedModel, name: &str) -> Option<usize> {
    model
        .nodes()
        .iter()
        .find(|n| n.name == name && n.op_is::<tract_onnx::tract_core::ops::binary::TypedBinOp>())
        .map(|n| n.id)
}

/// A binary node's (constant input, activation input), if it has exactly one of each.
fn split(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(OutletId, OutletId)>> {
    let [a, b] = node.inputs[..] else { return Ok(None) };
    let (ka, kb) = (model.outlet_fact(a)?.konst.is_some(), model.outlet_fact(b)?.konst.is_some());
    Ok(match (ka, kb) {
        (true, false) => Some((a, b)),
        (false, true) => Some((b, a)),
        _ => None,
    })
}
