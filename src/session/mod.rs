//! [`Session`]: one conversation — its messages, the features of its images and videos, and
//! the KV cache of what the model has read — on a shared [`Engine`]. Each turn the processor
//! turns the conversation into [`Chunk`]s; the session runs only the positions its cache does
//! not already hold (matched chunk by chunk: text by token, images and videos by content id),
//! and an image is encoded once however many turns (or forks of the conversation) refer to it.
//!
//! `turn.rs` prepares a turn (media → ids → features → chunks), `prompt.rs` runs its chunks
//! into the KV cache; this file is the public API and the decode.

mod prompt;
mod turn;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Instant;

use crate::embedding_cache::EmbeddingCache;
use crate::engine::Engine;
use crate::error::Result;
use crate::features::MediaFeatures;
use crate::features::{ImageEmbedding, VideoEmbedding};
use crate::generate::{
    decode_loop, CancelToken, Event, GenerateOptions, Generation, LoopInput, Progress, Timings,
    Usage,
};
use crate::model::KvCache;
use crate::processor::chat::Message;
use crate::processor::chunk::{self, Chunk, MediaId};
use crate::processor::image::ImageInput;
use crate::processor::media::video::VideoInput;
use crate::processor::ProcessorOptions;
use turn::{Media, Seen};

impl Engine {
    /// A new conversation, with the engine's processor settings
    /// ([`Session::set_processor_options`] replaces them).
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let mut session = engine.session();
    /// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
    /// session.send(Message::user([], "Hello"), &opts)?;
    /// assert_eq!(session.history().len(), 2); // the message and the answer
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }
}

/// A conversation with a model: its messages, the features of its images and the KV cache of
/// what the model has read, so that each turn runs only its new tokens. Made by
/// [`Engine::session`]; use one from one thread at a time (it is `Send`).
///
/// ```
/// use vlm::{synthetic::Preset, Engine, GenerateOptions, ImageInput, Message, ModelSource};
///
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
/// let opts = GenerateOptions { max_new_tokens: 4, ..Default::default() };
/// let mut chat = engine.session();
/// let photo = ImageInput::rgb8(96, 64, vec![30; 96 * 64 * 3])?;
/// let first = chat.send(Message::user([photo], "What is in the picture?"), &opts)?;
/// let second = chat.send(Message::user([], "And what colour is it?"), &opts)?;
/// // The second turn reuses the cached image and first exchange.
/// assert!(second.usage.prefill_tokens < second.usage.prompt_tokens);
/// assert!(second.usage.prompt_tokens > first.usage.prompt_tokens);
/// # Ok::<(), vlm::Error>(())
/// ```
pub struct Session {
    engine: Engine,
    history: Vec<Message>,
    cache: KvCache,
    /// What `cache` holds, position for position (pixels dropped).
    cached: Vec<Chunk>,
    /// Image tokens by media id: this conversation's images and videos, and those supplied.
    features: HashMap<MediaId, MediaFeatures>,
    /// Inputs read in this conversation and the ids they were found to have, so that the
    /// pictures of earlier turns are not decoded again at every turn.
    seen: Vec<Seen>,
    /// How images and videos not yet read are preprocessed.
    processor: ProcessorOptions,
    /// Features shared with other sessions and runs, consulted before the vision tower.
    shared: Option<EmbeddingCache>,
}

impl Session {
    fn new(engine: Engine) -> Self {
        let cache = engine.model().new_cache();
        let processor = engine.processor_options().clone();
        Session {
            engine,
            processor,
            history: Vec::new(),
            cache,
            cached: Vec::new(),
            features: HashMap::new(),
            seen: Vec::new(),
            shared: None,
        }
    }

    /// How this session preprocesses images and videos: the engine's
    /// [`EngineOptions::processor`] unless [`Session::set_processor_options`] replaced them.
    ///
    /// [`EngineOptions::processor`]: crate::EngineOptions::processor
    pub fn processor_options(&self) -> &ProcessorOptions {
        &self.processor
    }

    /// Replaces how this session preprocesses images and videos from now on. Images the
    /// session has already read, or was given ([`Session::provide_image`]), keep their
    /// features; forks inherit the options.
    ///
    /// ```
    /// use vlm::{synthetic::Preset, Engine, GenerateOptions, ImageInput, Message, ModelSource, ProcessorOptions};
    ///
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let photo = ImageInput::rgb8(1024, 768, vec![30; 1024 * 768 * 3])?;
    /// let opts = GenerateOptions { max_new_tokens: 4, ..Default::default() };
    /// let mut whole = engine.session();
    /// whole.set_processor_options(ProcessorOptions {
    ///     image_splitting: Some(false),
    ///     ..engine.processor_options().clone()
    /// });
    /// let one_view = whole.send(Message::user([photo.clone()], "Describe it."), &opts)?;
    /// let tiled = engine.session().send(Message::user([photo], "Describe it."), &opts)?;
    /// assert!(one_view.usage.image_tokens < tiled.usage.image_tokens);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn set_processor_options(&mut self, opts: ProcessorOptions) {
        self.processor = opts;
    }

    /// Looks images and videos up in `cache` before running the vision tower on them, and
    /// stores there what this session encodes; forks share it. Several sessions (or runs, for
    /// a cache on disk) given one cache encode each picture once.
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, EmbeddingCache, Engine, GenerateOptions, ImageInput, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let cache = EmbeddingCache::in_memory(64 << 20);
    /// let shot = ImageInput::rgb8(64, 64, vec![7; 64 * 64 * 3])?;
    /// let opts = GenerateOptions { max_new_tokens: 4, ..Default::default() };
    /// for _ in 0..2 {
    ///     let mut session = engine.session();
    ///     session.set_embedding_cache(Some(cache.clone()));
    ///     session.send(Message::user([shot.clone()], "What is this?"), &opts)?;
    /// }
    /// assert_eq!((cache.stats().misses, cache.stats().hits), (1, 1));
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn set_embedding_cache(&mut self, cache: Option<EmbeddingCache>) {
        self.shared = cache;
    }

    /// The messages so far (the model's answers included).
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, Message, ModelSource, Role};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let mut session = engine.session();
    /// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
    /// let answer = session.send(Message::user([], "Hi"), &opts)?;
    /// let roles: Vec<Role> = session.history().iter().map(|m| m.role).collect();
    /// assert_eq!(roles, [Role::User, Role::Assistant]);
    /// assert_eq!(session.history()[1], Message::assistant(answer.text));
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn history(&self) -> &[Message] {
        &self.history
    }

    /// Appends a message to the conversation without generating, e.g. to restore a saved
    /// conversation or to supply an earlier answer. Its images are processed at the next
    /// [`Session::send`].
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let mut session = engine.session();
    /// session.push(Message::system("Answer in one word."));
    /// session.push(Message::user([], "Capital of France?"));
    /// session.push(Message::assistant("Paris"));
    /// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
    /// session.send(Message::user([], "And of Italy?"), &opts)?;
    /// assert_eq!(session.history().len(), 5);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn push(&mut self, message: Message) {
        self.history.push(message);
    }

    /// Forgets the conversation (supplied image embeddings included).
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let mut session = engine.session();
    /// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
    /// let first = session.send(Message::user([], "Hi"), &opts)?;
    /// session.reset();
    /// assert!(session.history().is_empty());
    /// let again = session.send(Message::user([], "Hi"), &opts)?;
    /// assert_eq!(again.text, first.text); // greedy decoding, same conversation
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn reset(&mut self) {
        self.history.clear();
        self.features.clear();
        self.seen.clear();
        self.cache.clear();
        self.cached.clear();
    }

    /// Supplies the features of `image` (for example from a store of embeddings of its own),
    /// so that the messages containing an equal [`ImageInput`] neither decode it nor run the
    /// vision tower. The embedding is used as given, whatever the session's
    /// [`Session::processor_options`].
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, ImageInput, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let shot = ImageInput::rgb8(64, 64, vec![7; 64 * 64 * 3])?;
    /// let embedding = engine.embed_image(&shot, engine.processor_options())?; // e.g. computed once, kept in a cache
    /// let mut session = engine.session();
    /// session.provide_image(shot.clone(), embedding);
    /// let mut encoded = 0;
    /// let answer = session.send_streaming(
    ///     Message::user([shot], "What is this?"),
    ///     &vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() },
    ///     &vlm::CancelToken::new(),
    ///     &mut |event| {
    ///         if let vlm::Event::Progress(vlm::Progress::EncodeViews { done, .. }) = event {
    ///             encoded = done;
    ///         }
    ///         std::ops::ControlFlow::Continue(())
    ///     },
    /// )?;
    /// assert_eq!(encoded, 0); // the vision tower did not run
    /// assert!(answer.usage.image_tokens > 0);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn provide_image(&mut self, image: ImageInput, embedding: ImageEmbedding) {
        self.supply(Media::Image(image), embedding.into());
    }

    /// Supplies the features of `video`'s sampled frames (for example from
    /// [`Engine::embed_video`] or a cache), so that the next message containing an equal
    /// [`VideoInput`] neither decodes it nor runs the vision tower.
    pub fn provide_video(&mut self, video: VideoInput, embedding: VideoEmbedding) {
        self.supply(Media::Video(video), embedding.into());
    }

    /// An independent copy of this conversation — messages, image features and KV cache —
    /// to continue in another direction. Ask several questions about one image by
    /// [`Session::prefill`]ing it once and forking a session per question.
    ///
    /// ```no_run
    /// # use vlm::{Engine, GenerateOptions, ImageInput, Message};
    /// # fn demo(engine: &Engine) -> vlm::Result<()> {
    /// let shot = ImageInput::Path("pricing.png".into());
    /// let opts = GenerateOptions::default();
    /// let mut base = engine.session();
    /// base.prefill(&Message::user([shot.clone()], ""))?;
    /// for q in ["What is the product called?", "What does it cost?"] {
    ///     let answer = base.fork()?.send(Message::user([shot.clone()], q), &opts)?;
    ///     println!("{q} {}", answer.text);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn fork(&self) -> Result<Session> {
        Ok(Session {
            engine: self.engine.clone(),
            history: self.history.clone(),
            cache: self.cache.fork()?,
            cached: self.cached.clone(),
            features: self.features.clone(),
            seen: self.seen.clone(),
            processor: self.processor.clone(),
            shared: self.shared.clone(),
        })
    }

    /// Encodes the images of the conversation followed by `message` and runs the prompt
    /// through the model, without generating and without adding `message` to the
    /// conversation. A later message that starts the same way (the same images first) then
    /// reuses both the image features and the cached prompt tokens. Returns the token counts
    /// (`completion_tokens` is 0) and the stage timings of the work done.
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, ImageInput, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let shot = ImageInput::rgb8(64, 64, vec![99; 64 * 64 * 3])?;
    /// let mut session = engine.session();
    /// let opts = vlm::GenerateOptions { max_new_tokens: 8, ..Default::default() };
    /// let (usage, _) = session.prefill(&Message::user([shot.clone()], ""))?;
    /// assert_eq!(usage.completion_tokens, 0);
    /// let answer = session.send(Message::user([shot], "What is it?"), &opts)?;
    /// assert!(answer.usage.prefill_tokens < answer.usage.prompt_tokens);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn prefill(&mut self, message: &Message) -> Result<(Usage, Timings)> {
        let mut messages = self.history.clone();
        messages.push(message.clone());
        let mut timings = Timings::default();
        let mut ignore = |_: Event<'_>| ControlFlow::Continue(());
        let prepared = self.prepare_turn(&messages, false, &mut timings, &mut ignore)?;
        let t = Instant::now();
        let run = self.run_prompt(&prepared.chunks, true)?;
        timings.prefill = t.elapsed();
        let usage = Usage {
            prompt_tokens: prepared.tokens,
            image_tokens: prepared.image_tokens,
            prefill_tokens: run.ran,
            completion_tokens: 0,
        };
        Ok((usage, timings))
    }

    /// Sends a message and waits for the whole answer.
    ///
    /// ```
    /// # use vlm::{synthetic::Preset, Engine, GenerateOptions, ImageInput, Message, ModelSource};
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let frame = ImageInput::rgb8(64, 48, vec![128; 64 * 48 * 3])?;
    /// let opts = GenerateOptions { max_new_tokens: 16, ..Default::default() };
    /// let answer = engine.session().send(Message::user([frame], "Describe this image."), &opts)?;
    /// println!("{}", answer.text);
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn send(&mut self, message: Message, opts: &GenerateOptions) -> Result<Generation> {
        self.send_streaming(message, opts, &CancelToken::new(), &mut |_| {
            ControlFlow::Continue(())
        })
    }

    /// Sends a message; `on_event` sees text as it is produced and progress of the stages.
    /// Returning `ControlFlow::Break` from it, or cancelling `cancel`, ends the generation with
    /// [`crate::FinishReason::Cancelled`]. On error the conversation is left as it was.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use vlm::{synthetic::Preset, CancelToken, Engine, Event, FinishReason, GenerateOptions};
    /// use vlm::{Message, ModelSource};
    ///
    /// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), Default::default())?;
    /// let opts = GenerateOptions { max_new_tokens: 50, ignore_eos: true, ..Default::default() };
    /// let mut pieces = Vec::new();
    /// let answer = engine.session().send_streaming(
    ///     Message::user([], "Tell me a story."),
    ///     &opts,
    ///     &CancelToken::new(),
    ///     &mut |event| match event {
    ///         // Stop after three pieces of text, as a reader who has seen enough would.
    ///         Event::Token(text) => {
    ///             pieces.push(text.to_string());
    ///             if pieces.len() == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    ///         }
    ///         _ => ControlFlow::Continue(()),
    ///     },
    /// )?;
    /// if pieces.len() == 3 {
    ///     assert_eq!(answer.finish, FinishReason::Cancelled);
    /// }
    /// assert_eq!(pieces.concat(), answer.text);
    /// # Ok::<(), vlm::Error>(())
    /// ```
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
        let model = &inner.model;
        let constraint = match &opts.constraint {
            Some(c) => Some(engine.constraint_compiler()?.start(c)?),
            None => None,
        };
        let mut timings = Timings::default();
        let mut messages = self.history.clone();
        messages.push(message);
        let prepared = self.prepare_turn(&messages, true, &mut timings, on_event)?;
        let ids = chunk::flatten(&prepared.chunks);

        // ---- prefill what the cache does not hold ----
        let t = Instant::now();
        let _ = on_event(Event::Progress(Progress::Prefill {
            tokens: ids.len() - self.reusable_prefix(&prepared.chunks, false),
        }));
        let run = self.run_prompt(&prepared.chunks, false)?;
        timings.prefill = t.elapsed();

        // ---- decode ----
        let room = inner.context_length - ids.len();
        let cache = &mut self.cache;
        let mut step = |id: u32| -> Result<Vec<f32>> {
            let e = model.embed_generated(&[id])?;
            Ok(model.forward(&e, cache)?.to_vec1::<f32>()?)
        };
        let out = decode_loop(
            LoopInput {
                first_logits: run.logits,
                context: ids.clone(),
                eos_ids: &inner.eos_ids,
                room,
                constraint,
            },
            opts,
            inner.processor.tokenizer(),
            &mut step,
            cancel,
            on_event,
        );
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                self.cache.truncate(chunk::len(&self.cached));
                return Err(e);
            }
        };
        timings.decode = out.decode_time;
        self.cached.push(Chunk::Text(out.fed.clone()));
        // The cache may hold fewer fed tokens if a step failed midway; keep both in step.
        let held = self.cache.len().min(chunk::len(&self.cached));
        self.cache.truncate(held);
        chunk::truncate(&mut self.cached, held);

        let completion_tokens = out.token_ids.len();
        let generation = Generation {
            text: out.text,
            token_ids: out.token_ids,
            finish: out.finish,
            usage: Usage {
                prompt_tokens: ids.len(),
                image_tokens: prepared.image_tokens,
                prefill_tokens: run.ran,
                completion_tokens,
            },
            timings,
        };
        self.history = messages;
        self.history
            .push(Message::assistant(generation.text.clone()));
        Ok(generation)
    }
}
