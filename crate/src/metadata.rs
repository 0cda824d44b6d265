//! What a model file says about itself: its preprocessing and class names, stored as ONNX
//! `metadata_props` (string key → string value) under two keys of ours, so that the CLI and the
//! page need no flags for them.
//!
//! - [`PREPROCESS_KEY`] `resnet_lrp.preprocess`: a JSON object
//!   `{"channels": 1, "size": [28, 28], "layout": "NCHW", "scale": 1, "mean": [0.286], "std": [0.353],
//!   "bgr": false, "resize": "full"}`. `channels`, `mean` and `std` are required; `mean` and `std`
//!   have one value per channel (or one value for all), in the model's channel order, applied after
//!   `scale` (pixels are `byte / 255 * scale`, so 1 means `[0, 1]`, 255 means `[0, 255]`;
//!   default 1). `size` (`[height, width]`) and `layout` (`NCHW` or `NHWC`), when given, must be
//!   the model input's. `bgr` (default false) feeds colour channels as B, G, R. `resize` says how a
//!   photo of another shape becomes the input size: `full` (default: the whole photo stretched, what
//!   the CLI always does), `stretch` or `shorter_side` (the page's centre crops). A greyscale model
//!   (`channels: 1`) is fed the luma of a colour photo. Other fields are an error, so that a typo is
//!   not silently ignored.
//! - [`CLASSES_KEY`] `resnet_lrp.classes`: a JSON list of class names, one per model output.
//!
//! Both are optional; a model without them gets ImageNet normalisation and class numbers. A value
//! that is present but wrong is an [`Error::Load`] naming its key: explaining with a preprocessing
//! the file did not mean would give plausible-looking but wrong heatmaps.
//!
//! The properties are read from the model the load pipeline has decoded already
//! ([`crate::model`]), not from the bytes a second time.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::preprocess::{InputSpec, Layout, Preprocess};

/// Metadata key of the preprocessing (JSON object, see the module documentation).
pub const PREPROCESS_KEY: &str = "resnet_lrp.preprocess";
/// Metadata key of the class names (JSON list of strings).
pub const CLASSES_KEY: &str = "resnet_lrp.classes";

/// How the page turns a photo of another shape into the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// The whole photo, stretched to the input size (the CLI's only way).
    Full,
    /// Stretch to 256/224 of the input size (aspect ratio ignored), then a centre crop.
    Stretch,
    /// Resize the shorter side to 256/224 of the input size, then a centre crop (ImageNet's).
    ShorterSide,
}

/// The preprocessing and class names a model file carries; `None` where it carries none.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelMetadata {
    /// From [`PREPROCESS_KEY`].
    pub preprocess: Option<Preprocess>,
    /// From [`PREPROCESS_KEY`]'s `resize`.
    pub resize: Option<Resize>,
    /// From [`CLASSES_KEY`].
    pub classes: Option<Vec<String>>,
}

/// The JSON of [`PREPROCESS_KEY`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreprocessJson {
    channels: usize,
    size: Option<[usize; 2]>,
    layout: Option<Layout>,
    #[serde(default = "one")]
    scale: f32,
    mean: Vec<f32>,
    std: Vec<f32>,
    #[serde(default)]
    bgr: bool,
    resize: Option<Resize>,
}

fn one() -> f32 {
    1.0
}

fn bad(key: &str, reason: impl std::fmt::Display) -> Error {
    Error::load(format!("metadata `{key}`: {reason}"))
}

impl ModelMetadata {
    /// Reads the metadata of a decoded ONNX model, the `(key, value)` pairs of its
    /// `metadata_props`, and checks it against the model's `input` and its number of `classes`
    /// (outputs).
    ///
    /// # Errors
    /// [`Error::Load`] naming the key, for a value that is not the JSON it should be, a channel
    /// count, size or layout other than the input's, a `mean`/`std` of the wrong length, a
    /// non-positive or non-finite `std` or `scale`, or a number of class names other than
    /// `classes`.
    pub fn from_props<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
        input: &InputSpec,
        classes: usize,
    ) -> Result<ModelMetadata> {
        let mut out = ModelMetadata::default();
        for (key, value) in props {
            match key {
                PREPROCESS_KEY => {
                    let (pre, resize) = parse_preprocess(value, input)?;
                    out.preprocess = Some(pre);
                    out.resize = resize;
                }
                CLASSES_KEY => out.classes = Some(parse_classes(value, classes)?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// The name of class `c`, if the model names its classes.
    pub fn class_name(&self, c: usize) -> Option<&str> {
        self.classes.as_ref()?.get(c).map(String::as_str)
    }
}

/// `values` (one per channel, or one for all) as the three slots of [`Preprocess`]; a grey model
/// reads slot 0.
fn per_channel(values: &[f32], channels: usize, field: &str) -> Result<[f32; 3]> {
    match values {
        [v] => Ok([*v; 3]),
        [a, b, c] if channels == 3 => Ok([*a, *b, *c]),
        _ => Err(bad(
            PREPROCESS_KEY,
            format!("`{field}` has {} values; the model has {channels} channels", values.len()),
        )),
    }
}

fn parse_preprocess(value: &str, input: &InputSpec) -> Result<(Preprocess, Option<Resize>)> {
    let j: PreprocessJson = serde_json::from_str(value).map_err(|e| bad(PREPROCESS_KEY, e))?;
    if j.channels != input.channels {
        let c = j.channels;
        return Err(bad(PREPROCESS_KEY, format!("{c} channels, the model input has {}", input.channels)));
    }
    if let Some([h, w]) = j.size.filter(|s| *s != [input.height, input.width]) {
        let (ih, iw) = (input.height, input.width);
        return Err(bad(PREPROCESS_KEY, format!("size {h}×{w}, the model input is {ih}×{iw}")));
    }
    if let Some(layout) = j.layout.filter(|l| *l != input.layout) {
        return Err(bad(PREPROCESS_KEY, format!("layout {layout:?}, the model input is {:?}", input.layout)));
    }
    let pre = Preprocess {
        scale: j.scale,
        mean: per_channel(&j.mean, j.channels, "mean")?,
        std: per_channel(&j.std, j.channels, "std")?,
        bgr: j.bgr,
    };
    pre.validate().map_err(|e| bad(PREPROCESS_KEY, e))?;
    Ok((pre, j.resize))
}

fn parse_classes(value: &str, classes: usize) -> Result<Vec<String>> {
    let names: Vec<String> = serde_json::from_str(value).map_err(|e| bad(CLASSES_KEY, e))?;
    if names.len() != classes {
        return Err(bad(CLASSES_KEY, format!("{} names for {classes} model outputs", names.len())));
    }
    Ok(names)
}
