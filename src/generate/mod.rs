//! Logits → text: the decode loop, its options, stop conditions, cancellation and timings.

pub mod constraint;
pub mod detokenize;
pub mod sampler;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use constraint::Constraint;
pub use detokenize::Detokenizer;
pub use sampler::{Sampler, Sampling};

use crate::error::{Error, Result};

/// Options of one generation.
///
/// ```
/// use vlm::{GenerateOptions, Sampling};
///
/// let opts = GenerateOptions {
///     max_new_tokens: 64,
///     sampling: Sampling::Random { temperature: 0.7, top_k: Some(40), top_p: Some(0.9), min_p: None },
///     stop: vec!["\n\n".into()],
///     ..GenerateOptions::default()
/// };
/// opts.validate()?;
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Upper bound on generated tokens (at least 1).
    pub max_new_tokens: usize,
    /// Greedy or sampled decoding.
    pub sampling: Sampling,
    /// Repetition penalty (1 = off).
    pub repetition_penalty: f32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Keep generating past end-of-sequence tokens (for benchmarks and parity checks).
    pub ignore_eos: bool,
    /// Extra strings that end generation; the text is cut before them.
    pub stop: Vec<String>,
    /// Only generate text this constraint allows; generation ends when it is complete.
    pub constraint: Option<Constraint>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            seed: 0,
            ignore_eos: false,
            stop: Vec::new(),
            constraint: None,
        }
    }
}

impl GenerateOptions {
    /// Checks every option is in its domain ([`crate::Session::send`] does too).
    ///
    /// ```
    /// let none = vlm::GenerateOptions { max_new_tokens: 0, ..Default::default() };
    /// assert!(matches!(none.validate(), Err(vlm::Error::InvalidOption { name: "max-tokens", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.max_new_tokens == 0 {
            return Err(Error::InvalidOption {
                name: "max-tokens",
                reason: "0 would generate nothing; use at least 1".into(),
            });
        }
        self.sampling.validate()
    }
}

/// Why generation ended.
///
/// ```
/// use vlm::{synthetic::Preset, Engine, FinishReason, GenerateOptions, Message, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let opts = GenerateOptions { max_new_tokens: 3, ignore_eos: true, ..Default::default() };
/// let answer = engine.session().send(Message::user([], "Count to ten."), &opts)?;
/// assert_eq!(answer.finish, FinishReason::MaxTokens);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-sequence token, or the constraint was complete.
    Eos,
    /// `max_new_tokens` was reached.
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// A stop string appeared.
    Stop,
    /// The caller cancelled; the text so far is returned.
    Cancelled,
}

/// Token counts of one generation ([`Generation::usage`]).
///
/// ```
/// use vlm::{synthetic::Preset, Engine, GenerateOptions, ImageInput, Message, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let frame = ImageInput::rgb8(64, 64, vec![90; 64 * 64 * 3])?;
/// let opts = GenerateOptions { max_new_tokens: 2, ignore_eos: true, ..Default::default() };
/// let usage = engine.session().send(Message::user([frame], "What is this?"), &opts)?.usage;
/// assert!(usage.image_tokens > 0 && usage.prompt_tokens > usage.image_tokens);
/// assert_eq!(usage.prefill_tokens, usage.prompt_tokens); // a new session caches nothing
/// assert_eq!(usage.completion_tokens, 2);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens of the whole prompt, image tokens included.
    pub prompt_tokens: usize,
    /// Image-feature tokens in the prompt.
    pub image_tokens: usize,
    /// Prompt tokens actually run (the rest came from the session's cache).
    pub prefill_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
}

/// Wall-clock time per stage ([`Generation::timings`]).
///
/// ```
/// use std::time::Duration;
///
/// let t = vlm::Timings {
///     preprocess: Duration::from_millis(5),
///     vision: Duration::from_millis(40),
///     prefill: Duration::from_millis(55),
///     decode: Duration::from_secs(2),
/// };
/// assert_eq!(t.time_to_first_token(), Duration::from_millis(100));
/// assert_eq!(t.decode_tokens_per_second(41), 20.0); // 40 steps after the first token
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Image decoding, resizing, tiling, template rendering and tokenization.
    #[serde(serialize_with = "seconds")]
    pub preprocess: Duration,
    /// Vision tower and connector.
    #[serde(serialize_with = "seconds")]
    pub vision: Duration,
    /// Prompt prefill up to the first token's logits.
    #[serde(serialize_with = "seconds")]
    pub prefill: Duration,
    /// All decode steps after the first token.
    #[serde(serialize_with = "seconds")]
    pub decode: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Timings {
    /// Generated tokens per second of decode (the first token is counted in prefill).
    pub fn decode_tokens_per_second(&self, completion_tokens: usize) -> f64 {
        let steps = completion_tokens.saturating_sub(1);
        let secs = self.decode.as_secs_f64();
        if steps == 0 || secs == 0.0 {
            0.0
        } else {
            steps as f64 / secs
        }
    }

    /// Time to the first token: preprocessing, vision and prefill.
    pub fn time_to_first_token(&self) -> Duration {
        self.preprocess + self.vision + self.prefill
    }
}

/// The result of one generation.
///
/// ```
/// use vlm::{synthetic::Preset, Engine, Message, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
/// let answer = engine.session().send(Message::user([], "Hello"), &opts)?;
/// println!("{} ({:?}, {} tokens)", answer.text, answer.finish, answer.usage.completion_tokens);
/// assert_eq!(answer.token_ids.len(), answer.usage.completion_tokens);
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    /// The generated text (special tokens skipped, cut before a stop string).
    pub text: String,
    /// Generated token ids, end-of-sequence token included when one was produced.
    pub token_ids: Vec<u32>,
    /// Why it ended.
    pub finish: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Stage timings.
    pub timings: Timings,
}

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
/// [`FinishReason::Cancelled`] and the text so far.
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

/// One decode step: feeds a token, returns the next logits.
pub(crate) type Step<'s> = dyn FnMut(u32) -> Result<Vec<f32>> + 's;

/// What the decode loop needs to know besides the options.
pub(crate) struct LoopInput<'a> {
    pub first_logits: Vec<f32>,
    pub context: Vec<u32>,
    pub eos_ids: &'a [u32],
    /// Room left in the context window for generated tokens.
    pub room: usize,
    /// The grammar the tokens must follow, if any.
    pub constraint: Option<constraint::ConstraintState>,
}

/// What the decode loop produced.
pub(crate) struct LoopOutput {
    pub text: String,
    pub token_ids: Vec<u32>,
    /// Tokens fed back into the model (their keys/values are in the cache).
    pub fed: Vec<u32>,
    pub finish: FinishReason,
    pub decode_time: Duration,
}

/// The decode loop: sample, report, stop or feed back.
pub(crate) fn decode_loop(
    input: LoopInput<'_>,
    opts: &GenerateOptions,
    tokenizer: &crate::processor::tokenizer::TextTokenizer,
    step: &mut Step<'_>,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<LoopOutput> {
    let mut sampler = Sampler::new(opts.sampling.clone(), opts.repetition_penalty, opts.seed)?;
    let mut detok = Detokenizer::new(tokenizer);
    let mut context = input.context;
    let mut logits = input.first_logits;
    let mut constraint = input.constraint;
    let mut token_ids = Vec::new();
    let mut fed = Vec::new();
    let limit = opts.max_new_tokens.min(input.room);
    let started = Instant::now();
    let finish = loop {
        if cancel.is_cancelled() {
            break FinishReason::Cancelled;
        }
        if let Some(c) = constraint.as_mut() {
            c.mask(&mut logits)?;
        }
        let id = sampler.sample(&mut logits, &context);
        token_ids.push(id);
        context.push(id);
        if !opts.ignore_eos && input.eos_ids.contains(&id) {
            break FinishReason::Eos;
        }
        let complete = match constraint.as_mut() {
            Some(c) => {
                c.accept(id)?;
                c.is_complete()?
            }
            None => false,
        };
        if let Some(delta) = detok.push(id)? {
            if let Some(cut) = stop_position(detok.text(), &opts.stop) {
                // Emit only the part of the delta before the stop string.
                let already = detok.text().len() - delta.len();
                if cut > already {
                    let _ = on_event(Event::Token(&detok.text()[already..cut]));
                }
                let text = detok.text()[..cut].to_string();
                return Ok(LoopOutput {
                    text,
                    token_ids,
                    fed,
                    finish: FinishReason::Stop,
                    decode_time: started.elapsed(),
                });
            }
            if on_event(Event::Token(&delta)).is_break() {
                break FinishReason::Cancelled;
            }
        }
        if complete {
            // Nothing but an end-of-sequence token could follow: no need to run the model.
            break FinishReason::Eos;
        }
        if token_ids.len() >= limit {
            break if limit < opts.max_new_tokens {
                FinishReason::ContextFull
            } else {
                FinishReason::MaxTokens
            };
        }
        logits = step(id)?;
        fed.push(id);
    };
    if let Some(rest) = detok.finish()? {
        let _ = on_event(Event::Token(&rest));
    }
    Ok(LoopOutput {
        text: detok.text().to_string(),
        token_ids,
        fed,
        finish,
        decode_time: started.elapsed(),
    })
}

/// Byte offset of the first stop string in `text`, if any.
fn stop_position(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_tokens_is_rejected() {
        let opts = GenerateOptions {
            max_new_tokens: 0,
            ..Default::default()
        };
        let err = opts.validate().unwrap_err();
        assert!(err.to_string().contains("max-tokens"), "{err}");
    }

    #[test]
    fn stop_strings_are_found() {
        assert_eq!(
            stop_position("abc END x", &["END".into(), "x".into()]),
            Some(4)
        );
        assert_eq!(stop_position("abc", &["".into()]), None);
    }
}
