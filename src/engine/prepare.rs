//! Conversations, images and videos → what the model takes: prepared prompts, pixel tensors
//! (`[views, 3, M, M]`) and the vision tower's embeddings of them.

use candle_core::{Device, Tensor};

use super::Engine;
use crate::error::Result;
use crate::features::{ImageEmbedding, VideoEmbedding};
use crate::processor::chat::Message;
use crate::processor::chunk;
use crate::processor::image::ImageInput;
use crate::processor::media::video::VideoInput;
use crate::processor::pixels::PreparedPixels;
use crate::processor::{PreparedInput, PreparedVideo, ProcessorOptions};

impl Engine {
    /// Preprocesses a conversation (with the generation prompt) as `opts` says, without
    /// running the model. [`Engine::processor_options`] is what a new session would use.
    pub fn prepare(&self, messages: &[Message], opts: &ProcessorOptions) -> Result<PreparedInput> {
        self.inner.processor.prepare(messages, opts, true)
    }

    /// Runs the vision tower and connector on all views of `input`'s images:
    /// `[views, image_seq_len, D_t]`, or `None` without images.
    pub fn encode_images(&self, input: &PreparedInput) -> Result<Option<Tensor>> {
        let views = chunk::media(&input.chunks)
            .filter_map(|m| m.pixels.as_ref())
            .map(|p| pixels_tensor(p, self.inner.model.device()))
            .collect::<Result<Vec<_>>>()?;
        if views.is_empty() {
            return Ok(None);
        }
        let pixels = Tensor::cat(&views, 0)?;
        Ok(Some(self.inner.model.encode_images(&pixels, None)?))
    }

    /// Runs the vision tower and connector on one image (all its views), preprocessed as
    /// `opts` says, for a [`Session::provide_image`] or a cache of embeddings. Give the
    /// session's [`Session::processor_options`], so that the features match what the session
    /// would compute.
    ///
    /// [`Session::provide_image`]: crate::Session::provide_image
    /// [`Session::processor_options`]: crate::Session::processor_options
    pub fn embed_image(
        &self,
        image: &ImageInput,
        opts: &ProcessorOptions,
    ) -> Result<ImageEmbedding> {
        let prepared = self.inner.processor.prepare_image(image, opts)?;
        let pixels = pixels_tensor(&prepared.pixels, self.inner.model.device())?;
        let features = self.inner.model.encode_images(&pixels, None)?;
        ImageEmbedding::new(prepared.grid.rows, prepared.grid.cols, features)
    }

    /// Decodes a video, samples and preprocesses its frames as `opts` says, and runs the
    /// vision tower and connector on each frame, for a [`Session::provide_video`] or a cache
    /// of embeddings.
    ///
    /// [`Session::provide_video`]: crate::Session::provide_video
    pub fn embed_video(
        &self,
        video: &VideoInput,
        opts: &ProcessorOptions,
    ) -> Result<VideoEmbedding> {
        let prepared = self.inner.processor.prepare_video(video, opts)?;
        self.encode_video(&prepared)
    }

    /// Runs the vision tower and connector on a preprocessed video's frames.
    fn encode_video(&self, video: &PreparedVideo) -> Result<VideoEmbedding> {
        let pixels = pixels_tensor(&video.pixels, self.inner.model.device())?;
        let features = self.inner.model.encode_images(&pixels, None)?;
        VideoEmbedding::new(
            video.layout.timestamps.clone(),
            video.layout.duration,
            features,
        )
    }
}

/// Preprocessed views → a `[views, 3, M, M]` f32 tensor.
pub fn pixels_tensor(p: &PreparedPixels, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        &p.data,
        (p.n_views, 3, p.tile_size, p.tile_size),
        device,
    )?)
}
