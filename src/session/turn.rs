//! A conversation about to be sent → its [`Chunk`]s, with the features of every image and
//! video in the session: known ones are reused (read earlier in this conversation, supplied,
//! or found in the shared embedding cache), new ones are preprocessed and encoded.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use super::Session;
use crate::error::{Error, Result};
use crate::features::MediaFeatures;
use crate::generate::{Event, Progress, Timings};
use crate::processor::chat::{Content, Message};
use crate::processor::chunk::{self, Chunk, MediaHasher, MediaId};
use crate::processor::image::ImageInput;
use crate::processor::media::video::{VideoInput, VideoSource};
use crate::processor::pixels::PreparedPixels;
use crate::processor::MediaLayout;

/// An image or a video of a conversation, as the caller gave it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Media {
    Image(ImageInput),
    Video(VideoInput),
}

/// An input the session has read, and what it was found to be.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    input: Media,
    /// For a file: its length and modification time when read, so that a file changed on disk
    /// is read again.
    stamp: Option<(u64, SystemTime)>,
    id: MediaId,
    layout: MediaLayout,
}

/// A conversation prepared for the model.
pub(super) struct Turn {
    /// The prompt; media chunks' pixels are dropped once encoded.
    pub(crate) chunks: Vec<Chunk>,
    /// Prompt tokens.
    pub(crate) tokens: usize,
    /// Of which image-feature slots.
    pub(crate) image_tokens: usize,
}

impl Session {
    /// Keeps `features` for the next messages containing `input`. Supplied features have no
    /// pixels to hash, so they are named by a fresh id: equal only to themselves.
    pub(super) fn supply(&mut self, input: Media, features: MediaFeatures) {
        static SUPPLIED: AtomicU64 = AtomicU64::new(0);
        let mut h = MediaHasher::new("supplied", "");
        h.field(&SUPPLIED.fetch_add(1, Ordering::Relaxed).to_le_bytes())
            .field(&std::process::id().to_le_bytes());
        let id = h.finish();
        self.seen.push(Seen {
            stamp: stamp(&input),
            input,
            id,
            layout: features.layout.clone(),
        });
        self.features.insert(id, features);
    }

    /// Reads `messages`' images and videos (reusing what is known), renders and tokenizes the
    /// conversation into chunks, and encodes the media whose features are new. Fills
    /// `timings.preprocess` and, when the vision tower ran, `timings.vision`.
    pub(super) fn prepare_turn(
        &mut self,
        messages: &[Message],
        add_generation_prompt: bool,
        timings: &mut Timings,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Turn> {
        let engine = self.engine.clone();
        let inner = &engine.inner;
        let t = Instant::now();
        let mut media = Vec::new();
        // Media to be encoded in this turn: a picture shown twice is encoded once.
        let mut to_encode = HashSet::new();
        for content in messages.iter().flat_map(|m| m.content.iter()) {
            let input = match content {
                Content::Image(img) => Media::Image(img.clone()),
                Content::Video(v) => Media::Video(v.clone()),
                Content::Text(_) => continue,
            };
            media.push(self.read(input, &mut to_encode)?);
        }
        let (_, _, chunks) =
            inner
                .processor
                .chunk_conversation(messages, media, add_generation_prompt)?;
        let tokens = chunk::len(&chunks);
        let image_id = inner.model.image_token_id();
        let image_tokens = chunk::media(&chunks)
            .flat_map(|m| m.tokens.iter())
            .filter(|id| **id == image_id)
            .count();
        if tokens >= inner.context_length {
            return Err(Error::ContextOverflow {
                tokens,
                image_tokens,
                limit: inner.context_length,
            });
        }
        timings.preprocess = t.elapsed();
        let chunks = self.encode(chunks, timings, on_event)?;
        Ok(Turn {
            chunks,
            tokens,
            image_tokens,
        })
    }

    /// One input → its id, layout, and its views when the vision tower must run on it.
    fn read(
        &mut self,
        input: Media,
        to_encode: &mut HashSet<MediaId>,
    ) -> Result<(MediaId, MediaLayout, Option<PreparedPixels>)> {
        let stamp = stamp(&input);
        let known = self
            .seen
            .iter()
            .rev()
            .find(|s| s.input == input && s.stamp == stamp)
            .filter(|s| self.features.contains_key(&s.id) || to_encode.contains(&s.id));
        if let Some(s) = known {
            return Ok((s.id, s.layout.clone(), None));
        }
        let processor = &self.engine.inner.processor;
        let loaded = match &input {
            Media::Image(img) => processor.load_image(img, &self.processor)?,
            Media::Video(v) => processor.load_video(v, &self.processor)?,
        };
        let id = loaded.id();
        let layout = loaded.layout().clone();
        self.seen.push(Seen {
            input,
            stamp,
            id,
            layout: layout.clone(),
        });
        if self.features.contains_key(&id) || to_encode.contains(&id) {
            return Ok((id, layout, None));
        }
        if let Some(found) = self.shared.as_ref().and_then(|c| c.get(&self.engine, &id)) {
            if found.layout == layout {
                self.features.insert(id, found);
                return Ok((id, layout, None));
            }
        }
        to_encode.insert(id);
        Ok((id, layout, Some(loaded.pixels()?)))
    }

    /// Runs the vision tower on the media chunks that carry pixels, keeping their features in
    /// the session (and the shared cache) and dropping the pixels.
    fn encode(
        &mut self,
        mut chunks: Vec<Chunk>,
        timings: &mut Timings,
        on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> Result<Vec<Chunk>> {
        let total: usize = chunk::media(&chunks)
            .filter_map(|m| m.pixels.as_ref())
            .map(|p| p.n_views)
            .sum();
        if total == 0 {
            return Ok(chunks);
        }
        let t = Instant::now();
        let model = &self.engine.inner.model;
        let mut done = 0;
        for c in &mut chunks {
            let Chunk::Media(m) = c else { continue };
            let Some(pixels) = m.pixels.take() else {
                continue;
            };
            let views = crate::engine::pixels_tensor(&pixels, model.device())?;
            let features =
                MediaFeatures::new(m.layout.clone(), model.encode_images(&views, None)?)?;
            if let Some(shared) = &self.shared {
                shared.put(&self.engine, &m.id, &features);
            }
            self.features.insert(m.id, features);
            done += pixels.n_views;
            let progress = Progress::EncodeViews { done, total };
            if on_event(Event::Progress(progress)).is_break() {
                return Err(Error::InvalidOption {
                    name: "callback",
                    reason: "stopped before generation started".into(),
                });
            }
        }
        timings.vision = t.elapsed();
        Ok(chunks)
    }
}

/// A file input's length and modification time; `None` for inputs held in memory.
fn stamp(input: &Media) -> Option<(u64, SystemTime)> {
    let path: &Path = match input {
        Media::Image(ImageInput::Path(p)) => p,
        Media::Video(VideoInput {
            source: VideoSource::Path(p),
            ..
        }) => p,
        _ => return None,
    };
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
