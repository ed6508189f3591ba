//! A directory of frame images (or frames in memory) at a given rate → the sampled frames.
//!
//! Files are taken in name order; only the sampled ones are decoded. Files that are not
//! images (by extension) are skipped with a warning; hidden files are skipped silently.
//! Frames may differ in size: each is resized on its own later.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::{FrameFn, SampledVideo};
use crate::error::{Error, Result};
use crate::processor::image::{load_image, AlphaMode, ImageInput, ImageLimits};
use crate::processor::video::{sample_indices, FrameSampling, VideoMetadata};

/// Extensions read as frames (compared without case).
const FRAME_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

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
    let origin = || dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Video {
        origin: origin(),
        problem: format!("cannot list the directory: {e}"),
    })?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Video {
            origin: origin(),
            problem: format!("cannot list the directory: {e}"),
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let is_frame = path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| FRAME_EXTENSIONS.iter().any(|f| e.eq_ignore_ascii_case(f)));
        if is_frame {
            files.push(path);
        } else {
            tracing::warn!(
                "{}: skipping `{name}`, not a PNG, JPEG, WebP or GIF frame",
                dir.display()
            );
            skipped.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    skipped.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok((files, skipped))
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
