//! Loading: a [`ModelSource`] and [`EngineOptions`] → configuration and tokenizer (the
//! processor), then weights, then the model on its device: an [`Engine`].

use std::sync::{Arc, OnceLock};

use candle_core::DType;

use super::{
    DecodeCompute, Dtype, Engine, EngineInner, EngineOptions, ModelInfo, ModelSource, Precision,
    PrefillCompute, VisionCompute,
};
use crate::config::{CheckpointConfig, Family};
use crate::error::{Error, Result};
use crate::generate::{LoadStage, Progress};
use crate::model::vision::MatrixKernel;
use crate::model::{RopeLayout, SmolVlm};
use crate::processor::tokenizer::TextTokenizer;
use crate::processor::Processor;
use crate::weights::gguf::{GgufFile, Value};
use crate::weights::{safetensors_files, GgufPair, QuantPolicy, QuantType, Weights};

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
        let parts = read_model(&source, true)?;
        let (config, processor) = (parts.config, parts.processor);
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
            VisionCompute::Int8Dot if model.use_packed_vision(MatrixKernel::Int8)? => {
                VisionCompute::Int8Dot
            }
            VisionCompute::Int8Dot | VisionCompute::Bf16Dot
                if model.use_packed_vision(MatrixKernel::Bf16)? =>
            {
                VisionCompute::Bf16Dot
            }
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
        // Decode follows `precision` for any dtype: it only touches block matrices, which keep
        // f32 activations in every dtype's step kernel.
        let decode_compute = match opts.decode_compute {
            Some(choice) => choice,
            None if opts.precision == Precision::Fast => DecodeCompute::Int8Dot,
            None => DecodeCompute::Reference,
        };
        let decode_compute = match decode_compute {
            DecodeCompute::Int8Dot if model.use_int8_decode() => DecodeCompute::Int8Dot,
            _ => DecodeCompute::Reference,
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
            precision: if (vision_compute, prefill_compute, decode_compute)
                == (
                    VisionCompute::Reference,
                    PrefillCompute::Reference,
                    DecodeCompute::Reference,
                ) {
                Precision::Exact.name()
            } else {
                Precision::Fast.name()
            },
            vision_compute: match vision_compute {
                VisionCompute::Reference => "reference",
                VisionCompute::Bf16Dot => "bf16-dot",
                VisionCompute::Int8Dot => "int8-dot",
            },
            prefill_compute: match prefill_compute {
                PrefillCompute::Reference => "reference",
                PrefillCompute::Bf16Dot => "bf16-dot",
            },
            decode_compute: match decode_compute {
                DecodeCompute::Reference => "reference",
                DecodeCompute::Int8Dot => "int8-dot",
            },
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                model,
                processor,
                processor_options: opts.processor,
                config,
                eos_ids,
                context_length,
                info,
                constraints: OnceLock::new(),
            }),
        })
    }
}

/// Builds only the processor of a model (configuration, tokenizer, chat template): no weights
/// are loaded. With [`ModelSource::Gguf`] and a `config_dir`, the GGUF files are not opened at
/// all; without one, only their metadata is read.
///
/// ```
/// # use vlm::{engine::load_processor, ModelSource};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-smolvlm");
/// let processor = load_processor(&ModelSource::dir(dir))?;
/// assert!(processor.splits_images());
/// # Ok::<(), vlm::Error>(())
/// ```
pub fn load_processor(source: &ModelSource) -> Result<Processor> {
    Ok(read_model(source, false)?.processor)
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
fn read_model(source: &ModelSource, open_weights: bool) -> Result<ModelParts> {
    match source {
        ModelSource::Dir(dir) => {
            if !dir.is_dir() {
                return Err(Error::MissingFile {
                    path: dir.to_path_buf(),
                });
            }
            let config = CheckpointConfig::from_dir(dir)?;
            let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
            let processor = Processor::new(&config, tokenizer)?;
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
            let processor = Processor::new(&config, TextTokenizer::from_tokenizer(tokenizer))?;
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
            let processor = Processor::new(&config, tokenizer)?;
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
            let processor = Processor::new(&config, tokenizer)?;
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
