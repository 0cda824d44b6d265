//! The baselines that are not a single backward sweep: Guided Backprop and Integrated Gradients
//! (sweeps of `gradient`), Grad-CAM and Score-CAM (class activation maps at the input of the
//! global pooling), and the pure pieces they share: bilinear resizing, min–max scaling and
//! spreading an `[H, W]` map over the input's channels.
//!
//! The CAMs follow pytorch-grad-cam's definitions. Grad-CAM: weights = spatial mean of the
//! gradient of the target's logit at the stage, CAM = ReLU(Σ_c w_c A_c), scaled to [0, 1] by
//! `(cam − min) / (max + 1e-7)` and resized bilinearly (pixel centres aligned, as OpenCV's
//! `resize`) to the input. Score-CAM: every channel of the stage, resized bilinearly with the
//! corners aligned (as `torch.nn.UpsamplingBilinear2d`) and min–max scaled to [0, 1]
//! (`+ 1e-8`), masks the input; the target's logit for each masked input, softmaxed over the
//! channels, weighs the channels; then as Grad-CAM. Here only the `channels` channels of largest
//! mean activation are used (the softmax runs over those), one forward pass each.

use ndarray::{Array2, ArrayView2, ArrayView3};

use super::*;

/// Score-CAM's default cap on the channels used as masks (= forward passes).
pub const SCORE_CAM_CHANNELS: usize = 32;
/// Integrated Gradients' default number of quadrature points (captum's `n_steps`).
pub const IG_STEPS: usize = 50;

/// Bilinear resize of `map` to `(h, w)`. With `align_corners` the corner pixels of both grids
/// coincide (`src = dst · (n_in − 1) / (n_out − 1)`); without, the pixel centres do
/// (`src = (dst + ½) · n_in / n_out − ½`, clamped to the image), as OpenCV's `INTER_LINEAR` and
/// PyTorch's `align_corners=False` do.
pub fn bilinear(map: ArrayView2<f32>, (h, w): (usize, usize), align_corners: bool) -> Array2<f32> {
    let (ih, iw) = map.dim();
    let coords = |n_out: usize, n_in: usize| -> Vec<(usize, usize, f32)> {
        (0..n_out)
            .map(|d| {
                let s = if align_corners {
                    if n_out > 1 {
                        d as f64 * (n_in - 1) as f64 / (n_out - 1) as f64
                    } else {
                        0.0
                    }
                } else {
                    ((d as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0)
                };
                let s = s.min((n_in - 1) as f64);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(n_in - 1);
                (i0, i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    if ih == 0 || iw == 0 {
        return Array2::zeros((h, w));
    }
    let (ys, xs) = (coords(h, ih), coords(w, iw));
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (y0, y1, fy) = ys[y];
        let (x0, x1, fx) = xs[x];
        let top = map[(y0, x0)] * (1.0 - fx) + map[(y0, x1)] * fx;
        let bottom = map[(y1, x0)] * (1.0 - fx) + map[(y1, x1)] * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

/// `(m − min) / (max(m − min) + eps)`: a map scaled to [0, 1] (all zeros if it is constant).
pub fn min_max(map: &Array2<f32>, eps: f32) -> Array2<f32> {
    let lo = map.iter().copied().fold(f32::INFINITY, f32::min);
    let shifted = map.mapv(|v| v - lo);
    let hi = shifted.iter().copied().fold(0.0, f32::max);
    shifted / (hi + eps)
}

/// An `[H, W]` map as input relevance: `map / C` on each of the `C` channels of an input of shape
/// `shape` whose channel axis is `channel_axis` (the other two non-batch axes are H and W), so
/// that the channel sum gives the map back.
///
/// # Errors
/// [`Error::InvalidInput`] if `shape` is not a 4-D input with a spatial size of the map's.
pub fn spread_over_channels(map: &Array2<f32>, shape: &[usize], channel_axis: usize) -> Result<ArrayD<f32>> {
    let (hw, c) = spatial_axes(shape, channel_axis)?;
    if (shape[hw[0]], shape[hw[1]]) != map.dim() {
        return Err(Error::InvalidInput(format!("a map of {:?} for an input of {shape:?}", map.dim())));
    }
    Ok(ArrayD::from_shape_fn(IxDyn(shape), |ix| map[(ix[hw[0]], ix[hw[1]])] / c as f32))
}

/// The H and W axes of a 4-D input with its channel axis, and the number of channels.
fn spatial_axes(shape: &[usize], channel_axis: usize) -> Result<([usize; 2], usize)> {
    if shape.len() != 4 || !(1..4).contains(&channel_axis) {
        return Err(Error::InvalidInput(format!(
            "class activation maps need a 4-D image input with its channel axis, got {shape:?} (axis {channel_axis})"
        )));
    }
    let mut hw = (1..4).filter(|&a| a != channel_axis);
    let (h, w) = (hw.next().unwrap_or(2), hw.next().unwrap_or(3));
    Ok(([h, w], shape[channel_axis]))
}

/// `Σ_c weights[c] · acts[c]`, then ReLU: the class activation map at the stage's resolution.
pub fn weighted_sum_relu(acts: ArrayView3<f32>, weights: &[f32]) -> Array2<f32> {
    let (_, h, w) = acts.dim();
    let mut cam = Array2::<f32>::zeros((h, w));
    for (a, &wc) in acts.outer_iter().zip(weights) {
        cam.scaled_add(wc, &a);
    }
    cam.mapv_into(|v| v.max(0.0))
}

impl Explainer {
    /// The node the CAMs look at: the input of the global pooling (a global sum, or an average
    /// pooling whose output is 1 × 1), i.e. for a ResNet the output of its last residual stage
    /// (after the last residual addition's ReLU). The last such pooling when there are several.
    ///
    /// # Errors
    /// [`Error::InvalidParam`] (`method`) if the model has no global pooling over a 4-D map.
    pub fn cam_stage(&self) -> Result<usize> {
        let g = &self.graph;
        let pools = g.nodes.iter().filter(|n| match &n.layer {
            Layer::GlobalSum => true,
            Layer::AvgPool { geometry, .. } => geometry.out_hw == [1, 1],
            _ => false,
        });
        pools
            .filter_map(|n| n.inputs.first().copied())
            .rfind(|&k| g.nodes[k].shape.len() == 4 && g.nodes[k].shape[0] == 1)
            .ok_or_else(|| {
                Error::param(
                    "method",
                    "Grad-CAM and Score-CAM look at the feature map before the global pooling, and this model \
                     has no global pooling over a 4-D feature map",
                )
            })
    }

    /// The baselines other than gradient × input: the explanation of class `target` with
    /// `method` (no ledger, no blocks; not meant to conserve).
    pub(super) fn explain_baseline(
        &mut self,
        acts: &Activations,
        target: usize,
        method: &Method,
    ) -> Result<Explanation> {
        let relevance = match method {
            Method::GuidedBackprop => self.backward(acts, target, 0, Backprop::Guided)?,
            Method::IntegratedGradients { steps } => self.integrated_gradients(&acts.values[0], target, *steps)?,
            Method::GradCam => {
                let map = self.grad_cam(acts, target)?;
                spread_over_channels(&map, self.graph.input_shape(), self.channel_axis)?
            }
            Method::ScoreCam { channels } => {
                let map = self.score_cam(acts, target, *channels)?;
                spread_over_channels(&map, self.graph.input_shape(), self.channel_axis)?
            }
            Method::Lrp { .. } | Method::GradientTimesInput => {
                return Err(Error::Internal("LRP and gradient × input run the relevance sweep".into()))
            }
        };
        if relevance.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numeric(
                "the explanation overflowed float32 (the model's weights or activations are too large)".into(),
            ));
        }
        let start_relevance = match method {
            Method::ScoreCam { .. } => acts.probabilities[target],
            _ => acts.logits[target],
        };
        Ok(Explanation { target, start_relevance, relevance, ledger: vec![], blocks: vec![], conserves: false })
    }

    /// The stage's activation `[C, h, w]` for `acts`.
    fn stage_activation<'a>(&self, acts: &'a Activations, stage: usize) -> Result<ArrayView3<'a, f32>> {
        let a = kept(acts, stage, &self.graph.nodes[stage].shape)?;
        a.view().index_axis_move(Axis(0), 0).into_dimensionality().map_err(|e| Error::Internal(e.to_string()))
    }

    /// The `[H, W]` size of the input.
    fn input_hw(&self) -> Result<(usize, usize)> {
        let shape = self.graph.input_shape();
        let (hw, _) = spatial_axes(shape, self.channel_axis)?;
        Ok((shape[hw[0]], shape[hw[1]]))
    }

    /// Grad-CAM's map at the input size ([`Method::GradCam`]).
    pub(super) fn grad_cam(&mut self, acts: &Activations, target: usize) -> Result<Array2<f32>> {
        let stage = self.cam_stage()?;
        let grad = self.backward(acts, target, stage, Backprop::Plain)?;
        let grad = grad.index_axis_move(Axis(0), 0);
        let weights: Vec<f32> = grad.outer_iter().map(|g| g.mean().unwrap_or(0.0)).collect();
        let cam = weighted_sum_relu(self.stage_activation(acts, stage)?, &weights);
        Ok(bilinear(min_max(&cam, 1e-7).view(), self.input_hw()?, false))
    }

    /// Score-CAM's map at the input size ([`Method::ScoreCam`]).
    pub(super) fn score_cam(&mut self, acts: &Activations, target: usize, channels: usize) -> Result<Array2<f32>> {
        if channels == 0 {
            return Err(Error::param("channels", "Score-CAM needs at least 1 channel"));
        }
        let stage = self.cam_stage()?;
        let a = self.stage_activation(acts, stage)?;
        let chosen = top_channels(a, channels);
        let (hw, _) = spatial_axes(self.graph.input_shape(), self.channel_axis)?;
        let x = &acts.values[0];
        let mut scores = Vec::with_capacity(chosen.len());
        for &c in &chosen {
            let mask = min_max(&bilinear(a.index_axis(Axis(0), c), self.input_hw()?, true), 1e-8);
            let masked = ArrayD::from_shape_fn(x.raw_dim(), |ix| x[&ix] * mask[(ix[hw[0]], ix[hw[1]])]);
            scores.push(self.target_logit(masked, target)?);
        }
        let probs = softmax(&scores);
        let mut weights = vec![0.0; a.dim().0];
        for (&c, &p) in chosen.iter().zip(&probs) {
            weights[c] = p;
        }
        let cam = weighted_sum_relu(a, &weights);
        Ok(bilinear(min_max(&cam, 1e-7).view(), self.input_hw()?, false))
    }

    /// The target's logit for input `x`: one forward pass through the plan, reading only the logits.
    pub(super) fn target_logit(&mut self, x: ArrayD<f32>, target: usize) -> Result<f32> {
        self.check_input(&x)?;
        let logits = self.graph.logits;
        let slot = self.plan.as_ref().and_then(|p| p.outputs.iter().find(|o| o.0 == logits).map(|o| o.1));
        let value = match (&self.plan, slot) {
            (Some(plan), Some(k)) => {
                let out = plan.plan.run(std::iter::once(crate::glue::tensor(&x)?.into_tvalue()).collect())?;
                let t = out.into_iter().nth(k).ok_or_else(|| Error::Internal(format!("the plan has no output {k}")))?;
                t.into_tensor().into_plain_array::<f32>()?.iter().nth(target).copied()
            }
            _ => self.forward_values(x)?[logits].iter().nth(target).copied(),
        };
        value.ok_or_else(|| Error::Internal(format!("no logit {target}")))
    }
}

/// The `k` channels of largest mean activation (ties: lower index first), in channel order.
pub fn top_channels(acts: ArrayView3<f32>, k: usize) -> Vec<usize> {
    let means: Vec<f32> = acts.outer_iter().map(|a| a.mean().unwrap_or(0.0)).collect();
    let mut idx: Vec<usize> = (0..means.len()).collect();
    idx.sort_by(|&a, &b| means[b].total_cmp(&means[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx.sort_unstable();
    idx
}
