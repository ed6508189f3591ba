//! Messages with images → [`PreparedInput`]: token ids plus normalised pixel views.
//!
//! Four kinds of knowledge stay apart here, in data-flow order: decoding (`image`), geometry and
//! resampling (`resize`, `tiles`), pixel normalisation (`pixels`), and text (`chat`, `prompt`,
//! `tokenizer`). No model code runs in this module.

pub mod chat;
pub mod gguf_tokenizer;
pub mod image;
pub mod pixels;
pub mod prompt;
pub mod resize;
pub mod tiles;
pub mod tokenizer;

use crate::config::CheckpointConfig;
use crate::error::Result;
use chat::{ChatTemplate, Message};
use image::{load_image, ImageInput, ImageLimits};
use pixels::{prepare_pixels, PixelOptions, PreparedPixels};
use prompt::{Grid, ImageTokens};
use tiles::TilePlan;
use tokenizer::{SpecialTokens, TextTokenizer};

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
    /// Token ids of `text`.
    pub input_ids: Vec<u32>,
    /// Every image of the conversation, in order.
    pub images: Vec<PreparedImage>,
    /// How many of `input_ids` are image-feature slots.
    pub n_image_tokens: usize,
}

/// Turns conversations into model input, exactly as transformers' SmolVLM processor does.
pub struct Processor {
    tokenizer: TextTokenizer,
    template: ChatTemplate,
    special: SpecialTokens,
    /// Image settings; none for text-only models.
    pixel_options: Option<PixelOptions>,
    image_seq_len: usize,
    limits: ImageLimits,
}

impl Processor {
    /// Builds the processor of a checkpoint from its configuration and `tokenizer.json`.
    pub fn new(
        cfg: &CheckpointConfig,
        tokenizer: TextTokenizer,
        limits: ImageLimits,
    ) -> Result<Self> {
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
        });
        Ok(Processor {
            tokenizer,
            template,
            special,
            pixel_options,
            image_seq_len: cfg.image_seq_len,
            limits,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Special token ids.
    pub fn special_tokens(&self) -> &SpecialTokens {
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
    /// its pixels. `splitting` overrides the checkpoint's `do_image_splitting`.
    pub fn tile_plan(&self, input: &ImageInput, splitting: Option<bool>) -> Result<TilePlan> {
        let opts = self.pixel_options(splitting)?;
        let loaded = load_image(input, &self.limits)?;
        TilePlan::new(loaded.width(), loaded.height(), &opts)
    }

    fn pixel_options(&self, splitting: Option<bool>) -> Result<PixelOptions> {
        let Some(opts) = &self.pixel_options else {
            return Err(crate::Error::InvalidOption {
                name: "image",
                reason: "this model has no vision encoder; give the mmproj GGUF with --mmproj"
                    .into(),
            });
        };
        let mut opts = opts.clone();
        if let Some(split) = splitting {
            opts.do_image_splitting = split;
        }
        Ok(opts)
    }

    /// Decodes and preprocesses one image. `splitting` overrides the checkpoint's
    /// `do_image_splitting`.
    pub fn prepare_image(
        &self,
        input: &ImageInput,
        splitting: Option<bool>,
    ) -> Result<PreparedImage> {
        let opts = self.pixel_options(splitting)?;
        let loaded = load_image(input, &self.limits)?;
        let pixels = prepare_pixels(&loaded, &opts)?;
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
    pub fn tokenize_conversation(
        &self,
        messages: &[Message],
        grids: &[Grid],
        add_generation_prompt: bool,
    ) -> Result<(String, String, Vec<u32>)> {
        let prompt = self.template.render(messages, add_generation_prompt)?;
        let names = &self.special.names;
        let tokens = ImageTokens {
            image: &names.image,
            fake: &names.fake_image,
            global: &names.global_image,
        };
        let text = prompt::expand(&prompt, grids, self.image_seq_len, &tokens)?;
        let ids = self.tokenizer.encode(&text, true)?;
        Ok((prompt, text, ids))
    }

    /// Prepares a whole conversation: every image, then the token ids.
    pub fn prepare(
        &self,
        messages: &[Message],
        splitting: Option<bool>,
        add_generation_prompt: bool,
    ) -> Result<PreparedInput> {
        let images = messages
            .iter()
            .flat_map(Message::images)
            .map(|img| self.prepare_image(img, splitting))
            .collect::<Result<Vec<_>>>()?;
        let grids: Vec<Grid> = images.iter().map(|i| i.grid).collect();
        let (prompt, text, input_ids) =
            self.tokenize_conversation(messages, &grids, add_generation_prompt)?;
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
            images,
            n_image_tokens,
        })
    }
}
