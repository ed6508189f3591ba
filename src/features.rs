//! The vision tower's output for one image or video → [`ImageEmbedding`] / [`VideoEmbedding`]
//! for callers, and [`MediaFeatures`] (layout + image tokens) for sessions and the embedding
//! cache, which treat images and videos alike.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::processor::prompt::Grid;
use crate::processor::video::VideoLayout;
use crate::processor::MediaLayout;

/// One image after the vision tower and connector: its tile grid and its image tokens
/// `[views, image_seq_len, D_t]` (tiles row by row, then the global view).
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    grid: Grid,
    features: Tensor,
}

impl ImageEmbedding {
    /// Wraps features computed for an image split into `rows × cols` tiles (0 × 0 when not
    /// split); checks that the number of views agrees with the grid.
    pub fn new(rows: usize, cols: usize, features: Tensor) -> Result<Self> {
        let (views, _, _) = features.dims3()?;
        let grid = Grid { rows, cols };
        if views != grid.views() {
            return Err(Error::InvalidOption {
                name: "image embedding",
                reason: format!(
                    "{views} views for a {rows}×{cols} grid; expected {}",
                    grid.views()
                ),
            });
        }
        Ok(ImageEmbedding { grid, features })
    }

    /// `(rows, cols)` of the tile grid; `(0, 0)` when the image was not split.
    pub fn grid(&self) -> (usize, usize) {
        (self.grid.rows, self.grid.cols)
    }

    /// The image tokens, `[views, image_seq_len, D_t]`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// Views (tiles plus the global view).
    pub fn views(&self) -> usize {
        self.features.dims().first().copied().unwrap_or(0)
    }
}

/// One video after the vision tower and connector: its sampled frames' timestamps and one
/// view of image tokens per frame, `[frames, image_seq_len, D_t]`.
#[derive(Debug, Clone)]
pub struct VideoEmbedding {
    layout: VideoLayout,
    features: Tensor,
}

impl VideoEmbedding {
    /// Wraps features computed for the frames at `timestamps` (seconds) of a clip lasting
    /// `duration` seconds; checks that there is one view per frame.
    pub fn new(timestamps: Vec<f64>, duration: Option<f64>, features: Tensor) -> Result<Self> {
        let (views, _, _) = features.dims3()?;
        if views != timestamps.len() || views == 0 {
            return Err(Error::InvalidOption {
                name: "video embedding",
                reason: format!("{views} views for {} frames", timestamps.len()),
            });
        }
        Ok(VideoEmbedding {
            layout: VideoLayout {
                timestamps,
                duration,
            },
            features,
        })
    }

    /// Seconds from the start of the clip to each sampled frame.
    pub fn timestamps(&self) -> &[f64] {
        &self.layout.timestamps
    }

    /// The clip's length in seconds, when known.
    pub fn duration(&self) -> Option<f64> {
        self.layout.duration
    }

    /// The image tokens, `[frames, image_seq_len, D_t]`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }
}

/// An image's or video's place in the prompt and its image tokens `[views, image_seq_len,
/// D_t]`, checked to agree.
#[derive(Debug, Clone)]
pub(crate) struct MediaFeatures {
    pub(crate) layout: MediaLayout,
    pub(crate) features: Tensor,
}

impl MediaFeatures {
    /// Pairs a layout with features, checking the view count.
    pub(crate) fn new(layout: MediaLayout, features: Tensor) -> Result<Self> {
        match layout {
            MediaLayout::Image(g) => ImageEmbedding::new(g.rows, g.cols, features).map(Into::into),
            MediaLayout::Video(v) => {
                VideoEmbedding::new(v.timestamps, v.duration, features).map(Into::into)
            }
        }
    }
}

impl From<ImageEmbedding> for MediaFeatures {
    fn from(e: ImageEmbedding) -> Self {
        MediaFeatures {
            layout: MediaLayout::Image(e.grid),
            features: e.features,
        }
    }
}

impl From<VideoEmbedding> for MediaFeatures {
    fn from(e: VideoEmbedding) -> Self {
        MediaFeatures {
            layout: MediaLayout::Video(e.layout),
            features: e.features,
        }
    }
}
