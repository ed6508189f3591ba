//! Encoded PNG/GIF header → the single transparent colour that survives Pillow's
//! `convert("RGB")`.
//!
//! A picture whose transparency is one colour (a PNG grey or RGB `tRNS` key, a palette with
//! exactly one fully transparent entry and every other entry opaque, a GIF transparent index)
//! keeps it through `load_image`'s `convert("RGB")` as `info["transparency"]`, an RGB tuple.
//! transformers' `convert_to_rgb` then sees transparency on the RGB picture and composites
//! it onto white, so every pixel of that colour reaches the model white, while a picture with
//! an alpha channel or partial palette alpha loses its alpha instead. Only the chunks before
//! the first image data are read.
//!
//! Ref: Pillow `PngImagePlugin.PngStream.chunk_tRNS` (`_simple_palette`),
//! `GifImagePlugin` (`transparency` from the graphic control extension), `Image.convert`
//! (the transparency colour of P/L → RGB); transformers `image_transforms.convert_to_rgb`.

use std::io::{BufRead, Seek};

/// The colour key of an encoded image, when it has one and is a PNG or GIF. Headers that do
/// not parse give `None`: the decoder that follows reports what is wrong with them.
pub(crate) fn colour_key<R: BufRead + Seek>(reader: R, header: &[u8]) -> Option<[u8; 3]> {
    if header.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_key(reader)
    } else if header.starts_with(b"GIF8") {
        gif_key(reader)
    } else {
        None
    }
}

fn png_key<R: BufRead + Seek>(reader: R) -> Option<[u8; 3]> {
    let reader = png::Decoder::new(reader).read_info().ok()?;
    let info = reader.info();
    let trns = info.trns.as_deref()?;
    // Pillow reads 16-bit and sub-byte keys as raw sample values that do not match its 8-bit
    // pixels after conversion, so only 8-bit keys and palettes change what the model sees.
    let eight_bit = info.bit_depth == png::BitDepth::Eight;
    match info.color_type {
        // The decoder keeps the low byte of each 16-bit sample of a key below 16 bits.
        png::ColorType::Grayscale if eight_bit => Some([*trns.first()?; 3]),
        png::ColorType::Rgb if eight_bit => Some([*trns.first()?, *trns.get(1)?, *trns.get(2)?]),
        png::ColorType::Indexed => palette_entry(info.palette.as_deref()?, simple_index(trns)?),
        _ => None,
    }
}

/// The index of a `tRNS` palette alpha list that is one fully transparent entry among opaque
/// ones (Pillow's `^\xff*\x00\xff*$`); any other list is alpha, which `convert` drops.
fn simple_index(alphas: &[u8]) -> Option<usize> {
    let mut zeros = alphas.iter().enumerate().filter(|(_, &a)| a == 0);
    let (index, _) = zeros.next()?;
    let rest_opaque = alphas.iter().all(|&a| a == 0 || a == 255);
    (zeros.next().is_none() && rest_opaque).then_some(index)
}

fn palette_entry(palette: &[u8], index: usize) -> Option<[u8; 3]> {
    let rgb = palette.get(3 * index..3 * index + 3)?;
    Some([rgb[0], rgb[1], rgb[2]])
}

fn gif_key<R: BufRead + Seek>(reader: R) -> Option<[u8; 3]> {
    let mut decoder = gif::DecodeOptions::new().read_info(reader).ok()?;
    let (index, local) = {
        let frame = decoder.next_frame_info().ok()??;
        (frame.transparent?, frame.palette.clone())
    };
    let palette = local.as_deref().or(decoder.global_palette())?;
    palette_entry(palette, usize::from(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_transparent_entry_among_opaque_ones_is_a_key() {
        assert_eq!(simple_index(&[255, 255, 0]), Some(2));
        assert_eq!(simple_index(&[0]), Some(0));
        assert_eq!(simple_index(&[255, 0, 255, 255]), Some(1));
        assert_eq!(simple_index(&[255, 0, 0]), None);
        assert_eq!(simple_index(&[255, 90, 0]), None);
        assert_eq!(simple_index(&[255, 255]), None);
    }

    #[test]
    fn palette_entries_out_of_range_are_no_key() {
        assert_eq!(palette_entry(&[1, 2, 3, 4, 5, 6], 1), Some([4, 5, 6]));
        assert_eq!(palette_entry(&[1, 2, 3, 4, 5], 1), None);
    }
}
