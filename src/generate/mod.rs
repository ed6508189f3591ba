//! Logits → text: the decode loop with its stop conditions. Its options (options.rs), what it
//! returns (outcome.rs), what it reports and how it is cancelled (events.rs), the sampler,
//! constraints and the UTF-8-safe detokenizer each have their own file.

pub mod constraint;
mod detokenize;
mod events;
mod options;
mod outcome;
pub mod sampler;

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

pub use constraint::Constraint;
pub use detokenize::Detokenizer;
pub use events::{CancelToken, Event, LoadStage, Progress};
pub use options::GenerateOptions;
pub use outcome::{FinishReason, Generation, Timings, Usage};
pub(crate) use sampler::Sampler;
pub use sampler::Sampling;

use crate::error::Result;

/// One decode step: feeds a token, returns the next logits.
pub(crate) type Step<'s> = dyn FnMut(u32) -> Result<Vec<f32>> + 's;

/// What the decode loop needs to know besides the options.
pub(crate) struct LoopInput<'a> {
    pub(crate) first_logits: Vec<f32>,
    pub(crate) context: Vec<u32>,
    pub(crate) eos_ids: &'a [u32],
    /// Room left in the context window for generated tokens.
    pub(crate) room: usize,
    /// The grammar the tokens must follow, if any.
    pub(crate) constraint: Option<constraint::ConstraintState>,
}

/// What the decode loop produced.
pub(crate) struct LoopOutput {
    pub(crate) text: String,
    pub(crate) token_ids: Vec<u32>,
    /// Tokens fed back into the model (their keys/values are in the cache).
    pub(crate) fed: Vec<u32>,
    pub(crate) finish: FinishReason,
    pub(crate) decode_time: Duration,
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
