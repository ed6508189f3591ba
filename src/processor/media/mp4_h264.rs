//! An MP4 or MOV file with H.264 video → the sampled frames, upright, as RGB.
//!
//! The container is read with the `mp4` crate; the H.264 samples go, in decode order, through
//! OpenH264 (built from source), and only the pictures whose presentation index is sampled are
//! converted to RGB and kept. Other codecs are named in the error, with the workaround.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use image::RgbImage;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::formats::YUVSource;
use openh264::OpenH264API;

use super::image::ImageLimits;
use super::video::{FrameFn, SampledVideo};
use crate::error::{Error, Result};
use crate::processor::video::{sample_indices, FrameSampling, VideoMetadata};

/// The sampled frames of an MP4/MOV file.
pub(crate) fn load(
    path: &Path,
    sampling: &FrameSampling,
    limits: &ImageLimits,
    each: &FrameFn<'_>,
) -> Result<SampledVideo> {
    let origin = path.display().to_string();
    let bad = |problem: String| Error::Video {
        origin: origin.clone(),
        problem,
    };
    let file = File::open(path).map_err(|e| bad(e.to_string()))?;
    let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
    // The codec of every video track, read before the demuxer, which knows only a few.
    let codecs = video_codecs(&mut BufReader::new(
        File::open(path).map_err(|e| bad(e.to_string()))?,
    ))
    .map_err(|e| bad(format!("truncated or corrupt MP4/MOV container ({e})")))?;
    let Some(codec) = codecs.first() else {
        return Err(bad("has no video track".into()));
    };
    if codec != "avc1" && codec != "avc3" {
        return Err(bad(format!(
            "its video is {} (`{codec}`), but only H.264 is decoded; convert it (`ffmpeg -i {} -c:v libx264 out.mp4`) or pass a directory of frames",
            codec_name(codec),
            path.display()
        )));
    }
    let mut reader = mp4::Mp4Reader::read_header(BufReader::new(file), size)
        .map_err(|e| bad(format!("truncated or corrupt MP4/MOV container ({e})")))?;
    let track = reader
        .tracks()
        .values()
        .filter(|t| t.trak.mdia.minf.stbl.stsd.avc1.is_some())
        .min_by_key(|t| t.track_id())
        .ok_or_else(|| bad("has no H.264 video track the demuxer can read".into()))?;
    let track_id = track.track_id();
    let total = track.sample_count() as usize;
    let avcc = track
        .trak
        .mdia
        .minf
        .stbl
        .stsd
        .avc1
        .as_ref()
        .map(|a| a.avcc.clone())
        .ok_or_else(|| bad("the H.264 track has no decoder configuration (avcC)".into()))?;
    let (width, height) = (u32::from(track.width()), u32::from(track.height()));
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(bad(format!(
            "{width}x{height} is {pixels} pixels, more than the limit of {}",
            limits.max_pixels
        )));
    }
    let timescale = track.trak.mdia.mdhd.timescale;
    let duration = if timescale == 0 {
        0.0
    } else {
        track.trak.mdia.mdhd.duration as f64 / f64::from(timescale)
    };
    if total == 0 || duration <= 0.0 {
        return Err(bad(format!(
            "the video track is empty ({total} frames, {duration} s)"
        )));
    }
    // As transformers' PyAV reader: the average rate over the whole track.
    let metadata = VideoMetadata {
        total_frames: total,
        fps: total as f64 / duration,
        duration,
    };
    let m = &track.trak.tkhd.matrix;
    let rotation = Rotation::from_matrix(m.a, m.b, m.c, m.d);
    let indices = sample_indices(&metadata, sampling);

    // No flush after each sample: with B-frames a picture is output only once every picture
    // before it in presentation order is, and forcing it out early breaks the order.
    let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
    let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| bad(format!("cannot start the H.264 decoder ({e})")))?;
    let length_size = usize::from(avcc.length_size_minus_one & 3) + 1;
    let mut annexb = Vec::new();
    for nal in avcc
        .sequence_parameter_sets
        .iter()
        .chain(avcc.picture_parameter_sets.iter())
    {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(&nal.bytes);
    }
    let mut kept: Vec<RgbImage> = Vec::with_capacity(indices.len());
    // Pictures come out in presentation order; counting them says which to keep.
    let mut shown = 0usize;
    let mut take = |yuv: &dyn YUVSource, kept: &mut Vec<RgbImage>| -> Result<()> {
        if indices.get(kept.len()) == Some(&shown) {
            kept.push(each(rotation.apply(yuv_to_rgb(yuv)))?);
        }
        shown += 1;
        Ok(())
    };
    for sample_id in 1..=total as u32 {
        if kept.len() == indices.len() {
            break;
        }
        let sample = reader
            .read_sample(track_id, sample_id)
            .map_err(|e| {
                bad(format!(
                    "frame {sample_id} cannot be read ({e}); the file may be truncated"
                ))
            })?
            .ok_or_else(|| {
                bad(format!(
                    "frame {sample_id} is missing; the file may be truncated"
                ))
            })?;
        // The parameter sets from `avcC` go in front of the first sample only.
        if sample_id > 1 {
            annexb.clear();
        }
        to_annexb(&sample.bytes, length_size, &mut annexb)
            .map_err(|e| bad(format!("frame {sample_id}: {e}")))?;
        let picture = decoder
            .decode(&annexb)
            .map_err(|e| bad(format!("frame {sample_id} does not decode as H.264 ({e})")))?;
        if let Some(yuv) = picture {
            take(&yuv, &mut kept)?;
        }
    }
    if kept.len() < indices.len() {
        let rest = decoder
            .flush_remaining()
            .map_err(|e| bad(format!("the last frames do not decode ({e})")))?;
        for yuv in &rest {
            take(yuv, &mut kept)?;
        }
    }
    let shown = shown;
    if kept.len() < indices.len() {
        return Err(bad(format!(
            "only {shown} of {total} frames decoded; the file may be truncated or damaged"
        )));
    }
    Ok(SampledVideo {
        metadata,
        indices,
        frames: kept,
    })
}

/// Rewrites length-prefixed NAL units (MP4's AVC format) as Annex B (start codes), which is
/// what the decoder reads.
fn to_annexb(
    sample: &[u8],
    length_size: usize,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let mut rest = sample;
    while !rest.is_empty() {
        if rest.len() < length_size {
            return Err("a NAL unit length is cut off".into());
        }
        let len = rest[..length_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[length_size..];
        if len > rest.len() {
            return Err(format!(
                "a NAL unit claims {len} bytes but {} remain",
                rest.len()
            ));
        }
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    Ok(())
}

/// YUV 4:2:0 → RGB with the BT.601 limited-range matrix and each chroma sample covering its
/// 2×2 block: what FFmpeg's `rgb24` conversion (and so PyAV's `to_ndarray`) gives for
/// untagged video, to within rounding.
fn yuv_to_rgb(yuv: &dyn YUVSource) -> RgbImage {
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let (y, u, v) = (yuv.y(), yuv.u(), yuv.v());
    let mut out = vec![0u8; w * h * 3];
    for row in 0..h {
        for col in 0..w {
            let yv = f32::from(y[row * sy + col]) - 16.0;
            let uv = f32::from(u[(row / 2) * su + col / 2]) - 128.0;
            let vv = f32::from(v[(row / 2) * sv + col / 2]) - 128.0;
            let r = 1.164_383 * yv + 1.596_027 * vv;
            let g = 1.164_383 * yv - 0.391_762 * uv - 0.812_968 * vv;
            let b = 1.164_383 * yv + 2.017_232 * uv;
            let px = &mut out[(row * w + col) * 3..][..3];
            px[0] = r.round().clamp(0.0, 255.0) as u8;
            px[1] = g.round().clamp(0.0, 255.0) as u8;
            px[2] = b.round().clamp(0.0, 255.0) as u8;
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out).unwrap_or_else(|| RgbImage::new(1, 1))
}

/// The display rotation of a track, from its `tkhd` matrix (multiples of 90°, clockwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    None,
    Cw90,
    Cw180,
    Cw270,
}

impl Rotation {
    /// Reads the 16.16 fixed-point `a b / c d` part of the matrix as players do.
    fn from_matrix(a: i32, b: i32, c: i32, d: i32) -> Rotation {
        const ONE: i32 = 1 << 16;
        match (a, b, c, d) {
            (0, ONE, x, 0) if x == -ONE => Rotation::Cw90,
            (x, 0, 0, y) if x == -ONE && y == -ONE => Rotation::Cw180,
            (0, x, ONE, 0) if x == -ONE => Rotation::Cw270,
            _ => Rotation::None,
        }
    }

    fn apply(self, img: RgbImage) -> RgbImage {
        match self {
            Rotation::None => img,
            Rotation::Cw90 => image::imageops::rotate90(&img),
            Rotation::Cw180 => image::imageops::rotate180(&img),
            Rotation::Cw270 => image::imageops::rotate270(&img),
        }
    }
}

/// The sample-entry type (`avc1`, `hvc1`, `vp09`, …) of every video track, in file order.
fn video_codecs<R: Read + Seek>(r: &mut R) -> std::io::Result<Vec<String>> {
    let end = r.seek(SeekFrom::End(0))?;
    let moov = find_box(r, 0, end, b"moov")?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no `moov` box"))?;
    let mut codecs = Vec::new();
    let mut at = moov.0;
    while let Some((start, stop)) = find_box(r, at, moov.1, b"trak")? {
        at = stop;
        let Some(mdia) = find_box(r, start, stop, b"mdia")? else {
            continue;
        };
        let Some(hdlr) = find_box(r, mdia.0, mdia.1, b"hdlr")? else {
            continue;
        };
        // version/flags (4), pre_defined (4), handler_type (4)
        r.seek(SeekFrom::Start(hdlr.0 + 8))?;
        let mut handler = [0u8; 4];
        r.read_exact(&mut handler)?;
        if &handler != b"vide" {
            continue;
        }
        let entry = match find_box(r, mdia.0, mdia.1, b"minf")? {
            Some(minf) => match find_box(r, minf.0, minf.1, b"stbl")? {
                Some(stbl) => find_box(r, stbl.0, stbl.1, b"stsd")?,
                None => None,
            },
            None => None,
        };
        let Some(stsd) = entry else { continue };
        // version/flags (4), entry count (4), then the first entry's size (4) and type (4)
        r.seek(SeekFrom::Start(stsd.0 + 12))?;
        let mut kind = [0u8; 4];
        r.read_exact(&mut kind)?;
        codecs.push(String::from_utf8_lossy(&kind).into_owned());
    }
    Ok(codecs)
}

/// The payload range `(start, end)` of the first box of type `kind` among the boxes between
/// `from` and `to`.
fn find_box<R: Read + Seek>(
    r: &mut R,
    from: u64,
    to: u64,
    kind: &[u8; 4],
) -> std::io::Result<Option<(u64, u64)>> {
    let corrupt =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut at = from;
    while at + 8 <= to {
        r.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 8];
        r.read_exact(&mut header)?;
        let mut size = u64::from(u32::from_be_bytes([
            header[0], header[1], header[2], header[3],
        ]));
        let mut payload = at + 8;
        if size == 1 {
            let mut large = [0u8; 8];
            r.read_exact(&mut large)?;
            size = u64::from_be_bytes(large);
            payload += 8;
        } else if size == 0 {
            size = to - at;
        }
        if size < payload - at || at + size > to {
            return Err(corrupt(
                "a box runs past its parent; the file may be truncated",
            ));
        }
        if &header[4..8] == kind {
            return Ok(Some((payload, at + size)));
        }
        at += size;
    }
    Ok(None)
}

/// A reader's name for a sample-entry type.
fn codec_name(fourcc: &str) -> &'static str {
    match fourcc {
        "hvc1" | "hev1" => "HEVC (H.265)",
        "vp08" => "VP8",
        "vp09" => "VP9",
        "av01" => "AV1",
        "mp4v" => "MPEG-4 Part 2",
        "apcn" | "apch" | "apcs" | "apco" | "ap4h" => "Apple ProRes",
        "jpeg" | "mjpa" | "mjpb" => "Motion JPEG",
        _ => "an unsupported codec",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_nal_units_become_annexb() {
        let mut out = Vec::new();
        to_annexb(&[0, 0, 0, 2, 9, 9, 0, 0, 0, 1, 7], 4, &mut out).unwrap();
        assert_eq!(out, vec![0, 0, 0, 1, 9, 9, 0, 0, 0, 1, 7]);
        let err = to_annexb(&[0, 0, 0, 9, 1], 4, &mut Vec::new()).unwrap_err();
        assert!(err.contains("claims 9 bytes"), "{err}");
        assert!(to_annexb(&[0, 0], 4, &mut Vec::new()).is_err());
    }

    #[test]
    fn rotation_comes_from_the_matrix() {
        const ONE: i32 = 1 << 16;
        assert_eq!(Rotation::from_matrix(ONE, 0, 0, ONE), Rotation::None);
        assert_eq!(Rotation::from_matrix(0, ONE, -ONE, 0), Rotation::Cw90);
        assert_eq!(Rotation::from_matrix(-ONE, 0, 0, -ONE), Rotation::Cw180);
        assert_eq!(Rotation::from_matrix(0, -ONE, ONE, 0), Rotation::Cw270);
    }
}
