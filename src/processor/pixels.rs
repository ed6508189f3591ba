//! Loaded image + pixel options → normalised f32 views `[views, 3, tile, tile]`, channels first.
//!
//! Ref: transformers `SmolVLMImageProcessorPil` with `backend="pil"`: `process_image`
//! (RGB conversion first), `_preprocess` (resizes, split), `image_transforms.rescale`
//! and `image_transforms.normalize`.

use super::image::{AlphaMode, LoadedImage, PixelLayout};
use super::tiles::TilePlan;
use crate::error::{Error, Result};

/// The image half of a checkpoint's `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelOptions {
    /// `size.longest_edge`: the first resize makes the longer side this long.
    pub longest_edge: u32,
    /// `max_image_size.longest_edge`: side of every view.
    pub tile_size: u32,
    /// Cut into tiles plus a global view (otherwise one squashed view).
    pub do_image_splitting: bool,
    /// Apply the longest-edge resize.
    pub do_resize: bool,
    /// Multiply samples by `rescale_factor`.
    pub do_rescale: bool,
    /// Usually 1/255.
    pub rescale_factor: f64,
    /// Apply `(x - mean) / std`.
    pub do_normalize: bool,
    /// Per-channel mean, RGB order.
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation, RGB order.
    pub image_std: [f32; 3],
    /// Convert any image to RGB; when off, only RGB images are accepted.
    pub do_convert_rgb: bool,
    /// How that conversion treats transparency (not in the config file: transformers decides
    /// it by how the picture reaches the processor, see [`AlphaMode`]).
    pub alpha: AlphaMode,
}

/// One image's views, ready for the vision encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedPixels {
    /// Tile rows; 0 when not split.
    pub rows: usize,
    /// Tile columns; 0 when not split.
    pub cols: usize,
    /// Side of every view.
    pub(crate) tile_size: usize,
    /// `rows * cols + 1` when split, otherwise 1.
    pub n_views: usize,
    /// `[n_views, 3, tile_size, tile_size]`, row-major: tiles row by row, the global view last.
    pub data: Vec<f32>,
}

/// Runs the whole pixel pipeline on one image.
///
/// Order, as transformers does it: convert to RGB, longest-edge resize, stretch to tile
/// multiples and split (or squash to one tile), then rescale in f64 and round to f32,
/// then `(x - mean) / std` in f32.
///
/// ```
/// # use vlm::processor::{image::*, pixels::*};
/// let input = ImageInput::Rgb8 { width: 4, height: 1, pixels: vec![255; 12] };
/// let img = load_image(&input, &ImageLimits::default()).unwrap();
/// let opts = PixelOptions {
///     longest_edge: 64, tile_size: 16, do_image_splitting: true, do_resize: true,
///     do_rescale: true, rescale_factor: 1.0 / 255.0, do_normalize: true,
///     image_mean: [0.5; 3], image_std: [0.5; 3], do_convert_rgb: true, alpha: AlphaMode::Drop,
/// };
/// let p = prepare_pixels(&img, &opts).unwrap();
/// assert_eq!((p.rows, p.cols, p.n_views), (1, 4, 5));
/// assert_eq!(p.data.len(), 5 * 3 * 16 * 16);
/// assert!(p.data.iter().all(|&v| v == 1.0));
/// ```
pub fn prepare_pixels(img: &LoadedImage, opts: &PixelOptions) -> Result<PreparedPixels> {
    if !opts.do_convert_rgb && img.layout() != PixelLayout::Rgb {
        return Err(Error::Image {
            origin: img.origin().to_string(),
            problem: format!(
                "has {} channels and do_convert_rgb is off; the model needs RGB",
                img.layout().channels()
            ),
        });
    }
    let rgb = img.to_rgb(opts.alpha)?;
    let plan = TilePlan::new(img.width(), img.height(), opts)?;
    let views = plan.cut(&rgb)?;
    let tile = plan.tile_size as usize;
    let lut = value_table(opts);
    let mut data = Vec::with_capacity(views.len() * 3 * tile * tile);
    for view in &views {
        for (c, table) in lut.iter().enumerate() {
            data.extend(
                view.as_raw()
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| table[usize::from(v)]),
            );
        }
    }
    Ok(PreparedPixels {
        rows: plan.rows,
        cols: plan.cols,
        tile_size: tile,
        n_views: views.len(),
        data,
    })
}

/// The output value of every byte, per channel: the pipeline after resizing is a pure
/// function of the byte, so it is computed once.
fn value_table(opts: &PixelOptions) -> [[f32; 256]; 3] {
    let mut table = [[0f32; 256]; 3];
    for (c, row) in table.iter_mut().enumerate() {
        for (byte, out) in row.iter_mut().enumerate() {
            // `rescale`: `image.astype(float64) * scale`, then `.astype(float32)`.
            let mut v = if opts.do_rescale {
                (byte as f64 * opts.rescale_factor) as f32
            } else {
                byte as f32
            };
            // `normalize`: float32 image, mean and std cast to float32.
            if opts.do_normalize {
                v = (v - opts.image_mean[c]) / opts.image_std[c];
            }
            *out = v;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::image::{load_image, ImageInput, ImageLimits};

    fn opts(split: bool) -> PixelOptions {
        PixelOptions {
            longest_edge: 64,
            tile_size: 16,
            do_image_splitting: split,
            do_resize: true,
            do_rescale: true,
            rescale_factor: 0.00392156862745098,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_convert_rgb: true,
            alpha: AlphaMode::Drop,
        }
    }

    fn rgb(width: u32, height: u32, pixel: [u8; 3]) -> LoadedImage {
        let pixels = pixel.repeat((width * height) as usize);
        load_image(
            &ImageInput::Rgb8 {
                width,
                height,
                pixels,
            },
            &ImageLimits::default(),
        )
        .unwrap()
    }

    #[test]
    fn rescale_then_normalize_matches_float_steps() {
        let table = value_table(&opts(true));
        // (x * 1/255 in f64 → f32 - 0.5) / 0.5 in f32.
        for byte in [0u8, 1, 127, 128, 254, 255] {
            let x = (f64::from(byte) * 0.00392156862745098) as f32;
            assert_eq!(table[0][usize::from(byte)], (x - 0.5) / 0.5);
        }
        assert_eq!(table[1][0], -1.0);
        assert_eq!(table[2][255], 1.0);
    }

    #[test]
    fn channels_first_layout() {
        let p = prepare_pixels(&rgb(8, 8, [0, 255, 51]), &opts(false)).unwrap();
        assert_eq!((p.rows, p.cols, p.n_views, p.tile_size), (0, 0, 1, 16));
        let plane = 16 * 16;
        assert!(p.data[..plane].iter().all(|&v| v == -1.0));
        assert!(p.data[plane..2 * plane].iter().all(|&v| v == 1.0));
        let blue = (f64::from(51u8) * 0.00392156862745098) as f32;
        assert!(p.data[2 * plane..].iter().all(|&v| v == (blue - 0.5) / 0.5));
    }

    #[test]
    fn split_view_count_and_length() {
        let p = prepare_pixels(&rgb(30, 10, [9, 9, 9]), &opts(true)).unwrap();
        assert_eq!((p.rows, p.cols, p.n_views), (2, 4, 9));
        assert_eq!(p.data.len(), 9 * 3 * 16 * 16);
    }

    #[test]
    fn raw_values_without_rescale_or_normalize() {
        let mut o = opts(false);
        o.do_rescale = false;
        o.do_normalize = false;
        let p = prepare_pixels(&rgb(3, 3, [200, 100, 0]), &o).unwrap();
        assert_eq!(p.data[0], 200.0);
        assert_eq!(p.data[16 * 16], 100.0);
    }
}
