//! Sizes and resampling: (width, height) + target → output size, and RGB8 pixels → LANCZOS-resized RGB8 pixels.
//!
//! The resampler is a port of Pillow's `ImagingResample` (`src/libImaging/Resample.c`) for
//! 8-bit RGB with the LANCZOS filter, which is what transformers' PIL image processors call.
//! It is written here rather than taken from the `image` crate because `image`'s Lanczos3
//! uses f32 weights, a float intermediate between the passes and other tap windows: on a
//! 1920×1080 → 2048×1152 resize a quarter of its output bytes differ from Pillow's, by up
//! to 14 levels, and the checkpoints were trained on Pillow's pixels.

use image::RgbImage;

use crate::error::{Error, Result};

/// The largest side transformers lets the first resize produce (`MAX_IMAGE_SIZE`).
pub(crate) const MAX_IMAGE_SIZE: u32 = 4096;

/// Output size of the "longest edge" resize: the longer side becomes `longest_edge`, the
/// other keeps the aspect ratio, truncated and then rounded up to even.
///
/// This always rescales, upscaling small images too. Returns `(width, height)`.
/// Ref: transformers `get_resize_output_image_size` (smolvlm `image_processing_pil_smolvlm.py`),
/// computed in f64 with `int()` truncation as Python does.
///
/// ```
/// # use vlm::processor::resize::fit_longest_edge;
/// assert_eq!(fit_longest_edge(1920, 1080, 2048), (2048, 1152));
/// ```
pub fn fit_longest_edge(width: u32, height: u32, longest_edge: u32) -> (u32, u32) {
    let (h, w) = rescale_to_max_len(u64::from(height), u64::from(width), u64::from(longest_edge));
    let (h, w) = scale_below_upper_bound(h, w, u64::from(MAX_IMAGE_SIZE));
    (clamp_u32(w), clamp_u32(h))
}

/// Output size of `resize_for_vision_encoder`: both sides are rounded up to multiples of
/// `tile`, the shorter one after re-deriving it from the aspect ratio. The aspect ratio is
/// not preserved. Returns `(width, height)`.
///
/// Ref: transformers `SmolVLMImageProcessorPil.resize_for_vision_encoder`.
///
/// ```
/// # use vlm::processor::resize::stretch_to_tile_multiple;
/// assert_eq!(stretch_to_tile_multiple(2048, 1152, 512), (2048, 1536));
/// ```
pub fn stretch_to_tile_multiple(width: u32, height: u32, tile: u32) -> (u64, u64) {
    let (w, h, m) = (u64::from(width), u64::from(height), f64::from(tile));
    let aspect_ratio = w as f64 / h as f64;
    if w >= h {
        let width = ceil_multiple(w as f64, m);
        let height = truncate(width as f64 / aspect_ratio);
        (width, ceil_multiple(height as f64, m))
    } else {
        let height = ceil_multiple(h as f64, m);
        let width = truncate(height as f64 * aspect_ratio);
        (ceil_multiple(width as f64, m), height)
    }
}

/// `math.ceil(x / m) * m` with Python's float division.
fn ceil_multiple(x: f64, m: f64) -> u64 {
    ((x / m).ceil() as u64).saturating_mul(m as u64)
}

/// Python's `int(x)` for the non-negative finite values these formulas produce.
fn truncate(x: f64) -> u64 {
    x as u64
}

fn clamp_u32(x: u64) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// `_resize_output_size_rescale_to_max_len(height, width, min_len=1, max_len)`.
fn rescale_to_max_len(height: u64, width: u64, max_len: u64) -> (u64, u64) {
    let aspect_ratio = width as f64 / height as f64;
    let (mut height, mut width) = (height, width);
    if width >= height {
        width = max_len;
        height = truncate(width as f64 / aspect_ratio);
        height += height % 2;
    } else {
        height = max_len;
        width = truncate(height as f64 * aspect_ratio);
        width += width % 2;
    }
    (height.max(1), width.max(1))
}

/// `_resize_output_size_scale_below_upper_bound(height, width, max_len)`: only shrinks.
fn scale_below_upper_bound(height: u64, width: u64, max_len: u64) -> (u64, u64) {
    let aspect_ratio = width as f64 / height as f64;
    let (mut height, mut width) = (height, width);
    if width >= height && width > max_len {
        width = max_len;
        height = truncate(width as f64 / aspect_ratio);
    } else if height > width && height > max_len {
        height = max_len;
        width = truncate(height as f64 * aspect_ratio);
    }
    (height.max(1), width.max(1))
}

/// Fixed-point precision of the filter weights (`PRECISION_BITS` in Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// The LANCZOS kernel's half-width at scale 1.
const LANCZOS_SUPPORT: f64 = 3.0;

/// Resizes an RGB image with Pillow's LANCZOS filter, bit for bit.
///
/// Same as `PIL.Image.resize((width, height), Image.LANCZOS)` on an `RGB` image with
/// Pillow 13: two separable passes, each rounding to u8, in Pillow's order; a pass is
/// skipped when its side keeps its length (an unchanged size returns a copy).
///
/// ```
/// # use vlm::processor::resize::resize_lanczos;
/// let img = image::RgbImage::from_pixel(7, 5, image::Rgb([10, 200, 30]));
/// let out = resize_lanczos(&img, 3, 9).unwrap();
/// assert_eq!(out.dimensions(), (3, 9));
/// assert!(out.pixels().all(|p| p.0 == [10, 200, 30]));
/// ```
pub fn resize_lanczos(img: &RgbImage, width: u32, height: u32) -> Result<RgbImage> {
    let (in_w, in_h) = img.dimensions();
    if width == 0 || height == 0 || in_w == 0 || in_h == 0 {
        return Err(Error::Image {
            origin: "resize".to_string(),
            problem: format!("cannot resize {in_w}x{in_h} to {width}x{height}"),
        });
    }
    if (width, height) == (in_w, in_h) {
        return Ok(img.clone());
    }
    let too_big = || Error::Image {
        origin: "resize".to_string(),
        problem: format!("{width}x{height} output does not fit in memory"),
    };
    let src = img.as_raw().as_slice();
    let horizontal = Coefficients::new(in_w, width).ok_or_else(too_big)?;
    let vertical = Coefficients::new(in_h, height).ok_or_else(too_big)?;
    let (in_w, out_w) = (in_w as usize, width as usize);
    // Pillow 13 runs the vertical pass first when the height shrinks by more than twice
    // what the width does. The u8 rounding between passes makes the order visible.
    let shrink_h = i64::from(in_h) - i64::from(height);
    let shrink_w = in_w as i64 - i64::from(width);
    let data = if shrink_h > 0 && shrink_h > shrink_w * 2 {
        let tmp = resample_vertical(src, in_w, 0, &vertical).ok_or_else(too_big)?;
        if out_w == in_w {
            tmp
        } else {
            resample_horizontal(&tmp, in_w, &horizontal).ok_or_else(too_big)?
        }
    } else if out_w != in_w {
        // Only the source rows the vertical pass reads are resampled horizontally.
        let first = vertical.bounds.first().map_or(0, |b| b.0);
        let last = vertical.bounds.last().map_or(0, |b| b.0 + b.1);
        let rows = src
            .get(first * in_w * 3..last * in_w * 3)
            .ok_or_else(too_big)?;
        let tmp = resample_horizontal(rows, in_w, &horizontal).ok_or_else(too_big)?;
        if height == in_h {
            tmp
        } else {
            resample_vertical(&tmp, out_w, first, &vertical).ok_or_else(too_big)?
        }
    } else {
        resample_vertical(src, in_w, 0, &vertical).ok_or_else(too_big)?
    };
    RgbImage::from_raw(width, height, data).ok_or_else(too_big)
}

/// A zero-filled buffer, or `None` when `len` cannot be allocated.
fn zeroed<T: Copy + Default>(len: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, T::default());
    Some(v)
}

/// Per-output-sample filter taps: `bounds[i] = (first source index, tap count)` and
/// `weights[i * ksize..][..count]` in 2^-22 fixed point.
struct Coefficients {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl Coefficients {
    /// `precompute_coeffs` + `normalize_coeffs_8bpc` for a box of (0, in_size); `None`
    /// when the table cannot be allocated.
    fn new(in_size: u32, out_size: u32) -> Option<Coefficients> {
        // Pillow passes the box edges as C floats, so the span goes through f32.
        let scale = f64::from(in_size as f32) / f64::from(out_size);
        let filterscale = scale.max(1.0);
        let support = LANCZOS_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let out_size = out_size as usize;
        let mut bounds = Vec::new();
        bounds.try_reserve_exact(out_size).ok()?;
        let mut weights = zeroed::<i32>(out_size.checked_mul(ksize)?)?;
        let mut taps = vec![0f64; ksize];
        for (xx, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // `(int)` in C truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let count = (xmax - xmin).clamp(0, ksize as i64) as usize;
            let mut ww = 0.0;
            for (x, tap) in taps.iter_mut().enumerate().take(count) {
                let w = lanczos(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
                *tap = w;
                ww += w;
            }
            for (out, &tap) in row.iter_mut().zip(&taps).take(count) {
                let k = if ww != 0.0 { tap / ww } else { tap };
                *out = if k < 0.0 {
                    (-0.5 + k * f64::from(1u32 << PRECISION_BITS)) as i32
                } else {
                    (0.5 + k * f64::from(1u32 << PRECISION_BITS)) as i32
                };
            }
            bounds.push((xmin as usize, count));
        }
        Some(Coefficients {
            ksize,
            bounds,
            weights,
        })
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds[i];
        (start, &self.weights[i * self.ksize..][..count])
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// `clip8`: the accumulator's integer part clamped to a byte (arithmetic shift floors).
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUNDING: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over every row of `src` (RGB, `width` pixels per row). `None` if the
/// output size overflows.
fn resample_horizontal(src: &[u8], width: usize, coeffs: &Coefficients) -> Option<Vec<u8>> {
    let out_width = coeffs.bounds.len();
    let rows = src.len() / (width * 3);
    let mut out = zeroed(rows.checked_mul(out_width)?.checked_mul(3)?)?;
    for (line_in, line_out) in src
        .chunks_exact(width * 3)
        .zip(out.chunks_exact_mut(out_width * 3))
    {
        for (xx, px) in line_out.chunks_exact_mut(3).enumerate() {
            let (start, k) = coeffs.taps(xx);
            let (mut r, mut g, mut b) = (ROUNDING, ROUNDING, ROUNDING);
            for (p, &w) in line_in[start * 3..].chunks_exact(3).zip(k) {
                r += i32::from(p[0]) * w;
                g += i32::from(p[1]) * w;
                b += i32::from(p[2]) * w;
            }
            px[0] = clip8(r);
            px[1] = clip8(g);
            px[2] = clip8(b);
        }
    }
    Some(out)
}

/// Vertical pass: output row `yy` mixes source rows `bounds[yy].0 - row_offset ..` of `src`
/// (RGB, `width` pixels per row). `None` if the output size overflows.
fn resample_vertical(
    src: &[u8],
    width: usize,
    row_offset: usize,
    coeffs: &Coefficients,
) -> Option<Vec<u8>> {
    let stride = width * 3;
    let mut out = zeroed(coeffs.bounds.len().checked_mul(stride)?)?;
    let mut acc = zeroed(stride)?;
    for (yy, line_out) in out.chunks_exact_mut(stride).enumerate() {
        let (start, k) = coeffs.taps(yy);
        acc.fill(ROUNDING);
        // Integer sums do not depend on order, so rows are accumulated one at a time.
        for (y, &w) in k.iter().enumerate() {
            let row = &src[(start + y - row_offset) * stride..][..stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * w;
            }
        }
        for (o, &a) in line_out.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GenericImageView;

    #[test]
    fn longest_edge_sizes() {
        // (width, height, longest_edge) -> (width, height)
        let cases = [
            ((1920, 1080, 2048), (2048, 1152)),
            ((1080, 1920, 2048), (1152, 2048)),
            ((1920, 1080, 1536), (1536, 864)),
            ((640, 480, 2048), (2048, 1536)),
            ((386, 386, 2048), (2048, 2048)),
            ((300, 1000, 2048), (614, 2048)),
            ((4000, 100, 2048), (2048, 52)),
            ((17, 9, 128), (128, 68)),
            ((1, 1, 2048), (2048, 2048)),
            // int(2048 / 4000) = 0, rounded to even stays 0, then clamped to 1.
            ((4000, 1, 2048), (2048, 1)),
            ((1, 5000, 2048), (1, 2048)),
            // Beyond MAX_IMAGE_SIZE the second step shrinks back to 4096.
            ((1000, 500, 5000), (4096, 2048)),
        ];
        for ((w, h, l), want) in cases {
            assert_eq!(fit_longest_edge(w, h, l), want, "{w}x{h} -> {l}");
        }
    }

    #[test]
    fn tile_multiple_sizes() {
        let cases = [
            ((2048, 1152, 512), (2048, 1536)),
            ((1152, 2048, 512), (1536, 2048)),
            ((1536, 864, 384), (1536, 1152)),
            ((614, 2048, 512), (1024, 2048)),
            ((2048, 52, 512), (2048, 512)),
            ((2048, 1, 512), (2048, 512)),
            ((128, 68, 32), (128, 96)),
            ((512, 512, 512), (512, 512)),
            ((1, 1, 512), (512, 512)),
        ];
        for ((w, h, m), want) in cases {
            assert_eq!(stretch_to_tile_multiple(w, h, m), want, "{w}x{h} / {m}");
        }
    }

    fn pattern(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                (x * 37 + y * 11) as u8,
                (x * x + 3 * y) as u8,
                ((x ^ y) * 29) as u8,
            ])
        })
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([0, 128, 255]));
        for (w, h) in [(1, 1), (5, 3), (13, 20), (40, 7), (64, 64)] {
            let out = resize_lanczos(&img, w, h).unwrap();
            assert!(out.pixels().all(|p| p.0 == [0, 128, 255]), "{w}x{h}");
        }
    }

    #[test]
    fn identity_size_is_a_copy() {
        let img = pattern(9, 4);
        assert_eq!(resize_lanczos(&img, 9, 4).unwrap(), img);
    }

    #[test]
    fn unchanged_side_skips_its_pass() {
        // Only the vertical pass runs, so each column is resampled independently.
        let img = pattern(6, 10);
        let out = resize_lanczos(&img, 6, 15).unwrap();
        for x in 0..6 {
            let column = img.view(x, 0, 1, 10).to_image();
            let alone = resize_lanczos(&column, 1, 15).unwrap();
            for y in 0..15 {
                assert_eq!(out.get_pixel(x, y), alone.get_pixel(0, y));
            }
        }
    }

    #[test]
    fn one_pixel_wide_image() {
        let img = pattern(1, 9);
        let out = resize_lanczos(&img, 1, 4).unwrap();
        assert_eq!(out.dimensions(), (1, 4));
        let wide = resize_lanczos(&img, 5, 9).unwrap();
        // Widening a single column repeats it.
        for y in 0..9 {
            for x in 0..5 {
                assert_eq!(wide.get_pixel(x, y), img.get_pixel(0, y));
            }
        }
    }

    #[test]
    fn weights_sum_to_one() {
        for (i, o) in [(1920, 2048), (2048, 512), (3, 1), (1, 7), (100, 33)] {
            let c = Coefficients::new(i, o).unwrap();
            for j in 0..o as usize {
                let sum: i32 = c.taps(j).1.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= 8,
                    "{i}->{o} at {j}: {sum}"
                );
            }
        }
    }

    #[test]
    fn zero_size_is_an_error() {
        let img = pattern(3, 3);
        assert!(resize_lanczos(&img, 0, 3).is_err());
        assert!(resize_lanczos(&img, 3, 0).is_err());
    }
}
