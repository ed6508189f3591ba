//! What a caller chooses before loading: where the model comes from ([`ModelSource`]) and how
//! it computes ([`EngineOptions`], [`Dtype`], [`Precision`], [`VisionCompute`],
//! [`PrefillCompute`], [`DecodeCompute`]), with their defaults.

use std::path::PathBuf;

use candle_core::DType;

use crate::device::DeviceChoice;
use crate::processor::ProcessorOptions;
use crate::synthetic::Preset;
use crate::weights::QuantType;

/// Where a model comes from. Nothing is opened until [`Engine::load`](crate::Engine::load).
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
    pub(super) fn candle(self) -> DType {
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
    /// where the CPU has AVX-512 BF16 (activations rounded to bf16, sums in f32), and the
    /// one-token decode steps of block-quantized models (Q8_0, Q4_0, Q4_1) on 8-bit
    /// activations where the CPU has AVX2 ([`DecodeCompute::Int8Dot`]); elsewhere the same
    /// as `Exact`.
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
    /// Matrices in 8-bit integers (AVX-512 VNNI): weights quantized per output row at load,
    /// activations per token as they arrive, i32 sums; attention as in `Bf16Dot`. Faster than
    /// `Bf16Dot` and further from the model's arithmetic (about 1 % relative error on the
    /// features, measured in the tests), so it is never chosen by default. CPUs without the
    /// instructions use `Bf16Dot`, or `Reference`.
    Int8Dot,
}

/// How the decoder multiplies the prompt's matrices (prefill) on the CPU. Decoding one token
/// at a time is [`DecodeCompute`]'s choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillCompute {
    /// The model's precision: in f32, transformers' arithmetic up to summation order.
    Reference,
    /// Matrix products on the BF16 dot-product kernel (AVX-512 BF16): activations rounded to
    /// bf16, sums in f32; about twice the speed of `Reference`. CPUs without the instructions
    /// use `Reference`.
    Bf16Dot,
}

/// How the one-token decode steps multiply block-quantized matrices on the CPU
/// ([`EngineOptions::decode_compute`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeCompute {
    /// f32 activations against the dequantized weights: transformers' arithmetic on the
    /// quantized model's weights, up to summation order.
    Reference,
    /// Activations rounded to 8-bit blocks of 32 (one f32 scale each) and integer block dot
    /// products, as llama.cpp decodes: AVX-512 VNNI or AVX2. It applies to Q8_0, Q4_0 and
    /// Q4_1 matrices; other types, f32 models and CPUs without AVX2 use `Reference`. Answers
    /// can differ from `Reference` where hidden states carry outlier channels.
    Int8Dot,
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
    /// How images and videos are preprocessed: the defaults of every [`Session`], which may
    /// replace them ([`Session::set_processor_options`]).
    ///
    /// [`Session`]: crate::Session
    /// [`Session::set_processor_options`]: crate::Session::set_processor_options
    pub processor: ProcessorOptions,
    /// Cap on the context window (the model's own when `None` or larger).
    pub max_context: Option<usize>,
    /// Quantize a safetensors checkpoint's matrices at load (see [`QuantPolicy`]).
    ///
    /// [`QuantPolicy`]: crate::weights::QuantPolicy
    pub quant: Option<QuantType>,
    /// How the vision tower computes; `None` follows `precision`. [`VisionCompute::Bf16Dot`]
    /// runs only for f32 models on CPUs with AVX-512 BF16, [`VisionCompute::Reference`]
    /// otherwise.
    pub vision_compute: Option<VisionCompute>,
    /// Where the model computes (the CPU unless told otherwise). A GPU needs its backend
    /// compiled in (feature `cuda` or `metal`); without it, loading fails with
    /// [`Error::DeviceNotCompiled`].
    ///
    /// [`Error::DeviceNotCompiled`]: crate::Error::DeviceNotCompiled
    pub device: DeviceChoice,
    /// How prompt blocks are multiplied; `None` follows `precision`, with the same
    /// fallback as `vision_compute`.
    pub prefill_compute: Option<PrefillCompute>,
    /// How one-token decode steps multiply block-quantized matrices; `None` follows
    /// `precision` ([`DecodeCompute::Int8Dot`] when fast).
    pub decode_compute: Option<DecodeCompute>,
}
