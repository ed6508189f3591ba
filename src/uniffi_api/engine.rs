//! Model files and options → a [`VlmEngine`], reporting each loading step to a listener; an
//! engine → new [`VlmSession`]s.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{count, VlmEngineOptions, VlmError, VlmListener, VlmProgress, VlmSession};
use crate::device::DeviceChoice;
use crate::engine::{Engine, EngineOptions, ModelSource};
use crate::generate::Progress;

/// A loaded model, shareable between threads. Conversations run in [`VlmSession`]s.
#[derive(uniffi::Object)]
pub struct VlmEngine {
    engine: Engine,
}

#[uniffi::export]
impl VlmEngine {
    /// Loads a model: `model` is a checkpoint directory or a text-model GGUF file, `mmproj`
    /// the GGUF vision projector that goes with it (none for a directory).
    #[uniffi::constructor]
    pub fn load(model: String, mmproj: Option<String>) -> Result<Arc<Self>, VlmError> {
        let source = ModelSource::local(model, mmproj.map(PathBuf::from));
        let engine = Engine::load(source, EngineOptions::default())?;
        Ok(Arc::new(VlmEngine { engine }))
    }

    /// [`VlmEngine::load`] with options; `listener` (optional) is told as each loading step
    /// finishes ([`VlmProgress::Load`]). An error the listener raises is returned once the
    /// load has finished, and the engine is dropped.
    #[uniffi::constructor]
    pub fn load_with_options(
        model: String,
        mmproj: Option<String>,
        options: VlmEngineOptions,
        listener: Option<Box<dyn VlmListener>>,
    ) -> Result<Arc<Self>, VlmError> {
        let opts = EngineOptions {
            device: options.device.parse::<DeviceChoice>()?,
            max_context: options.max_context.map(|c| c as usize),
            ..EngineOptions::default()
        };
        let source = ModelSource::local(model, mmproj.map(PathBuf::from));
        let mut failure = None;
        let mut on_progress = |p: Progress| {
            if let (Some(listener), None, Some(p)) =
                (&listener, &failure, VlmProgress::from_progress(p))
            {
                failure = listener.on_progress(p).err();
            }
        };
        let engine = Engine::load_with_progress(source, opts, &mut on_progress)?;
        match failure {
            Some(e) => Err(e),
            None => Ok(Arc::new(VlmEngine { engine })),
        }
    }

    /// A new, empty conversation.
    pub fn session(&self) -> Arc<VlmSession> {
        Arc::new(VlmSession {
            session: Mutex::new(self.engine.session()),
            processor: self.engine.processor_options().clone(),
        })
    }

    /// The context window in tokens.
    pub fn context_length(&self) -> u32 {
        count(self.engine.info().context_length)
    }

    /// Whether the model takes images.
    pub fn has_vision(&self) -> bool {
        self.engine.info().vision
    }
}
