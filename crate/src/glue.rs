//! The glue to tract that the rest of the engine shares: the declutter passes every model goes
//! through, arrays in and out of tract tensors, and the guard around tract calls on untrusted
//! models. (`import` reads tract's ops and `conv` builds tract plans; everything else talks to
//! tract only through here.)

use ndarray::ArrayD;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::optim::Optimizer;

use crate::error::{Error, Result};

/// tract's declutter passes without `ChangeAxes`: that pass moves channels last around
/// depthwise convolutions only on hosts with a channel-last depthwise kernel (wasm SIMD, not
/// x86), so leaving it out gives the same NCHW layer graph natively and in the browser.
pub(crate) fn declutter(model: &mut TypedModel) -> TractResult<()> {
    let mut optimizer = Optimizer::declutter();
    optimizer.passes.retain(|pass| !format!("{pass:?}").contains("ChangeAxes"));
    optimizer.optimize(model)
}

/// A tract tensor holding `x`: one copy into tract's aligned storage, straight from the array.
pub(crate) fn tensor(x: &ArrayD<f32>) -> Result<Tensor> {
    Ok(match x.as_slice() {
        Some(s) => Tensor::from_shape(x.shape(), s)?,
        None => Tensor::from(x.as_standard_layout().into_owned()),
    })
}

/// The f32 array in a tract value.
pub(crate) fn array(t: TValue) -> Result<ArrayD<f32>> {
    Ok(t.into_tensor().into_plain_array::<f32>()?)
}

/// A tract error while loading a model, as an [`Error::Load`] that keeps it as its source.
pub(crate) fn load_err(e: TractError) -> Error {
    Error::Load { reason: format!("{e:#}"), source: Some(e.into()) }
}

/// Runs a tract step that loads an untrusted model: its error becomes an [`Error::Load`] and,
/// natively, a panic inside tract does too (in the browser a panic traps, and the page replaces
/// its worker).
pub(crate) fn guarded<T>(f: impl FnOnce() -> TractResult<T>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| Error::load("tract failed on this model (an internal error on malformed data)"))?;
    #[cfg(target_arch = "wasm32")]
    let r = f();
    r.map_err(load_err)
}
