//! Transparency and unusual pixel modes as a transformers user sees them: `load_image`'s
//! `convert("RGB")` (alpha dropped, the colour under it kept) and the processor's pixel values
//! after it, from `scripts/make_alpha_fixtures.py`.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use vlm::processor::image::{load_image, AlphaMode, ImageInput, ImageLimits};
use vlm::{Engine, EngineOptions, Message, ModelSource};

use crate::common::{engine, fixtures, max_abs_diff, model_dir};

/// Every file of the fixture set; names match the reference tensors with `.` → `_`.
const FILES: [&str; 10] = [
    "rgba.png",
    "la.png",
    "p_index.png",
    "p_alpha.png",
    "l_key.png",
    "rgb_key.png",
    "i16.png",
    "rgba.webp",
    "p_index.gif",
    "cmyk.jpg",
];

fn file(name: &str) -> PathBuf {
    fixtures().join("alpha").join(name)
}

fn reference(key: &str) -> Tensor {
    let path = file("reference.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors
        .remove(key)
        .unwrap_or_else(|| panic!("{key} missing from {}", path.display()))
}

fn reference_bytes(key: &str) -> Vec<u8> {
    reference(key)
        .flatten_all()
        .unwrap()
        .to_vec1::<u8>()
        .unwrap()
}

/// The engine's pixel values for one picture without splitting (one view).
fn pixel_values(engine: &Engine, name: &str) -> Tensor {
    let message = Message::user([ImageInput::Path(file(name))], "describe");
    let prepared = engine
        .prepare(
            &[message],
            &vlm::ProcessorOptions {
                image_splitting: Some(false),
                ..engine.processor_options().clone()
            },
        )
        .unwrap();
    assert_eq!(prepared.images().len(), 1, "{name}");
    vlm::engine::pixels_tensor(&prepared.images()[0].pixels, &Device::Cpu).unwrap()
}

/// Bytes the image processor resizes: `convert("RGB")`, then its `convert_to_rgb`, which
/// turns a surviving colour key white. Lossless formats must match to the byte. The CMYK JPEG
/// is decoded by libjpeg-turbo in Pillow and by the pure-Rust decoder here, whose IDCTs may
/// round differently: up to two levels per channel, as for the JPEG cases of
/// `tests/processor.rs` (identical bytes measured on this fixture).
#[test]
fn decoded_rgb_matches_load_image() {
    for name in FILES {
        let img = load_image(&ImageInput::Path(file(name)), &ImageLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ours = img.to_rgb(AlphaMode::Drop).unwrap().into_raw();
        let key = format!("{}.rgb", name.replace('.', "_"));
        let expected = reference_bytes(&key);
        assert_eq!(ours.len(), expected.len(), "{name}: size");
        let worst = ours
            .iter()
            .zip(&expected)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        let differing = ours.iter().zip(&expected).filter(|(a, b)| a != b).count();
        println!("{name:<12} max |Δ| {worst}, {differing} bytes differ");
        let bound = if name.ends_with(".jpg") { 2 } else { 0 };
        assert!(worst <= bound, "{name}: bytes differ by up to {worst}");
        // The fixtures exercise both halves of the rule: colour keys turn white after
        // `convert("RGB")`, alpha channels and partial palette alpha are only dropped.
        let keyed = ["p_index.png", "l_key.png", "rgb_key.png", "p_index.gif"].contains(&name);
        let before_key = reference_bytes(&format!("{}.load_image", name.replace('.', "_")));
        assert_eq!(before_key != expected, keyed, "{name}: colour key");
    }
}

/// Pixel values through the whole processor (resize, rescale, normalise) for each file.
/// Tolerance as `tests/processor.rs`: 1e-6 demands identical bytes and arithmetic; the JPEG
/// gets its two decoder levels (2 · 2/255 after normalisation).
#[test]
fn pixel_values_match_transformers_after_load_image() {
    let engine = engine("tiny-smolvlm");
    for name in FILES {
        let ours = pixel_values(engine, name);
        let key = format!("{}.pixel_values", name.replace('.', "_"));
        let expected = reference(&key);
        let expected = expected.reshape(ours.shape()).unwrap();
        let diff = max_abs_diff(&ours, &expected);
        println!("{name:<12} pixel values max |Δ| {diff:.3e}");
        let bound = if name.ends_with(".jpg") {
            2.0 * 2.0 / 255.0 + 1e-6
        } else {
            1e-6
        };
        assert!(diff <= bound, "{name}: pixel values differ by {diff}");
    }
}

/// `AlphaMode::OverWhite` is what transformers' image processor does with an RGBA picture
/// handed to it directly: composited onto white with Pillow's integer blend, byte for byte.
#[test]
fn over_white_matches_the_image_processor_on_rgba() {
    let img = load_image(&ImageInput::Path(file("rgba.png")), &ImageLimits::default()).unwrap();
    let ours = img.to_rgb(AlphaMode::OverWhite).unwrap().into_raw();
    assert_eq!(ours, reference_bytes("rgba_png.rgb_over_white"));
    assert_ne!(
        ours,
        reference_bytes("rgba_png.rgb"),
        "the fixture has transparency"
    );

    let opts = EngineOptions {
        processor: vlm::ProcessorOptions {
            alpha: AlphaMode::OverWhite,
            ..Default::default()
        },
        ..Default::default()
    };
    let composited = Engine::load(ModelSource::dir(model_dir("tiny-smolvlm")), opts).unwrap();
    let ours = pixel_values(&composited, "rgba.png");
    let expected = reference("rgba_png.pixel_values_over_white");
    let diff = max_abs_diff(&ours, &expected.reshape(ours.shape()).unwrap());
    assert!(diff <= 1e-6, "over white: pixel values differ by {diff}");
}
