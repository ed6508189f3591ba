//! What a running load or generation reports ([`Event`], [`Progress`], [`LoadStage`]) and how
//! it is stopped from outside ([`CancelToken`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The steps of loading a model, in the order [`Progress::Load`] reports them.
///
/// ```
/// use vlm::{synthetic::Preset, Engine, LoadStage, ModelSource, Progress};
///
/// let mut stages = Vec::new();
/// let source = ModelSource::synthetic(Preset::Tiny);
/// Engine::load_with_progress(source, Default::default(), &mut |p| {
///     if let Progress::Load { stage, .. } = p {
///         stages.push(stage);
///     }
/// })?;
/// assert_eq!(stages, LoadStage::ALL);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    /// Configuration, tokenizer and chat template read (and GGUF headers parsed).
    Config,
    /// Weight files opened and memory-mapped, or a synthetic model's weights generated.
    Weights,
    /// The model built from them: tensors converted, quantized or packed for the kernels.
    Model,
}

impl LoadStage {
    /// Every stage, in order.
    pub const ALL: [LoadStage; 3] = [LoadStage::Config, LoadStage::Weights, LoadStage::Model];
}

/// Progress reports while a model loads ([`crate::Engine::load_with_progress`]) and during a
/// generation ([`crate::Session::send_streaming`]).
///
/// ```
/// use std::ops::ControlFlow;
/// use vlm::{synthetic::Preset, CancelToken, Engine, Event, ImageInput, Message, ModelSource, Progress};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let frame = ImageInput::rgb8(128, 64, vec![200; 128 * 64 * 3])?;
/// let (mut views, mut prefill) = (0, 0);
/// let opts = vlm::GenerateOptions { max_new_tokens: 4, ..Default::default() };
/// engine.session().send_streaming(
///     Message::user([frame], "Describe it."),
///     &opts,
///     &CancelToken::new(),
///     &mut |event| {
///         match event {
///             Event::Progress(Progress::EncodeViews { done, total }) => views = done.max(total),
///             Event::Progress(Progress::Prefill { tokens }) => prefill = tokens,
///             _ => {}
///         }
///         ControlFlow::Continue(())
///     },
/// )?;
/// assert!(views > 0 && prefill > 0);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// A step of loading the model finished.
    Load {
        /// The step that finished.
        stage: LoadStage,
        /// Steps finished, this one included.
        done: usize,
        /// Steps in all ([`LoadStage::ALL`]).
        total: usize,
    },
    /// Views of the images encoded so far.
    EncodeViews {
        /// Views done.
        done: usize,
        /// Views in total.
        total: usize,
    },
    /// The prompt is being prefilled.
    Prefill {
        /// Tokens to run.
        tokens: usize,
    },
}

/// Something a streaming caller is told.
///
/// ```
/// use std::ops::ControlFlow;
/// use vlm::{synthetic::Preset, CancelToken, Engine, Event, GenerateOptions, Message, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let opts = GenerateOptions { max_new_tokens: 8, ..Default::default() };
/// let mut streamed = String::new();
/// let answer = engine.session().send_streaming(
///     Message::user([], "Hi"),
///     &opts,
///     &CancelToken::new(),
///     &mut |event| {
///         if let Event::Token(text) = event {
///             streamed.push_str(text);
///         }
///         ControlFlow::Continue(())
///     },
/// )?;
/// assert_eq!(streamed, answer.text);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// New text.
    Token(&'a str),
    /// A stage advanced.
    Progress(Progress),
}

/// Cancels a generation from any thread; the generation then ends with
/// [`FinishReason::Cancelled`](crate::FinishReason::Cancelled) and the text so far.
///
/// ```
/// use std::ops::ControlFlow;
/// use std::{sync::mpsc, thread};
/// use vlm::{synthetic::Preset, CancelToken, Engine, Event, FinishReason, GenerateOptions};
/// use vlm::{Message, ModelSource, Progress};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let cancel = CancelToken::new();
/// let (ask, asked) = mpsc::channel();
/// let (done, stopped) = mpsc::channel();
/// // Another thread (a UI's stop button) cancels when asked, and says when it has.
/// let stopper = thread::spawn({
///     let cancel = cancel.clone();
///     move || {
///         if asked.recv().is_ok() {
///             cancel.cancel();
///             done.send(()).ok();
///         }
///     }
/// });
/// let opts = GenerateOptions { max_new_tokens: 500, ignore_eos: true, ..Default::default() };
/// let message = Message::user([], "Go on.");
/// let answer = engine.session().send_streaming(message, &opts, &cancel, &mut |event| {
///     if let Event::Progress(Progress::Prefill { .. }) = event {
///         ask.send(()).ok();
///         stopped.recv().ok();
///     }
///     ControlFlow::Continue(())
/// })?;
/// drop(ask);
/// stopper.join().ok();
/// assert_eq!(answer.finish, FinishReason::Cancelled);
/// assert!(answer.usage.completion_tokens < 500);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    ///
    /// ```
    /// let token = vlm::CancelToken::new();
    /// let seen_elsewhere = token.clone(); // clones share the flag
    /// assert!(!seen_elsewhere.is_cancelled());
    /// token.cancel();
    /// assert!(seen_elsewhere.is_cancelled());
    /// ```
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
