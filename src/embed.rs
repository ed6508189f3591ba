//! Conveniences for apps that embed the runtime: a local model path (checkpoint directory,
//! GGUF file or GGUF pair) → [`ModelSource`], and the registry's default model (feature `hub`).

use std::path::PathBuf;

use crate::engine::ModelSource;
use crate::error::Result;

impl ModelSource {
    /// A model on disk, as an app ships it: a checkpoint directory, or a text-model GGUF file
    /// with its mmproj GGUF (`None` for a text-only GGUF). A directory with an `mmproj` given
    /// is read as a GGUF pair, so the load reports that `model` is not a GGUF file. Nothing is
    /// opened here; [`crate::Engine::load`] names the path that is missing or malformed.
    ///
    /// ```no_run
    /// use vlm::{Engine, EngineOptions, ModelSource};
    ///
    /// let pair = ModelSource::local(
    ///     "SmolVLM2-256M-Video-Instruct-Q8_0.gguf",
    ///     Some("mmproj-SmolVLM2-256M-Video-Instruct-Q8_0.gguf".into()),
    /// );
    /// let engine = Engine::load(pair, EngineOptions::default())?;
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn local(model: impl Into<PathBuf>, mmproj: Option<PathBuf>) -> ModelSource {
        let model = model.into();
        if mmproj.is_none() && model.is_dir() {
            ModelSource::Dir(model)
        } else {
            ModelSource::gguf(model, mmproj)
        }
    }
}

/// The registry's default model ([`crate::registry::DEFAULT_MODEL`]), downloaded into the
/// Hugging Face cache on first use and read from there afterwards; the environment
/// (`HF_HOME`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, …) is honoured as by the `vlm` command.
///
/// ```no_run
/// let engine = vlm::Engine::load(vlm::embed::default_model()?, Default::default())?;
/// # Ok::<(), vlm::Error>(())
/// ```
#[cfg(feature = "hub")]
pub fn default_model() -> Result<ModelSource> {
    use crate::hub::{Hub, HubConfig, Need};
    use crate::registry::{Registry, DEFAULT_MODEL};
    let model = Registry::builtin()?.resolve(DEFAULT_MODEL)?;
    let hub = Hub::new(HubConfig::from_env()?)?;
    hub.source(&model, Need::Everything, &mut |_| {})
}

/// `model` (with its `mmproj`, as for [`ModelSource::local`]) when given; otherwise the
/// registry's default model through [`default_model`] when the crate is built with the `hub`
/// feature, and an error naming the missing model argument when it is not.
///
/// ```no_run
/// let model = std::env::args().nth(1).map(Into::into);
/// let engine = vlm::Engine::load(vlm::embed::model_or_default(model, None)?, Default::default())?;
/// # Ok::<(), vlm::Error>(())
/// ```
pub fn model_or_default(model: Option<PathBuf>, mmproj: Option<PathBuf>) -> Result<ModelSource> {
    match model {
        Some(path) => Ok(ModelSource::local(path, mmproj)),
        #[cfg(feature = "hub")]
        None => default_model(),
        #[cfg(not(feature = "hub"))]
        None => Err(crate::error::Error::InvalidOption {
            name: "model",
            reason: "no model path given, and this build has no `hub` feature to download the \
                     default model"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pick_the_format() {
        let dir = std::env::temp_dir();
        assert_eq!(
            ModelSource::local(&dir, None),
            ModelSource::Dir(dir.clone())
        );
        assert_eq!(
            ModelSource::local("m.gguf", Some("p.gguf".into())),
            ModelSource::gguf("m.gguf", Some("p.gguf".into()))
        );
        assert_eq!(
            ModelSource::local("no/such/m.gguf", None),
            ModelSource::gguf("no/such/m.gguf", None)
        );
    }
}
