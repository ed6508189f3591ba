//! A prompt's token ids + its images' and videos' identities → [`Chunk`]s: runs of text, and
//! one span per image or video named by a content hash of its pixels and preprocessing.
//!
//! Chunks are what the model reads and what a KV cache is matched against: two prompts share a
//! cached prefix only where their text tokens are equal *and* their images are the same
//! pixels prepared the same way. Image tokens alone cannot tell two screenshots of one size
//! apart, so matching token ids would reuse the keys and values of the wrong picture.

use std::fmt;

use sha2::{Digest, Sha256};

use super::pixels::PreparedPixels;
use super::MediaLayout;
use crate::error::{Error, Result};

/// What an image or video is to the model: the SHA-256 of its decoded pixels (a video's
/// sampled frames and their timestamps) and of every setting that shapes its views. Equal ids
/// mean equal features, whatever file or buffer the pixels came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId([u8; 32]);

impl MediaId {
    /// The raw digest.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for MediaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Twelve hex digits tell ids apart in logs and test failures.
        write!(f, "MediaId({})", &self.to_string()[..12])
    }
}

/// Builds a [`MediaId`] from the parts that decide an image's or video's features.
pub(crate) struct MediaHasher(Sha256);

impl MediaHasher {
    /// A hasher for one `kind` of media ("image", "video") prepared with `settings`, a
    /// complete description of the preprocessing (its `Debug` rendering).
    pub(crate) fn new(kind: &str, settings: &str) -> Self {
        let mut h = Sha256::new();
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(settings.as_bytes());
        h.update([0]);
        MediaHasher(h)
    }

    /// Adds a length-prefixed field, so that `ab|c` and `a|bc` differ.
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub(crate) fn finish(self) -> MediaId {
        MediaId(self.0.finalize().into())
    }
}

/// One piece of a prepared prompt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Chunk {
    /// Prompt text, as token ids.
    Text(Vec<u32>),
    /// One image or video.
    Media(MediaChunk),
}

/// An image's or video's span of the prompt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaChunk {
    /// What the pixels are.
    pub(crate) id: MediaId,
    /// Its tile grid, or its frames' timestamps.
    pub(crate) layout: MediaLayout,
    /// Its tokens: the markers around its views and one image token per feature row.
    pub(crate) tokens: Vec<u32>,
    /// Its normalised views `[views, 3, M, M]`, for the vision tower; `None` where the
    /// features were already known, so the pixels were never resized.
    pub(crate) pixels: Option<PreparedPixels>,
}

impl Chunk {
    /// The chunk's token ids.
    pub(crate) fn tokens(&self) -> &[u32] {
        match self {
            Chunk::Text(ids) => ids,
            Chunk::Media(m) => &m.tokens,
        }
    }

    /// The media id, for a media chunk.
    #[cfg(test)]
    fn media_id(&self) -> Option<MediaId> {
        match self {
            Chunk::Text(_) => None,
            Chunk::Media(m) => Some(m.id),
        }
    }
}

/// Positions (tokens) in `chunks`.
pub fn len(chunks: &[Chunk]) -> usize {
    chunks.iter().map(|c| c.tokens().len()).sum()
}

/// All token ids of `chunks`, in order.
pub(crate) fn flatten(chunks: &[Chunk]) -> Vec<u32> {
    chunks
        .iter()
        .flat_map(|c| c.tokens().iter().copied())
        .collect()
}

/// Splits a prompt's `ids` into text and media chunks. `media` lists each image or video in
/// prompt order with its id, layout, image-token count (views × image_seq_len) and pixels.
/// A media span runs from the `fake` token that opens its first view to the `fake` token that
/// closes its last one; text between a video's frames ("Frame from 00:02:") belongs to it.
pub(crate) fn split(
    ids: &[u32],
    media: Vec<(MediaId, MediaLayout, usize, Option<PreparedPixels>)>,
    image: u32,
    fake: u32,
) -> Result<Vec<Chunk>> {
    let bad = |reason: String| Error::InvalidOption {
        name: "prompt",
        reason,
    };
    let mut chunks = Vec::with_capacity(2 * media.len() + 1);
    let mut cur = 0;
    let n_media = media.len();
    for (k, (id, layout, slots, pixels)) in media.into_iter().enumerate() {
        let first = ids[cur..]
            .iter()
            .position(|&t| t == image)
            .map(|p| cur + p)
            .ok_or_else(|| {
                bad(format!(
                    "image or video {} of {n_media} has no image tokens",
                    k + 1
                ))
            })?;
        let start = ids[cur..first]
            .iter()
            .rposition(|&t| t == fake)
            .map(|p| cur + p)
            .ok_or_else(|| {
                bad(format!(
                    "image or video {} is not opened by a marker",
                    k + 1
                ))
            })?;
        let mut seen = 0;
        let mut last = first;
        for (i, &t) in ids.iter().enumerate().skip(first) {
            if t == image {
                seen += 1;
                last = i;
                if seen == slots {
                    break;
                }
            }
        }
        if seen != slots || slots == 0 {
            return Err(bad(format!(
                "image or video {} needs {slots} image tokens, the prompt has {seen}",
                k + 1
            )));
        }
        let end = ids[last + 1..]
            .iter()
            .position(|&t| t == fake)
            .map(|p| last + 1 + p + 1)
            .ok_or_else(|| {
                bad(format!(
                    "image or video {} is not closed by a marker",
                    k + 1
                ))
            })?;
        if start > cur {
            chunks.push(Chunk::Text(ids[cur..start].to_vec()));
        }
        chunks.push(Chunk::Media(MediaChunk {
            id,
            layout,
            tokens: ids[start..end].to_vec(),
            pixels,
        }));
        cur = end;
    }
    if let Some(extra) = ids[cur..].iter().position(|&t| t == image) {
        return Err(bad(format!(
            "image token at position {} belongs to no image or video",
            cur + extra
        )));
    }
    if cur < ids.len() {
        chunks.push(Chunk::Text(ids[cur..].to_vec()));
    }
    Ok(chunks)
}

/// One prompt position as a cache sees it: a text token, or a position inside a media span
/// (same id, same offset ⇒ same keys and values given the same prefix).
#[derive(PartialEq)]
enum Position<'a> {
    Text(u32),
    Media(&'a MediaId, u32),
}

fn positions(chunks: &[Chunk]) -> impl Iterator<Item = Position<'_>> {
    chunks.iter().flat_map(|c| {
        let id = match c {
            Chunk::Text(_) => None,
            Chunk::Media(m) => Some(&m.id),
        };
        c.tokens().iter().map(move |&t| match id {
            None => Position::Text(t),
            Some(id) => Position::Media(id, t),
        })
    })
}

/// How many leading positions `cached` and `new` share: equal text tokens, and media tokens of
/// equal ids. A different image of the same size ends the shared prefix at its first token.
pub(crate) fn common_prefix(cached: &[Chunk], new: &[Chunk]) -> usize {
    positions(cached)
        .zip(positions(new))
        .take_while(|(a, b)| a == b)
        .count()
}

/// Keeps the first `n` positions of `chunks` (a media chunk cut short keeps its id: the cache
/// holds a prefix of that media's keys and values).
pub(crate) fn truncate(chunks: &mut Vec<Chunk>, n: usize) {
    let mut left = n;
    let mut keep = 0;
    for c in chunks.iter_mut() {
        if left == 0 {
            break;
        }
        let len = c.tokens().len();
        if len > left {
            match c {
                Chunk::Text(ids) => ids.truncate(left),
                Chunk::Media(m) => m.tokens.truncate(left),
            }
        }
        left -= len.min(left);
        keep += 1;
    }
    chunks.truncate(keep);
}

/// The media chunks of `chunks`, in order.
pub(crate) fn media(chunks: &[Chunk]) -> impl Iterator<Item = &MediaChunk> {
    chunks.iter().filter_map(|c| match c {
        Chunk::Media(m) => Some(m),
        Chunk::Text(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::prompt::Grid;

    const IMG: u32 = 9;
    const FAKE: u32 = 8;

    fn id(n: u8) -> MediaId {
        let mut h = MediaHasher::new("image", "test");
        h.field(&[n]);
        h.finish()
    }

    fn single(n: u8) -> (MediaId, MediaLayout, usize, Option<PreparedPixels>) {
        (
            id(n),
            MediaLayout::Image(Grid { rows: 0, cols: 0 }),
            2,
            None,
        )
    }

    // <bos> hi <fake><global><img><img><fake> q <fake><global><img><img><fake> end
    const TWO: [u32; 15] = [
        1, 2, FAKE, 7, IMG, IMG, FAKE, 3, FAKE, 7, IMG, IMG, FAKE, 4, 5,
    ];

    #[test]
    fn split_finds_each_media_span() {
        let chunks = split(&TWO, vec![single(1), single(2)], IMG, FAKE).unwrap();
        let kinds: Vec<(Option<MediaId>, Vec<u32>)> = chunks
            .iter()
            .map(|c| (c.media_id(), c.tokens().to_vec()))
            .collect();
        assert_eq!(
            kinds,
            [
                (None, vec![1, 2]),
                (Some(id(1)), vec![FAKE, 7, IMG, IMG, FAKE]),
                (None, vec![3]),
                (Some(id(2)), vec![FAKE, 7, IMG, IMG, FAKE]),
                (None, vec![4, 5]),
            ]
        );
        assert_eq!(flatten(&chunks), TWO);
    }

    #[test]
    fn split_refuses_token_counts_that_disagree() {
        assert!(
            split(&TWO, vec![single(1)], IMG, FAKE).is_err(),
            "extra image"
        );
        let three = vec![single(1), single(2), single(3)];
        assert!(split(&TWO, three, IMG, FAKE).is_err(), "missing image");
        let mut wide = single(1);
        wide.2 = 3;
        assert!(split(&TWO, vec![wide, single(2)], IMG, FAKE).is_err());
        assert!(split(&[1, IMG, FAKE], vec![single(1)], IMG, FAKE).is_err());
    }

    #[test]
    fn a_different_image_ends_the_shared_prefix() {
        let a = split(&TWO, vec![single(1), single(2)], IMG, FAKE).unwrap();
        let same = split(&TWO, vec![single(1), single(2)], IMG, FAKE).unwrap();
        let other = split(&TWO, vec![single(1), single(3)], IMG, FAKE).unwrap();
        assert_eq!(common_prefix(&a, &same), TWO.len());
        // The token ids are equal throughout; only the second image's id differs.
        assert_eq!(flatten(&a), flatten(&other));
        assert_eq!(common_prefix(&a, &other), 8);
    }

    #[test]
    fn text_split_differently_still_matches() {
        let a = vec![Chunk::Text(vec![1, 2]), Chunk::Text(vec![3])];
        let b = vec![Chunk::Text(vec![1, 2, 3, 4])];
        assert_eq!(common_prefix(&a, &b), 3);
    }

    #[test]
    fn truncate_keeps_a_prefix_of_positions() {
        let mut chunks = split(&TWO, vec![single(1), single(2)], IMG, FAKE).unwrap();
        let full = chunks.clone();
        truncate(&mut chunks, 5);
        assert_eq!(flatten(&chunks), TWO[..5]);
        assert_eq!(chunks[1].media_id(), Some(id(1)));
        assert_eq!(common_prefix(&chunks, &full), 5);
        truncate(&mut chunks, 0);
        assert!(chunks.is_empty());
    }

    #[test]
    fn ids_depend_on_every_field_boundary() {
        let mut a = MediaHasher::new("image", "s");
        a.field(b"ab").field(b"c");
        let mut b = MediaHasher::new("image", "s");
        b.field(b"a").field(b"bc");
        assert_ne!(a.finish(), b.finish());
        let mut c = MediaHasher::new("video", "s");
        c.field(b"ab").field(b"c");
        let mut d = MediaHasher::new("image", "s");
        d.field(b"ab").field(b"c");
        assert_ne!(c.finish(), d.finish());
    }
}
