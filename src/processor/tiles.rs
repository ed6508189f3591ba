//! Tile plan: image size + pixel options → resize targets and rows × cols grid (pure); then RGB image → views, tiles row-major and the global view last.
//!
//! Ref: transformers `SmolVLMImageProcessorPil._preprocess`, `resize_for_vision_encoder` and
//! `split_images` (`image_processing_pil_smolvlm.py`).

use std::borrow::Cow;

use image::RgbImage;

use super::pixels::PixelOptions;
use super::resize::{fit_longest_edge, resize_lanczos, stretch_to_tile_multiple};
use crate::error::{Error, Result};

/// The geometry of one image's preprocessing, computed from its size alone.
///
/// With splitting on, the image is resized so its longest edge is `longest_edge`, then
/// stretched so both sides are multiples of the tile size, and cut into `rows × cols`
/// tiles followed by the whole stretched image squashed to one tile. With splitting off,
/// the longest-edge resize still happens and its result is squashed to one tile.
///
/// ```
/// # use vlm::processor::{pixels::PixelOptions, tiles::TilePlan};
/// let opts = PixelOptions {
///     longest_edge: 2048, tile_size: 512, do_image_splitting: true, do_resize: true,
///     do_rescale: true, rescale_factor: 1.0 / 255.0, do_normalize: true,
///     image_mean: [0.5; 3], image_std: [0.5; 3], do_convert_rgb: true,
///     alpha: vlm::processor::image::AlphaMode::Drop,
/// };
/// let plan = TilePlan::new(1920, 1080, &opts).unwrap();
/// assert_eq!((plan.resized, plan.stretched), ((2048, 1152), Some((2048, 1536))));
/// assert_eq!((plan.rows, plan.cols, plan.n_views()), (3, 4, 13));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePlan {
    /// The input image, `(width, height)`.
    pub(crate) source: (u32, u32),
    /// After the longest-edge resize (the source size when resizing is off).
    pub resized: (u32, u32),
    /// After stretching to tile multiples; `None` when splitting is off.
    pub stretched: Option<(u32, u32)>,
    /// Tile rows; 0 when the image is not split.
    pub rows: usize,
    /// Tile columns; 0 when the image is not split.
    pub cols: usize,
    /// Side of every view.
    pub(crate) tile_size: u32,
}

impl TilePlan {
    /// Plans the preprocessing of a `width × height` image.
    pub fn new(width: u32, height: u32, opts: &PixelOptions) -> Result<TilePlan> {
        let tile = opts.tile_size;
        if tile == 0 {
            return Err(Error::InvalidOption {
                name: "tile_size",
                reason: "must be at least 1".to_string(),
            });
        }
        if opts.do_resize && opts.longest_edge == 0 {
            return Err(Error::InvalidOption {
                name: "longest_edge",
                reason: "must be at least 1 when resizing".to_string(),
            });
        }
        if width == 0 || height == 0 {
            return Err(Error::Image {
                origin: "tile plan".to_string(),
                problem: format!("image is empty ({width}x{height})"),
            });
        }
        let resized = if opts.do_resize {
            fit_longest_edge(width, height, opts.longest_edge)
        } else {
            (width, height)
        };
        let mut plan = TilePlan {
            source: (width, height),
            resized,
            stretched: None,
            rows: 0,
            cols: 0,
            tile_size: tile,
        };
        if !opts.do_image_splitting {
            return Ok(plan);
        }
        let (w, h) = stretch_to_tile_multiple(resized.0, resized.1, tile);
        let (w, h) = match (u32::try_from(w), u32::try_from(h)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
            _ => {
                return Err(Error::Image {
                    origin: "tile plan".to_string(),
                    problem: format!(
                        "{}x{} cannot be stretched to multiples of {tile}",
                        resized.0, resized.1
                    ),
                })
            }
        };
        plan.stretched = Some((w, h));
        if h > tile || w > tile {
            // `(h - M) // M + 1`: both sides are multiples of M, and at least M.
            plan.rows = ((h.saturating_sub(tile)) / tile + 1) as usize;
            plan.cols = ((w.saturating_sub(tile)) / tile + 1) as usize;
        }
        Ok(plan)
    }

    /// Whether the image is cut into tiles (plus a global view).
    fn is_split(&self) -> bool {
        self.rows * self.cols > 0
    }

    /// Number of views: `rows * cols + 1` when split, otherwise 1.
    pub fn n_views(&self) -> usize {
        if self.is_split() {
            self.rows * self.cols + 1
        } else {
            1
        }
    }

    /// Carries the plan out on `rgb` (which must have the planned source size): every view
    /// is `tile_size × tile_size`, tiles row-major first and the global view last.
    pub(crate) fn cut(&self, rgb: &RgbImage) -> Result<Vec<RgbImage>> {
        if rgb.dimensions() != self.source {
            let (w, h) = rgb.dimensions();
            return Err(Error::Image {
                origin: "tile plan".to_string(),
                problem: format!(
                    "planned for {}x{} but given {w}x{h}",
                    self.source.0, self.source.1
                ),
            });
        }
        let tile = self.tile_size;
        let resized = resize_to(Cow::Borrowed(rgb), self.resized)?;
        let Some(stretched_size) = self.stretched else {
            return Ok(vec![resize_to(resized, (tile, tile))?.into_owned()]);
        };
        let stretched = resize_to(resized, stretched_size)?;
        if !self.is_split() {
            return Ok(vec![stretched.into_owned()]);
        }
        let mut views = Vec::with_capacity(self.n_views());
        for r in 0..self.rows as u32 {
            for c in 0..self.cols as u32 {
                views.push(
                    image::imageops::crop_imm(&*stretched, c * tile, r * tile, tile, tile)
                        .to_image(),
                );
            }
        }
        views.push(resize_lanczos(&stretched, tile, tile)?);
        Ok(views)
    }
}

fn resize_to(img: Cow<'_, RgbImage>, (width, height): (u32, u32)) -> Result<Cow<'_, RgbImage>> {
    if img.dimensions() == (width, height) {
        return Ok(img);
    }
    resize_lanczos(&img, width, height).map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(longest_edge: u32, tile_size: u32, split: bool) -> PixelOptions {
        PixelOptions {
            longest_edge,
            tile_size,
            do_image_splitting: split,
            do_resize: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_convert_rgb: true,
            alpha: crate::processor::image::AlphaMode::Drop,
        }
    }

    #[test]
    fn worked_examples() {
        // (source, longest_edge, tile) -> (resized, stretched, cols, rows, views)
        let cases = [
            (
                (1920, 1080),
                2048,
                512,
                (2048, 1152),
                (2048, 1536),
                4,
                3,
                13,
            ),
            ((1920, 1080), 1536, 384, (1536, 864), (1536, 1152), 4, 3, 13),
            (
                (1080, 1920),
                2048,
                512,
                (1152, 2048),
                (1536, 2048),
                3,
                4,
                13,
            ),
            ((640, 480), 2048, 512, (2048, 1536), (2048, 1536), 4, 3, 13),
            ((386, 386), 2048, 512, (2048, 2048), (2048, 2048), 4, 4, 17),
            ((300, 1000), 2048, 512, (614, 2048), (1024, 2048), 2, 4, 9),
            ((4000, 100), 2048, 512, (2048, 52), (2048, 512), 4, 1, 5),
            ((17, 9), 2048, 512, (2048, 1084), (2048, 1536), 4, 3, 13),
            ((1, 1), 2048, 512, (2048, 2048), (2048, 2048), 4, 4, 17),
            ((17, 9), 128, 32, (128, 68), (128, 96), 4, 3, 13),
        ];
        for (source, l, m, resized, stretched, cols, rows, views) in cases {
            let plan = TilePlan::new(source.0, source.1, &opts(l, m, true)).unwrap();
            assert_eq!(plan.resized, resized, "{source:?}");
            assert_eq!(plan.stretched, Some(stretched), "{source:?}");
            assert_eq!((plan.cols, plan.rows), (cols, rows), "{source:?}");
            assert_eq!(plan.n_views(), views, "{source:?}");
        }
    }

    #[test]
    fn small_longest_edge_is_not_split() {
        let plan = TilePlan::new(300, 200, &opts(512, 512, true)).unwrap();
        assert_eq!(plan.stretched, Some((512, 512)));
        assert_eq!((plan.rows, plan.cols, plan.n_views()), (0, 0, 1));
    }

    #[test]
    fn no_split_still_resizes_longest_edge() {
        let plan = TilePlan::new(1920, 1080, &opts(2048, 512, false)).unwrap();
        assert_eq!(plan.resized, (2048, 1152));
        assert_eq!(plan.stretched, None);
        assert_eq!((plan.rows, plan.cols, plan.n_views()), (0, 0, 1));
    }

    #[test]
    fn without_resize_the_source_is_stretched() {
        let mut o = opts(2048, 512, true);
        o.do_resize = false;
        let plan = TilePlan::new(1000, 600, &o).unwrap();
        assert_eq!(plan.resized, (1000, 600));
        assert_eq!(plan.stretched, Some((1024, 1024)));
        assert_eq!((plan.rows, plan.cols), (2, 2));
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(TilePlan::new(10, 10, &opts(2048, 0, true)).is_err());
        assert!(TilePlan::new(10, 10, &opts(0, 512, true)).is_err());
        assert!(TilePlan::new(0, 10, &opts(2048, 512, true)).is_err());
    }

    #[test]
    fn cut_gives_tiles_then_global() {
        let img = RgbImage::from_fn(17, 9, |x, y| {
            image::Rgb([(x * 15) as u8, (y * 28) as u8, 7])
        });
        let plan = TilePlan::new(17, 9, &opts(128, 32, true)).unwrap();
        let views = plan.cut(&img).unwrap();
        assert_eq!(views.len(), 13);
        assert!(views.iter().all(|v| v.dimensions() == (32, 32)));
        let stretched = resize_lanczos(&resize_lanczos(&img, 128, 68).unwrap(), 128, 96).unwrap();
        // Row-major: view 5 is row 1, column 1.
        assert_eq!(views[5].get_pixel(0, 0), stretched.get_pixel(32, 32));
        assert_eq!(views[12], resize_lanczos(&stretched, 32, 32).unwrap());
        assert!(plan.cut(&RgbImage::new(16, 9)).is_err());
    }
}
