//! Messages with images and videos → [`PreparedInput`]: the prompt as `Chunk`s of text
//! tokens and media spans (each named by a content hash, with its normalised views).
//!
//! Four kinds of knowledge stay apart here, in data-flow order: decoding (`image`), geometry and
//! resampling (`resize`, `tiles`), pixel normalisation (`pixels`), and text (`chat`, `prompt`,
//! `tokenizer`). No model code runs in this module.

pub(crate) mod chat;
pub(crate) mod chunk;
pub mod gguf_tokenizer;
mod loaded;
pub(crate) mod media;
mod options;
// `processor::image` is where images have always been named from; the code lives in `media`.
pub use media::image;
pub mod pixels;
pub mod prompt;
pub mod resize;
pub mod tiles;
pub mod tokenizer;
pub mod video;
pub mod video_pixels;

pub(crate) use chunk::{Chunk, MediaId};
pub use options::ProcessorOptions;

use crate::config::CheckpointConfig;
use crate::error::Result;
use chat::{ChatTemplate, Message};
use image::{load_image, AlphaMode, ImageInput};
use pixels::{PixelOptions, PreparedPixels};
use prompt::{Grid, ImageTokens};
use tiles::TilePlan;
use tokenizer::{SpecialTokens, TextTokenizer};
use video::{FrameSampling, VideoLayout, VIDEO_CHAT_TEMPLATE};

use media::video::VideoInput;

/// One image after preprocessing: its tile grid and its views `[views, 3, M, M]`.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// Tile grid (0×0 when not split).
    pub grid: Grid,
    /// Normalised views, tiles row-major then the global view.
    pub pixels: PreparedPixels,
}

/// The processor → model contract: what the model needs, and nothing that needs a model.
#[derive(Debug, Clone)]
pub struct PreparedInput {
    /// The chat template's output, with one `<image>` marker per image.
    pub prompt: String,
    /// The prompt after image-marker expansion.
    pub text: String,
    /// Token ids of `text`: the tokens of `chunks`, in order.
    pub input_ids: Vec<u32>,
    /// The prompt as text runs and media spans; every media chunk carries its views.
    pub(crate) chunks: Vec<Chunk>,
    /// How many of `input_ids` are image-feature slots.
    pub n_image_tokens: usize,
}

impl PreparedInput {
    /// Every image of the conversation, in order; a video contributes one single-view image
    /// per sampled frame, at its place among the images.
    pub fn images(&self) -> Vec<PreparedImage> {
        let mut out = Vec::new();
        for m in chunk::media(&self.chunks) {
            let Some(pixels) = &m.pixels else { continue };
            match &m.layout {
                MediaLayout::Image(grid) => out.push(PreparedImage {
                    grid: *grid,
                    pixels: pixels.clone(),
                }),
                MediaLayout::Video(layout) => out.extend(
                    PreparedVideo {
                        layout: layout.clone(),
                        pixels: pixels.clone(),
                    }
                    .frames(),
                ),
            }
        }
        out
    }
}

/// One video after sampling and preprocessing: one single view per sampled frame, and what
/// its prompt says about the frames.
#[derive(Debug, Clone)]
pub struct PreparedVideo {
    /// The frames' timestamps and the clip's duration.
    pub layout: VideoLayout,
    /// Normalised frames `[frames, 3, M, M]`, one view each.
    pub pixels: PreparedPixels,
}

/// How one image or video appears in the prompt, in conversation order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MediaLayout {
    /// An image with its tile grid.
    Image(Grid),
    /// A video with its sampled frames' timestamps.
    Video(VideoLayout),
}

/// Turns conversations into model input, exactly as transformers' SmolVLM processor does.
pub struct Processor {
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    /// The template transformers renders conversations with videos with.
    video_template: ChatTemplate,
    video_sampling: FrameSampling,
    special: SpecialTokens,
    /// Image settings; none for text-only models.
    pixel_options: Option<PixelOptions>,
    image_seq_len: usize,
}

impl Processor {
    /// Builds the processor of a checkpoint from its configuration and `tokenizer.json`.
    pub(crate) fn new(cfg: &CheckpointConfig, tokenizer: TextTokenizer) -> Result<Self> {
        let special = SpecialTokens::lookup(&tokenizer, &cfg.tokenizer.special)?;
        if cfg.model.vision.is_some() && special.image != Some(cfg.model.image_token_id) {
            return Err(crate::Error::Tokenizer(format!(
                "`{}` is token {:?} in the tokenizer but the model config says image_token_id {}",
                special.names.image, special.image, cfg.model.image_token_id
            )));
        }
        let eos = cfg.tokenizer.eos_token.clone().unwrap_or_default();
        let bos = cfg.tokenizer.bos_token.clone().unwrap_or_default();
        let template = ChatTemplate::new(&cfg.chat_template, &bos, &eos)?;
        let video_template = ChatTemplate::new(VIDEO_CHAT_TEMPLATE, &bos, &eos)?;
        let defaults = FrameSampling::default();
        let video_sampling = match cfg
            .preprocessor
            .as_ref()
            .and_then(|p| p.video_sampling.as_ref())
        {
            Some(v) => FrameSampling {
                fps: v.fps.unwrap_or(defaults.fps),
                max_frames: v.max_frames.unwrap_or(defaults.max_frames),
            },
            None => defaults,
        };
        let pixel_options = cfg.preprocessor.as_ref().map(|pre| PixelOptions {
            longest_edge: pre.longest_edge,
            tile_size: pre.tile_size,
            do_image_splitting: pre.do_image_splitting,
            do_resize: pre.do_resize,
            do_rescale: pre.do_rescale,
            rescale_factor: pre.rescale_factor,
            do_normalize: pre.do_normalize,
            image_mean: pre.image_mean,
            image_std: pre.image_std,
            do_convert_rgb: pre.do_convert_rgb,
            alpha: AlphaMode::default(),
        });
        Ok(Processor {
            tokenizer,
            template,
            video_template,
            video_sampling,
            special,
            pixel_options,
            image_seq_len: cfg.image_seq_len,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Special token ids.
    pub(crate) fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Image tokens per view.
    pub fn image_seq_len(&self) -> usize {
        self.image_seq_len
    }

    /// Whether images are split into tiles by default.
    pub fn splits_images(&self) -> bool {
        self.pixel_options
            .as_ref()
            .is_some_and(|p| p.do_image_splitting)
    }

    /// The geometry of one image's preprocessing (resize sizes, tile grid) without preparing
    /// its pixels.
    pub(crate) fn tile_plan(
        &self,
        input: &ImageInput,
        opts: &ProcessorOptions,
    ) -> Result<TilePlan> {
        let pixel = self.pixel_options(opts, opts.image_splitting)?;
        let loaded = load_image(input, &opts.image_limits)?;
        TilePlan::new(loaded.width(), loaded.height(), &pixel)
    }

    pub(crate) fn pixel_options(
        &self,
        opts: &ProcessorOptions,
        splitting: Option<bool>,
    ) -> Result<PixelOptions> {
        let Some(pixel) = &self.pixel_options else {
            return Err(crate::Error::InvalidOption {
                name: "image",
                reason: "this model has no vision encoder; give the mmproj GGUF with --mmproj"
                    .into(),
            });
        };
        let mut pixel = pixel.clone();
        if let Some(split) = splitting {
            pixel.do_image_splitting = split;
        }
        pixel.alpha = opts.alpha;
        Ok(pixel)
    }

    /// Decodes and preprocesses one image.
    pub fn prepare_image(
        &self,
        input: &ImageInput,
        opts: &ProcessorOptions,
    ) -> Result<PreparedImage> {
        let loaded = self.load_image(input, opts)?;
        let pixels = loaded.pixels()?;
        Ok(PreparedImage {
            grid: Grid {
                rows: pixels.rows,
                cols: pixels.cols,
            },
            pixels,
        })
    }

    /// Renders `messages`, expands image markers for `grids` (one per image, in order) and
    /// tokenizes. Returns `(prompt, expanded text, ids)`.
    pub(crate) fn tokenize_conversation(
        &self,
        messages: &[Message],
        grids: &[Grid],
        add_generation_prompt: bool,
    ) -> Result<(String, String, Vec<u32>)> {
        let layouts: Vec<MediaLayout> = grids.iter().copied().map(MediaLayout::Image).collect();
        self.tokenize_media(messages, &layouts, add_generation_prompt)
    }

    /// Renders `messages`, expands the `<image>` and `<video>` markers for `layouts` (one per
    /// image or video, in conversation order) and tokenizes. A conversation with a video is
    /// rendered with transformers' video chat template, as its `apply_chat_template` does.
    /// Returns `(prompt, expanded text, ids)`.
    pub fn tokenize_media(
        &self,
        messages: &[Message],
        layouts: &[MediaLayout],
        add_generation_prompt: bool,
    ) -> Result<(String, String, Vec<u32>)> {
        let has_video = messages.iter().any(|m| m.videos().next().is_some());
        let template = if has_video {
            &self.video_template
        } else {
            &self.template
        };
        let prompt = template.render(messages, add_generation_prompt)?;
        let names = &self.special.names;
        let tokens = ImageTokens {
            image: &names.image,
            fake: &names.fake_image,
            global: &names.global_image,
        };
        let text = if has_video {
            video::expand_media(&prompt, layouts, self.image_seq_len, &tokens)?
        } else {
            let grids = layouts
                .iter()
                .map(|l| match l {
                    MediaLayout::Image(g) => Ok(*g),
                    MediaLayout::Video(_) => Err(crate::Error::InvalidOption {
                        name: "video",
                        reason: "a video layout was given for a conversation without videos".into(),
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            prompt::expand(&prompt, &grids, self.image_seq_len, &tokens)?
        };
        let ids = self.tokenizer.encode(&text, true)?;
        Ok((prompt, text, ids))
    }

    /// The checkpoint's video sampling (`video_sampling` of its preprocessor config).
    fn video_sampling(&self) -> FrameSampling {
        self.video_sampling
    }

    /// Decodes a video, samples its frames as transformers does (the input's `fps` and
    /// `max_frames` override the checkpoint's) and preprocesses each frame to one view; frames
    /// are never split, whatever `opts.image_splitting` says.
    pub fn prepare_video(
        &self,
        input: &VideoInput,
        opts: &ProcessorOptions,
    ) -> Result<PreparedVideo> {
        let loaded = self.load_video(input, opts)?;
        let pixels = loaded.pixels()?;
        match loaded.layout() {
            MediaLayout::Video(layout) => Ok(PreparedVideo {
                layout: layout.clone(),
                pixels,
            }),
            MediaLayout::Image(_) => Err(crate::Error::InvalidOption {
                name: "video",
                reason: format!("{} was read as a still image", input.origin()),
            }),
        }
    }

    /// Renders `messages`, expands the markers for `media` (each image or video in
    /// conversation order: its id, layout and, when the vision tower is to run on it, its
    /// views), tokenizes, and cuts the ids into chunks. Returns `(prompt, expanded text,
    /// chunks)`.
    pub(crate) fn chunk_conversation(
        &self,
        messages: &[Message],
        media: Vec<(MediaId, MediaLayout, Option<PreparedPixels>)>,
        add_generation_prompt: bool,
    ) -> Result<(String, String, Vec<Chunk>)> {
        let layouts: Vec<MediaLayout> = media.iter().map(|(_, l, _)| l.clone()).collect();
        let (prompt, text, ids) = self.tokenize_media(messages, &layouts, add_generation_prompt)?;
        if media.is_empty() {
            return Ok((prompt, text, vec![Chunk::Text(ids)]));
        }
        let (Some(image), Some(fake)) = (self.special.image, self.special.fake_image) else {
            return Err(crate::Error::Tokenizer(format!(
                "the vocabulary lacks `{}` or `{}`, which mark images",
                self.special.names.image, self.special.names.fake_image
            )));
        };
        let seq = self.image_seq_len;
        let media = media
            .into_iter()
            .map(|(id, layout, pixels)| {
                let views = match &layout {
                    MediaLayout::Image(grid) => grid.views(),
                    MediaLayout::Video(v) => v.timestamps.len(),
                };
                (id, layout, views * seq, pixels)
            })
            .collect();
        let chunks = chunk::split(&ids, media, image, fake)?;
        Ok((prompt, text, chunks))
    }

    /// Prepares a whole conversation: every image and video, then the token ids.
    pub fn prepare(
        &self,
        messages: &[Message],
        opts: &ProcessorOptions,
        add_generation_prompt: bool,
    ) -> Result<PreparedInput> {
        let mut media = Vec::new();
        for part in messages.iter().flat_map(|m| m.content.iter()) {
            let loaded = match part {
                chat::Content::Text(_) => continue,
                chat::Content::Image(img) => self.load_image(img, opts)?,
                chat::Content::Video(v) => self.load_video(v, opts)?,
            };
            media.push((loaded.id(), loaded.layout().clone(), Some(loaded.pixels()?)));
        }
        let (prompt, text, chunks) =
            self.chunk_conversation(messages, media, add_generation_prompt)?;
        let input_ids = chunk::flatten(&chunks);
        let n_image_tokens = match self.special.image {
            Some(image) if self.pixel_options.is_some() => {
                input_ids.iter().filter(|id| **id == image).count()
            }
            _ => 0,
        };
        Ok(PreparedInput {
            prompt,
            text,
            input_ids,
            chunks,
            n_image_tokens,
        })
    }
}

impl PreparedVideo {
    /// Each frame as a single-view image, in order.
    fn frames(&self) -> impl Iterator<Item = PreparedImage> + '_ {
        let per_frame = 3 * self.pixels.tile_size * self.pixels.tile_size;
        self.pixels
            .data
            .chunks_exact(per_frame.max(1))
            .map(move |chunk| PreparedImage {
                grid: Grid { rows: 0, cols: 0 },
                pixels: PreparedPixels {
                    rows: 0,
                    cols: 0,
                    tile_size: self.pixels.tile_size,
                    n_views: 1,
                    data: chunk.to_vec(),
                },
            })
    }
}
