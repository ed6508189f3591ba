//! One `models/*.toml` manifest → a [`ModelEntry`]: the model's config files, its weight
//! variants (safetensors or a GGUF pair) and what is known about each file in advance.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One file of a Hub repository, with what is known about it in advance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFile {
    /// Path inside the repository.
    pub(crate) name: String,
    /// Size in bytes, when known; a download of another size is rejected.
    pub size: Option<u64>,
    /// Lowercase hex SHA-256, when known; a download with another digest is rejected.
    pub(crate) sha256: Option<String>,
    /// The file may be absent from the repository (the loader has a fallback).
    #[serde(default)]
    pub(crate) optional: bool,
}

impl RemoteFile {
    /// A required file of unknown size and digest.
    #[cfg(feature = "hub")]
    pub(crate) fn named(name: impl Into<String>) -> Self {
        RemoteFile {
            name: name.into(),
            size: None,
            sha256: None,
            optional: false,
        }
    }
}

/// Files taken from one revision of one Hub repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSet {
    /// `owner/name`.
    pub repo: String,
    /// Branch, tag or commit.
    #[serde(default = "main")]
    pub(crate) revision: String,
    /// The files.
    pub(crate) files: Vec<RemoteFile>,
}

fn main() -> String {
    "main".to_string()
}

/// The weights of one variant of a model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "format", rename_all = "lowercase", deny_unknown_fields)]
pub enum Variant {
    /// A Hugging Face checkpoint: safetensors next to the JSON files of [`ModelEntry::config`].
    Safetensors {
        /// The repository; the same as the config repository.
        repo: String,
        /// Branch, tag or commit.
        #[serde(default = "main")]
        revision: String,
        /// Weight files (`model.safetensors`, or the index and its shards).
        files: Vec<RemoteFile>,
    },
    /// A llama.cpp text GGUF and its mmproj, run with the JSON files of [`ModelEntry::config`].
    Gguf {
        /// The repository holding both files.
        repo: String,
        /// Branch, tag or commit.
        #[serde(default = "main")]
        revision: String,
        /// The text model.
        model: RemoteFile,
        /// The vision projector.
        mmproj: RemoteFile,
    },
}

impl Variant {
    /// The repository the weights come from.
    pub fn repo(&self) -> &str {
        match self {
            Variant::Safetensors { repo, .. } | Variant::Gguf { repo, .. } => repo,
        }
    }

    /// The weight files.
    pub fn files(&self) -> Vec<&RemoteFile> {
        match self {
            Variant::Safetensors { files, .. } => files.iter().collect(),
            Variant::Gguf { model, mmproj, .. } => vec![model, mmproj],
        }
    }

    /// `safetensors` or `gguf`.
    pub fn format(&self) -> &'static str {
        match self {
            Variant::Safetensors { .. } => "safetensors",
            Variant::Gguf { .. } => "gguf",
        }
    }
}

/// One model of the registry (one `models/*.toml` file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The upstream name, e.g. `SmolVLM2-256M-Video-Instruct`.
    pub name: String,
    /// Short names accepted by `--model`; the first is the canonical one.
    pub(crate) aliases: Vec<String>,
    /// One line for listings.
    description: String,
    /// `smolvlm` or `idefics3`.
    family: String,
    /// Context window in tokens.
    pub context_length: usize,
    /// Licence of the weights.
    pub license: String,
    /// The variant used when none is asked for.
    pub default_variant: String,
    /// The original repository's JSON files: config, tokenizer, processor, chat template.
    pub config: FileSet,
    /// Weight variants by name (`q8_0`, `f32`, …).
    pub variants: BTreeMap<String, Variant>,
}

impl ModelEntry {
    /// The canonical alias.
    pub fn alias(&self) -> &str {
        self.aliases
            .first()
            .map_or(self.name.as_str(), String::as_str)
    }

    /// A variant by name, case-insensitively.
    pub(crate) fn variant(&self, name: &str) -> Option<(&str, &Variant)> {
        self.variants
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Bytes to download for `variant`: `(known, files of unknown size)`. Optional files
    /// count as unknown, since the repository may not have them.
    #[cfg(test)]
    fn download_size(&self, variant: &str) -> (u64, usize) {
        let mut files: Vec<&RemoteFile> = self.config.files.iter().collect();
        if let Some((_, v)) = self.variant(variant) {
            files.extend(v.files());
        }
        let known = files.iter().filter_map(|f| f.size).sum();
        let unknown = files.iter().filter(|f| f.size.is_none()).count();
        (known, unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{ModelRef, Registry, DEFAULT_MODEL};

    #[test]
    fn the_default_model_is_the_256m_q8_0_gguf_pair_with_known_sizes() {
        let registry = Registry::builtin().unwrap();
        let ModelRef::Registry { model, variant } = registry.resolve(DEFAULT_MODEL).unwrap() else {
            panic!()
        };
        assert_eq!(model.name, "SmolVLM2-256M-Video-Instruct");
        assert_eq!(variant, "q8_0");
        let Some((
            _,
            Variant::Gguf {
                model: text,
                mmproj,
                repo,
                ..
            },
        )) = model.variant(&variant)
        else {
            panic!()
        };
        assert_eq!(repo, "ggml-org/SmolVLM2-256M-Video-Instruct-GGUF");
        assert_eq!(text.size, Some(175_056_352));
        assert_eq!(mmproj.size, Some(103_771_680));
        assert_eq!(model.download_size(&variant), (278_828_032, 8));
    }
}
