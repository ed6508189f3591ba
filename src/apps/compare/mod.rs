//! `compare`: screenshots of two or more software tools → a side-by-side comparison card
//! (name, category, pitch, price, facts, claims, ratings, the panel's ship figure, the community
//! vote, the reviewer scorecard from four angles, differences and a verdict).
//!
//! Data flow: each screenshot is read and hashed ([`Shot`]), opened once by an
//! [`Extractor`] (the model encodes it, or takes its features from the [`EmbeddingCache`], and
//! prefills it once), then asked one constrained question per [`Field`] on forks of that
//! session. The cards are then compared (`assemble`) and rendered ([`render`]) without the
//! model.
//!
//! ```no_run
//! use vlm::apps::compare::{compare, render, CompareOptions};
//! use vlm::{Engine, EngineOptions, ImageInput, ModelSource};
//!
//! let engine = Engine::load(ModelSource::dir("SmolVLM2-256M-Video-Instruct"), EngineOptions::default())?;
//! let shots = [ImageInput::Path("cursor.png".into()), ImageInput::Path("zed.png".into())];
//! let card = compare(&engine, &shots, &CompareOptions::default())?;
//! println!("{}", render::markdown(&card));
//! # Ok::<(), vlm::Error>(())
//! ```

mod assemble;
mod card;
pub mod extract;
pub mod render;
mod scorecard;

use std::io::Cursor;
use std::path::PathBuf;
use std::time::{Duration, Instant};

// The embedding cache is the library's (sessions, compare and the server share it); named
// here too, where compare's callers have always found it.
pub use crate::embedding_cache::EmbeddingCache;
pub use card::{
    card_schema, Comparison, Difference, Field, KeyFact, PricingModel, Source, ToolCard,
    CARD_SCHEMA_V1, CARD_SCHEMA_VERSION,
};
pub use extract::{Answer, Extractor, ModelExtractor, Opened, Question};
pub use scorecard::{Angle, Scorecard};

use crate::{Engine, Error, ImageInput, ProcessorOptions, Result};

/// How to run a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// Keep image embeddings on disk and reuse them.
    pub cache: bool,
    /// Where; `None` = [`EmbeddingCache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Size cap of the cache directory.
    pub cache_max_bytes: u64,
    /// How screenshots are preprocessed; `None` = the engine's
    /// [`Engine::processor_options`] (screenshots read best with image splitting on).
    pub processor: Option<ProcessorOptions>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            cache: true,
            cache_dir: None,
            cache_max_bytes: crate::embedding_cache::DEFAULT_MAX_BYTES,
            processor: None,
        }
    }
}

/// A screenshot, read and hashed.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// The image as given.
    input: ImageInput,
    /// Its name, size and hash.
    pub source: Source,
}

impl Shot {
    /// Reads `input` (the `index`-th screenshot) and checks it is an image a model can take.
    pub fn read(input: &ImageInput, index: usize) -> Result<Shot> {
        let (file, bytes) = match input {
            ImageInput::Path(path) => {
                let bytes = std::fs::read(path).map_err(|e| Error::Image {
                    origin: path.display().to_string(),
                    problem: format!("cannot be read: {e}"),
                })?;
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                );
                (name, bytes)
            }
            ImageInput::Encoded(bytes) => (format!("image {}", index + 1), bytes.clone()),
            ImageInput::Rgb8 { pixels, .. } => (format!("image {}", index + 1), pixels.clone()),
        };
        if !matches!(input, ImageInput::Rgb8 { .. }) {
            check_image(&bytes).map_err(|problem| Error::Image {
                origin: match input {
                    ImageInput::Path(p) => p.display().to_string(),
                    _ => file.clone(),
                },
                problem,
            })?;
        }
        Ok(Shot {
            input: input.clone(),
            source: Source {
                file,
                bytes: bytes.len() as u64,
                sha256: crate::embedding_cache::sha256_hex(&bytes),
            },
        })
    }
}

/// The screenshots named by `paths`: files as given, directories as their image files in name
/// order. Returns the screenshots and the directory entries left out (not PNG, JPEG, WebP or
/// GIF by extension), for a caller to warn about.
pub fn screenshots_at(paths: &[PathBuf]) -> Result<(Vec<ImageInput>, Vec<PathBuf>)> {
    let mut shots = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        if path.is_dir() {
            let listing =
                crate::processor::media::folder::image_files(path).map_err(|e| Error::Image {
                    origin: path.display().to_string(),
                    problem: format!("cannot list the directory: {e}"),
                })?;
            if listing.images.is_empty() {
                return Err(Error::Image {
                    origin: path.display().to_string(),
                    problem: "has no PNG, JPEG, WebP or GIF files".into(),
                });
            }
            shots.extend(listing.images.into_iter().map(ImageInput::Path));
            skipped.extend(listing.skipped);
        } else {
            shots.push(ImageInput::Path(path.clone()));
        }
    }
    Ok((shots, skipped))
}

/// A PNG, JPEG, WebP or GIF whose header reads.
fn check_image(bytes: &[u8]) -> std::result::Result<(), String> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    match reader.format() {
        Some(
            image::ImageFormat::Png
            | image::ImageFormat::Jpeg
            | image::ImageFormat::WebP
            | image::ImageFormat::Gif,
        ) => {}
        _ => return Err("not a PNG, JPEG, WebP or GIF image".into()),
    }
    reader
        .into_dimensions()
        .map(|_| ())
        .map_err(|e| format!("cannot be decoded: {e}"))
}

/// What a comparison reports while it runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CompareEvent<'a> {
    /// Work on a screenshot begins.
    Screenshot {
        /// Its position, from 0.
        index: usize,
        /// Screenshots in all.
        total: usize,
        /// Its file name.
        name: &'a str,
    },
    /// A screenshot's image features are ready (encoded, or read from the cache).
    Opened {
        /// Its position.
        index: usize,
        /// How it went.
        opened: Opened,
    },
    /// A field of a screenshot's card was answered.
    Field {
        /// The screenshot's position.
        index: usize,
        /// The field.
        field: Field,
        /// Fields of this screenshot answered so far.
        done: usize,
        /// Fields per screenshot.
        total: usize,
    },
    /// Something the reader should know; also kept in [`Comparison::warnings`].
    Warning(&'a str),
}

/// Where a comparison's time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompareStats {
    /// Image preprocessing, vision tower and connector, all screenshots.
    pub encode: Duration,
    /// Prefill of the image prefixes.
    pub prefill: Duration,
    /// The field questions (their prefill and decode).
    pub questions: Duration,
    /// Screenshots whose features came from the embedding cache.
    pub cache_hits: usize,
    /// Screenshots run through the vision encoder.
    pub encoded: usize,
    /// Questions asked.
    pub fields: usize,
    /// Answers cut off before their constraint was complete (left `null`).
    pub unfinished: usize,
}

/// Compares the tools in `shots` (two or more screenshots) with the model.
pub fn compare(engine: &Engine, shots: &[ImageInput], opts: &CompareOptions) -> Result<Comparison> {
    compare_with_progress(engine, shots, opts, &mut |_| {})
}

/// [`compare`], reporting progress to `on_event`.
pub fn compare_with_progress(
    engine: &Engine,
    shots: &[ImageInput],
    opts: &CompareOptions,
    on_event: &mut dyn FnMut(CompareEvent<'_>),
) -> Result<Comparison> {
    let mut extractor = ModelExtractor::new(engine, opts);
    compare_with(&mut extractor, shots, on_event)
}

/// The comparison pipeline over any [`Extractor`]: read and check every screenshot, extract
/// each card, then compare. Fails before any extraction when a screenshot is unusable.
pub fn compare_with(
    extractor: &mut dyn Extractor,
    shots: &[ImageInput],
    on_event: &mut dyn FnMut(CompareEvent<'_>),
) -> Result<Comparison> {
    if shots.len() < 2 {
        return Err(Error::InvalidOption {
            name: "screenshots",
            reason: format!("compare needs two or more screenshots, got {}", shots.len()),
        });
    }
    let shots = shots
        .iter()
        .enumerate()
        .map(|(i, s)| Shot::read(s, i))
        .collect::<Result<Vec<_>>>()?;
    let questions = extract::questions();
    let mut stats = CompareStats::default();
    let mut warnings = Vec::new();
    let mut cards: Vec<ToolCard> = Vec::with_capacity(shots.len());
    for (index, shot) in shots.iter().enumerate() {
        let name = &shot.source.file;
        on_event(CompareEvent::Screenshot {
            index,
            total: shots.len(),
            name,
        });
        let same = shots[..index]
            .iter()
            .position(|s| s.source.sha256 == shot.source.sha256);
        if let Some(first) = same {
            let warning = format!(
                "{name} is the same image as {}; its card repeats that one",
                shots[first].source.file
            );
            on_event(CompareEvent::Warning(&warning));
            warnings.push(warning);
            let card = ToolCard {
                source: shot.source.clone(),
                ..cards[first].clone()
            };
            cards.push(card);
            continue;
        }
        let opened = extractor.open(shot)?;
        if opened.from_cache {
            stats.cache_hits += 1;
        } else {
            stats.encoded += 1;
        }
        stats.encode += opened.encode;
        stats.prefill += opened.prefill;
        on_event(CompareEvent::Opened { index, opened });
        let mut card = ToolCard {
            source: shot.source.clone(),
            ..ToolCard::default()
        };
        for (i, question) in questions.iter().enumerate() {
            let t = Instant::now();
            let answer = extractor.answer(question)?;
            stats.questions += t.elapsed();
            stats.fields += 1;
            let field = question.field;
            let problem = if answer.complete {
                extract::apply(&mut card, field, &answer.text).err()
            } else {
                stats.unfinished += 1;
                Some("the answer ran out of tokens".to_string())
            };
            if let Some(problem) = problem {
                let warning = format!(
                    "{name}: {} left as not visible ({problem})",
                    field.label().to_lowercase()
                );
                on_event(CompareEvent::Warning(&warning));
                warnings.push(warning);
            }
            on_event(CompareEvent::Field {
                index,
                field,
                done: i + 1,
                total: questions.len(),
            });
        }
        for problem in extract::ground_scorecard(&mut card) {
            let warning = format!("{name}: {problem}");
            on_event(CompareEvent::Warning(&warning));
            warnings.push(warning);
        }
        cards.push(card);
    }
    let mut comparison = assemble::assemble(cards);
    comparison.warnings = warnings;
    comparison.stats = stats;
    Ok(comparison)
}
