//! [`Session`]: one conversation — its messages, image features and KV cache — on a shared
//! [`Engine`]. Each turn runs only the tokens the cache does not already hold, and an image is
//! encoded once however many turns (or forks of the conversation) refer to it.

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::Tensor;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::generate::{
    decode_loop, CancelToken, Event, GenerateOptions, Generation, LoopInput, Progress, Timings,
    Usage,
};
use crate::model::KvCache;
use crate::processor::chat::{Content, Message};
use crate::processor::image::ImageInput;
use crate::processor::media::video::VideoInput;
use crate::processor::prompt::Grid;
use crate::processor::video::VideoLayout;
use crate::processor::{MediaLayout, PreparedImage, PreparedVideo, ProcessorOptions};

/// One image after the vision tower and connector: its tile grid and its image tokens
/// `[views, image_seq_len, D_t]` (tiles row by row, then the global view).
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    grid: Grid,
    features: Tensor,
}

impl ImageEmbedding {
    /// Wraps features computed for an image split into `rows × cols` tiles (0 × 0 when not
    /// split); checks that the number of views agrees with the grid.
    pub fn new(rows: usize, cols: usize, features: Tensor) -> Result<Self> {
        let (views, _, _) = features.dims3()?;
        let expected = if rows * cols == 0 { 1 } else { rows * cols + 1 };
        if views != expected {
            return Err(Error::InvalidOption {
                name: "image embedding",
                reason: format!("{views} views for a {rows}×{cols} grid; expected {expected}"),
            });
        }
        Ok(ImageEmbedding {
            grid: Grid { rows, cols },
            features,
        })
    }

    /// `(rows, cols)` of the tile grid; `(0, 0)` when the image was not split.
    pub fn grid(&self) -> (usize, usize) {
        (self.grid.rows, self.grid.cols)
    }

    /// The image tokens, `[views, image_seq_len, D_t]`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// Views (tiles plus the global view).
    pub fn views(&self) -> usize {
        self.features.dims().first().copied().unwrap_or(0)
    }
}

/// One video after the vision tower and connector: its sampled frames' timestamps and one
/// view of image tokens per frame, `[frames, image_seq_len, D_t]`.
#[derive(Debug, Clone)]
pub struct VideoEmbedding {
    layout: VideoLayout,
    features: Tensor,
}

impl VideoEmbedding {
    /// Wraps features computed for the frames at `timestamps` (seconds) of a clip lasting
    /// `duration` seconds; checks that there is one view per frame.
    pub fn new(timestamps: Vec<f64>, duration: Option<f64>, features: Tensor) -> Result<Self> {
        let (views, _, _) = features.dims3()?;
        if views != timestamps.len() || views == 0 {
            return Err(Error::InvalidOption {
                name: "video embedding",
                reason: format!("{views} views for {} frames", timestamps.len()),
            });
        }
        Ok(VideoEmbedding {
            layout: VideoLayout {
                timestamps,
                duration,
            },
            features,
        })
    }

    /// Seconds from the start of the clip to each sampled frame.
    pub fn timestamps(&self) -> &[f64] {
        &self.layout.timestamps
    }

    /// The clip's length in seconds, when known.
    pub fn duration(&self) -> Option<f64> {
        self.layout.duration
    }

    /// The image tokens, `[frames, image_seq_len, D_t]`.
    pub fn features(&self) -> &Tensor {
        &self.features
    }
}

/// An image or a video of a conversation.
#[derive(Debug, Clone, PartialEq)]
enum Media {
    Image(ImageInput),
    Video(VideoInput),
}

/// An image or video the session has features for.
#[derive(Debug, Clone)]
struct KnownImage {
    input: Media,
    layout: MediaLayout,
    /// `[views, image_seq_len, D_t]`.
    features: Tensor,
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
    /// The images of `history`, in order.
    images: Vec<KnownImage>,
    /// Images encoded or supplied ahead of the message that will contain them.
    pending: Vec<KnownImage>,
    cache: KvCache,
    /// The token ids whose keys and values `cache` holds, in order.
    cached_ids: Vec<u32>,
    /// How images and videos not yet encoded are preprocessed.
    processor: ProcessorOptions,
}

/// What preparing a conversation for the model produced.
struct Prepared {
    ids: Vec<u32>,
    images: Vec<KnownImage>,
    /// Images encoded (not reused) for this turn.
    encoded: Vec<KnownImage>,
    image_tokens: usize,
}

impl Session {
    pub(crate) fn new(engine: Engine) -> Self {
        let cache = engine.model().new_cache();
        let processor = engine.processor_options().clone();
        Session {
            engine,
            processor,
            history: Vec::new(),
            images: Vec::new(),
            pending: Vec::new(),
            cache,
            cached_ids: Vec::new(),
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
    /// session has already encoded, or was given ([`Session::provide_image`]), keep their
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
        self.images.clear();
        self.pending.clear();
        self.cache.clear();
        self.cached_ids.clear();
    }

    /// Supplies the features of `image` (for example from a cache of embeddings), so that the
    /// next message containing an equal [`ImageInput`] does not run the vision tower. The
    /// embedding is used as given, whatever the session's [`Session::processor_options`].
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
        self.pending.push(KnownImage {
            input: Media::Image(image),
            layout: MediaLayout::Image(embedding.grid),
            features: embedding.features,
        });
    }

    /// Supplies the features of `video`'s sampled frames (for example from
    /// [`Engine::embed_video`] or a cache), so that the next message containing an equal
    /// [`VideoInput`] neither decodes it nor runs the vision tower.
    pub fn provide_video(&mut self, video: VideoInput, embedding: VideoEmbedding) {
        self.pending.push(KnownImage {
            input: Media::Video(video),
            layout: MediaLayout::Video(embedding.layout),
            features: embedding.features,
        });
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
            images: self.images.clone(),
            pending: self.pending.clone(),
            cache: self.cache.fork()?,
            cached_ids: self.cached_ids.clone(),
            processor: self.processor.clone(),
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
        let prepared = self.prepare(&messages, false, &mut timings, &mut ignore)?;
        let t = Instant::now();
        let features = concat_features(&prepared.images)?;
        let run = self.run_prompt(&prepared.ids, features.as_ref(), true)?;
        timings.prefill = t.elapsed();
        self.pending.extend(prepared.encoded);
        let usage = Usage {
            prompt_tokens: prepared.ids.len(),
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
        let prepared = self.prepare(&messages, true, &mut timings, on_event)?;
        let ids = prepared.ids.clone();

        // ---- prefill what the cache does not hold ----
        let t = Instant::now();
        let features = concat_features(&prepared.images)?;
        let _ = on_event(Event::Progress(Progress::Prefill {
            tokens: ids.len() - self.reusable_prefix(&ids, false),
        }));
        let run = self.run_prompt(&ids, features.as_ref(), false)?;
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
                self.cache.truncate(self.cached_ids.len());
                return Err(e);
            }
        };
        timings.decode = out.decode_time;
        self.cached_ids.extend_from_slice(&out.fed);
        // The cache may hold fewer fed tokens if a step failed midway; keep both in step.
        self.cache.truncate(self.cached_ids.len());

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
        self.images = prepared.images;
        Ok(generation)
    }

    /// Preprocesses `messages`: features for every image (reused, supplied or encoded now),
    /// then the token ids. Fills `timings.preprocess` and `timings.vision`.
    fn prepare(
        &mut self,
        messages: &[Message],
        add_generation_prompt: bool,
        timings: &mut Timings,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Prepared> {
        let inner = &self.engine.inner;
        let processor = &inner.processor;
        let model = &inner.model;
        let t = Instant::now();
        let wanted: Vec<Media> = messages
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|c| match c {
                Content::Image(img) => Some(Media::Image(img.clone())),
                Content::Video(v) => Some(Media::Video(v.clone())),
                Content::Text(_) => None,
            })
            .collect();
        let keep = self
            .images
            .iter()
            .zip(wanted.iter())
            .take_while(|(known, input)| known.input == **input)
            .count();
        let mut pending = self.pending.clone();
        let mut slots: Vec<Slot> = self.images[..keep]
            .iter()
            .cloned()
            .map(Slot::Known)
            .collect();
        for input in &wanted[keep..] {
            // A clip asked about again later in the conversation is not decoded or encoded
            // a second time.
            let earlier = match input {
                Media::Video(_) => self.images.iter().find(|k| k.input == *input),
                Media::Image(_) => None,
            };
            let slot = if let Some(i) = pending.iter().position(|p| p.input == *input) {
                Slot::Known(pending.remove(i))
            } else if let Some(known) = earlier {
                Slot::Known(known.clone())
            } else {
                let fresh = match input {
                    Media::Image(img) => {
                        Fresh::Image(processor.prepare_image(img, &self.processor)?)
                    }
                    Media::Video(v) => Fresh::Video(processor.prepare_video(v, &self.processor)?),
                };
                Slot::Fresh(input.clone(), fresh)
            };
            slots.push(slot);
        }
        let layouts: Vec<MediaLayout> = slots
            .iter()
            .map(|s| match s {
                Slot::Known(k) => k.layout.clone(),
                Slot::Fresh(_, Fresh::Image(p)) => MediaLayout::Image(p.grid),
                Slot::Fresh(_, Fresh::Video(v)) => MediaLayout::Video(v.layout.clone()),
            })
            .collect();
        let (_, _, ids) = processor.tokenize_media(messages, &layouts, add_generation_prompt)?;
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

        let t = Instant::now();
        let total: usize = slots
            .iter()
            .map(|s| match s {
                Slot::Fresh(_, Fresh::Image(p)) => p.pixels.n_views,
                Slot::Fresh(_, Fresh::Video(v)) => v.pixels.n_views,
                Slot::Known(_) => 0,
            })
            .sum();
        let mut done = 0;
        let mut images = Vec::with_capacity(slots.len());
        let mut encoded = Vec::new();
        for slot in slots {
            let (input, prepared) = match slot {
                Slot::Known(k) => {
                    images.push(k);
                    continue;
                }
                Slot::Fresh(input, prepared) => (input, prepared),
            };
            let (layout, views, features) = match prepared {
                Fresh::Image(prepared) => {
                    let pixels = crate::engine::pixels_tensor(&prepared.pixels, model.device())?;
                    let features = model.encode_images(&pixels, None)?;
                    let embedding =
                        ImageEmbedding::new(prepared.grid.rows, prepared.grid.cols, features)?;
                    (
                        MediaLayout::Image(embedding.grid),
                        prepared.pixels.n_views,
                        embedding.features,
                    )
                }
                Fresh::Video(video) => {
                    let embedding = self.engine.encode_video(&video)?;
                    (
                        MediaLayout::Video(embedding.layout),
                        video.pixels.n_views,
                        embedding.features,
                    )
                }
            };
            let known = KnownImage {
                input,
                layout,
                features,
            };
            images.push(known.clone());
            encoded.push(known);
            done += views;
            let progress = Progress::EncodeViews { done, total };
            if on_event(Event::Progress(progress)).is_break() {
                return Err(Error::InvalidOption {
                    name: "callback",
                    reason: "stopped before generation started".into(),
                });
            }
        }
        timings.vision = t.elapsed();
        Ok(Prepared {
            ids,
            images,
            encoded,
            image_tokens,
        })
    }

    /// Runs the part of `ids` the cache does not hold. Unless `whole`, the last token is run
    /// even when cached, since generation needs its logits. On error the cache is rewound.
    fn run_prompt(&mut self, ids: &[u32], features: Option<&Tensor>, whole: bool) -> Result<Run> {
        let engine = self.engine.clone();
        let model = &engine.inner.model;
        let prefix = self.reusable_prefix(ids, whole);
        self.cache.truncate(prefix);
        self.cached_ids.truncate(prefix);
        if prefix == ids.len() {
            return Ok(Run {
                logits: Vec::new(),
                ran: 0,
            });
        }
        let image_id = model.image_token_id();
        let first_image_row = ids[..prefix].iter().filter(|id| **id == image_id).count();
        let embeds = model.embed(&ids[prefix..], features, first_image_row)?;
        let logits = match model.forward(&embeds, &mut self.cache) {
            Ok(l) => l.to_vec1::<f32>()?,
            Err(e) => {
                self.cache.truncate(prefix);
                return Err(e);
            }
        };
        self.cached_ids = ids.to_vec();
        Ok(Run {
            logits,
            ran: ids.len() - prefix,
        })
    }
}

impl Session {
    /// How many leading tokens of `ids` the cache already holds and need not run again.
    fn reusable_prefix(&self, ids: &[u32], whole: bool) -> usize {
        let prefix = common_prefix(&self.cached_ids, ids);
        if prefix == ids.len() && !whole {
            // Generation needs the logits of the last prompt token, so it is run again.
            prefix.saturating_sub(1)
        } else {
            prefix
        }
    }
}

/// An image or video of a conversation being prepared.
enum Slot {
    /// Features already computed (earlier turn, supplied or prefilled).
    Known(KnownImage),
    /// Preprocessed now; the vision tower has still to run.
    Fresh(Media, Fresh),
}

/// Pixels of an image or video preprocessed for this turn.
enum Fresh {
    Image(PreparedImage),
    Video(PreparedVideo),
}

/// The outcome of running a prompt.
struct Run {
    /// Logits after the last prompt token (empty when nothing ran).
    logits: Vec<f32>,
    /// Prompt tokens run.
    ran: usize,
}

/// Every image's features, in conversation order: `[views, image_seq_len, D_t]`.
fn concat_features(images: &[KnownImage]) -> Result<Option<Tensor>> {
    if images.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&Tensor> = images.iter().map(|i| &i.features).collect();
    Ok(Some(Tensor::cat(&parts, 0)?))
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
