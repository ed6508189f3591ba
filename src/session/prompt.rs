//! A turn's chunks → the KV cache: runs the positions the cache does not already hold (the
//! shared prefix found chunk by chunk) and returns the logits generation starts from.

use candle_core::Tensor;

use super::Session;
use crate::error::{Error, Result};
use crate::processor::chunk::{self, Chunk};

impl Session {
    /// Runs the positions of `chunks` the cache does not hold. Unless `whole`, the last token
    /// is run even when cached, since generation needs its logits. On error the cache is
    /// rewound.
    pub(super) fn run_prompt(&mut self, chunks: &[Chunk], whole: bool) -> Result<Run> {
        let engine = self.engine.clone();
        let model = &engine.inner.model;
        let prefix = self.reusable_prefix(chunks, whole);
        self.cache.truncate(prefix);
        chunk::truncate(&mut self.cached, prefix);
        let ids = chunk::flatten(chunks);
        if prefix == ids.len() {
            return Ok(Run {
                logits: Vec::new(),
                ran: 0,
            });
        }
        let (features, first_row) = self.features_after(chunks, prefix)?;
        let embeds = model.embed(&ids[prefix..], features.as_ref(), first_row)?;
        let logits = match model.forward(&embeds, &mut self.cache) {
            Ok(l) => l.to_vec1::<f32>()?,
            Err(e) => {
                self.cache.truncate(prefix);
                return Err(e);
            }
        };
        self.cached = chunks.to_vec();
        Ok(Run {
            logits,
            ran: ids.len() - prefix,
        })
    }

    /// How many leading positions of `chunks` the cache already holds and need not run again.
    pub(super) fn reusable_prefix(&self, chunks: &[Chunk], whole: bool) -> usize {
        let prefix = chunk::common_prefix(&self.cached, chunks);
        if prefix == chunk::len(chunks) && !whole {
            // Generation needs the logits of the last prompt token, so it is run again.
            prefix.saturating_sub(1)
        } else {
            prefix
        }
    }

    /// The image tokens of the media from position `start` on, `[views, image_seq_len, D_t]`,
    /// and how many feature rows of the first of them lie before `start`.
    fn features_after(&self, chunks: &[Chunk], start: usize) -> Result<(Option<Tensor>, usize)> {
        let image_id = self.engine.inner.model.image_token_id();
        let mut parts = Vec::new();
        let mut first_row = 0;
        let mut at = 0;
        for c in chunks {
            let len = c.tokens().len();
            if let Chunk::Media(m) = c {
                if at + len > start {
                    let known = self
                        .features
                        .get(&m.id)
                        .ok_or_else(|| Error::InvalidOption {
                            name: "session",
                            reason: format!("no features for media {}", m.id),
                        })?;
                    if parts.is_empty() && at < start {
                        let before = &m.tokens[..start - at];
                        first_row = before.iter().filter(|t| **t == image_id).count();
                    }
                    parts.push(&known.features);
                }
            }
            at += len;
        }
        if parts.is_empty() {
            return Ok((None, 0));
        }
        Ok((Some(Tensor::cat(&parts, 0)?), first_row))
    }
}

/// The outcome of running a prompt.
pub(super) struct Run {
    /// Logits after the last prompt token (empty when nothing ran).
    pub logits: Vec<f32>,
    /// Prompt tokens run.
    pub ran: usize,
}
