//! Model registry: the `models/*.toml` manifests embedded at build time → typed entries; a model
//! name (`--model`) → a local path, a registry alias with its variant, or a Hub repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::engine::ModelSource;
use crate::error::{Error, Result};

/// The model used when none is named: SmolVLM2-256M-Video-Instruct as a Q8_0 GGUF pair.
pub const DEFAULT_MODEL: &str = "smolvlm2-256m";

/// The manifests compiled into the binary, by file name.
const MANIFESTS: &[(&str, &str)] = &[
    (
        "smolvlm2-256m.toml",
        include_str!("../models/smolvlm2-256m.toml"),
    ),
    (
        "smolvlm2-500m.toml",
        include_str!("../models/smolvlm2-500m.toml"),
    ),
    (
        "smolvlm2-2.2b.toml",
        include_str!("../models/smolvlm2-2.2b.toml"),
    ),
    (
        "smolvlm-256m.toml",
        include_str!("../models/smolvlm-256m.toml"),
    ),
    (
        "smolvlm-500m.toml",
        include_str!("../models/smolvlm-500m.toml"),
    ),
    ("smolvlm-2b.toml", include_str!("../models/smolvlm-2b.toml")),
];

/// One file of a Hub repository, with what is known about it in advance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFile {
    /// Path inside the repository.
    pub name: String,
    /// Size in bytes, when known; a download of another size is rejected.
    pub size: Option<u64>,
    /// Lowercase hex SHA-256, when known; a download with another digest is rejected.
    pub sha256: Option<String>,
    /// The file may be absent from the repository (the loader has a fallback).
    #[serde(default)]
    pub optional: bool,
}

impl RemoteFile {
    /// A required file of unknown size and digest.
    pub fn named(name: impl Into<String>) -> Self {
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
    pub revision: String,
    /// The files.
    pub files: Vec<RemoteFile>,
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
    pub aliases: Vec<String>,
    /// One line for listings.
    pub description: String,
    /// `smolvlm` or `idefics3`.
    pub family: String,
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
    pub fn variant(&self, name: &str) -> Option<(&str, &Variant)> {
        self.variants
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Bytes to download for `variant`: `(known, files of unknown size)`. Optional files
    /// count as unknown, since the repository may not have them.
    pub fn download_size(&self, variant: &str) -> (u64, usize) {
        let mut files: Vec<&RemoteFile> = self.config.files.iter().collect();
        if let Some((_, v)) = self.variant(variant) {
            files.extend(v.files());
        }
        let known = files.iter().filter_map(|f| f.size).sum();
        let unknown = files.iter().filter(|f| f.size.is_none()).count();
        (known, unknown)
    }
}

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
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| {
            m.name.eq_ignore_ascii_case(name)
                || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

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

    fn validate(&self, manifests: &[(&str, &str)]) -> Result<()> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, model) in self.models.iter().enumerate() {
            let file = manifests.get(i).map_or("?", |(f, _)| *f);
            let bad = |problem: String| Error::InvalidConfig {
                path: Path::new("models").join(file),
                problem,
            };
            if model.aliases.is_empty() {
                return Err(bad("no aliases".into()));
            }
            let names = model.aliases.iter().chain(std::iter::once(&model.name));
            for alias in names {
                let key = alias.to_ascii_lowercase();
                if alias.is_empty() || alias.contains([':', '@', '/']) {
                    return Err(bad(format!(
                        "alias `{alias}` is empty or contains `:`, `@` or `/`"
                    )));
                }
                if let Some(other) = seen.insert(key, i) {
                    if other != i || !alias.eq_ignore_ascii_case(&model.name) {
                        return Err(bad(format!("alias `{alias}` is used twice")));
                    }
                }
            }
            if model.variant(&model.default_variant).is_none() {
                return Err(bad(format!(
                    "default_variant `{}` is not a variant",
                    model.default_variant
                )));
            }
            for required in ["config.json", "tokenizer.json", "preprocessor_config.json"] {
                if !model
                    .config
                    .files
                    .iter()
                    .any(|f| f.name == required && !f.optional)
                {
                    return Err(bad(format!("config files lack a required `{required}`")));
                }
            }
            check_files(&model.config.files).map_err(bad)?;
            for (key, variant) in &model.variants {
                let files = variant.files();
                check_files(&files.iter().map(|f| (*f).clone()).collect::<Vec<_>>())
                    .map_err(|p| bad(format!("variant `{key}`: {p}")))?;
                match variant {
                    Variant::Safetensors {
                        repo,
                        revision,
                        files,
                    } => {
                        if repo != &model.config.repo || revision != &model.config.revision {
                            return Err(bad(format!(
                                "variant `{key}`: safetensors weights must come from the config repository and revision"
                            )));
                        }
                        if !files.iter().any(|f| f.name.ends_with(".safetensors")) {
                            return Err(bad(format!("variant `{key}` names no .safetensors file")));
                        }
                    }
                    Variant::Gguf { model, mmproj, .. } => {
                        if !is_gguf(Path::new(&model.name)) || !is_gguf(Path::new(&mmproj.name)) {
                            return Err(bad(format!(
                                "variant `{key}`: the model and mmproj must be .gguf files"
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn check_files(files: &[RemoteFile]) -> std::result::Result<(), String> {
    if files.is_empty() {
        return Err("names no files".into());
    }
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("`{}` is listed twice", w[0]));
    }
    for f in files {
        if f.name.is_empty() || f.name.starts_with('/') || f.name.split('/').any(|c| c == "..") {
            return Err(format!("`{}` is not a path inside the repository", f.name));
        }
        if let Some(sha) = &f.sha256 {
            if !is_sha256(sha) {
                return Err(format!(
                    "`{}`: sha256 must be 64 lowercase hex digits",
                    f.name
                ));
            }
        }
    }
    Ok(())
}

/// Whether `s` is a lowercase hex SHA-256 digest.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
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

    #[test]
    fn duplicates_and_dangling_defaults_are_rejected() {
        let one = r#"
            name = "A"
            aliases = ["a"]
            description = ""
            family = "smolvlm"
            context_length = 8
            license = "x"
            default_variant = "q"
            [config]
            repo = "o/a"
            files = [{ name = "config.json" }, { name = "tokenizer.json" }, { name = "preprocessor_config.json" }]
            [variants.q]
            format = "gguf"
            repo = "o/a-GGUF"
            model = { name = "a.gguf" }
            mmproj = { name = "mmproj-a.gguf" }
        "#;
        assert!(Registry::from_toml(&[("a.toml", one)]).is_ok());
        let twice = Registry::from_toml(&[("a.toml", one), ("b.toml", one)]).unwrap_err();
        assert!(twice.to_string().contains("used twice"), "{twice}");
        let dangling = one.replace("default_variant = \"q\"", "default_variant = \"z\"");
        let err = Registry::from_toml(&[("a.toml", &dangling)]).unwrap_err();
        assert!(err.to_string().contains("`z`"), "{err}");
        let no_files = one.replace(
            "model = { name = \"a.gguf\" }",
            "model = { name = \"a.bin\" }",
        );
        assert!(Registry::from_toml(&[("a.toml", &no_files)]).is_err());
        let unknown_key = one.replace("license = \"x\"", "licence = \"x\"");
        let err = Registry::from_toml(&[("a.toml", &unknown_key)]).unwrap_err();
        assert!(err.to_string().contains("a.toml"), "{err}");
    }

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
