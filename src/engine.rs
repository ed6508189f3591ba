//! [`Engine`]: a loaded model (configuration, weights, processor), immutable and shareable
//! across threads; conversations run in [`crate::Session`]s made from it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use candle_core::{DType, Device, Tensor};

use crate::config::{CheckpointConfig, Family};
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::generate::constraint::ConstraintCompiler;
use crate::generate::{LoadStage, Progress};
use crate::model::{RopeLayout, SmolVlm};
use crate::processor::chat::Message;
use crate::processor::image::ImageInput;
use crate::processor::image::{AlphaMode, ImageLimits};
use crate::processor::tokenizer::TextTokenizer;
use crate::processor::{PreparedInput, PreparedVideo, Processor};
use crate::session::{ImageEmbedding, Session, VideoEmbedding};
use crate::synthetic::Preset;
use crate::video::VideoInput;
use crate::weights::gguf::{GgufFile, Value};
use crate::weights::{safetensors_files, GgufPair, QuantPolicy, QuantType, Weights};

/// Where a model comes from. Nothing is opened until [`Engine::load`].
///
/// ```
/// use vlm::{synthetic::Preset, ModelSource};
///
/// let checkpoint = ModelSource::dir("models/SmolVLM2-256M-Video-Instruct");
/// let pair = ModelSource::gguf("SmolVLM2-256M-Q8_0.gguf", Some("mmproj-SmolVLM2-256M-Q8_0.gguf".into()));
/// let random = ModelSource::synthetic(Preset::Tiny);
/// assert!(matches!(pair, ModelSource::Gguf { config_dir: None, .. }));
/// # let _ = (checkpoint, random);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    /// A Hugging Face checkpoint directory (config.json, safetensors, tokenizer, processor files).
    Dir(PathBuf),
    /// A llama.cpp text-model GGUF and, for images, its mmproj GGUF.
    Gguf {
        /// The text model (`general.architecture = llama`), tokenizer included.
        model: PathBuf,
        /// The vision projector (`clip.projector_type = idefics3`).
        mmproj: Option<PathBuf>,
        /// A directory with the original checkpoint's JSON files (config, tokenizer, processor,
        /// chat template). When given, they replace what the GGUF metadata says, so
        /// preprocessing and tokenization are exactly the original's.
        config_dir: Option<PathBuf>,
    },
    /// A published architecture with seeded random weights, built in memory (no files); see
    /// [`crate::synthetic`]. Its answers are noise: it exists for benchmarks.
    Synthetic(Preset),
}

impl ModelSource {
    /// A local Hugging Face checkpoint directory.
    ///
    /// ```
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-smolvlm");
    /// let engine = vlm::Engine::load(vlm::ModelSource::dir(dir), Default::default())?;
    /// assert_eq!(engine.info().family, "smolvlm");
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn dir(path: impl Into<PathBuf>) -> Self {
        ModelSource::Dir(path.into())
    }

    /// A GGUF pair (or a text-only GGUF when `mmproj` is `None`).
    ///
    /// ```
    /// let gguf = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gguf");
    /// let source = vlm::ModelSource::gguf(
    ///     format!("{gguf}/tiny-smolvlm-q8_0.gguf"),
    ///     Some(format!("{gguf}/mmproj-tiny-smolvlm-q8_0.gguf").into()),
    /// );
    /// let engine = vlm::Engine::load(source, Default::default())?;
    /// assert!(engine.info().vision);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn gguf(model: impl Into<PathBuf>, mmproj: Option<PathBuf>) -> Self {
        ModelSource::Gguf {
            model: model.into(),
            mmproj,
            config_dir: None,
        }
    }

    /// A synthetic model (`synthetic:256m`, …): random weights built in memory.
    ///
    /// ```
    /// use vlm::{synthetic::Preset, Engine, ModelSource};
    ///
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// assert!(engine.info().synthetic);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn synthetic(preset: Preset) -> Self {
        ModelSource::Synthetic(preset)
    }

    /// A GGUF pair whose configuration, tokenizer and processor come from the original
    /// checkpoint's JSON files in `config_dir`.
    ///
    /// ```no_run
    /// let source = vlm::ModelSource::gguf_with_config(
    ///     "SmolVLM2-256M-Video-Instruct-Q8_0.gguf",
    ///     Some("mmproj-SmolVLM2-256M-Video-Instruct-Q8_0.gguf".into()),
    ///     "SmolVLM2-256M-Video-Instruct", // config.json, tokenizer.json, … of the original
    /// );
    /// let engine = vlm::Engine::load(source, Default::default())?;
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn gguf_with_config(
        model: impl Into<PathBuf>,
        mmproj: Option<PathBuf>,
        config_dir: impl Into<PathBuf>,
    ) -> Self {
        ModelSource::Gguf {
            model: model.into(),
            mmproj,
            config_dir: Some(config_dir.into()),
        }
    }
}

/// The float type weights and activations are held in ([`EngineOptions::dtype`]).
///
/// ```
/// use vlm::{synthetic::Preset, Dtype, Engine, EngineOptions, ModelSource};
///
/// let opts = EngineOptions { dtype: Some(Dtype::Bf16), ..Default::default() };
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), opts)?;
/// assert_eq!(engine.info().dtype, "bf16");
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float (the default on CPU; the reference's dtype).
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

impl Dtype {
    fn candle(self) -> DType {
        match self {
            Dtype::F32 => DType::F32,
            Dtype::Bf16 => DType::BF16,
            Dtype::F16 => DType::F16,
        }
    }
}

/// Whether the CPU stages keep transformers' arithmetic or trade it for speed
/// ([`EngineOptions::precision`]).
///
/// `Exact` is the default because `Fast` can change answers: on the random-weight test
/// checkpoints a greedy token within the first eight flips on an ordinary palette PNG.
///
/// ```
/// use vlm::{synthetic::Preset, Engine, EngineOptions, ModelSource, Precision};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), EngineOptions::default())?;
/// assert_eq!((engine.info().vision_compute, engine.info().prefill_compute), ("reference", "reference"));
///
/// let opts = EngineOptions { precision: Precision::Fast, ..Default::default() };
/// let fast = Engine::load(ModelSource::synthetic(Preset::Tiny), opts)?;
/// // `bf16-dot` where the CPU has AVX-512 BF16, `reference` elsewhere.
/// println!("vision {}, prefill {}", fast.info().vision_compute, fast.info().prefill_compute);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    /// transformers' f32 arithmetic in every stage, up to summation order: logits within
    /// 1e-4 of the reference on f32 checkpoints.
    #[default]
    Exact,
    /// The vision tower and the prompt pass of f32 models on the BF16 dot-product kernels
    /// where the CPU has AVX-512 BF16 (activations rounded to bf16, sums in f32); elsewhere
    /// the same as `Exact`. Generating tokens one at a time is unchanged.
    Fast,
}

impl Precision {
    /// `exact` or `fast`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Exact => "exact",
            Precision::Fast => "fast",
        }
    }
}

/// How the vision tower computes on the CPU ([`EngineOptions::vision_compute`]), one stage's
/// part of [`Precision`].
///
/// ```
/// use vlm::{synthetic::Preset, Engine, EngineOptions, ModelSource, VisionCompute};
///
/// let opts = EngineOptions { vision_compute: Some(VisionCompute::Reference), ..Default::default() };
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), opts)?;
/// assert_eq!(engine.info().vision_compute, "reference");
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionCompute {
    /// The model's precision through Candle's kernels: in f32, transformers' arithmetic up
    /// to summation order.
    Reference,
    /// Matrices and attention on BF16 dot-product kernels (AVX-512 BF16): activations rounded
    /// to bf16, accumulation in f32; about twice the speed of `Reference`. CPUs without the
    /// instructions use `Reference`.
    Bf16Dot,
}

/// How the decoder multiplies the prompt's matrices (prefill) on the CPU. Decoding one token
/// at a time always runs the model's precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillCompute {
    /// The model's precision: in f32, transformers' arithmetic up to summation order.
    Reference,
    /// Matrix products on the BF16 dot-product kernel (AVX-512 BF16): activations rounded to
    /// bf16, sums in f32; about twice the speed of `Reference`. CPUs without the instructions
    /// use `Reference`.
    Bf16Dot,
}

/// How to load a model. Every field has a default ([`Default`]): f32 on the CPU, exact
/// arithmetic, the model's own context window.
///
/// ```
/// use vlm::{synthetic::Preset, DeviceChoice, Engine, EngineOptions, ModelSource};
///
/// let opts = EngineOptions { max_context: Some(512), device: DeviceChoice::Cpu, ..Default::default() };
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), opts)?;
/// assert_eq!(engine.info().context_length, 512);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineOptions {
    /// The float type of weights and activations; `None` picks f32 on CPU.
    pub dtype: Option<Dtype>,
    /// Exact (the default) or fast arithmetic; `vision_compute` and `prefill_compute`
    /// override it per stage.
    pub precision: Precision,
    /// Limits on decoded images.
    pub image_limits: ImageLimits,
    /// What happens to transparency in images; the default follows transformers'
    /// `load_image` (see [`AlphaMode`]).
    pub alpha: AlphaMode,
    /// Cap on the context window (the model's own when `None` or larger).
    pub max_context: Option<usize>,
    /// Quantize a safetensors checkpoint's matrices at load (see [`QuantPolicy`]).
    pub quant: Option<QuantType>,
    /// How the vision tower computes; `None` follows `precision`. [`VisionCompute::Bf16Dot`]
    /// runs only for f32 models on CPUs with AVX-512 BF16, [`VisionCompute::Reference`]
    /// otherwise.
    pub vision_compute: Option<VisionCompute>,
    /// Where the model computes (the CPU unless told otherwise). A GPU needs its backend
    /// compiled in (feature `cuda` or `metal`); without it, loading fails with
    /// [`Error::DeviceNotCompiled`].
    pub device: DeviceChoice,
    /// How prompt blocks are multiplied; `None` follows `precision`, with the same
    /// fallback as `vision_compute`.
    pub prefill_compute: Option<PrefillCompute>,
}

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
}

pub(crate) struct EngineInner {
    pub model: SmolVlm,
    pub processor: Processor,
    pub config: CheckpointConfig,
    pub eos_ids: Vec<u32>,
    pub context_length: usize,
    pub info: ModelInfo,
    /// Built on the first constrained generation; the error text when the vocabulary cannot
    /// be indexed.
    pub constraints: OnceLock<std::result::Result<Arc<ConstraintCompiler>, String>>,
}

/// A loaded model. Cheap to clone; `Send + Sync`: load it once and share it between threads,
/// each conversation in its own [`Session`].
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
    /// Loads a model: reads its configuration and tokenizer, memory-maps its weights and
    /// builds the model on [`EngineOptions::device`].
    ///
    /// ```
    /// use vlm::{synthetic::Preset, Engine, EngineOptions, Error, ModelSource};
    ///
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), EngineOptions::default())?;
    /// let missing = Engine::load(ModelSource::dir("no/such/model"), EngineOptions::default());
    /// assert!(matches!(missing, Err(Error::MissingFile { .. })));
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn load(source: ModelSource, opts: EngineOptions) -> Result<Engine> {
        Engine::load_with_progress(source, opts, &mut |_| {})
    }

    /// Loads a model, telling `on_progress` as each step ([`LoadStage`]) finishes, in order:
    /// configuration and tokenizer, weights, model.
    ///
    /// ```
    /// use vlm::{synthetic::Preset, Engine, ModelSource, Progress};
    ///
    /// let engine = Engine::load_with_progress(ModelSource::synthetic(Preset::Tiny), Default::default(), &mut |p| {
    ///     if let Progress::Load { stage, done, total } = p {
    ///         eprintln!("loading: {stage:?} ({done}/{total})");
    ///     }
    /// })?;
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn load_with_progress(
        source: ModelSource,
        opts: EngineOptions,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<Engine> {
        let mut finished = |stage: LoadStage| {
            on_progress(Progress::Load {
                stage,
                done: stage as usize + 1,
                total: LoadStage::ALL.len(),
            })
        };
        let device = opts.device.open()?;
        let dtype = opts.dtype.unwrap_or(Dtype::F32).candle();
        if matches!(source, ModelSource::Gguf { .. }) && opts.quant.is_some() {
            return Err(Error::InvalidOption {
                name: "quant",
                reason:
                    "GGUF files are already quantized; --quant applies to safetensors checkpoints"
                        .into(),
            });
        }
        let parts = read_model(&source, opts.image_limits, true)?;
        let (config, processor) = (parts.config, parts.processor.with_alpha(opts.alpha));
        finished(LoadStage::Config);
        let weights = match (&source, parts.gguf) {
            (_, Some(pair)) => Weights::from_gguf(Arc::new(pair), dtype, &device),
            (ModelSource::Dir(dir), None) => {
                let files = safetensors_files(dir)?;
                let quant = opts.quant.map(QuantPolicy::new);
                Weights::from_safetensors(&files, dtype, &device, quant)?
            }
            (ModelSource::Synthetic(preset), None) => {
                let tensors = preset.weights(crate::synthetic::SEED)?;
                let quant = opts.quant.map(QuantPolicy::new);
                Weights::from_tensors(tensors, dtype, &device, quant)
            }
            (ModelSource::Gguf { model, .. }, None) => {
                return Err(Error::MissingFile {
                    path: model.clone(),
                })
            }
        };
        finished(LoadStage::Weights);
        let describe = parts.describe;
        // llama.cpp's converter permutes GGUF Q/K rows so that adjacent-pair RoPE reproduces
        // Hugging Face's split-half rotation: the layout follows the weight source.
        let layout = if weights.is_gguf() {
            RopeLayout::Interleaved
        } else {
            RopeLayout::SplitHalf
        };
        let mut model = SmolVlm::load(&weights, &config.model, layout)?;
        let fast = opts.precision == Precision::Fast && dtype == DType::F32;
        let vision_compute = match opts.vision_compute {
            Some(choice) => choice,
            None if fast => VisionCompute::Bf16Dot,
            None => VisionCompute::Reference,
        };
        let vision_compute = match vision_compute {
            VisionCompute::Bf16Dot if model.use_bf16_vision()? => VisionCompute::Bf16Dot,
            _ => VisionCompute::Reference,
        };
        let prefill_compute = match opts.prefill_compute {
            Some(choice) => choice,
            None if fast => PrefillCompute::Bf16Dot,
            None => PrefillCompute::Reference,
        };
        let prefill_compute = match prefill_compute {
            PrefillCompute::Bf16Dot if model.use_bf16_prefill() => PrefillCompute::Bf16Dot,
            _ => PrefillCompute::Reference,
        };

        finished(LoadStage::Model);

        let mut eos_ids = config.generation.eos_token_ids.clone();
        let by_name = [
            processor.special_tokens().end_of_utterance,
            config
                .tokenizer
                .eos_token
                .as_deref()
                .and_then(|t| processor.tokenizer().token_id(t)),
        ];
        for id in by_name.into_iter().flatten() {
            if !eos_ids.contains(&id) {
                eos_ids.push(id);
            }
        }
        let model_ctx = config.model.text.max_position_embeddings;
        let context_length = opts.max_context.map_or(model_ctx, |c| c.min(model_ctx));
        let info = ModelInfo {
            family: match config.model.family {
                Family::SmolVlm => "smolvlm",
                Family::Idefics3 => "idefics3",
            },
            source: describe,
            dtype: format!("{dtype:?}").to_lowercase(),
            context_length,
            image_seq_len: config.image_seq_len,
            tile_size: config
                .preprocessor
                .as_ref()
                .map_or(0, |p| p.tile_size as usize),
            vision: config.model.vision.is_some(),
            synthetic: matches!(source, ModelSource::Synthetic(_)),
            quant: opts.quant.map(|q| quant_name(q).to_string()),
            precision: if (vision_compute, prefill_compute)
                == (VisionCompute::Reference, PrefillCompute::Reference)
            {
                Precision::Exact.name()
            } else {
                Precision::Fast.name()
            },
            vision_compute: match vision_compute {
                VisionCompute::Reference => "reference",
                VisionCompute::Bf16Dot => "bf16-dot",
            },
            prefill_compute: match prefill_compute {
                PrefillCompute::Reference => "reference",
                PrefillCompute::Bf16Dot => "bf16-dot",
            },
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                model,
                processor,
                config,
                eos_ids,
                context_length,
                info,
                constraints: OnceLock::new(),
            }),
        })
    }

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
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let mut session = engine.session();
    /// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
    /// session.send(Message::user([], "Hello"), &opts)?;
    /// assert_eq!(session.history().len(), 2); // the message and the answer
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }

    /// Runs the vision tower and connector on one image (all its views), for a
    /// [`Session::provide_image`] or a cache of embeddings. `splitting` overrides the
    /// checkpoint's `do_image_splitting`.
    pub fn embed_image(
        &self,
        image: &ImageInput,
        splitting: Option<bool>,
    ) -> Result<ImageEmbedding> {
        let prepared = self.inner.processor.prepare_image(image, splitting)?;
        let pixels = pixels_tensor(&prepared.pixels, self.inner.model.device())?;
        let features = self.inner.model.encode_images(&pixels, None)?;
        ImageEmbedding::new(prepared.grid.rows, prepared.grid.cols, features)
    }

    /// Decodes a video, samples and preprocesses its frames, and runs the vision tower and
    /// connector on each frame, for a [`Session::provide_video`] or a cache of embeddings.
    pub fn embed_video(&self, video: &VideoInput) -> Result<VideoEmbedding> {
        let prepared = self.inner.processor.prepare_video(video)?;
        self.encode_video(&prepared)
    }

    /// Runs the vision tower and connector on a preprocessed video's frames.
    pub fn encode_video(&self, video: &PreparedVideo) -> Result<VideoEmbedding> {
        let pixels = pixels_tensor(&video.pixels, self.inner.model.device())?;
        let features = self.inner.model.encode_images(&pixels, None)?;
        VideoEmbedding::new(
            video.layout.timestamps.clone(),
            video.layout.duration,
            features,
        )
    }

    /// The constraint compiler for this model's vocabulary (built once, on first use).
    pub fn constraint_compiler(&self) -> Result<Arc<ConstraintCompiler>> {
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

/// Builds only the processor of a model (configuration, tokenizer, chat template): no weights
/// are loaded. With [`ModelSource::Gguf`] and a `config_dir`, the GGUF files are not opened at
/// all; without one, only their metadata is read.
///
/// ```
/// # use vlm::{engine::load_processor, ImageLimits, ModelSource};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-smolvlm");
/// let processor = load_processor(&ModelSource::dir(dir), ImageLimits::default())?;
/// assert!(processor.splits_images());
/// # Ok::<(), vlm::Error>(())
/// ```
pub fn load_processor(source: &ModelSource, limits: ImageLimits) -> Result<Processor> {
    Ok(read_model(source, limits, false)?.processor)
}

/// What a model's files say before any weight is read.
struct ModelParts {
    config: CheckpointConfig,
    processor: Processor,
    /// The opened GGUF pair, for GGUF sources when asked to open it.
    gguf: Option<GgufPair>,
    describe: String,
}

/// Reads a model's configuration and tokenizer. `open_weights` opens GGUF files even when
/// the JSON files make their metadata unnecessary (to cross-check them before loading).
fn read_model(source: &ModelSource, limits: ImageLimits, open_weights: bool) -> Result<ModelParts> {
    match source {
        ModelSource::Dir(dir) => {
            if !dir.is_dir() {
                return Err(Error::MissingFile {
                    path: dir.to_path_buf(),
                });
            }
            let config = CheckpointConfig::from_dir(dir)?;
            let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
            let processor = Processor::new(&config, tokenizer, limits)?;
            Ok(ModelParts {
                config,
                processor,
                gguf: None,
                describe: dir.display().to_string(),
            })
        }
        ModelSource::Synthetic(preset) => {
            let files = preset.config_files();
            let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
            let origin = preset.origin();
            let config = CheckpointConfig::from_memory(&origin, &files)?;
            let tokenizer =
                tokenizers::Tokenizer::from_bytes(preset.tokenizer_json()).map_err(|e| {
                    Error::Tokenizer(format!("{}: {e}", origin.join("tokenizer.json").display()))
                })?;
            let processor =
                Processor::new(&config, TextTokenizer::from_tokenizer(tokenizer), limits)?;
            Ok(ModelParts {
                config,
                processor,
                gguf: None,
                describe: preset.model_id(),
            })
        }
        ModelSource::Gguf {
            model,
            mmproj,
            config_dir: Some(dir),
        } if !open_weights => {
            let config = CheckpointConfig::from_dir(dir)?;
            let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
            let processor = Processor::new(&config, tokenizer, limits)?;
            let describe = match mmproj {
                Some(m) => format!("{} + {}", model.display(), m.display()),
                None => model.display().to_string(),
            };
            Ok(ModelParts {
                config,
                processor,
                gguf: None,
                describe,
            })
        }
        ModelSource::Gguf {
            model,
            mmproj,
            config_dir,
        } => {
            let text = GgufFile::open(model)?;
            crate::config::gguf::check_text_file(&text)?;
            let mmproj = match mmproj {
                Some(p) => Some(GgufFile::open(p)?),
                None => None,
            };
            let (config, tokenizer) = match config_dir {
                None => {
                    let tokenizer = TextTokenizer::from_tokenizer(gguf_tokenizer(&text)?);
                    let config = crate::config::gguf::checkpoint_config(
                        &text,
                        mmproj.as_ref(),
                        &|t| tokenizer.token_id(t),
                        &|id| tokenizer.token(id),
                    )?;
                    (config, tokenizer)
                }
                Some(dir) => {
                    let config = CheckpointConfig::from_dir(dir)?;
                    crate::config::gguf::check_same_model(&text, mmproj.as_ref(), &config.model)?;
                    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
                    (config, tokenizer)
                }
            };
            let processor = Processor::new(&config, tokenizer, limits)?;
            let describe = match &mmproj {
                Some(m) => format!("{} + {}", text.path().display(), m.path().display()),
                None => text.path().display().to_string(),
            };
            Ok(ModelParts {
                config,
                processor,
                gguf: Some(GgufPair { text, mmproj }),
                describe,
            })
        }
    }
}

/// `--quant`'s spelling of a quantization choice.
fn quant_name(q: QuantType) -> &'static str {
    match q {
        QuantType::Q8_0 => "q8_0",
        QuantType::Q4K => "q4_k",
        QuantType::Q4_0 => "q4_0",
        QuantType::F16 => "f16",
        QuantType::Bf16 => "bf16",
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

/// The tokenizer a GGUF file describes in its `tokenizer.ggml.*` metadata.
fn gguf_tokenizer(file: &GgufFile) -> Result<tokenizers::Tokenizer> {
    use crate::processor::gguf_tokenizer::{tokenizer_from_gguf, GgufVocab};
    let bad = |problem: String| Error::WeightFile {
        path: file.path().to_path_buf(),
        problem,
    };
    let strings = |key: &str| -> Result<Vec<String>> {
        let values = file
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("metadata key `{key}` is missing or not an array")))?;
        values
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(format!("`{key}` holds a value that is not a string")))
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = match file.get("tokenizer.ggml.merges") {
        Some(_) => strings("tokenizer.ggml.merges")?,
        None => Vec::new(),
    };
    let token_types: Option<Vec<i32>> = file
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_f64().map_or(1, |x| x as i32))
                .collect()
        });
    let id = |key: &str| file.get(key).and_then(Value::as_u64).map(|v| v as u32);
    let vocab = GgufVocab {
        model: file.str("tokenizer.ggml.model")?,
        pre: file.get("tokenizer.ggml.pre").and_then(Value::as_str),
        tokens: &tokens,
        token_types: token_types.as_deref(),
        merges: &merges,
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        unk: id("tokenizer.ggml.unknown_token_id"),
        pad: id("tokenizer.ggml.padding_token_id"),
        add_bos: file
            .get("tokenizer.ggml.add_bos_token")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    tokenizer_from_gguf(&vocab)
}
