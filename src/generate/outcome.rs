//! What a generation returns: the text and tokens ([`Generation`]), why it ended
//! ([`FinishReason`]), token counts ([`Usage`]) and time per stage ([`Timings`]).

use std::time::Duration;

use serde::Serialize;

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
