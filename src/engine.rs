//! [`Engine`]: a loaded model (configuration, weights, processor), immutable and shareable
//! across threads; conversations run in [`crate::Session`]s made from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::config::{CheckpointConfig, Family};
use crate::error::{Error, Result};
use crate::model::{RopeLayout, SmolVlm};
use crate::processor::chat::Message;
use crate::processor::image::ImageLimits;
use crate::processor::{PreparedInput, Processor};
use crate::session::Session;
use crate::weights::{safetensors_files, Weights};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A Hugging Face checkpoint directory (config.json, safetensors, tokenizer, processor files).
    Dir(PathBuf),
}

impl ModelSource {
    /// A local Hugging Face checkpoint directory.
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        ModelSource::Dir(path.into())
    }
}

/// Compute precision of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 32-bit float (the default on CPU; the reference precision).
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineOptions {
    /// Compute precision; `None` picks f32 on CPU.
    pub precision: Option<Precision>,
    /// Limits on decoded images.
    pub image_limits: ImageLimits,
    /// Cap on the context window (the model's own when `None` or larger).
    pub max_context: Option<usize>,
}

/// Facts about a loaded model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelInfo {
    /// `smolvlm` or `idefics3`.
    pub family: &'static str,
    /// Where it was loaded from.
    pub source: String,
    /// Compute dtype, e.g. `f32`.
    pub dtype: String,
    /// Context window in tokens.
    pub context_length: usize,
    /// Image tokens per view.
    pub image_seq_len: usize,
    /// Tile side in pixels.
    pub tile_size: usize,
}

pub(crate) struct EngineInner {
    pub model: SmolVlm,
    pub processor: Processor,
    pub config: CheckpointConfig,
    pub eos_ids: Vec<u32>,
    pub context_length: usize,
    pub info: ModelInfo,
}

/// A loaded model. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Engine {
    /// Loads a model.
    pub fn load(source: ModelSource, opts: EngineOptions) -> Result<Engine> {
        match source {
            ModelSource::Dir(dir) => Self::load_dir(&dir, &opts),
        }
    }

    fn load_dir(dir: &Path, opts: &EngineOptions) -> Result<Engine> {
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir.to_path_buf(),
            });
        }
        let config = CheckpointConfig::from_dir(dir)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let processor = Processor::new(&config, &tokenizer_path, opts.image_limits)?;
        let files = safetensors_files(dir)?;
        let device = Device::Cpu;
        let dtype = opts.precision.unwrap_or(Precision::F32).dtype();
        let weights = Weights::from_safetensors(&files, dtype, &device)?;
        let model = SmolVlm::load(&weights, &config.model, RopeLayout::SplitHalf)?;

        let mut eos_ids = config.generation.eos_token_ids.clone();
        if let Some(eou) = processor.special_tokens().end_of_utterance {
            if !eos_ids.contains(&eou) {
                eos_ids.push(eou);
            }
        }
        if let Some(eos) = config.tokenizer.eos_token.as_deref() {
            if let Some(id) = processor.tokenizer().token_id(eos) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        let model_ctx = config.model.text.max_position_embeddings;
        let context_length = opts.max_context.map_or(model_ctx, |c| c.min(model_ctx));
        let info = ModelInfo {
            family: match config.model.family {
                Family::SmolVlm => "smolvlm",
                Family::Idefics3 => "idefics3",
            },
            source: dir.display().to_string(),
            dtype: format!("{dtype:?}").to_lowercase(),
            context_length,
            image_seq_len: config.image_seq_len,
            tile_size: config.preprocessor.tile_size as usize,
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                model,
                processor,
                config,
                eos_ids,
                context_length,
                info,
            }),
        })
    }

    /// Facts about the loaded model.
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// The resolved checkpoint configuration.
    pub fn config(&self) -> &CheckpointConfig {
        &self.inner.config
    }

    /// The processor (images and text → model input).
    pub fn processor(&self) -> &Processor {
        &self.inner.processor
    }

    /// The model (for callers that drive the pipeline by hand).
    pub fn model(&self) -> &SmolVlm {
        &self.inner.model
    }

    /// Token ids that end generation.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.inner.eos_ids
    }

    /// Preprocesses a conversation (with the generation prompt) without running the model.
    pub fn prepare(
        &self,
        messages: &[Message],
        image_splitting: Option<bool>,
    ) -> Result<PreparedInput> {
        self.inner
            .processor
            .prepare(messages, image_splitting, true)
    }

    /// Runs the vision tower and connector on all views of `input`'s images:
    /// `[views, image_seq_len, D_t]`, or `None` without images.
    pub fn encode_images(&self, input: &PreparedInput) -> Result<Option<Tensor>> {
        if input.images.is_empty() {
            return Ok(None);
        }
        let views = input
            .images
            .iter()
            .map(|img| pixels_tensor(&img.pixels, self.inner.model.device()))
            .collect::<Result<Vec<_>>>()?;
        let pixels = Tensor::cat(&views, 0)?;
        Ok(Some(self.inner.model.encode_images(&pixels, None)?))
    }

    /// A new conversation.
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }
}

/// Preprocessed views → a `[views, 3, M, M]` f32 tensor.
pub fn pixels_tensor(
    p: &crate::processor::pixels::PreparedPixels,
    device: &Device,
) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        &p.data,
        (p.n_views, 3, p.tile_size, p.tile_size),
        device,
    )?)
}
