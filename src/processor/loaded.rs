//! An image or video input + processor options → [`LoadedMedia`]: decoded pixels, the
//! [`MediaId`] that names them, and their place in the prompt; the views for the vision tower
//! are made from it only when its features are not already known.
//!
//! Splitting decoding from resizing lets a caller that holds the features of a `MediaId` (a
//! session, an embedding cache) skip the resize and normalisation of a picture it has seen.

use image::RgbImage;

use super::chunk::{MediaHasher, MediaId};
use super::image::{load_image, ImageInput, LoadedImage};
use super::media::video::{load_video_with, VideoInput};
use super::pixels::{prepare_pixels, PixelOptions, PreparedPixels};
use super::prompt::Grid;
use super::tiles::TilePlan;
use super::video::{FrameSampling, VideoLayout};
use super::{video_pixels, MediaLayout, Processor, ProcessorOptions};
use crate::error::{Error, Result};

/// One image or video, decoded and named, not yet turned into views.
pub struct LoadedMedia {
    id: MediaId,
    layout: MediaLayout,
    source: Source,
    pixel: PixelOptions,
}

enum Source {
    Image(LoadedImage),
    /// Frames already resized to one tile each (only tile-sized frames are ever held).
    Video(Vec<RgbImage>),
}

impl LoadedMedia {
    /// What the pixels are.
    pub fn id(&self) -> MediaId {
        self.id
    }

    /// The image's tile grid, or the video's frame timestamps.
    pub(crate) fn layout(&self) -> &MediaLayout {
        &self.layout
    }

    /// The normalised views `[views, 3, M, M]` (tiles row by row then the global view, or
    /// one per frame).
    pub(crate) fn pixels(&self) -> Result<PreparedPixels> {
        match &self.source {
            Source::Image(img) => {
                let pixels = prepare_pixels(img, &self.pixel)?;
                let planned = match &self.layout {
                    MediaLayout::Image(grid) => *grid,
                    MediaLayout::Video(_) => Grid { rows: 0, cols: 0 },
                };
                if (pixels.rows, pixels.cols) != (planned.rows, planned.cols) {
                    return Err(Error::Image {
                        origin: img.origin().to_string(),
                        problem: format!(
                            "split into {}×{} tiles, planned {}×{}",
                            pixels.rows, pixels.cols, planned.rows, planned.cols
                        ),
                    });
                }
                Ok(pixels)
            }
            Source::Video(frames) => {
                let tile = self.pixel.tile_size as usize;
                let mut data = Vec::with_capacity(frames.len() * 3 * tile * tile);
                for frame in frames {
                    video_pixels::normalize_frame(frame, &self.pixel, &mut data)?;
                }
                Ok(PreparedPixels {
                    rows: 0,
                    cols: 0,
                    tile_size: tile,
                    n_views: frames.len(),
                    data,
                })
            }
        }
    }
}

impl Processor {
    /// Decodes an image and plans its tiles; the id covers the decoded pixels and every
    /// preprocessing setting (splitting and alpha included). The image limits only refuse
    /// images, so they are not part of it.
    pub fn load_image(&self, input: &ImageInput, opts: &ProcessorOptions) -> Result<LoadedMedia> {
        let pixel = self.pixel_options(opts, opts.image_splitting)?;
        let img = load_image(input, &opts.image_limits)?;
        let plan = TilePlan::new(img.width(), img.height(), &pixel)?;
        let mut h = MediaHasher::new("image", &format!("{pixel:?}"));
        h.field(&img.width().to_le_bytes())
            .field(&img.height().to_le_bytes())
            .field(format!("{:?} {:?}", img.layout(), img.colour_key()).as_bytes())
            .field(img.pixels());
        Ok(LoadedMedia {
            id: h.finish(),
            layout: MediaLayout::Image(Grid {
                rows: plan.rows,
                cols: plan.cols,
            }),
            source: Source::Image(img),
            pixel,
        })
    }

    /// Decodes a video and samples its frames as transformers does (the input's `fps` and
    /// `max_frames` override `opts`', which override the checkpoint's), resizing each kept frame to one tile as soon
    /// as it is decoded; frames are never split, whatever `opts.image_splitting` says. The id
    /// covers the kept frames, their timestamps and the preprocessing settings.
    pub(crate) fn load_video(
        &self,
        input: &VideoInput,
        opts: &ProcessorOptions,
    ) -> Result<LoadedMedia> {
        let pixel = self.pixel_options(opts, Some(false))?;
        let checkpoint = self.video_sampling();
        let defaults = FrameSampling {
            fps: opts.video_fps.unwrap_or(checkpoint.fps),
            max_frames: opts.video_max_frames.unwrap_or(checkpoint.max_frames),
        };
        let sampling = input.sampling(defaults)?;
        let video = load_video_with(input, &sampling, &opts.image_limits, &|frame| {
            video_pixels::resize_frame(frame, &pixel)
        })?;
        let layout = VideoLayout {
            timestamps: video.timestamps(),
            duration: Some(video.metadata.duration),
        };
        let mut h = MediaHasher::new("video", &format!("{pixel:?}"));
        h.field(format!("{layout:?}").as_bytes());
        for frame in &video.frames {
            h.field(&frame.width().to_le_bytes())
                .field(&frame.height().to_le_bytes())
                .field(frame.as_raw());
        }
        Ok(LoadedMedia {
            id: h.finish(),
            layout: MediaLayout::Video(layout),
            source: Source::Video(video.frames),
            pixel,
        })
    }
}
