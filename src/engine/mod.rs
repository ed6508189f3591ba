//! [`Engine`]: a loaded model (configuration, weights, processor), immutable and shareable
//! across threads; conversations run in [`crate::Session`]s made from it.

mod load;
mod options;
mod prepare;

use std::sync::{Arc, OnceLock};

use crate::config::CheckpointConfig;
use crate::error::{Error, Result};
use crate::generate::constraint::ConstraintCompiler;
use crate::model::SmolVlm;
use crate::processor::{Processor, ProcessorOptions};

pub use load::load_processor;
pub use options::{
    DecodeCompute, Dtype, EngineOptions, ModelSource, Precision, PrefillCompute, VisionCompute,
};
pub use prepare::pixels_tensor;

/// Facts about a loaded model ([`Engine::info`]).
///
/// ```
/// use vlm::{synthetic::Preset, Engine, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let info = engine.info();
/// assert_eq!((info.family, info.dtype.as_str(), info.vision), ("smolvlm", "f32", true));
/// assert!(info.image_seq_len > 0 && info.tile_size > 0);
/// # Ok::<(), vlm::Error>(())
/// ```
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
    /// Tile side in pixels (0 without vision).
    pub tile_size: usize,
    /// Whether the model takes images.
    pub vision: bool,
    /// Whether the weights are random (a [`ModelSource::Synthetic`] model).
    pub synthetic: bool,
    /// The type matrices were quantized to at load (`--quant`), if any.
    pub quant: Option<String>,
    /// `exact` when every stage ran transformers' arithmetic, `fast` otherwise (see
    /// [`Precision`]).
    pub precision: &'static str,
    /// How the vision tower computes: `reference` or `bf16-dot` (see [`VisionCompute`]).
    pub vision_compute: &'static str,
    /// How prompt blocks are multiplied: `reference` or `bf16-dot` (see [`PrefillCompute`]).
    pub prefill_compute: &'static str,
    /// How decode steps multiply block matrices: `reference` or `int8-dot` (see
    /// [`DecodeCompute`]).
    pub decode_compute: &'static str,
}

pub(crate) struct EngineInner {
    pub(crate) model: SmolVlm,
    pub(crate) processor: Processor,
    /// What sessions start with ([`EngineOptions::processor`]).
    processor_options: ProcessorOptions,
    config: CheckpointConfig,
    pub(crate) eos_ids: Vec<u32>,
    pub(crate) context_length: usize,
    info: ModelInfo,
    /// Built on the first constrained generation; the error text when the vocabulary cannot
    /// be indexed.
    constraints: OnceLock<std::result::Result<Arc<ConstraintCompiler>, String>>,
}

/// A loaded model. Cheap to clone; `Send + Sync`: load it once and share it between threads,
/// each conversation in its own [`Session`](crate::Session).
///
/// ```
/// use vlm::{synthetic::Preset, Engine, GenerateOptions, Message, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let opts = GenerateOptions { max_new_tokens: 4, ..Default::default() };
/// let workers: Vec<_> = (0..2)
///     .map(|i| {
///         let engine = engine.clone();
///         let opts = opts.clone();
///         std::thread::spawn(move || engine.session().send(Message::user([], format!("Hi #{i}")), &opts))
///     })
///     .collect();
/// for worker in workers {
///     let answer = worker.join().expect("no panic")?;
///     assert!(answer.usage.completion_tokens <= 4);
/// }
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Engine {
    /// Facts about the loaded model.
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// println!("{} from {}, {} tokens of context", engine.info().family, engine.info().source, engine.info().context_length);
    /// # Ok::<(), vlm::Error>(())
    /// ```
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

    /// The processor settings sessions start with ([`EngineOptions::processor`]).
    pub fn processor_options(&self) -> &ProcessorOptions {
        &self.inner.processor_options
    }

    /// The model (for callers that drive the pipeline by hand).
    pub fn model(&self) -> &SmolVlm {
        &self.inner.model
    }

    /// Token ids that end generation.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.inner.eos_ids
    }
    /// The constraint compiler for this model's vocabulary (built once, on first use).
    pub(crate) fn constraint_compiler(&self) -> Result<Arc<ConstraintCompiler>> {
        let built = self.inner.constraints.get_or_init(|| {
            ConstraintCompiler::new(
                self.inner.processor.tokenizer(),
                &self.inner.eos_ids,
                self.inner.config.model.text.vocab_size,
            )
            .map(Arc::new)
            .map_err(|e| match e {
                Error::Tokenizer(message) => message,
                other => other.to_string(),
            })
        });
        built.clone().map_err(Error::Tokenizer)
    }
}
