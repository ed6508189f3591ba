//! A model name (`--model`) → a [`ModelRef`]: a local path, a registry alias with its variant,
//! or a Hub repository id; a name that is none of these → an error listing what was tried,
//! with the nearest alias when the name looks like a typo of one.

use std::path::{Path, PathBuf};

use super::{is_gguf, ModelEntry, Registry};
use crate::engine::ModelSource;
use crate::error::{Error, Result};

/// What a model name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A local checkpoint directory or GGUF file.
    Local(ModelSource),
    /// A registry model in one of its variants.
    Registry {
        /// The model.
        model: Box<ModelEntry>,
        /// The variant's key in [`ModelEntry::variants`].
        variant: String,
    },
    /// A Hub repository outside the registry.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit.
        revision: String,
        /// For GGUF repositories: which quantization to take (e.g. `Q8_0`).
        quant: Option<String>,
    },
}

impl ModelRef {
    /// A short human description: the path, `alias:variant` or `repo@revision`.
    pub fn describe(&self) -> String {
        match self {
            ModelRef::Local(ModelSource::Dir(d)) => d.display().to_string(),
            ModelRef::Local(ModelSource::Gguf { model, .. }) => model.display().to_string(),
            ModelRef::Local(ModelSource::Synthetic(preset)) => preset.model_id(),
            ModelRef::Registry { model, variant } => format!("{}:{variant}", model.alias()),
            ModelRef::Hub {
                repo,
                revision,
                quant,
            } => {
                let quant = quant
                    .as_deref()
                    .map(|q| format!(":{q}"))
                    .unwrap_or_default();
                format!("{repo}@{revision}{quant}")
            }
        }
    }
}

impl Registry {
    /// Resolves a model name, trying in order: an existing local path (a checkpoint directory
    /// or a `.gguf` file), a registry alias with an optional `:variant`, and a Hub repository
    /// id `owner/name` with an optional `@revision` (and `:QUANT` for GGUF repositories).
    ///
    /// ```
    /// # use vlm::registry::{ModelRef, Registry};
    /// let registry = Registry::builtin()?;
    /// let ModelRef::Registry { model, variant } = registry.resolve("smolvlm2-500m:f32")? else {
    ///     unreachable!()
    /// };
    /// assert_eq!((model.name.as_str(), variant.as_str()), ("SmolVLM2-500M-Video-Instruct", "f32"));
    /// let err = registry.resolve("smolvlm2-265m").unwrap_err().to_string();
    /// assert!(err.contains("did you mean `smolvlm2-256m`"), "{err}");
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn resolve(&self, spec: &str) -> Result<ModelRef> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(Error::InvalidOption {
                name: "model",
                reason: "the model name is empty".into(),
            });
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelRef::Local(ModelSource::dir(path)));
        }
        if path.is_file() {
            if is_gguf(path) {
                return Ok(ModelRef::Local(ModelSource::gguf(path, None)));
            }
            return Err(Error::InvalidOption {
                name: "model",
                reason: format!(
                    "{spec} is a file but not a .gguf; give a checkpoint directory, a GGUF file, a registry alias or a Hub repository"
                ),
            });
        }
        let mut tried = vec![format!("no file or directory `{spec}`")];

        let (name, variant) = match spec.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        if let Some(model) = self.get(name) {
            let variant = match variant {
                None => model.default_variant.clone(),
                Some(v) => match model.variant(v) {
                    Some((key, _)) => key.to_string(),
                    None => {
                        return Err(Error::InvalidOption {
                            name: "model",
                            reason: format!(
                                "{} has no variant `{v}`; it has {}",
                                model.alias(),
                                model
                                    .variants
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        })
                    }
                },
            };
            return Ok(ModelRef::Registry {
                model: Box::new(model.clone()),
                variant,
            });
        }
        let known: Vec<&str> = self.models.iter().map(ModelEntry::alias).collect();
        tried.push(format!(
            "no registry alias `{name}` (known: {})",
            known.join(", ")
        ));

        if let Some(hub) = parse_repo_spec(spec) {
            return Ok(hub);
        }
        tried.push("not a Hub repository id (`owner/name[@revision]`)".into());

        if looks_like_path(spec) {
            return Err(Error::MissingFile {
                path: PathBuf::from(spec),
            });
        }
        Err(Error::UnknownModel {
            spec: spec.to_string(),
            tried,
            suggestion: self.nearest_alias(name),
        })
    }

    /// The alias closest to `name` in edit distance, when it is close enough to be a typo.
    fn nearest_alias(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        let mut best: Option<(usize, &str)> = None;
        for model in &self.models {
            for alias in &model.aliases {
                let d = strsim::levenshtein(&name, &alias.to_ascii_lowercase());
                if best.is_none_or(|(bd, _)| d < bd) {
                    best = Some((d, alias));
                }
            }
        }
        let (distance, alias) = best?;
        (distance <= 3.max(name.chars().count() / 3)).then(|| alias.to_string())
    }
}

/// Paths that cannot be repository ids or aliases: a missing path is then reported as such.
fn looks_like_path(spec: &str) -> bool {
    spec.starts_with(['.', '~', '/', '\\'])
        || spec.contains('\\')
        || spec.matches('/').count() > 1
        || is_gguf(Path::new(spec))
        || Path::new(spec).is_absolute()
}

/// `owner/name[@revision][:QUANT]` with the Hub's character rules for ids.
fn parse_repo_spec(spec: &str) -> Option<ModelRef> {
    let (rest, quant) = match spec.rsplit_once(':') {
        Some((r, q))
            if !q.is_empty() && q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            (r, Some(q.to_string()))
        }
        Some(_) => return None,
        None => (spec, None),
    };
    let (repo, revision) = match rest.split_once('@') {
        Some((r, rev)) if !rev.is_empty() => (r, rev.to_string()),
        Some(_) => return None,
        None => (rest, "main".to_string()),
    };
    let (owner, name) = repo.split_once('/')?;
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("--")
            && !p.contains("..")
    };
    if !part_ok(owner) || !part_ok(name) {
        return None;
    }
    if revision.contains("..") || revision.starts_with('/') {
        return None;
    }
    Some(ModelRef::Hub {
        repo: repo.to_string(),
        revision,
        quant,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_in_order_path_alias_repository() {
        let registry = Registry::builtin().unwrap();
        let dir = std::env::temp_dir();
        assert!(matches!(
            registry.resolve(dir.to_str().unwrap()).unwrap(),
            ModelRef::Local(ModelSource::Dir(_))
        ));
        assert_eq!(
            registry
                .resolve("HuggingFaceTB/SmolVLM2-256M-Video-Instruct@abc123")
                .unwrap(),
            ModelRef::Hub {
                repo: "HuggingFaceTB/SmolVLM2-256M-Video-Instruct".into(),
                revision: "abc123".into(),
                quant: None,
            }
        );
        assert_eq!(
            registry.resolve("ggml-org/x-GGUF:Q4_K_M").unwrap(),
            ModelRef::Hub {
                repo: "ggml-org/x-GGUF".into(),
                revision: "main".into(),
                quant: Some("Q4_K_M".into()),
            }
        );
        let err = registry
            .resolve("smolvlm2-256m:q2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("q8_0") && err.contains("f32"), "{err}");
        let err = registry.resolve("smolvlm-5OOm").unwrap_err();
        assert_eq!(err.category(), crate::Category::Input);
        let text = err.to_string();
        assert!(
            text.contains("no registry alias `smolvlm-5OOm` (known: "),
            "{text}"
        );
        assert!(text.contains("did you mean `smolvlm-500m`"), "{text}");
        assert!(registry
            .resolve("zzzzzzzzzzzzzzzz")
            .unwrap_err()
            .to_string()
            .contains("zzzz"));
        let missing = registry.resolve("./no/such/dir").unwrap_err();
        assert!(matches!(missing, Error::MissingFile { .. }), "{missing}");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(strsim::levenshtein("kitten", "sitting"), 3);
        assert_eq!(strsim::levenshtein("", "abc"), 3);
        assert_eq!(strsim::levenshtein("same", "same"), 0);
        // nearest_alias's threshold counts characters, so an accent is one edit, not two.
        assert_eq!(strsim::levenshtein("smolvlm-é", "smolvlm-e"), 1);
    }
}
