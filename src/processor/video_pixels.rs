//! One RGB video frame → its normalised `[3, M, M]` view: the longest-edge resize, the squash
//! to the tile size (videos are never split), then the fused rescale-and-normalise.
//!
//! Ref: transformers `SmolVLMVideoProcessor.resize` and `TorchvisionBackend.rescale_and_normalize`
//! (transformers 5.24). Unlike images, which go through Pillow, video frames are resized by
//! torchvision on a uint8 tensor, i.e. PyTorch's antialiased LANCZOS kernel
//! (`aten/src/ATen/native/cpu/UpSampleKernel.cpp`, `HelperInterpLanczos`). That kernel takes
//! Pillow's filter windows but quantizes the weights to int16 with a per-pass precision, and
//! always runs the horizontal pass first; its bytes differ from Pillow's LANCZOS by one or two
//! levels in about 1% of samples, so it is ported here rather than reusing [`super::resize`].

use image::RgbImage;

use crate::error::{Error, Result};
use crate::processor::pixels::PixelOptions;
use crate::processor::resize::MAX_IMAGE_SIZE;

/// Output `(width, height)` of the first resize of a video frame: the longer side becomes
/// `longest_edge` (capped at 4096), the other keeps the aspect ratio, truncated and rounded
/// up to even.
///
/// Ref: `get_resize_output_image_size` in `video_processing_smolvlm.py`.
///
/// ```
/// # use vlm::processor::video_pixels::frame_resize_size;
/// assert_eq!(frame_resize_size(1280, 720, 2048), (2048, 1152));
/// assert_eq!(frame_resize_size(30, 50, 128), (76, 128));
/// ```
pub fn frame_resize_size(width: u32, height: u32, longest_edge: u32) -> (u32, u32) {
    let max_side = u64::from(longest_edge.min(MAX_IMAGE_SIZE));
    let aspect_ratio = f64::from(width) / f64::from(height);
    let (w, h) = if width >= height {
        let h = (max_side as f64 / aspect_ratio) as u64;
        (max_side, h + h % 2)
    } else {
        let w = (max_side as f64 * aspect_ratio) as u64;
        (w + w % 2, max_side)
    };
    let clamp = |v: u64| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
    (clamp(w), clamp(h))
}

/// The two resizes of a frame (when `do_resize`): longest edge to `size.longest_edge`, then
/// squashed to `M × M`.
pub(crate) fn resize_frame(frame: RgbImage, opts: &PixelOptions) -> Result<RgbImage> {
    if !opts.do_resize {
        return Ok(frame);
    }
    let tile = opts.tile_size;
    let (w, h) = frame_resize_size(frame.width(), frame.height(), opts.longest_edge);
    let img = resize_lanczos_torch(&frame, w, h)?;
    resize_lanczos_torch(&img, tile, tile)
}

/// Appends the normalised `[3, M, M]` values of a resized frame to `out`.
pub(crate) fn normalize_frame(
    img: &RgbImage,
    opts: &PixelOptions,
    out: &mut Vec<f32>,
) -> Result<()> {
    let tile = opts.tile_size;
    if img.dimensions() != (tile, tile) {
        return Err(Error::Image {
            origin: "video frame".into(),
            problem: format!(
                "is {}x{} after preprocessing, but the model takes {tile}x{tile} (do_resize is off)",
                img.width(),
                img.height()
            ),
        });
    }
    let table = value_table(opts);
    out.reserve(3 * (tile as usize) * (tile as usize));
    for (c, row) in table.iter().enumerate() {
        out.extend(
            img.as_raw()
                .iter()
                .skip(c)
                .step_by(3)
                .map(|&v| row[usize::from(v)]),
        );
    }
    Ok(())
}

/// The value of every byte after the fused rescale-and-normalise, per channel.
///
/// With both steps on, transformers folds the rescale into the statistics
/// (`mean / rescale_factor`, `std / rescale_factor`, as float32 tensors) and computes
/// `(x - mean') / std'` in float32.
fn value_table(opts: &PixelOptions) -> [[f32; 256]; 3] {
    let mut table = [[0f32; 256]; 3];
    let inv = (1.0 / opts.rescale_factor) as f32;
    for (c, row) in table.iter_mut().enumerate() {
        for (byte, out) in row.iter_mut().enumerate() {
            let x = byte as f32;
            *out = match (opts.do_rescale, opts.do_normalize) {
                (true, true) => (x - opts.image_mean[c] * inv) / (opts.image_std[c] * inv),
                (false, true) => (x - opts.image_mean[c]) / opts.image_std[c],
                (true, false) => (f64::from(x) * opts.rescale_factor) as f32,
                (false, false) => x,
            };
        }
    }
    table
}

/// Lanczos-3 as PyTorch evaluates it: `sinc(x) · sinc(x / 3)` for `|x| < 3`.
fn lanczos(x: f64) -> f64 {
    let sinc = |x: f64| {
        if x == 0.0 {
            1.0
        } else {
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
    };
    let x = x.abs();
    if x < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Filter taps of one resampling pass, as int16 values in `2^-precision` fixed point.
struct Taps {
    /// `(first source index, tap count)` per output sample.
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output sample.
    weights: Vec<i32>,
    ksize: usize,
    precision: u32,
}

impl Taps {
    /// `_compute_index_ranges_int16_weights` with antialiasing, for `in_size → out_size`.
    fn new(in_size: usize, out_size: usize) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let support = if scale >= 1.0 { 3.0 * scale } else { 3.0 };
        let ksize = support.ceil() as usize * 2 + 1;
        let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
        let mut bounds = Vec::with_capacity(out_size);
        let mut float_weights = vec![0f64; out_size * ksize];
        let mut wt_max = 0f64;
        for (i, w) in float_weights.chunks_exact_mut(ksize).enumerate() {
            let center = scale * (i as f64 + 0.5);
            // C casts truncate towards zero.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let xsize = (xmax - xmin).clamp(0, ksize as i64) as usize;
            let mut total = 0.0;
            for (j, wj) in w.iter_mut().take(xsize).enumerate() {
                *wj = lanczos((j as f64 + xmin as f64 - center + 0.5) * invscale);
                total += *wj;
            }
            if total != 0.0 {
                for wj in w.iter_mut().take(xsize) {
                    *wj /= total;
                    wt_max = wt_max.max(*wj);
                }
            }
            bounds.push((xmin as usize, xsize));
        }
        // The largest precision whose doubled maximum weight still fits in int16.
        let mut precision = 0u32;
        while precision < 22 {
            let next = (0.5 + wt_max * f64::from(1u32 << (precision + 1))) as i64;
            if next >= 1 << 15 {
                break;
            }
            precision += 1;
        }
        let weights = float_weights
            .iter()
            .map(|&w| {
                let v = w * f64::from(1u32 << precision);
                if v < 0.0 {
                    (-0.5 + v) as i32
                } else {
                    (0.5 + v) as i32
                }
            })
            .collect();
        Taps {
            bounds,
            weights,
            ksize,
            precision,
        }
    }

    /// One output sample from `src[i * stride]` for the taps of output `o`.
    #[inline]
    fn apply(&self, o: usize, sample: impl Fn(usize) -> u8) -> u8 {
        let (first, count) = self.bounds[o];
        let w = &self.weights[o * self.ksize..][..count];
        let mut acc: i32 = if self.precision > 0 {
            1 << (self.precision - 1)
        } else {
            0
        };
        for (j, &wj) in w.iter().enumerate() {
            acc += wj * i32::from(sample(first + j));
        }
        (acc >> self.precision).clamp(0, 255) as u8
    }
}

/// Resizes an RGB image as `torchvision.transforms.v2.functional.resize(uint8 tensor,
/// (height, width), InterpolationMode.LANCZOS, antialias=True)` does on a CPU: horizontal
/// pass, rounding to u8, then vertical pass; a side that keeps its length is not resampled.
///
/// ```
/// # use vlm::processor::video_pixels::resize_lanczos_torch;
/// let img = image::RgbImage::from_pixel(7, 5, image::Rgb([10, 200, 30]));
/// let out = resize_lanczos_torch(&img, 3, 9).unwrap();
/// assert_eq!(out.dimensions(), (3, 9));
/// assert!(out.pixels().all(|p| p.0 == [10, 200, 30]));
/// ```
pub fn resize_lanczos_torch(img: &RgbImage, width: u32, height: u32) -> Result<RgbImage> {
    let (in_w, in_h) = img.dimensions();
    if width == 0 || height == 0 || in_w == 0 || in_h == 0 {
        return Err(Error::Image {
            origin: "video frame".to_string(),
            problem: format!("cannot resize {in_w}x{in_h} to {width}x{height}"),
        });
    }
    if (width, height) == (in_w, in_h) {
        return Ok(img.clone());
    }
    let (in_w, in_h, out_w, out_h) = (
        in_w as usize,
        in_h as usize,
        width as usize,
        height as usize,
    );
    let src = img.as_raw();
    let horizontal = if out_w != in_w {
        let taps = Taps::new(in_w, out_w);
        let mut tmp = vec![0u8; in_h * out_w * 3];
        for (y, row) in tmp.chunks_exact_mut(out_w * 3).enumerate() {
            let line = &src[y * in_w * 3..][..in_w * 3];
            for x in 0..out_w {
                for c in 0..3 {
                    row[x * 3 + c] = taps.apply(x, |i| line[i * 3 + c]);
                }
            }
        }
        tmp
    } else {
        src.clone()
    };
    let data = if out_h != in_h {
        let taps = Taps::new(in_h, out_h);
        let stride = out_w * 3;
        let mut out = vec![0u8; out_h * stride];
        for (y, row) in out.chunks_exact_mut(stride).enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                *v = taps.apply(y, |i| horizontal[i * stride + k]);
            }
        }
        out
    } else {
        horizontal
    };
    RgbImage::from_raw(width, height, data).ok_or_else(|| Error::Image {
        origin: "video frame".to_string(),
        problem: format!("{width}x{height} resize produced an inconsistent buffer"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_video_processor() {
        assert_eq!(frame_resize_size(40, 24, 128), (128, 76));
        assert_eq!(frame_resize_size(64, 36, 128), (128, 72));
        assert_eq!(frame_resize_size(24, 40, 128), (76, 128));
        assert_eq!(frame_resize_size(9000, 10, 8192), (4096, 4));
    }

    #[test]
    fn precision_fits_int16() {
        for (i, o) in [(40, 128), (1280, 2048), (2048, 512), (3, 1000), (1000, 3)] {
            let t = Taps::new(i, o);
            assert!(t.weights.iter().all(|w| w.abs() < 1 << 15), "{i}->{o}");
            // Each output's weights sum to about 1.0 in fixed point.
            for o in 0..t.bounds.len() {
                let s: i32 = t.weights[o * t.ksize..][..t.bounds[o].1].iter().sum();
                assert!((s - (1 << t.precision)).abs() <= t.ksize as i32, "{s}");
            }
        }
    }
}
