//! Swift, Kotlin and Python bindings (feature `uniffi`): the runtime API as UniFFI objects
//! ([`VlmEngine`] → [`VlmSession`]), records and enums, with text and progress streamed to a
//! [`VlmListener`] implemented in the foreign language and a [`VlmCancelToken`] that any thread
//! may set. `bindings/` holds the generated Swift and Kotlin sources; see its README.
//!
//! ```python
//! import threading, vlm
//!
//! class Printer(vlm.VlmListener):
//!     def on_token(self, text): print(text, end="", flush=True)
//!     def on_progress(self, progress): pass
//!
//! engine = vlm.VlmEngine.load("model.gguf", "mmproj.gguf")
//! cancel = vlm.VlmCancelToken()
//! answer = engine.session().describe(vlm.VlmImage.PATH("photo.png"), vlm.VlmGenerateOptions(), Printer(), cancel)
//! print(answer.finish)
//! ```

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::apps::DESCRIBE_PROMPT;
use crate::device::DeviceChoice;
use crate::engine::{Engine, EngineOptions, ModelSource};
use crate::error::Category;
use crate::generate::{
    CancelToken, Event, FinishReason, GenerateOptions, Generation, LoadStage, Progress, Sampling,
};
use crate::processor::chat::Message;
use crate::processor::image::ImageInput;
use crate::processor::ProcessorOptions;
use crate::session::Session;

/// Why a call failed. Every variant carries a one-line message naming the input (a file, an
/// image, an option) and the problem.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum VlmError {
    /// The model files are missing, corrupt or of an unsupported kind.
    #[error("{message}")]
    Load {
        /// What is wrong.
        message: String,
    },
    /// The input (an image, the prompt, an option) cannot be used.
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
    },
    /// Something failed while running the model.
    #[error("{message}")]
    Runtime {
        /// What is wrong.
        message: String,
    },
    /// The listener raised an error. The generation was stopped there; the conversation
    /// keeps the message and the partial answer.
    #[error("{message}")]
    Listener {
        /// The error the listener raised, as text.
        message: String,
    },
}

impl From<crate::Error> for VlmError {
    fn from(e: crate::Error) -> Self {
        let message = e.to_string();
        match e.category() {
            Category::Load => VlmError::Load { message },
            Category::Input => VlmError::Input { message },
            Category::Runtime => VlmError::Runtime { message },
        }
    }
}

// A foreign listener that raises something other than a `VlmError` arrives here, so that its
// failure is reported to the caller instead of becoming a panic.
impl From<uniffi::UnexpectedUniFFICallbackError> for VlmError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        VlmError::Listener { message: e.reason }
    }
}

/// An image: a file, the bytes of an encoded file, or raw RGB pixels such as a camera frame.
#[derive(Debug, Clone, uniffi::Enum)]
pub enum VlmImage {
    /// A PNG, JPEG, WebP or GIF file.
    Path {
        /// Its path.
        path: String,
    },
    /// The bytes of a PNG, JPEG, WebP or GIF file.
    Encoded {
        /// The file's bytes.
        bytes: Vec<u8>,
    },
    /// Raw pixels, row-major, 3 bytes (R, G, B) per pixel.
    Rgb8 {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Exactly `width * height * 3` bytes.
        pixels: Vec<u8>,
    },
}

impl VlmImage {
    fn into_input(self) -> Result<ImageInput, VlmError> {
        Ok(match self {
            VlmImage::Path { path } => ImageInput::Path(PathBuf::from(path)),
            VlmImage::Encoded { bytes } => ImageInput::Encoded(bytes),
            VlmImage::Rgb8 {
                width,
                height,
                pixels,
            } => ImageInput::rgb8(width, height, pixels)?,
        })
    }
}

/// Options of one generation; every field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VlmGenerateOptions {
    /// Upper bound on generated tokens (at least 1).
    #[uniffi(default = 256)]
    pub max_new_tokens: u32,
    /// Softmax temperature; 0 picks the most likely token every time (greedy).
    #[uniffi(default = 0.0)]
    pub temperature: f32,
    /// With a temperature: keep only the k most likely tokens.
    #[uniffi(default = None)]
    pub top_k: Option<u32>,
    /// With a temperature: keep the smallest set of tokens whose probability reaches p.
    #[uniffi(default = None)]
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    #[uniffi(default = 0)]
    pub seed: u64,
    /// Strings that end generation; the text is cut before them.
    #[uniffi(default = [])]
    pub stop: Vec<String>,
    /// Override the model's image splitting (tiles plus a global view) for this message.
    #[uniffi(default = None)]
    pub image_splitting: Option<bool>,
    /// Keep generating past end-of-sequence tokens, up to `max_new_tokens`.
    #[uniffi(default = false)]
    pub ignore_eos: bool,
}

impl VlmGenerateOptions {
    fn to_options(&self) -> GenerateOptions {
        let sampling = if self.temperature == 0.0 {
            Sampling::Greedy
        } else {
            Sampling::Random {
                temperature: self.temperature,
                top_k: self.top_k.map(|k| k as usize),
                top_p: self.top_p,
                min_p: None,
            }
        };
        GenerateOptions {
            max_new_tokens: self.max_new_tokens as usize,
            sampling,
            seed: self.seed,
            ignore_eos: self.ignore_eos,
            stop: self.stop.clone(),
            ..GenerateOptions::default()
        }
    }
}

/// How to load a model; every field has a default.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VlmEngineOptions {
    /// Where to compute: `cpu`, `cuda[:N]` or `metal[:N]`. A GPU needs the library built with
    /// the `cuda` or `metal` feature; otherwise loading fails with a [`VlmError::Load`] that
    /// names the feature.
    #[uniffi(default = "cpu")]
    pub device: String,
    /// Cap on the context window in tokens (the model's own when absent or larger).
    #[uniffi(default = None)]
    pub max_context: Option<u32>,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VlmFinishReason {
    /// The model ended its answer.
    Eos,
    /// `max_new_tokens` was reached.
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// A stop string appeared.
    Stop,
    /// The cancel token was set; the text so far is returned.
    Cancelled,
}

impl From<FinishReason> for VlmFinishReason {
    fn from(f: FinishReason) -> Self {
        match f {
            FinishReason::Eos => VlmFinishReason::Eos,
            FinishReason::MaxTokens => VlmFinishReason::MaxTokens,
            FinishReason::ContextFull => VlmFinishReason::ContextFull,
            FinishReason::Stop => VlmFinishReason::Stop,
            FinishReason::Cancelled => VlmFinishReason::Cancelled,
        }
    }
}

/// The answer to one message.
#[derive(Debug, Clone, uniffi::Record)]
pub struct VlmAnswer {
    /// The generated text (the same text the listener was given, piece by piece).
    pub text: String,
    /// Why generation ended.
    pub finish: VlmFinishReason,
    /// Tokens of the whole prompt, image tokens included.
    pub prompt_tokens: u32,
    /// Image tokens in the prompt.
    pub image_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Seconds from the call to the first token: preprocessing, vision and prefill.
    pub seconds_to_first_token: f64,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_second: f64,
}

impl From<Generation> for VlmAnswer {
    fn from(g: Generation) -> Self {
        VlmAnswer {
            finish: g.finish.into(),
            prompt_tokens: count(g.usage.prompt_tokens),
            image_tokens: count(g.usage.image_tokens),
            completion_tokens: count(g.usage.completion_tokens),
            seconds_to_first_token: g.timings.time_to_first_token().as_secs_f64(),
            decode_tokens_per_second: g
                .timings
                .decode_tokens_per_second(g.usage.completion_tokens),
            text: g.text,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The steps of loading a model, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VlmLoadStage {
    /// Configuration, tokenizer and chat template read.
    Config,
    /// Weight files opened and memory-mapped.
    Weights,
    /// The model built from them.
    Model,
}

/// How far a load or a generation has got.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum VlmProgress {
    /// A step of loading the model finished.
    Load {
        /// The step that finished.
        stage: VlmLoadStage,
        /// Steps finished, this one included.
        done: u32,
        /// Steps in all.
        total: u32,
    },
    /// Views (tiles and global views) of the message's images encoded so far.
    EncodeViews {
        /// Views done.
        done: u32,
        /// Views in total.
        total: u32,
    },
    /// The prompt is being run through the model.
    Prefill {
        /// Prompt tokens to run (those the conversation's cache does not hold).
        tokens: u32,
    },
}

impl VlmProgress {
    fn from_progress(p: Progress) -> Option<Self> {
        match p {
            Progress::Load { stage, done, total } => Some(VlmProgress::Load {
                stage: match stage {
                    LoadStage::Config => VlmLoadStage::Config,
                    LoadStage::Weights => VlmLoadStage::Weights,
                    LoadStage::Model => VlmLoadStage::Model,
                },
                done: count(done),
                total: count(total),
            }),
            Progress::EncodeViews { done, total } => Some(VlmProgress::EncodeViews {
                done: count(done),
                total: count(total),
            }),
            Progress::Prefill { tokens } => Some(VlmProgress::Prefill {
                tokens: count(tokens),
            }),
        }
    }
}

/// Receives a generation's text as it is produced, and progress reports. Implemented in the
/// foreign language; called on the thread that made the call. An error raised here stops the
/// generation and is returned as [`VlmError::Listener`].
#[uniffi::export(callback_interface)]
pub trait VlmListener: Send + Sync {
    /// The next piece of text (whole UTF-8 characters).
    fn on_token(&self, text: String) -> Result<(), VlmError>;
    /// A stage advanced.
    fn on_progress(&self, progress: VlmProgress) -> Result<(), VlmError>;
}

/// A cancellation flag: set it from any thread and a running generation that was given it
/// ends after the current token with [`VlmFinishReason::Cancelled`] and the text so far.
#[derive(Debug, Default, uniffi::Object)]
pub struct VlmCancelToken {
    token: CancelToken,
}

#[uniffi::export]
impl VlmCancelToken {
    /// A flag that is not set.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(VlmCancelToken::default())
    }

    /// Sets the flag.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

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

/// One conversation on a [`VlmEngine`]: each message sees the ones before it. Calls on one
/// session run one at a time; use a session per thread for parallel conversations.
#[derive(uniffi::Object)]
pub struct VlmSession {
    session: Mutex<Session>,
    /// The engine's processor settings, which each call's `image_splitting` adjusts.
    processor: ProcessorOptions,
}

#[uniffi::export]
impl VlmSession {
    /// Sends `prompt` after `images` and returns the answer. `listener` (optional) is given
    /// the text as it is produced; `cancel` (optional) stops the generation when set from any
    /// thread, and the answer then holds the text so far. On error the conversation is left
    /// as it was.
    pub fn ask(
        &self,
        images: Vec<VlmImage>,
        prompt: String,
        options: VlmGenerateOptions,
        listener: Option<Box<dyn VlmListener>>,
        cancel: Option<Arc<VlmCancelToken>>,
    ) -> Result<VlmAnswer, VlmError> {
        let images = images
            .into_iter()
            .map(VlmImage::into_input)
            .collect::<Result<Vec<_>, _>>()?;
        let message = Message::user(images, prompt);
        let opts = options.to_options();
        let cancel = cancel.map_or_else(CancelToken::new, |c| c.token.clone());
        let mut failure = None;
        let mut on_event = |event: Event<'_>| {
            let Some(listener) = &listener else {
                return ControlFlow::Continue(());
            };
            let told = match event {
                Event::Token(text) => listener.on_token(text.to_string()),
                Event::Progress(p) => match VlmProgress::from_progress(p) {
                    Some(p) => listener.on_progress(p),
                    None => Ok(()),
                },
            };
            match told {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        };
        let mut session = self.lock();
        session.set_processor_options(ProcessorOptions {
            image_splitting: options.image_splitting,
            ..self.processor.clone()
        });
        let result = session.send_streaming(message, &opts, &cancel, &mut on_event);
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(result?.into())
    }

    /// Asks the model to describe `image` (the question `vlm describe` asks).
    pub fn describe(
        &self,
        image: VlmImage,
        options: VlmGenerateOptions,
        listener: Option<Box<dyn VlmListener>>,
        cancel: Option<Arc<VlmCancelToken>>,
    ) -> Result<VlmAnswer, VlmError> {
        self.ask(
            vec![image],
            DESCRIBE_PROMPT.to_string(),
            options,
            listener,
            cancel,
        )
    }

    /// Forgets the conversation so far.
    pub fn reset(&self) {
        self.lock().reset();
    }
}

impl VlmSession {
    /// The session. A call that panicked (the foreign caller got an internal error) may have
    /// left the conversation half-updated, so after one the conversation starts over.
    fn lock(&self) -> MutexGuard<'_, Session> {
        match self.session.lock() {
            Ok(session) => session,
            Err(poisoned) => {
                let mut session = poisoned.into_inner();
                session.reset();
                self.session.clear_poison();
                session
            }
        }
    }
}
