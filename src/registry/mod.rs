//! Model registry: the `models/*.toml` manifests embedded at build time → typed entries; a model
//! name (`--model`) → a local path, a registry alias with its variant, or a Hub repository.
//! What one manifest holds (manifest.rs), the checks every manifest passes (validate.rs) and
//! name resolution with its did-you-mean (resolve.rs) each have their own file.

mod manifest;
mod resolve;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
pub use manifest::ModelEntry;
pub(crate) use manifest::{RemoteFile, Variant};
pub use resolve::ModelRef;
#[cfg(feature = "hub")]
pub(crate) use validate::is_sha256;

/// The model used when none is named: SmolVLM2-256M-Video-Instruct as a Q8_0 GGUF pair.
pub const DEFAULT_MODEL: &str = "smolvlm2-256m";

/// The manifests compiled into the binary, by file name.
const MANIFESTS: &[(&str, &str)] = &[
    (
        "smolvlm2-256m.toml",
        include_str!("../../models/smolvlm2-256m.toml"),
    ),
    (
        "smolvlm2-500m.toml",
        include_str!("../../models/smolvlm2-500m.toml"),
    ),
    (
        "smolvlm2-2.2b.toml",
        include_str!("../../models/smolvlm2-2.2b.toml"),
    ),
    (
        "smolvlm-256m.toml",
        include_str!("../../models/smolvlm-256m.toml"),
    ),
    (
        "smolvlm-500m.toml",
        include_str!("../../models/smolvlm-500m.toml"),
    ),
    (
        "smolvlm-2b.toml",
        include_str!("../../models/smolvlm-2b.toml"),
    ),
];

/// The known models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    models: Vec<ModelEntry>,
}

impl Registry {
    /// The registry compiled into the binary.
    pub fn builtin() -> Result<&'static Registry> {
        static BUILTIN: OnceLock<std::result::Result<Registry, (PathBuf, String)>> =
            OnceLock::new();
        let parsed = BUILTIN.get_or_init(|| {
            Registry::from_toml(MANIFESTS).map_err(|e| match e {
                Error::InvalidConfig { path, problem } => (path, problem),
                other => (PathBuf::from("models"), other.to_string()),
            })
        });
        parsed
            .as_ref()
            .map_err(|(path, problem)| Error::InvalidConfig {
                path: path.clone(),
                problem: problem.clone(),
            })
    }

    /// Parses and validates manifests given as `(file name, TOML text)` pairs.
    pub fn from_toml(manifests: &[(&str, &str)]) -> Result<Registry> {
        let models = manifests
            .iter()
            .map(|(file, text)| {
                toml::from_str::<ModelEntry>(text).map_err(|e| Error::InvalidConfig {
                    path: Path::new("models").join(file),
                    problem: e.message().to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let registry = Registry { models };
        registry.validate(manifests)?;
        Ok(registry)
    }

    /// Every model.
    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    /// A model by alias or upstream name, case-insensitively.
    fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| {
            m.name.eq_ignore_ascii_case(name)
                || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_registry_is_valid_and_every_alias_resolves() {
        let registry = Registry::builtin().unwrap();
        assert_eq!(registry.models().len(), MANIFESTS.len());
        for model in registry.models() {
            for alias in &model.aliases {
                match registry.resolve(alias).unwrap() {
                    ModelRef::Registry { model: m, variant } => {
                        assert_eq!(m.name, model.name);
                        assert_eq!(variant, model.default_variant);
                    }
                    other => panic!("{alias} resolved to {other:?}"),
                }
                for key in model.variants.keys() {
                    let spec = format!("{alias}:{}", key.to_uppercase());
                    let ModelRef::Registry { variant, .. } = registry.resolve(&spec).unwrap()
                    else {
                        panic!("{spec}")
                    };
                    assert_eq!(&variant, key);
                }
            }
            for variant in model.variants.values() {
                assert!(!variant.files().is_empty());
            }
        }
        assert!(registry.get(DEFAULT_MODEL).is_some());
    }
}
