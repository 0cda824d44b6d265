//! Any bytes as an ONNX model: loading must end in a model or a named error; a model that
//! loads must run a forward pass and a conserving explanation without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndarray::{ArrayD, IxDyn};
use resnet_lrp::{Composite, Method, Model, Start, Target, Variant};

/// Inputs larger than this are not run (a fuzzer-made shape could need gigabytes).
const MAX_INPUT_ELEMENTS: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(model) = Model::from_onnx_bytes(data) else { return };
    let shape = model.input().shape.clone();
    if shape.iter().product::<usize>() > MAX_INPUT_ELEMENTS {
        return;
    }
    let mut ex = model.explainer();
    let Ok(acts) = ex.forward(ArrayD::from_elem(IxDyn(&shape), 0.5)) else { return };
    let method = Method::Lrp {
        composite: Composite::by_name("conserving", (vec![0.0], vec![1.0])).expect("registered"),
        variant: Variant::FlowsSkip,
    };
    let _ = ex.explain(&acts, Target::Top1, Start::Probability, &method);
});
