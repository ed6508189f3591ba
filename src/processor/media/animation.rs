//! An animated GIF, PNG (APNG) or WebP → the sampled frames, composited as the format
//! specifies, with transparency over white.
//!
//! The frames' delays give the timing: the duration is their sum and the rate is the frame
//! count over the duration. Frames without delays are taken 10 times a second, the rate
//! browsers show them at.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use image::codecs::gif::GifDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, Frames, ImageDecoder, RgbImage, RgbaImage};

use super::image::ImageLimits;
use super::video::{FrameFn, SampledVideo};
use crate::error::{Error, Result};
use crate::processor::video::{sample_indices, FrameSampling, VideoMetadata};

/// Rate of an animation whose frames carry no delay.
const UNTIMED_RATE: f64 = 10.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gif,
    Apng,
    WebP,
}

fn kind(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"GIF8") {
        Some(Kind::Gif)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Apng)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some(Kind::WebP)
    } else {
        None
    }
}

/// Whether the animation at `path` has at least `n` frames (false for still images and
/// anything unreadable).
pub(crate) fn frame_count_at_least(path: &Path, head: &[u8], n: usize) -> bool {
    let Some(kind) = kind(head) else {
        return false;
    };
    let Ok(file) = File::open(path) else {
        return false;
    };
    let reader = BufReader::new(file);
    match kind {
        Kind::Gif => GifDecoder::new(reader)
            .map(|d| d.into_frames().take(n).filter(|f| f.is_ok()).count() >= n)
            .unwrap_or(false),
        Kind::Apng => PngDecoder::new(reader)
            .and_then(|d| d.is_apng())
            .unwrap_or(false),
        Kind::WebP => WebPDecoder::new(reader)
            .map(|d| d.has_animation())
            .unwrap_or(false),
    }
}

/// Opens the animation and returns its frame iterator; `limits` is checked against the
/// canvas size before any frame is decoded.
fn frames<'a>(path: &Path, kind: Kind, limits: &ImageLimits) -> Result<Frames<'a>> {
    let origin = path.display().to_string();
    let bad = |problem: String| Error::Video {
        origin: origin.clone(),
        problem,
    };
    let mut file = File::open(path).map_err(|e| bad(e.to_string()))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| bad(e.to_string()))?;
    let reader = BufReader::new(file);
    let check = |(w, h): (u32, u32)| -> Result<()> {
        let pixels = u64::from(w) * u64::from(h);
        if pixels == 0 {
            return Err(bad(format!("the animation is empty ({w}x{h})")));
        }
        if pixels > limits.max_pixels {
            return Err(bad(format!(
                "{w}x{h} is {pixels} pixels, more than the limit of {}",
                limits.max_pixels
            )));
        }
        Ok(())
    };
    let corrupt = |e: image::ImageError| bad(format!("truncated or corrupt animation ({e})"));
    Ok(match kind {
        Kind::Gif => {
            let d = GifDecoder::new(reader).map_err(corrupt)?;
            check(d.dimensions())?;
            d.into_frames()
        }
        Kind::Apng => {
            let d = PngDecoder::new(reader).map_err(corrupt)?;
            check(d.dimensions())?;
            if !d.is_apng().map_err(corrupt)? {
                return Err(bad("is a still PNG, not an animation".into()));
            }
            d.apng().map_err(corrupt)?.into_frames()
        }
        Kind::WebP => {
            let d = WebPDecoder::new(reader).map_err(corrupt)?;
            check(d.dimensions())?;
            if !d.has_animation() {
                return Err(bad("is a still WebP, not an animation".into()));
            }
            d.into_frames()
        }
    })
}

/// The sampled frames of an animated GIF, PNG or WebP.
pub(crate) fn load(
    path: &Path,
    sampling: &FrameSampling,
    limits: &ImageLimits,
    each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    let origin = path.display().to_string();
    let head = super::video::read_head(path).map_err(|e| Error::Video {
        origin: origin.clone(),
        problem: e.to_string(),
    })?;
    let Some(kind) = kind(&head) else {
        return Err(Error::Video {
            origin,
            problem: "not an MP4/MOV video, an animated GIF, PNG or WebP, or a directory of frames"
                .into(),
        });
    };
    let corrupt = |e: image::ImageError| Error::Video {
        origin: origin.clone(),
        problem: format!("truncated or corrupt animation ({e})"),
    };
    // First pass: the frame count and timing, needed before choosing frames.
    let mut total = 0usize;
    let mut millis = 0f64;
    for frame in frames(path, kind, limits)? {
        let frame = frame.map_err(corrupt)?;
        let (numer, denom) = frame.delay().numer_denom_ms();
        if denom > 0 {
            millis += f64::from(numer) / f64::from(denom);
        }
        total += 1;
    }
    let metadata = if millis > 0.0 {
        VideoMetadata {
            total_frames: total,
            fps: total as f64 / (millis / 1000.0),
            duration: millis / 1000.0,
        }
    } else {
        VideoMetadata::from_rate(total, UNTIMED_RATE)
    };
    let indices = sample_indices(&metadata, sampling);
    // Second pass: composite every frame (each depends on the previous), keep the sampled.
    let mut kept = Vec::with_capacity(indices.len());
    let mut wanted = indices.iter().copied().peekable();
    for (i, frame) in frames(path, kind, limits)?.enumerate() {
        let Some(&next) = wanted.peek() else {
            break;
        };
        let frame = frame.map_err(corrupt)?;
        if i == next {
            kept.push(each(over_white(frame.into_buffer()))?);
            wanted.next();
        }
    }
    if kept.len() != indices.len() {
        return Err(Error::Video {
            origin,
            problem: format!(
                "the animation changed while reading it: {} of {} frames",
                kept.len(),
                indices.len()
            ),
        });
    }
    Ok(SampledVideo {
        metadata,
        indices,
        frames: kept,
    })
}

/// RGBA → RGB with transparency composited onto white (rounded to nearest).
fn over_white(rgba: RgbaImage) -> RgbImage {
    let (w, h) = rgba.dimensions();
    let data = rgba
        .as_raw()
        .chunks_exact(4)
        .flat_map(|p| {
            let a = u32::from(p[3]);
            [p[0], p[1], p[2]].map(|c| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8)
        })
        .collect();
    RgbImage::from_raw(w, h, data).unwrap_or_else(|| RgbImage::new(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_behind_transparency() {
        let img = RgbaImage::from_raw(2, 1, vec![10, 20, 30, 255, 0, 0, 0, 0]).unwrap();
        assert_eq!(over_white(img).into_raw(), vec![10, 20, 30, 255, 255, 255]);
    }

    #[test]
    fn formats_are_sniffed() {
        assert!(kind(b"GIF89a") == Some(Kind::Gif));
        assert!(kind(b"RIFF\0\0\0\0WEBPVP8X") == Some(Kind::WebP));
        assert!(kind(b"hello").is_none());
    }
}
