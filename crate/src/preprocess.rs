//! The model's input side: its layout and size ([`InputSpec`]), and how an RGBA image becomes
//! the input tensor ([`Preprocess`]: bilinear resize in pixel space, then scale, channel order,
//! mean and std). Natively and in the browser the same code runs, so both see the same tensor.

use ndarray::{Array3, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// ImageNet's per-channel mean (torchvision's normalisation), the default of [`Preprocess`].
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation (torchvision's normalisation).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Where the channel axis of the model input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[1, C, H, W]`
    NCHW,
    /// `[1, H, W, C]`
    NHWC,
}

/// The model input, as read from the graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// Input name.
    pub name: String,
    /// Full shape (batch 1).
    pub shape: Vec<usize>,
    /// Channel layout.
    pub layout: Layout,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
    /// The model leaves height and width open; they were set to [`DEFAULT_SIDE`].
    pub size_pinned: bool,
}

/// Height and width given to a model whose input leaves them open (ImageNet's 224).
pub const DEFAULT_SIDE: usize = 224;

impl InputSpec {
    pub(crate) fn from_shape(name: String, shape: &[usize]) -> Result<InputSpec> {
        let is_c = |d: usize| d == 1 || d == 3;
        let layout = match shape {
            [1, c, _, _] if is_c(*c) => Layout::NCHW,
            [1, _, _, c] if is_c(*c) => Layout::NHWC,
            _ => {
                return Err(Error::UnsupportedInput(format!(
                    "expected an image input [1, 3, H, W] or [1, H, W, 3], got {shape:?}"
                )))
            }
        };
        let (channels, height, width) = match layout {
            Layout::NCHW => (shape[1], shape[2], shape[3]),
            Layout::NHWC => (shape[3], shape[1], shape[2]),
        };
        Ok(InputSpec { name, shape: shape.to_vec(), layout, channels, height, width, size_pinned: false })
    }

    /// Index of the channel axis.
    pub fn channel_axis(&self) -> usize {
        match self.layout {
            Layout::NCHW => 1,
            Layout::NHWC => 3,
        }
    }
}

/// How an RGBA image becomes the model's input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Pixel values are `byte / 255 * scale` before mean/std (1 for `[0, 1]`, 255 for `[0, 255]`).
    pub scale: f32,
    /// Per-channel mean, in the model's channel order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in the model's channel order.
    pub std: [f32; 3],
    /// Feed channels as B, G, R instead of R, G, B.
    pub bgr: bool,
}

impl Default for Preprocess {
    /// ImageNet normalisation: RGB in [0, 1], torchvision mean and std.
    fn default() -> Self {
        Preprocess { scale: 1.0, mean: IMAGENET_MEAN, std: IMAGENET_STD, bgr: false }
    }
}

impl Preprocess {
    /// Checks the values make sense.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for a non-positive std or scale, or non-finite numbers.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::param("scale", "must be a positive number"));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::param("std", "every std must be a positive number"));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::param("mean", "every mean must be a finite number"));
        }
        Ok(())
    }

    /// Per-channel `(low, high)` of the normalised input (the zB bounds).
    pub fn bounds(&self) -> (Vec<f32>, Vec<f32>) {
        let low = (0..3).map(|c| (0.0 - self.mean[c]) / self.std[c]).collect();
        let high = (0..3).map(|c| (self.scale - self.mean[c]) / self.std[c]).collect();
        (low, high)
    }
}

impl InputSpec {
    /// Turns an RGBA image (row-major, 4 bytes per pixel) into the model's input: bilinear
    /// resize to the input size, then scale, channel order, mean/std, layout.
    /// The same as [`InputSpec::resize_rgba`] followed by [`InputSpec::normalize`].
    ///
    /// # Errors
    /// [`Error::Image`] for an empty image or a buffer of the wrong size.
    pub fn preprocess(&self, rgba: &[u8], width: usize, height: usize, p: &Preprocess) -> Result<ArrayD<f32>> {
        p.validate()?;
        let pixels = self.resize_rgba(rgba, width, height)?;
        self.normalize(&pixels, p)
    }

    /// The first half of [`InputSpec::preprocess`]: bilinear resize of an RGBA image to the model's
    /// input size, in pixel space — `[H, W, 3]`, R, G, B, values 0–255 (alpha dropped).
    ///
    /// # Errors
    /// [`Error::Image`] for an empty image or a buffer of the wrong size.
    pub fn resize_rgba(&self, rgba: &[u8], width: usize, height: usize) -> Result<Array3<f32>> {
        if width == 0 || height == 0 {
            return Err(Error::Image(format!("the image is empty ({width}×{height})")));
        }
        if rgba.len() != width * height * 4 {
            return Err(Error::Image(format!("{} bytes for a {width}×{height} RGBA image", rgba.len())));
        }
        let (h, w) = (self.height, self.width);
        let sample = |ch: usize, fy: f32, fx: f32| -> f32 {
            let y0 = fy.floor().clamp(0.0, (height - 1) as f32) as usize;
            let x0 = fx.floor().clamp(0.0, (width - 1) as f32) as usize;
            let y1 = (y0 + 1).min(height - 1);
            let x1 = (x0 + 1).min(width - 1);
            let (ty, tx) = ((fy - y0 as f32).clamp(0.0, 1.0), (fx - x0 as f32).clamp(0.0, 1.0));
            let px = |y: usize, x: usize| rgba[(y * width + x) * 4 + ch] as f32;
            let top = px(y0, x0) * (1.0 - tx) + px(y0, x1) * tx;
            let bottom = px(y1, x0) * (1.0 - tx) + px(y1, x1) * tx;
            top * (1.0 - ty) + bottom * ty
        };
        let sy = height as f32 / h as f32;
        let sx = width as f32 / w as f32;
        let mut out = Array3::<f32>::zeros((h, w, 3));
        for yy in 0..h {
            let fy = (yy as f32 + 0.5) * sy - 0.5;
            for xx in 0..w {
                let fx = (xx as f32 + 0.5) * sx - 0.5;
                for ch in 0..3 {
                    out[[yy, xx, ch]] = sample(ch, fy, fx);
                }
            }
        }
        Ok(out)
    }

    /// The second half of [`InputSpec::preprocess`]: pixel-space RGB `[H, W, 3]` (0–255, the
    /// model's input size) → the model's input tensor (scale, channel order, mean/std, layout;
    /// grey models get the luma).
    ///
    /// # Errors
    /// [`Error::InvalidParam`] for invalid preprocessing, [`Error::InvalidInput`] for pixels that are
    /// not `[H, W, 3]` at the model's input size.
    pub fn normalize(&self, pixels: &Array3<f32>, p: &Preprocess) -> Result<ArrayD<f32>> {
        p.validate()?;
        let (h, w, c) = (self.height, self.width, self.channels);
        if pixels.dim() != (h, w, 3) {
            return Err(Error::InvalidInput(format!("pixels {:?}, the model needs [{h}, {w}, 3]", pixels.shape())));
        }
        let mut x = ArrayD::<f32>::zeros(IxDyn(&self.shape));
        for yy in 0..h {
            for xx in 0..w {
                let px = |ch: usize| pixels[[yy, xx, ch]];
                for ch in 0..c {
                    let src = if c == 1 {
                        // grey models get the luma
                        0.299 * px(0) + 0.587 * px(1) + 0.114 * px(2)
                    } else {
                        px(if p.bgr { 2 - ch } else { ch })
                    };
                    let v = (src / 255.0 * p.scale - p.mean[ch.min(2)]) / p.std[ch.min(2)];
                    match self.layout {
                        Layout::NCHW => x[[0, ch, yy, xx]] = v,
                        Layout::NHWC => x[[0, yy, xx, ch]] = v,
                    }
                }
            }
        }
        Ok(x)
    }
}
