//! [`Session`]: one conversation — its messages, image features and KV cache — on a shared
//! [`Engine`]. Each turn runs only the tokens the cache does not already hold.

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::Tensor;

use crate::engine::{pixels_tensor, Engine};
use crate::error::{Error, Result};
use crate::generate::{
    decode_loop, CancelToken, Event, GenerateOptions, Generation, LoopInput, Progress, Timings,
    Usage,
};
use crate::model::KvCache;
use crate::processor::chat::Message;
use crate::processor::prompt::Grid;

/// A conversation with a model.
pub struct Session {
    engine: Engine,
    history: Vec<Message>,
    grids: Vec<Grid>,
    /// Image tokens of every view of the conversation's images, `[views, image_seq_len, D_t]`.
    features: Option<Tensor>,
    cache: KvCache,
    /// The token ids whose keys and values `cache` holds, in order.
    cached_ids: Vec<u32>,
}

impl Session {
    pub(crate) fn new(engine: Engine) -> Self {
        let cache = engine.model().new_cache();
        Session {
            engine,
            history: Vec::new(),
            grids: Vec::new(),
            features: None,
            cache,
            cached_ids: Vec::new(),
        }
    }

    /// The messages so far (the model's answers included).
    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Appends a message to the conversation without generating, e.g. to restore a saved
    /// conversation or to supply an earlier answer. Its images are processed at the next
    /// [`Session::send`].
    pub fn push(&mut self, message: Message) {
        self.history.push(message);
    }

    /// Forgets the conversation.
    pub fn reset(&mut self) {
        self.history.clear();
        self.grids.clear();
        self.features = None;
        self.cache.clear();
        self.cached_ids.clear();
    }

    /// Sends a message and waits for the whole answer.
    pub fn send(&mut self, message: Message, opts: &GenerateOptions) -> Result<Generation> {
        self.send_streaming(message, opts, &CancelToken::new(), &mut |_| {
            ControlFlow::Continue(())
        })
    }

    /// Sends a message; `on_event` sees text as it is produced and progress of the stages.
    /// Returning `ControlFlow::Break` from it, or cancelling `cancel`, ends the generation with
    /// [`crate::FinishReason::Cancelled`]. On error the conversation is left as it was.
    pub fn send_streaming(
        &mut self,
        message: Message,
        opts: &GenerateOptions,
        cancel: &CancelToken,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Generation> {
        opts.validate()?;
        let engine = self.engine.clone();
        let inner = &engine.inner;
        let processor = &inner.processor;
        let model = &inner.model;
        let mut timings = Timings::default();

        // ---- preprocess: only images not seen before (this message's, and pushed ones) ----
        let t = Instant::now();
        let mut messages = self.history.clone();
        messages.push(message);
        let new_images = messages
            .iter()
            .flat_map(Message::images)
            .skip(self.grids.len())
            .map(|img| processor.prepare_image(img, opts.image_splitting))
            .collect::<Result<Vec<_>>>()?;
        let mut grids = self.grids.clone();
        grids.extend(new_images.iter().map(|i| i.grid));
        let (_, _, ids) = processor.tokenize_conversation(&messages, &grids, true)?;
        let image_id = model.image_token_id();
        let image_tokens = ids.iter().filter(|id| **id == image_id).count();
        if ids.len() >= inner.context_length {
            return Err(Error::ContextOverflow {
                tokens: ids.len(),
                image_tokens,
                limit: inner.context_length,
            });
        }
        timings.preprocess = t.elapsed();

        // ---- vision ----
        let t = Instant::now();
        let total_views: usize = new_images.iter().map(|i| i.pixels.n_views).sum();
        let mut features = self.features.clone();
        let mut done = 0;
        for image in &new_images {
            let pixels = pixels_tensor(&image.pixels, model.device())?;
            let f = model.encode_images(&pixels, None)?;
            features = Some(match features {
                None => f,
                Some(prev) => Tensor::cat(&[prev, f], 0)?,
            });
            done += image.pixels.n_views;
            if on_event(Event::Progress(Progress::EncodeViews {
                done,
                total: total_views,
            }))
            .is_break()
            {
                return Err(Error::InvalidOption {
                    name: "callback",
                    reason: "stopped before generation started".into(),
                });
            }
        }
        timings.vision = t.elapsed();

        // ---- prefill what the cache does not hold ----
        let t = Instant::now();
        let mut prefix = common_prefix(&self.cached_ids, &ids);
        if prefix == ids.len() {
            // Logits are needed for the last prompt token, so it is run again.
            prefix -= 1;
        }
        self.cache.truncate(prefix);
        self.cached_ids.truncate(prefix);
        let first_image_row = ids[..prefix].iter().filter(|id| **id == image_id).count();
        let _ = on_event(Event::Progress(Progress::Prefill {
            tokens: ids.len() - prefix,
        }));
        let embeds = model.embed(&ids[prefix..], features.as_ref(), first_image_row)?;
        let first_logits = match model.forward(&embeds, &mut self.cache) {
            Ok(l) => l.to_vec1::<f32>()?,
            Err(e) => {
                self.cache.truncate(prefix);
                return Err(e);
            }
        };
        self.cached_ids = ids.clone();
        timings.prefill = t.elapsed();

        // ---- decode ----
        let room = inner.context_length - ids.len();
        let cache = &mut self.cache;
        let mut step = |id: u32| -> Result<Vec<f32>> {
            let e = model.embed(&[id], None, 0)?;
            Ok(model.forward(&e, cache)?.to_vec1::<f32>()?)
        };
        let out = decode_loop(
            LoopInput {
                first_logits,
                context: ids.clone(),
                eos_ids: &inner.eos_ids,
                room,
            },
            opts,
            processor.tokenizer(),
            &mut step,
            cancel,
            on_event,
        );
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                self.cache.truncate(self.cached_ids.len());
                return Err(e);
            }
        };
        timings.decode = out.decode_time;
        self.cached_ids.extend_from_slice(&out.fed);
        // The cache may hold fewer fed tokens if a step failed midway; keep both in step.
        self.cache.truncate(self.cached_ids.len());

        let generation = Generation {
            text: out.text,
            token_ids: out.token_ids,
            finish: out.finish,
            usage: Usage {
                prompt_tokens: ids.len(),
                image_tokens,
                prefill_tokens: ids.len() - prefix,
                completion_tokens: 0,
            },
            timings,
        };
        let mut generation = generation;
        generation.usage.completion_tokens = generation.token_ids.len();

        self.history = messages;
        self.history
            .push(Message::assistant(generation.text.clone()));
        self.grids = grids;
        self.features = features;
        Ok(generation)
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
