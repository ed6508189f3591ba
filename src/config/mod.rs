//! A checkpoint directory's JSON files → one cross-checked [`CheckpointConfig`].
//!
//! Each file is read once here; everything downstream takes resolved, typed values.

mod generation;
pub(crate) mod gguf;
mod model;
mod preprocessor;
mod tokenizer;

use std::path::Path;

use generation::GenerationConfig;
pub(crate) use model::{Activation, Family, ModelConfig, TextConfig, VisionConfig};
use preprocessor::{PreprocessorConfig, ProcessorConfig};
pub(crate) use tokenizer::{SpecialTokenNames, TokenizerConfig};

use crate::error::{read_text, Error, Result};

/// Everything a Hugging Face checkpoint directory declares, besides the weights and the
/// tokenizer vocabulary.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// `config.json`.
    pub model: ModelConfig,
    /// `preprocessor_config.json` (none for text-only models).
    pub preprocessor: Option<PreprocessorConfig>,
    /// Image tokens per tile, checked against the geometry.
    pub(crate) image_seq_len: usize,
    /// `generation_config.json` (defaults when absent).
    pub(crate) generation: GenerationConfig,
    /// `tokenizer_config.json` (defaults when absent).
    pub(crate) tokenizer: TokenizerConfig,
    /// The chat template, from `chat_template.jinja`, `chat_template.json` or
    /// `tokenizer_config.json`, in that order.
    pub(crate) chat_template: String,
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match read_text(path) {
        Ok(s) => Ok(Some(s)),
        Err(Error::MissingFile { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl CheckpointConfig {
    /// Reads and cross-checks the configuration files of a checkpoint directory.
    pub(crate) fn from_dir(dir: &Path) -> Result<Self> {
        Self::read(dir, &|name| read_optional(&dir.join(name)))
    }

    /// Cross-checks configuration files held in memory, as (file name, contents) pairs
    /// (a synthetic checkpoint's); errors name `origin/<file>`.
    pub(crate) fn from_memory(origin: &Path, files: &[(&str, &str)]) -> Result<Self> {
        Self::read(origin, &|name| {
            Ok(files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| text.to_string()))
        })
    }

    /// `read(name)` gives a file's text, or `None` when it does not exist.
    fn read(dir: &Path, read: &dyn Fn(&str) -> Result<Option<String>>) -> Result<Self> {
        let required = |name: &str| {
            read(name)?.ok_or_else(|| Error::MissingFile {
                path: dir.join(name),
            })
        };
        let config_path = dir.join("config.json");
        let model = ModelConfig::parse(&required("config.json")?, &config_path)?;

        let pre_path = dir.join("preprocessor_config.json");
        let preprocessor =
            PreprocessorConfig::parse(&required("preprocessor_config.json")?, &pre_path)?;

        let proc_path = dir.join("processor_config.json");
        let processor = match read("processor_config.json")? {
            Some(text) => Some(ProcessorConfig::parse(&text, &proc_path)?),
            None => None,
        };

        let gen_path = dir.join("generation_config.json");
        let generation = match read("generation_config.json")? {
            Some(text) => GenerationConfig::parse(&text, &gen_path)?,
            None => GenerationConfig::default(),
        };

        let tok_path = dir.join("tokenizer_config.json");
        let tokenizer = match read("tokenizer_config.json")? {
            Some(text) => TokenizerConfig::parse(&text, &tok_path)?,
            None => TokenizerConfig::default(),
        };

        let chat_template = find_chat_template(dir, read, &tokenizer)?;
        let image_seq_len = check_geometry(&model, &preprocessor, processor.as_ref(), dir)?;
        Ok(CheckpointConfig {
            model,
            preprocessor: Some(preprocessor),
            image_seq_len,
            generation,
            tokenizer,
            chat_template,
        })
    }
}

fn find_chat_template(
    dir: &Path,
    read: &dyn Fn(&str) -> Result<Option<String>>,
    tokenizer: &TokenizerConfig,
) -> Result<String> {
    if let Some(t) = read("chat_template.jinja")? {
        return Ok(t);
    }
    if let Some(t) = read("chat_template.json")? {
        return tokenizer::parse_chat_template_json(&t, &dir.join("chat_template.json"));
    }
    tokenizer.chat_template.clone().ok_or_else(|| Error::MissingFile {
        path: dir.join("chat_template.json (or chat_template.jinja, or `chat_template` in tokenizer_config.json)"),
    })
}

/// The tile size and tokens per tile must agree across config.json, the preprocessor and the
/// processor; a mismatch would silently misplace image features.
fn check_geometry(
    model: &ModelConfig,
    pre: &PreprocessorConfig,
    processor: Option<&ProcessorConfig>,
    dir: &Path,
) -> Result<usize> {
    let derived = model.image_seq_len();
    let Some(vision) = &model.vision else {
        return Ok(0);
    };
    if pre.tile_size as usize != vision.image_size {
        return Err(Error::InvalidConfig {
            path: dir.join("preprocessor_config.json"),
            problem: format!(
                "max_image_size.longest_edge is {} but the vision tower's image_size is {}",
                pre.tile_size, vision.image_size
            ),
        });
    }
    if let Some(declared) = processor.and_then(|p| p.image_seq_len) {
        if declared != derived {
            return Err(Error::InvalidConfig {
                path: dir.join("processor_config.json"),
                problem: format!(
                    "image_seq_len is {declared} but the geometry gives ({}/{})²/{}² = {derived}",
                    vision.image_size, vision.patch_size, model.scale_factor
                ),
            });
        }
    }
    Ok(derived)
}
