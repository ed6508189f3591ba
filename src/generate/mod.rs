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
    /// Override the checkpoint's image splitting for the images of this message.
    pub image_splitting: Option<bool>,
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
            image_splitting: None,
            constraint: None,
        }
    }
}

impl GenerateOptions {
    /// Checks every option is in its domain.
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

/// Token counts of one generation.
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

/// Wall-clock time per stage.
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
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
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
