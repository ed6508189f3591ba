//! The values that cross the boundary: UniFFI records and enums → the runtime API's images and
//! generation options, and its answers and progress reports → records and enums.

use std::path::PathBuf;

use super::{count, VlmError};
use crate::generate::{FinishReason, GenerateOptions, Generation, LoadStage, Progress, Sampling};
use crate::processor::image::ImageInput;

/// An image: a file, the bytes of an encoded file, or raw RGB pixels such as a camera frame.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum VlmImage {
    /// A PNG, JPEG, WebP or GIF file.
    Path {
        /// Its path.
        path: String,
    },
    /// The bytes of a PNG, JPEG, WebP or GIF file.
    Encoded {
        /// The file's bytes.
        bytes: Vec<u8>,
    },
    /// Raw pixels, row-major, 3 bytes (R, G, B) per pixel.
    Rgb8 {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Exactly `width * height * 3` bytes.
        pixels: Vec<u8>,
    },
}

impl VlmImage {
    pub(super) fn into_input(self) -> Result<ImageInput, VlmError> {
        Ok(match self {
            VlmImage::Path { path } => ImageInput::Path(PathBuf::from(path)),
            VlmImage::Encoded { bytes } => ImageInput::Encoded(bytes),
            VlmImage::Rgb8 {
                width,
                height,
                pixels,
            } => ImageInput::rgb8(width, height, pixels)?,
        })
    }
}

/// Options of one generation; every field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VlmGenerateOptions {
    /// Upper bound on generated tokens (at least 1).
    #[uniffi(default = 256)]
    pub max_new_tokens: u32,
    /// Softmax temperature; 0 picks the most likely token every time (greedy).
    #[uniffi(default = 0.0)]
    pub temperature: f32,
    /// With a temperature: keep only the k most likely tokens.
    #[uniffi(default = None)]
    pub top_k: Option<u32>,
    /// With a temperature: keep the smallest set of tokens whose probability reaches p.
    #[uniffi(default = None)]
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    #[uniffi(default = 0)]
    pub seed: u64,
    /// Strings that end generation; the text is cut before them.
    #[uniffi(default = [])]
    pub stop: Vec<String>,
    /// Override the model's image splitting (tiles plus a global view) for this message.
    #[uniffi(default = None)]
    pub image_splitting: Option<bool>,
    /// Keep generating past end-of-sequence tokens, up to `max_new_tokens`.
    #[uniffi(default = false)]
    pub ignore_eos: bool,
}

impl VlmGenerateOptions {
    pub(super) fn to_options(&self) -> GenerateOptions {
        let sampling = if self.temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Random {
                temperature: self.temperature,
                top_k: self.top_k.map(|k| k as usize),
                top_p: self.top_p,
                min_p: None,
            }
        };
        GenerateOptions {
            max_new_tokens: self.max_new_tokens as usize,
            sampling,
            seed: self.seed,
            ignore_eos: self.ignore_eos,
            stop: self.stop.clone(),
            ..GenerateOptions::default()
        }
    }
}

/// How to load a model; every field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VlmEngineOptions {
    /// Where to compute: `cpu`, `cuda[:N]` or `metal[:N]`. A GPU needs the library built with
    /// the `cuda` or `metal` feature; otherwise loading fails with a [`VlmError::Load`] that
    /// names the feature.
    #[uniffi(default = "cpu")]
    pub device: String,
    /// Cap on the context window in tokens (the model's own when absent or larger).
    #[uniffi(default = None)]
    pub max_context: Option<u32>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VlmFinishReason {
    /// The model ended its answer.
    Eos,
    /// `max_new_tokens` was reached.
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// A stop string appeared.
    Stop,
    /// The cancel token was set; the text so far is returned.
    Cancelled,
}

impl From<FinishReason> for VlmFinishReason {
    fn from(f: FinishReason) -> Self {
        match f {
            FinishReason::Eos => VlmFinishReason::Eos,
            FinishReason::MaxTokens => VlmFinishReason::MaxTokens,
            FinishReason::ContextFull => VlmFinishReason::ContextFull,
            FinishReason::Stop => VlmFinishReason::Stop,
            FinishReason::Cancelled => VlmFinishReason::Cancelled,
        }
    }
}

/// The answer to one message.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VlmAnswer {
    /// The generated text (the same text the listener was given, piece by piece).
    pub text: String,
    /// Why generation ended.
    pub finish: VlmFinishReason,
    /// Tokens of the whole prompt, image tokens included.
    pub prompt_tokens: u32,
    /// Image tokens in the prompt.
    pub image_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Seconds from the call to the first token: preprocessing, vision and prefill.
    pub seconds_to_first_token: f64,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_second: f64,
}

impl From<Generation> for VlmAnswer {
    fn from(g: Generation) -> Self {
        VlmAnswer {
            finish: g.finish.into(),
            prompt_tokens: count(g.usage.prompt_tokens),
            image_tokens: count(g.usage.image_tokens),
            completion_tokens: count(g.usage.completion_tokens),
            seconds_to_first_token: g.timings.time_to_first_token().as_secs_f64(),
            decode_tokens_per_second: g
                .timings
                .decode_tokens_per_second(g.usage.completion_tokens),
            text: g.text,
        }
    }
}

/// The steps of loading a model, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VlmLoadStage {
    /// Configuration, tokenizer and chat template read.
    Config,
    /// Weight files opened and memory-mapped.
    Weights,
    /// The model built from them.
    Model,
}

/// How far a load or a generation has got.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum VlmProgress {
    /// A step of loading the model finished.
    Load {
        /// The step that finished.
        stage: VlmLoadStage,
        /// Steps finished, this one included.
        done: u32,
        /// Steps in all.
        total: u32,
    },
    /// Views (tiles and global views) of the message's images encoded so far.
    EncodeViews {
        /// Views done.
        done: u32,
        /// Views in total.
        total: u32,
    },
    /// The prompt is being run through the model.
    Prefill {
        /// Prompt tokens to run (those the conversation's cache does not hold).
        tokens: u32,
    },
}

impl VlmProgress {
    pub(super) fn from_progress(p: Progress) -> Option<Self> {
        match p {
            Progress::Load { stage, done, total } => Some(VlmProgress::Load {
                stage: match stage {
                    LoadStage::Config => VlmLoadStage::Config,
                    LoadStage::Weights => VlmLoadStage::Weights,
                    LoadStage::Model => VlmLoadStage::Model,
                },
                done: count(done),
                total: count(total),
            }),
            Progress::EncodeViews { done, total } => Some(VlmProgress::EncodeViews {
                done: count(done),
                total: count(total),
            }),
            Progress::Prefill { tokens } => Some(VlmProgress::Prefill {
                tokens: count(tokens),
            }),
        }
    }
}
