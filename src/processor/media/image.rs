//! Image input (file, encoded bytes or raw RGB) → decoded, upright 8-bit pixels in the source's channel layout.
//!
//! Decoding stops at the header when the image is larger than [`ImageLimits`] allows. The
//! result keeps its alpha channel; [`LoadedImage::to_rgb`] removes it as the chosen
//! [`AlphaMode`] says, before any resizing.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::error::{ImageError, LimitErrorKind};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::colour_key::colour_key;
use crate::error::{Error, Result};

/// An image to process: a file, the bytes of an encoded file, or raw RGB pixels. Nothing is
/// read or decoded until the message that holds it is sent.
///
/// ```
/// use vlm::ImageInput;
///
/// let from_disk = ImageInput::Path("photo.jpg".into());
/// let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/images/landscape.png"))?;
/// let from_memory = ImageInput::Encoded(png);
/// let camera_frame = ImageInput::rgb8(4, 2, vec![0; 4 * 2 * 3])?;
/// # let _ = (from_disk, from_memory, camera_frame);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageInput {
    /// A PNG, JPEG, WebP or GIF file (the format is read from the content, not the name).
    Path(PathBuf),
    /// The bytes of a PNG, JPEG, WebP or GIF file.
    Encoded(Vec<u8>),
    /// Raw pixels, row-major, 3 bytes per pixel.
    Rgb8 {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height * 3` bytes.
        pixels: Vec<u8>,
    },
}

impl ImageInput {
    /// Raw RGB8 pixels (a camera frame, a decoded video frame), checked now rather than at
    /// the next send: the buffer must hold exactly `width * height * 3` bytes, row-major,
    /// and the image must be non-empty and within the default [`ImageLimits`].
    ///
    /// ```
    /// # use vlm::ImageInput;
    /// let frame = ImageInput::rgb8(2, 1, vec![255, 0, 0, 0, 0, 255])?;
    /// assert!(matches!(frame, ImageInput::Rgb8 { width: 2, height: 1, .. }));
    ///
    /// let err = ImageInput::rgb8(2, 2, vec![0; 11]).unwrap_err();
    /// assert_eq!(err.to_string(), "image (raw RGB 2x2): pixel buffer has 11 bytes, expected 12 (2x2x3)");
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn rgb8(width: u32, height: u32, pixels: Vec<u8>) -> Result<ImageInput> {
        let check = check_size(width, height, &ImageLimits::default())
            .and_then(|()| check_rgb_len(width, height, pixels.len()));
        match check {
            Ok(()) => Ok(ImageInput::Rgb8 {
                width,
                height,
                pixels,
            }),
            Err(problem) => Err(Error::Image {
                origin: format!("(raw RGB {width}x{height})"),
                problem,
            }),
        }
    }
}

/// Bounds on what [`load_image`] accepts ([`crate::ProcessorOptions::image_limits`]).
///
/// ```
/// use vlm::{synthetic::Preset, Engine, EngineOptions, Error, ImageInput, ImageLimits, Message, ModelSource, ProcessorOptions};
///
/// let processor = ProcessorOptions { image_limits: ImageLimits { max_pixels: 1_000 }, ..Default::default() };
/// let opts = EngineOptions { processor, ..Default::default() };
/// let engine = Engine::load(ModelSource::synthetic(Preset::Tiny), opts)?;
/// let big = ImageInput::rgb8(100, 100, vec![0; 100 * 100 * 3])?;
/// let refused = engine.session().send(Message::user([big], "Hi"), &Default::default());
/// assert!(matches!(refused, Err(Error::Image { .. })));
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest `width * height` decoded; checked from the header, before the pixels.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_pixels: 100_000_000,
        }
    }
}

/// What happens to transparency when an image becomes the RGB the model sees
/// ([`crate::ProcessorOptions::alpha`]).
///
/// A transformers user gets [`AlphaMode::Drop`]: the SmolVLM model cards open pictures with
/// `transformers.image_utils.load_image`, and `processor.apply_chat_template` does the same
/// for `{"type": "image", "path"/"url": ...}`, which calls Pillow's `convert("RGB")` before
/// the image processor sees the picture. [`AlphaMode::OverWhite`] is what the image processor
/// itself does with an RGBA picture handed to it directly.
///
/// ```
/// use vlm::processor::image::{load_image, AlphaMode, ImageInput, ImageLimits};
///
/// let png = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alpha/rgba.png"))?;
/// let img = load_image(&ImageInput::Encoded(png), &ImageLimits::default())?;
/// let kept = img.to_rgb(AlphaMode::Drop)?;
/// let flattened = img.to_rgb(AlphaMode::OverWhite)?;
/// // The top-right block is fully transparent over saturated green.
/// assert_eq!(kept.get_pixel(30, 10).0, [0, 255, 0]);
/// assert_eq!(flattened.get_pixel(30, 10).0, [255, 255, 255]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlphaMode {
    /// Pillow's `convert("RGB")`: alpha is dropped and the colour under a transparent pixel
    /// is kept (the default). A picture whose transparency is a single colour (a PNG `tRNS`
    /// key, a palette with one fully transparent entry, a GIF transparent index) keeps that
    /// colour as its transparency through `convert("RGB")`, and transformers' processor then
    /// composites it: every pixel of that colour turns white, as here.
    #[default]
    Drop,
    /// transformers' `convert_to_rgb` on a picture with alpha: composited onto opaque white
    /// with Pillow's integer blend.
    OverWhite,
}

/// Channels of a [`LoadedImage`], named after the Pillow modes they stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PixelLayout {
    /// One grey byte per pixel.
    L,
    /// Grey and alpha.
    La,
    /// Red, green, blue.
    Rgb,
    /// Red, green, blue and straight (not premultiplied) alpha.
    Rgba,
}

impl PixelLayout {
    /// Bytes per pixel.
    pub(crate) fn channels(self) -> usize {
        match self {
            PixelLayout::L => 1,
            PixelLayout::La => 2,
            PixelLayout::Rgb => 3,
            PixelLayout::Rgba => 4,
        }
    }
}

/// A decoded image, EXIF orientation applied, with 8-bit samples.
///
/// Sources with more than 8 bits per sample are reduced as Pillow reads them: 16-bit
/// RGB, RGBA and grey-alpha PNGs keep the high byte, 16-bit grey PNGs (Pillow's `I;16`)
/// saturate at 255. Palettes are expanded, with transparency becoming alpha; a single
/// transparent colour is remembered as well (see [`AlphaMode::Drop`]). CMYK JPEGs
/// arrive as RGB, converted by the decoder as Adobe-inverted CMYK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    origin: String,
    width: u32,
    height: u32,
    layout: PixelLayout,
    pixels: Vec<u8>,
    /// The one transparent colour of a keyed PNG or GIF (see [`AlphaMode::Drop`]).
    colour_key: Option<[u8; 3]>,
}

impl LoadedImage {
    /// Where the image came from, as used in error messages.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Channel layout of [`LoadedImage::pixels`].
    pub(crate) fn layout(&self) -> PixelLayout {
        self.layout
    }

    /// Row-major samples, [`PixelLayout::channels`] bytes per pixel.
    pub(crate) fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// The one transparent colour of a keyed PNG or GIF, if it has one.
    pub(crate) fn colour_key(&self) -> Option<[u8; 3]> {
        self.colour_key
    }

    /// The image as RGB, its alpha removed as `alpha` says.
    ///
    /// Ref: Pillow `Image.convert("RGB")` ([`AlphaMode::Drop`]); transformers
    /// `image_transforms.convert_to_rgb` on a PIL image ([`AlphaMode::OverWhite`]):
    /// `alpha_composite(white, image.convert("RGBA")).convert("RGB")` when the image has
    /// alpha. The blend is Pillow's integer one (`AlphaComposite.c`), so results match to the
    /// byte.
    pub fn to_rgb(&self, alpha: AlphaMode) -> Result<RgbImage> {
        let flatten = |rgb: [u8; 3], a: u8| match alpha {
            AlphaMode::Drop => rgb,
            AlphaMode::OverWhite => over_white(rgb, a),
        };
        let mut data = match self.layout {
            PixelLayout::Rgb => self.pixels.clone(),
            PixelLayout::L => self.pixels.iter().flat_map(|&v| [v, v, v]).collect(),
            PixelLayout::La => self
                .pixels
                .chunks_exact(2)
                .flat_map(|p| flatten([p[0], p[0], p[0]], p[1]))
                .collect(),
            PixelLayout::Rgba => self
                .pixels
                .chunks_exact(4)
                .flat_map(|p| flatten([p[0], p[1], p[2]], p[3]))
                .collect(),
        };
        if let (AlphaMode::Drop, Some(key)) = (alpha, self.colour_key) {
            for pixel in data.chunks_exact_mut(3) {
                if pixel == key {
                    pixel.copy_from_slice(&[255; 3]);
                }
            }
        }
        RgbImage::from_raw(self.width, self.height, data).ok_or_else(|| Error::Image {
            origin: self.origin.clone(),
            problem: format!(
                "{}x{} pixel buffer is inconsistent",
                self.width, self.height
            ),
        })
    }
}

/// `ImagingAlphaComposite` with an opaque white destination, for one pixel.
fn over_white(rgb: [u8; 3], alpha: u8) -> [u8; 3] {
    if alpha == 0 {
        return [255; 3];
    }
    const PRECISION_BITS: u32 = 7;
    let shift_div_255 = |a: u32| ((a >> 8) + a) >> 8;
    let src_a = u32::from(alpha);
    let blend = 255 * (255 - src_a);
    let outa255 = src_a * 255 + blend;
    let coef1 = src_a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    rgb.map(|c| {
        let tmp = u32::from(c) * coef1 + 255 * coef2;
        (shift_div_255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
    })
}

/// Decodes an image and applies its EXIF orientation.
///
/// PNG, JPEG, WebP and GIF are recognised from their content; a GIF yields its first frame.
/// The pixel count is checked against `limits` from the header, before any pixel is decoded.
///
/// ```
/// # use vlm::processor::image::{load_image, ImageInput, ImageLimits};
/// let input = ImageInput::Rgb8 { width: 2, height: 1, pixels: vec![255, 0, 0, 0, 0, 255] };
/// let img = load_image(&input, &ImageLimits::default()).unwrap();
/// assert_eq!((img.width(), img.height()), (2, 1));
/// ```
pub fn load_image(input: &ImageInput, limits: &ImageLimits) -> Result<LoadedImage> {
    let (origin, decoded) = match input {
        ImageInput::Path(path) => (path.display().to_string(), decode_file(path, limits)),
        ImageInput::Encoded(bytes) => (
            format!("({} bytes in memory)", bytes.len()),
            decode(Cursor::new(bytes.as_slice()), bytes, limits),
        ),
        ImageInput::Rgb8 {
            width,
            height,
            pixels,
        } => (
            format!("(raw RGB {width}x{height})"),
            raw_rgb(*width, *height, pixels, limits),
        ),
    };
    match decoded {
        Ok(img) => Ok(LoadedImage { origin, ..img }),
        Err(problem) => Err(Error::Image { origin, problem }),
    }
}

fn decode_file(path: &Path, limits: &ImageLimits) -> std::result::Result<LoadedImage, String> {
    let mut file = File::open(path).map_err(|e| describe_io(&e))?;
    let mut header = Vec::with_capacity(32);
    (&mut file)
        .take(32)
        .read_to_end(&mut header)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .map_err(|e| describe_io(&e))?;
    decode(BufReader::new(file), &header, limits)
}

fn raw_rgb(
    width: u32,
    height: u32,
    pixels: &[u8],
    limits: &ImageLimits,
) -> std::result::Result<LoadedImage, String> {
    check_size(width, height, limits)?;
    check_rgb_len(width, height, pixels.len())?;
    Ok(LoadedImage {
        origin: String::new(),
        width,
        height,
        layout: PixelLayout::Rgb,
        pixels: pixels.to_vec(),
        colour_key: None,
    })
}

/// Decodes `reader`; `header` is the start of the same stream. Errors are one-line problems.
fn decode<R: BufRead + Seek>(
    mut reader: R,
    header: &[u8],
    limits: &ImageLimits,
) -> std::result::Result<LoadedImage, String> {
    let colour_key = colour_key(&mut reader, header);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| describe_io(&e))?;
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|e| describe_io(&e))?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif)) => {
            f
        }
        Some(other) => {
            return Err(format!(
                "{} images are not supported (PNG, JPEG, WebP or GIF expected)",
                format!("{other:?}").to_uppercase()
            ))
        }
        None => return Err("not a PNG, JPEG, WebP or GIF image".to_string()),
    };
    let format_name = match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        _ => "GIF",
    };
    let mut decoder_limits = Limits::default();
    // A side longer than the pixel budget is over it whatever the other side is.
    let max_side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    decoder_limits.max_image_width = Some(max_side);
    decoder_limits.max_image_height = Some(max_side);
    // Room for the largest decoded buffer (16-bit RGBA) plus the decoders' own state.
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(decoder_limits);

    let describe = |e: ImageError| describe_image_error(&e, format_name, limits);
    let mut decoder = reader.into_decoder().map_err(describe)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    let orientation = decoder.orientation().map_err(describe)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(describe)?;
    img.apply_orientation(orientation);
    let loaded = to_loaded(img, is_png_grey16(header))?;
    Ok(LoadedImage {
        colour_key,
        ..loaded
    })
}

/// Whether a PNG header declares 16-bit grey. With a tRNS key the decoder reports such an
/// image as grey-alpha, but Pillow reads it as `I;16` plus a transparency key, so its grey
/// saturates instead of keeping the high byte.
fn is_png_grey16(header: &[u8]) -> bool {
    header.starts_with(b"\x89PNG\r\n\x1a\n")
        && header.get(12..16) == Some(b"IHDR")
        && header.get(24) == Some(&16)
        && header.get(25) == Some(&0)
}

fn to_loaded(img: DynamicImage, png_grey16: bool) -> std::result::Result<LoadedImage, String> {
    let (width, height) = (img.width(), img.height());
    let high_byte = |v: &u16| (v >> 8) as u8;
    // Pillow's I;16 → RGB conversion (`I16_RGB`) clips instead of scaling.
    let saturate = |v: u16| v.min(255) as u8;
    let (layout, pixels) = match img {
        DynamicImage::ImageLuma8(b) => (PixelLayout::L, b.into_raw()),
        DynamicImage::ImageLumaA8(b) => (PixelLayout::La, b.into_raw()),
        DynamicImage::ImageRgb8(b) => (PixelLayout::Rgb, b.into_raw()),
        DynamicImage::ImageRgba8(b) => (PixelLayout::Rgba, b.into_raw()),
        DynamicImage::ImageLuma16(b) => (PixelLayout::L, b.iter().map(|&v| saturate(v)).collect()),
        DynamicImage::ImageLumaA16(b) if png_grey16 => (
            PixelLayout::La,
            b.chunks_exact(2)
                .flat_map(|p| [saturate(p[0]), high_byte(&p[1])])
                .collect(),
        ),
        DynamicImage::ImageLumaA16(b) => (PixelLayout::La, b.iter().map(high_byte).collect()),
        DynamicImage::ImageRgb16(b) => (PixelLayout::Rgb, b.iter().map(high_byte).collect()),
        DynamicImage::ImageRgba16(b) => (PixelLayout::Rgba, b.iter().map(high_byte).collect()),
        other => return Err(format!("unsupported pixel format {:?}", other.color())),
    };
    Ok(LoadedImage {
        origin: String::new(),
        width,
        height,
        layout,
        pixels,
        colour_key: None,
    })
}

/// A raw RGB8 buffer holds exactly `width * height * 3` bytes.
fn check_rgb_len(width: u32, height: u32, len: usize) -> std::result::Result<(), String> {
    let expected = u64::from(width) * u64::from(height) * 3;
    if len as u64 != expected {
        return Err(format!(
            "pixel buffer has {len} bytes, expected {expected} ({width}x{height}x3)"
        ));
    }
    Ok(())
}

fn check_size(width: u32, height: u32, limits: &ImageLimits) -> std::result::Result<(), String> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 {
        return Err(format!("image is empty ({width}x{height})"));
    }
    if pixels > limits.max_pixels {
        return Err(format!(
            "{width}x{height} is {pixels} pixels, more than the limit of {}",
            limits.max_pixels
        ));
    }
    Ok(())
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory, not an image file".to_string(),
        std::io::ErrorKind::UnexpectedEof => "image data is truncated".to_string(),
        _ => one_line(&e.to_string()),
    }
}

fn describe_image_error(e: &ImageError, format: &str, limits: &ImageLimits) -> String {
    match e {
        ImageError::IoError(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof => format!("{format} data is truncated"),
            _ => format!("reading {format} data: {}", describe_io(io)),
        },
        ImageError::Decoding(d) => format!(
            "truncated or corrupt {format} data ({})",
            one_line(&d.to_string())
        ),
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => {
                format!("more pixels than the limit of {}", limits.max_pixels)
            }
            _ => format!(
                "decoding needs more memory than allowed ({})",
                one_line(&l.to_string())
            ),
        },
        ImageError::Unsupported(u) => format!(
            "unsupported {format} variant ({})",
            one_line(&u.to_string())
        ),
        other => one_line(&other.to_string()),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::png::PngEncoder;
    use image::{ExtendedColorType, ImageEncoder};

    fn png(width: u32, height: u32, color: ExtendedColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PngEncoder::new(&mut out)
            .write_image(data, width, height, color)
            .unwrap();
        out
    }

    fn load(bytes: Vec<u8>) -> Result<LoadedImage> {
        load_image(&ImageInput::Encoded(bytes), &ImageLimits::default())
    }

    fn problem(r: Result<LoadedImage>) -> String {
        match r {
            Err(Error::Image { problem, .. }) => problem,
            other => panic!("expected an image error, got {other:?}"),
        }
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// Inserts a chunk right after IHDR (which ends at byte 33).
    fn with_chunk(png: &[u8], kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
        [&png[..33], &chunk, &png[33..]].concat()
    }

    #[test]
    fn decodes_png_layouts() {
        let rgb = load(png(2, 1, ExtendedColorType::Rgb8, &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(
            (rgb.layout(), rgb.pixels()),
            (PixelLayout::Rgb, &[1, 2, 3, 4, 5, 6][..])
        );
        let l = load(png(2, 1, ExtendedColorType::L8, &[7, 9])).unwrap();
        assert_eq!(l.layout(), PixelLayout::L);
        assert_eq!(
            l.to_rgb(AlphaMode::Drop).unwrap().into_raw(),
            vec![7, 7, 7, 9, 9, 9]
        );
    }

    #[test]
    fn alpha_is_dropped_or_goes_over_white() {
        let img = load(png(
            3,
            1,
            ExtendedColorType::Rgba8,
            &[10, 20, 30, 0, 10, 20, 30, 255, 0, 0, 0, 128],
        ))
        .unwrap();
        assert_eq!(img.layout(), PixelLayout::Rgba);
        // Transparent → white, opaque → unchanged, half black → Pillow's 127.
        assert_eq!(
            img.to_rgb(AlphaMode::OverWhite).unwrap().into_raw(),
            vec![255, 255, 255, 10, 20, 30, 127, 127, 127]
        );
        // Pillow's convert("RGB") keeps the colour under every pixel.
        assert_eq!(
            img.to_rgb(AlphaMode::Drop).unwrap().into_raw(),
            vec![10, 20, 30, 10, 20, 30, 0, 0, 0]
        );
    }

    /// The encoder takes 16-bit samples in native byte order.
    fn ne(samples: &[u16]) -> Vec<u8> {
        samples.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    #[test]
    fn sixteen_bit_png_follows_pillow() {
        // Grey (Pillow I;16) saturates; RGB keeps the high byte.
        let grey = load(png(2, 1, ExtendedColorType::L16, &ne(&[200, 256]))).unwrap();
        assert_eq!(grey.pixels(), &[200, 255]);
        let rgb = load(png(
            1,
            1,
            ExtendedColorType::Rgb16,
            &ne(&[0x1234, 0xABCD, 0x00FF]),
        ))
        .unwrap();
        assert_eq!(rgb.pixels(), &[0x12, 0xAB, 0]);
        // A tRNS key on 16-bit grey makes that grey transparent, and the rest still saturates.
        let plain = png(2, 1, ExtendedColorType::L16, &ne(&[300, 301]));
        let keyed = load(with_chunk(&plain, b"tRNS", &300u16.to_be_bytes())).unwrap();
        assert_eq!(keyed.layout(), PixelLayout::La);
        assert_eq!(keyed.pixels(), &[255, 0, 255, 255]);
    }

    #[test]
    fn exif_orientation_is_applied() {
        // Big-endian TIFF with one IFD entry: Orientation (0x0112) = 6, rotate 90° clockwise.
        let exif = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0,
            0, 0, 0,
        ];
        let plain = png(2, 1, ExtendedColorType::Rgb8, &[1, 1, 1, 2, 2, 2]);
        let img = load(with_chunk(&plain, b"eXIf", &exif)).unwrap();
        assert_eq!((img.width(), img.height()), (1, 2));
        assert_eq!(img.pixels(), &[1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn truncated_png_is_an_error() {
        let bytes = png(16, 16, ExtendedColorType::Rgb8, &[90; 16 * 16 * 3]);
        let p = problem(load(bytes[..bytes.len() - 20].to_vec()));
        assert!(p.contains("PNG") && p.contains("truncated"), "{p}");
    }

    #[test]
    fn non_image_bytes_are_an_error() {
        let p = problem(load(b"hello, this is not an image".to_vec()));
        assert_eq!(p, "not a PNG, JPEG, WebP or GIF image");
        assert!(problem(load(Vec::new())).contains("not a PNG"));
    }

    #[test]
    fn header_over_the_pixel_limit_is_rejected_before_decoding() {
        let mut bytes = png(4, 4, ExtendedColorType::Rgb8, &[0; 48]);
        // Claim 60000x60000 in IHDR, with a valid CRC, over a 4x4 payload.
        bytes[16..20].copy_from_slice(&60000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&60000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let p = problem(load(bytes));
        assert_eq!(
            p,
            "60000x60000 is 3600000000 pixels, more than the limit of 100000000"
        );
        let small = load_image(
            &ImageInput::Encoded(png(20, 20, ExtendedColorType::L8, &[0; 400])),
            &ImageLimits { max_pixels: 100 },
        );
        assert!(problem(small).contains("more than the limit of 100"));
    }

    #[test]
    fn raw_rgb_is_checked() {
        let bad = ImageInput::Rgb8 {
            width: 2,
            height: 2,
            pixels: vec![0; 11],
        };
        let err = load_image(&bad, &ImageLimits::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "image (raw RGB 2x2): pixel buffer has 11 bytes, expected 12 (2x2x3)"
        );
        let empty = ImageInput::Rgb8 {
            width: 0,
            height: 5,
            pixels: vec![],
        };
        assert!(problem(load_image(&empty, &ImageLimits::default())).contains("empty"));
    }

    #[test]
    fn missing_file_names_the_path() {
        let input = ImageInput::Path("/no/such/dir/cat.png".into());
        let err = load_image(&input, &ImageLimits::default())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "image /no/such/dir/cat.png: file not found");
    }
}
