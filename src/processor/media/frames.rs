//! A directory of frame images (or frames in memory) at a given rate → the sampled frames.
//!
//! Files are taken in name order; only the sampled ones are decoded. Files that are not
//! images (by extension) are skipped with a warning; hidden files are skipped silently.
//! Frames may differ in size: each is resized on its own later.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::folder::image_files;
use super::image::{load_image, AlphaMode, ImageInput, ImageLimits};
use super::video::{FrameFn, SampledVideo};
use crate::error::{Error, Result};
use crate::processor::video::{sample_indices, FrameSampling, VideoMetadata};

/// The frame files of `dir`, sorted by name.
pub(crate) fn frame_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(list(dir)?.0)
}

/// The entries of a frame directory that are not taken as frames (other files and
/// sub-directories; hidden entries are not listed), sorted by name, for a caller to warn about.
pub fn skipped_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(list(dir)?.1)
}

/// `(frames, skipped)` of `dir`, each sorted by name.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let listing = image_files(dir).map_err(|e| Error::Video {
        origin: dir.display().to_string(),
        problem: format!("cannot list the directory: {e}"),
    })?;
    for path in &listing.skipped {
        tracing::warn!(
            "{}: skipping `{}`, not a PNG, JPEG, WebP or GIF frame",
            dir.display(),
            path.file_name().unwrap_or_default().to_string_lossy()
        );
    }
    Ok((listing.images, listing.skipped))
}

/// The sampled frames of a directory of frames taken `rate` times a second.
pub(crate) fn from_dir(
    dir: &Path,
    rate: f64,
    sampling: &FrameSampling,
    limits: &ImageLimits,
    each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    let files = frame_files(dir)?;
    if files.is_empty() {
        return Err(Error::Video {
            origin: dir.display().to_string(),
            problem: "has no PNG, JPEG, WebP or GIF frames".into(),
        });
    }
    let inputs: Vec<ImageInput> = files.into_iter().map(ImageInput::Path).collect();
    from_images(&inputs, rate, sampling, limits, each)
}

/// The sampled frames of `frames`, taken `rate` times a second.
pub(crate) fn from_images(
    frames: &[ImageInput],
    rate: f64,
    sampling: &FrameSampling,
    limits: &ImageLimits,
    each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    let metadata = VideoMetadata::from_rate(frames.len(), rate);
    let indices = sample_indices(&metadata, sampling);
    let frames = indices
        .iter()
        .map(|&i| decode(&frames[i], limits).and_then(each))
        .collect::<Result<Vec<_>>>()?;
    Ok(SampledVideo {
        metadata,
        indices,
        frames,
    })
}

fn decode(input: &ImageInput, limits: &ImageLimits) -> Result<RgbImage> {
    // Frames given as image files follow `load_image` (see `AlphaMode`).
    load_image(input, limits)?.to_rgb(AlphaMode::Drop)
}
