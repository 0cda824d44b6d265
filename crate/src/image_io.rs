//! Native image decoding for the CLI: any PNG, JPEG, GIF, BMP or WebP file the `image` crate
//! reads, with the format taken from the content (not the extension), EXIF orientation applied,
//! the first frame of an animation, and bounded memory.
//!
//! Images up to [`MAX_DECODE_PIXELS`] are decoded whole. Larger PNGs are decoded row by row
//! and box-downscaled on the fly so that their long side is at most [`STREAM_LONG_SIDE`]
//! (a 20000 × 20000 PNG needs a few hundred kilobytes); larger images in other formats are
//! refused with a message that says so. Every failure is an [`Error::Image`] that names the
//! problem; a decoder that panics on a malformed file is caught and reported the same way.
//!
//! Its errors are the example to follow: every message names the file and the problem once,
//! through [`Error::in_file`](crate::Error::in_file).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};

/// Images with more pixels than this are not decoded whole (64 megapixels: 256 MiB as RGBA).
pub const MAX_DECODE_PIXELS: u64 = 64 * 1000 * 1000;
/// Long side of a PNG downscaled while decoding.
pub const STREAM_LONG_SIDE: u32 = 4096;
/// Image files larger than this are refused before they are read.
pub const MAX_IMAGE_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// Memory the whole-image decoders may allocate.
const MAX_ALLOC: u64 = 1024 * 1024 * 1024;

/// A decoded image: RGBA, 8 bits per channel, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba {
    /// `width × height × 4` bytes.
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// Reads and decodes an image file (see the module documentation).
///
/// # Errors
/// [`Error::Image`] naming the file and the problem; [`Error::Io`] if it cannot be read.
pub fn read_image(path: &Path) -> Result<Rgba> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Image(format!("{} is a directory", path.display())));
    }
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(Error::Image(format!(
            "the file is {} MB; image files above {} MB are refused",
            meta.len() / 1_000_000,
            MAX_IMAGE_FILE_BYTES / 1_000_000
        ))
        .in_file(path));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes).map_err(|e| e.in_file(path))
}

/// Decodes an image from its bytes (see the module documentation).
///
/// # Errors
/// [`Error::Image`] naming the problem.
pub fn decode_image(bytes: &[u8]) -> Result<Rgba> {
    if bytes.is_empty() {
        return Err(Error::Image("the file is empty".into()));
    }
    match std::panic::catch_unwind(|| decode(bytes)) {
        Ok(r) => r,
        Err(_) => Err(Error::Image("the decoder failed on malformed data".into())),
    }
}

fn image_err(e: image::ImageError) -> Error {
    Error::Image(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<Rgba> {
    let format = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Image(e.to_string()))?
        .format()
        .ok_or_else(|| Error::Image("not a PNG, JPEG, GIF, BMP or WebP image".into()))?;
    if !matches!(format, ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::Bmp | ImageFormat::WebP)
    {
        return Err(Error::Image(format!("{format:?} images are not supported; use PNG, JPEG, GIF, BMP or WebP")));
    }
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(image_err)?;
    if width == 0 || height == 0 {
        return Err(Error::Image(format!("the image is empty ({width}×{height})")));
    }
    let pixels = width as u64 * height as u64;
    if pixels > MAX_DECODE_PIXELS {
        if format == ImageFormat::Png {
            return stream_png(bytes);
        }
        return Err(Error::Image(format!(
            "the image is {width}×{height} ({} megapixels); above {} megapixels only PNG files are read \
             (downscaled while decoding): save a smaller copy",
            pixels / 1_000_000,
            MAX_DECODE_PIXELS / 1_000_000
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(image_err)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(image_err)?;
    img.apply_orientation(orientation);
    let rgba = img.to_rgba8();
    let (width, height) = (rgba.width() as usize, rgba.height() as usize);
    Ok(Rgba { data: rgba.into_raw(), width, height })
}

/// Decodes a PNG row by row, averaging `f × f` boxes so that the long side is at most
/// [`STREAM_LONG_SIDE`]: memory is a few rows, whatever the image size.
fn stream_png(bytes: &[u8]) -> Result<Rgba> {
    let png_err = |e: png::DecodingError| Error::Image(format!("PNG: {e}"));
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(png_err)?;
    let info = reader.info();
    let (width, height) = (info.width as usize, info.height as usize);
    if info.interlaced {
        return Err(Error::Image(format!(
            "the image is an interlaced PNG of {width}×{height}; above {} megapixels only non-interlaced PNGs are read",
            MAX_DECODE_PIXELS / 1_000_000
        )));
    }
    let (color, _) = reader.output_color_type();
    let channels = color.samples();
    let f = width.max(height).div_ceil(STREAM_LONG_SIDE as usize).max(1);
    let (ow, oh) = (width.div_ceil(f), height.div_ceil(f));
    let mut out = vec![0u8; ow * oh * 4];
    let mut acc = vec![0u64; ow * 4];
    let mut y = 0;
    while let Some(row) = reader.next_row().map_err(png_err)? {
        let data = row.data();
        if data.len() < width * channels {
            return Err(Error::Image("PNG: a row is shorter than the image".into()));
        }
        for x in 0..width {
            let p = &data[x * channels..(x + 1) * channels];
            let rgba = match channels {
                1 => [p[0], p[0], p[0], 255],
                2 => [p[0], p[0], p[0], p[1]],
                3 => [p[0], p[1], p[2], 255],
                _ => [p[0], p[1], p[2], p[3]],
            };
            for (a, v) in acc[(x / f) * 4..(x / f) * 4 + 4].iter_mut().zip(rgba) {
                *a += v as u64;
            }
        }
        y += 1;
        if y % f == 0 || y == height {
            let rows = (y - 1) % f + 1;
            let oy = (y - 1) / f;
            for ox in 0..ow {
                let cols = (width - ox * f).min(f);
                let n = (rows * cols) as u64;
                for c in 0..4 {
                    let v = &mut acc[ox * 4 + c];
                    out[(oy * ow + ox) * 4 + c] = ((*v + n / 2) / n) as u8;
                    *v = 0;
                }
            }
        }
        if y == height {
            break;
        }
    }
    if y < height {
        return Err(Error::Image(format!("PNG: only {y} of {height} rows could be read")));
    }
    Ok(Rgba { data: out, width: ow, height: oh })
}
