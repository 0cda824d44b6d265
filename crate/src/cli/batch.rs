//! `resnet-lrp explain --images DIR --out DIR`: every image of a directory explained with one
//! request, through one [`Session`]. Per image an overlay PNG (the signed map over the photo at the
//! model's input size) and the relevance `.npy` go to the output directory, and one JSON line to
//! standard output; an image that fails gets a JSON line with its error and the others go on.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, Array3};
use ndarray_npy::write_npy;
use resnet_lrp::image_io;
use resnet_lrp::request::ExplainRequest;
use resnet_lrp::session::Session;
use resnet_lrp::{Error, Result};
use serde_json::json;

use super::{list_images, method_json};

/// Share of a pixel's colour the map takes where its magnitude is largest.
const OVERLAY_OPACITY: f32 = 0.6;

/// The signed map over the photo: red where relevance is positive, blue where negative, blended in
/// proportion to |relevance| / max |relevance| (so that irrelevant pixels show the photo).
pub(super) fn overlay(pixels: &Array3<f32>, map: &Array2<f32>) -> image::RgbImage {
    let m = map.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let (h, w) = map.dim();
    image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        let v = (map[(y, x)] / m).clamp(-1.0, 1.0);
        let colour = if v >= 0.0 { [255.0, 0.0, 0.0] } else { [0.0, 0.0, 255.0] };
        let a = OVERLAY_OPACITY * v.abs();
        image::Rgb(std::array::from_fn(|c| {
            ((1.0 - a) * pixels[(y, x, c)] + a * colour[c]).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// Explains one image and writes its files; returns its JSON line.
fn one(
    session: &mut Session,
    request: &ExplainRequest,
    path: &Path,
    out: &Path,
    stem: &str,
) -> Result<serde_json::Value> {
    let img = image_io::read_image(path)?;
    let prediction = session.set_image(&img.data, img.width, img.height)?;
    let explained = session.explain(request)?;
    let e = &explained.explanation;
    let npy = out.join(format!("{stem}.relevance.npy"));
    write_npy(&npy, &e.relevance).map_err(|err| Error::io(&npy, std::io::Error::other(err.to_string())))?;
    let png = out.join(format!("{stem}.overlay.png"));
    let pixels = session.pixels().ok_or_else(|| Error::Internal("a photo without pixels".into()))?;
    overlay(pixels, &explained.map)
        .save(&png)
        .map_err(|err| Error::io(&png, std::io::Error::other(err.to_string())))?;
    Ok(json!({
        "image": path.display().to_string(),
        "target": e.target,
        "class": session.model().metadata().class_name(e.target),
        "probability": prediction.probabilities[e.target],
        "start_relevance": e.start_relevance,
        "input_relevance_sum": e.input_relevance_sum(),
        "conservation_error": e.conservation(),
        "method": method_json(request),
        "batchnorm": explained.batchnorm,
        "overlay": png.display().to_string(),
        "relevance": npy.display().to_string(),
    }))
}

/// Explains every image of `dir` into `out`.
///
/// # Errors
/// [`Error::Io`] if `dir` cannot be listed or `out` created; [`Error::Image`] for a directory
/// without images; an error naming how many images failed (each one's own error is on its line).
pub(super) fn run(session: &mut Session, request: &ExplainRequest, dir: &Path, out: &Path) -> Result<()> {
    let images = list_images(dir)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]")
            .expect("static template"),
    );
    let mut failed = 0;
    for path in &images {
        let stem = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        bar.set_message(stem.clone());
        let line = one(session, request, path, out, &stem).unwrap_or_else(|e| {
            failed += 1;
            json!({"image": path.display().to_string(), "error": e.to_string()})
        });
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        return Err(Error::Image(format!(
            "{failed} of {} images could not be explained (see their lines)",
            images.len()
        )));
    }
    Ok(())
}
