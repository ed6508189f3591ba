//! `preprocessor_config.json` and `processor_config.json` → how images become tiles and how
//! many tokens a tile costs.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Image preprocessing settings, with the defaults of transformers' `SmolVLMImageProcessor`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessorConfig {
    /// Convert every image to RGB (alpha composited on white).
    pub(crate) do_convert_rgb: bool,
    /// Resize the longest edge to [`Self::longest_edge`] first.
    pub(crate) do_resize: bool,
    /// Target of the first resize, `size.longest_edge`.
    pub longest_edge: u32,
    /// Tile side, `max_image_size.longest_edge`; must equal the vision tower's `image_size`.
    pub tile_size: u32,
    /// Cut the image into tiles plus a global view.
    pub(crate) do_image_splitting: bool,
    /// Multiply u8 values by [`Self::rescale_factor`].
    pub(crate) do_rescale: bool,
    /// Usually 1/255.
    pub(crate) rescale_factor: f64,
    /// Apply `(x - mean) / std`.
    pub(crate) do_normalize: bool,
    /// Per-channel mean.
    pub(crate) image_mean: [f32; 3],
    /// Per-channel standard deviation.
    pub(crate) image_std: [f32; 3],
    /// PIL resampling filter id (1 = LANCZOS, the only one supported).
    pub(crate) resample: u32,
    /// Video sampling settings (SmolVLM2 only).
    pub(crate) video_sampling: Option<VideoSampling>,
}

/// `video_sampling` of a SmolVLM2 preprocessor config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct VideoSampling {
    /// Frames per second to sample.
    #[serde(default)]
    pub(crate) fps: Option<f64>,
    /// Cap on the number of frames.
    #[serde(default)]
    pub(crate) max_frames: Option<usize>,
}

impl PreprocessorConfig {
    /// Parses `preprocessor_config.json` text. `path` is only used in error messages.
    pub(crate) fn parse(json: &str, path: &Path) -> Result<Self> {
        let invalid = |problem: String| Error::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let raw: RawPreprocessor =
            serde_json::from_str(json).map_err(|e| invalid(format!("not a valid config: {e}")))?;
        let longest_edge = match raw.size {
            Some(RawSize {
                longest_edge: Some(l),
                ..
            }) => l,
            Some(_) => return Err(invalid("`size` must have a `longest_edge`".into())),
            None => 4 * 364,
        };
        let tile_size = match raw.max_image_size {
            Some(RawSize {
                longest_edge: Some(l),
                ..
            }) => l,
            Some(_) => {
                return Err(invalid(
                    "`max_image_size` must have a `longest_edge`".into(),
                ))
            }
            None => 364,
        };
        let resample = raw.resample.unwrap_or(1);
        if resample != 1 {
            return Err(invalid(format!(
                "resample {resample} is not supported; SmolVLM processors use 1 (LANCZOS)"
            )));
        }
        let mean = three(raw.image_mean, [0.5; 3])
            .map_err(|n| invalid(format!("`image_mean` must have 1 or 3 values, found {n}")))?;
        let std = three(raw.image_std, [0.5; 3])
            .map_err(|n| invalid(format!("`image_std` must have 1 or 3 values, found {n}")))?;
        if std.contains(&0.0) {
            return Err(invalid("`image_std` must not contain 0".into()));
        }
        if longest_edge == 0 || tile_size == 0 {
            return Err(invalid("image sizes must be positive".into()));
        }
        Ok(PreprocessorConfig {
            do_convert_rgb: raw.do_convert_rgb.unwrap_or(true),
            do_resize: raw.do_resize.unwrap_or(true),
            longest_edge,
            tile_size,
            do_image_splitting: raw.do_image_splitting.unwrap_or(true),
            do_rescale: raw.do_rescale.unwrap_or(true),
            rescale_factor: raw.rescale_factor.unwrap_or(1.0 / 255.0),
            do_normalize: raw.do_normalize.unwrap_or(true),
            image_mean: mean,
            image_std: std,
            resample,
            video_sampling: raw.video_sampling,
        })
    }
}

fn three(values: Option<Vec<f32>>, default: [f32; 3]) -> std::result::Result<[f32; 3], usize> {
    match values.as_deref() {
        None => Ok(default),
        Some([v]) => Ok([*v; 3]),
        Some([a, b, c]) => Ok([*a, *b, *c]),
        Some(other) => Err(other.len()),
    }
}

#[derive(Deserialize)]
struct RawSize {
    longest_edge: Option<u32>,
}

#[derive(Deserialize)]
struct RawPreprocessor {
    do_convert_rgb: Option<bool>,
    do_resize: Option<bool>,
    size: Option<RawSize>,
    max_image_size: Option<RawSize>,
    do_image_splitting: Option<bool>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<Vec<f32>>,
    image_std: Option<Vec<f32>>,
    resample: Option<u32>,
    video_sampling: Option<VideoSampling>,
}

/// `processor_config.json`: the declared number of tokens per tile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ProcessorConfig {
    /// Image tokens per tile, when declared.
    #[serde(default)]
    pub(crate) image_seq_len: Option<usize>,
}

impl ProcessorConfig {
    /// Parses `processor_config.json` text. `path` is only used in error messages.
    pub(crate) fn parse(json: &str, path: &Path) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::InvalidConfig {
            path: path.to_path_buf(),
            problem: format!("not a valid processor config: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hub_format() {
        let cfg = PreprocessorConfig::parse(
            r#"{"do_convert_rgb":true,"do_image_splitting":true,"do_normalize":true,"do_pad":true,
                "do_rescale":true,"do_resize":true,"image_mean":[0.5,0.5,0.5],"image_std":[0.5,0.5,0.5],
                "max_image_size":{"longest_edge":512},"resample":1,"rescale_factor":0.00392156862745098,
                "size":{"longest_edge":2048},"video_sampling":{"fps":1,"max_frames":64,"video_size":{"longest_edge":512}}}"#,
            Path::new("p.json"),
        )
        .unwrap();
        assert_eq!(cfg.longest_edge, 2048);
        assert_eq!(cfg.tile_size, 512);
        assert_eq!(cfg.video_sampling.unwrap().max_frames, Some(64));
    }

    #[test]
    fn rejects_other_filters() {
        let err = PreprocessorConfig::parse(r#"{"resample":3}"#, Path::new("p.json")).unwrap_err();
        assert!(err.to_string().contains("resample 3"), "{err}");
    }
}
