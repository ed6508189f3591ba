//! [`ProcessorOptions`]: how images and videos are turned into model input, apart from how
//! the answer is generated.

use super::image::{AlphaMode, ImageLimits};

/// The processor's settings. An [`crate::Engine`] holds the defaults
/// ([`crate::EngineOptions::processor`]); a [`crate::Session`] starts with them and may replace
/// them ([`crate::Session::set_processor_options`]).
///
/// ```
/// use vlm::{synthetic::Preset, Engine, EngineOptions, ImageLimits, ModelSource, ProcessorOptions};
///
/// let processor = ProcessorOptions {
///     image_splitting: Some(false),
///     image_limits: ImageLimits { max_pixels: 4_000_000 },
///     ..Default::default()
/// };
/// let opts = EngineOptions { processor: processor.clone(), ..Default::default() };
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), opts)?;
/// assert_eq!(engine.processor_options(), &processor);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessorOptions {
    /// Split images into tiles plus a global view; `None` follows the checkpoint's
    /// `do_image_splitting`. Video frames are never split.
    pub image_splitting: Option<bool>,
    /// Limits on decoded images.
    pub image_limits: ImageLimits,
    /// What happens to transparency in images; the default follows transformers'
    /// `load_image` (see [`AlphaMode`]).
    pub alpha: AlphaMode,
    /// Frames to sample per second of video; `None` follows the checkpoint's
    /// `video_sampling.fps`. A [`crate::VideoInput`]'s own `fps` takes precedence.
    pub video_fps: Option<f64>,
    /// Most frames to sample from a video; `None` follows the checkpoint's
    /// `video_sampling.max_frames`. A [`crate::VideoInput`]'s own `max_frames` takes
    /// precedence.
    pub video_max_frames: Option<usize>,
}
