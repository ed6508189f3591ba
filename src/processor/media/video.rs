//! Video input (a video file, an animated image, a directory of frames, or frames in memory)
//! → the sampled frames as RGB, with the clip's metadata.
//!
//! Frames are decoded in order and only the sampled ones are kept, so memory grows with the
//! number of sampled frames, not with the length of the clip. Which frames are sampled is
//! [`crate::processor::video::sample_indices`], as transformers decides it.

use std::path::{Path, PathBuf};

use image::RgbImage;

pub use frames::skipped_entries;

#[cfg(feature = "video")]
use super::mp4_h264;
use super::{animation, frames};
use crate::error::{Error, Result};
use crate::processor::media::image::{ImageInput, ImageLimits};
use crate::processor::video::{FrameSampling, VideoMetadata};

/// The frame rate assumed for a frame directory when none is given: one frame per second,
/// what `ffmpeg -vf fps=1` extracts.
const DEFAULT_FRAME_RATE: f64 = 1.0;

/// A video to process.
///
/// ```
/// # use vlm::VideoInput;
/// let clip = VideoInput::path("clip.mp4").with_max_frames(16).with_fps(0.5);
/// let frames = VideoInput::path("frames/").with_frame_rate(2.0);
/// # let _ = (clip, frames);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInput {
    /// Where the frames come from.
    pub source: VideoSource,
    /// Frames per second of a source that has no timing of its own (a frame directory, or
    /// frames in memory); `DEFAULT_FRAME_RATE` when `None`.
    pub frame_rate: Option<f64>,
    /// Frames to sample per second of video; the model's `video_sampling.fps` when `None`.
    pub fps: Option<f64>,
    /// Most frames to sample; the model's `video_sampling.max_frames` when `None`.
    pub max_frames: Option<usize>,
}

/// Where a video's frames come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSource {
    /// A video file (MP4 or MOV with H.264, with the `video` feature), an animated GIF,
    /// PNG (APNG) or WebP, or a directory of frame images taken in name order.
    Path(PathBuf),
    /// Frames in memory, in order.
    Frames(Vec<ImageInput>),
}

impl VideoInput {
    /// A video file, an animated image or a frame directory.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        VideoInput {
            source: VideoSource::Path(path.into()),
            frame_rate: None,
            fps: None,
            max_frames: None,
        }
    }

    /// Frames in memory, taken `frame_rate` times a second.
    pub fn frames(frames: Vec<ImageInput>, frame_rate: f64) -> Self {
        VideoInput {
            source: VideoSource::Frames(frames),
            frame_rate: Some(frame_rate),
            fps: None,
            max_frames: None,
        }
    }

    /// The rate of a frame directory (ignored for files, which carry their own timing).
    pub fn with_frame_rate(mut self, frame_rate: f64) -> Self {
        self.frame_rate = Some(frame_rate);
        self
    }

    /// Frames to sample per second.
    pub fn with_fps(mut self, fps: f64) -> Self {
        self.fps = Some(fps);
        self
    }

    /// Most frames to sample.
    pub fn with_max_frames(mut self, max_frames: usize) -> Self {
        self.max_frames = Some(max_frames);
        self
    }

    /// Where the video came from, as error messages name it.
    pub fn origin(&self) -> String {
        match &self.source {
            VideoSource::Path(p) => p.display().to_string(),
            VideoSource::Frames(f) => format!("({} frames in memory)", f.len()),
        }
    }

    /// The sampling settings: this input's overrides on top of `defaults`, checked.
    pub(crate) fn sampling(&self, defaults: FrameSampling) -> Result<FrameSampling> {
        let sampling = FrameSampling {
            fps: self.fps.unwrap_or(defaults.fps),
            max_frames: self.max_frames.unwrap_or(defaults.max_frames),
        };
        sampling.validate()?;
        Ok(sampling)
    }

    fn frame_rate(&self) -> Result<f64> {
        let rate = self.frame_rate.unwrap_or(DEFAULT_FRAME_RATE);
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::InvalidOption {
                name: "frame rate",
                reason: format!("{rate} must be a positive number of frames per second"),
            });
        }
        Ok(rate)
    }
}

/// Whether `path` names something [`load_video`] reads as a video rather than as an image: a
/// directory, an MP4/MOV file, or an animated GIF, PNG or WebP with more than one frame.
/// Unreadable paths are not videos (the image reader then reports the problem).
pub fn is_video_path(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    let Ok(head) = read_head(path) else {
        return false;
    };
    is_iso_media(&head) || animation::frame_count_at_least(path, &head, 2)
}

/// The first bytes of a file, for format sniffing.
pub(super) fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)?.take(64).read_to_end(&mut head)?;
    Ok(head)
}

/// An ISO base media file (MP4, MOV, 3GP): a box of type `ftyp`, `moov`, `mdat`, `free`,
/// `wide` or `skip` at the start.
fn is_iso_media(head: &[u8]) -> bool {
    matches!(
        head.get(4..8),
        Some(b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide" | b"skip")
    )
}

/// What [`load_video_with`] does to each kept frame.
pub(crate) type FrameFn<'a> = dyn Fn(RgbImage) -> Result<RgbImage> + 'a;

/// A clip after sampling: its metadata, the indices of the kept frames and those frames.
#[derive(Debug, Clone)]
pub struct SampledVideo {
    /// The whole clip's frame count, rate and duration.
    pub metadata: VideoMetadata,
    /// Indices of the kept frames in the clip, increasing.
    pub indices: Vec<usize>,
    /// The kept frames, upright, as RGB.
    pub frames: Vec<RgbImage>,
}

impl SampledVideo {
    /// Seconds from the start of the clip to each kept frame.
    pub(crate) fn timestamps(&self) -> Vec<f64> {
        self.indices
            .iter()
            .map(|&i| self.metadata.timestamp(i))
            .collect()
    }
}

/// Decodes a video and keeps the frames `sampling` picks.
pub fn load_video(
    input: &VideoInput,
    sampling: &FrameSampling,
    limits: &ImageLimits,
) -> Result<SampledVideo> {
    load_video_with(input, sampling, limits, &|frame| Ok(frame))
}

/// [`load_video`], passing each kept frame through `each` as soon as it is decoded (to
/// shrink it, say), so that only `each`'s outputs are held.
pub(crate) fn load_video_with(
    input: &VideoInput,
    sampling: &FrameSampling,
    limits: &ImageLimits,
    each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    let origin = input.origin();
    let video = match &input.source {
        VideoSource::Frames(frames) => {
            let rate = input.frame_rate()?;
            frames::from_images(frames, rate, sampling, limits, each)?
        }
        VideoSource::Path(path) if path.is_dir() => {
            frames::from_dir(path, input.frame_rate()?, sampling, limits, each)?
        }
        VideoSource::Path(path) => {
            let head = read_head(path).map_err(|e| Error::Video {
                origin: origin.clone(),
                problem: match e.kind() {
                    std::io::ErrorKind::NotFound => "file not found".into(),
                    _ => e.to_string(),
                },
            })?;
            if is_iso_media(&head) {
                load_iso_media(path, sampling, limits, each)?
            } else {
                animation::load(path, sampling, limits, each)?
            }
        }
    };
    if video.frames.is_empty() {
        return Err(Error::Video {
            origin,
            problem: "has no frames".into(),
        });
    }
    Ok(video)
}

#[cfg(feature = "video")]
fn load_iso_media(
    path: &Path,
    sampling: &FrameSampling,
    limits: &ImageLimits,
    each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    mp4_h264::load(path, sampling, limits, each)
}

#[cfg(not(feature = "video"))]
fn load_iso_media(
    path: &Path,
    _sampling: &FrameSampling,
    _limits: &ImageLimits,
    _each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    Err(Error::Video {
        origin: path.display().to_string(),
        problem: "MP4/MOV decoding is not compiled in (the `video` feature is off); pass a directory of frames (e.g. from `ffmpeg -i clip.mp4 -vf fps=1 frames/%04d.png`) instead".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_media_is_sniffed_from_the_first_box() {
        assert!(is_iso_media(b"\0\0\0\x20ftypisom"));
        assert!(is_iso_media(b"\0\0\0\x08wide\0\0\0\0mdat"));
        assert!(!is_iso_media(b"\x89PNG\r\n\x1a\n"));
        assert!(!is_iso_media(b"GIF8"));
    }

    #[test]
    fn bad_frame_rates_are_rejected() {
        let v = VideoInput::path("x").with_frame_rate(0.0);
        assert!(v.frame_rate().is_err());
        let v = VideoInput::path("x");
        assert_eq!(v.frame_rate().unwrap(), DEFAULT_FRAME_RATE);
        let s = VideoInput::path("x")
            .with_fps(-1.0)
            .sampling(FrameSampling::default());
        assert!(s.unwrap_err().to_string().contains("fps"));
    }
}
