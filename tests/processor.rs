//! The processor against transformers' `SmolVLMProcessor` with the PIL image backend: rendered
//! prompts, expanded prompts, token ids, tile grids and pixel values.

use candle_core::{Device, Tensor};

use crate::common::{cases, engine, max_abs_diff, Case};

/// Pixel values are `(u8/255 − 0.5)/0.5` in f32 on both sides; a single u8 step is 2/255 ≈
/// 7.8e-3, so 1e-6 demands identical resampled bytes and identical arithmetic.
const PIXEL_TOLERANCE: f32 = 1e-6;

fn text_cases() -> impl Iterator<Item = &'static Case> {
    cases().iter().filter(|c| c.json.get("input_ids").is_some())
}

#[test]
fn prompts_and_input_ids_match_transformers() {
    let mut checked = 0;
    for case in text_cases() {
        let engine = engine(case.model());
        let prepared = engine
            .prepare(
                &case.messages(),
                &vlm::ProcessorOptions {
                    image_splitting: Some(case.splitting()),
                    ..engine.processor_options().clone()
                },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", case.name()));
        assert_eq!(
            prepared.prompt,
            case.str("prompt"),
            "{}: rendered prompt",
            case.name()
        );
        assert_eq!(
            prepared.text,
            case.str("expanded_prompt"),
            "{}: expanded prompt",
            case.name()
        );
        assert_eq!(
            prepared.input_ids,
            case.ids("input_ids"),
            "{}: input ids",
            case.name()
        );
        let grids: Vec<[usize; 2]> = prepared
            .images()
            .iter()
            .map(|i| [i.grid.rows, i.grid.cols])
            .collect();
        let expected: Vec<[usize; 2]> =
            serde_json::from_value(case.json["image_grids"].clone()).unwrap();
        assert_eq!(grids, expected, "{}: tile grids", case.name());
        assert_eq!(
            prepared.n_image_tokens,
            case.json["n_image_tokens"].as_u64().unwrap() as usize,
            "{}: image tokens",
            case.name()
        );
        checked += 1;
    }
    assert!(checked >= 13, "only {checked} cases");
}

#[test]
fn pixel_values_match_transformers() {
    let mut checked = 0;
    for case in text_cases().filter(|c| c.has_tensor("pixel_values")) {
        let engine = engine(case.model());
        let prepared = engine
            .prepare(
                &case.messages(),
                &vlm::ProcessorOptions {
                    image_splitting: Some(case.splitting()),
                    ..engine.processor_options().clone()
                },
            )
            .unwrap();
        let views: Vec<Tensor> = prepared
            .images()
            .iter()
            .map(|img| vlm::engine::pixels_tensor(&img.pixels, &Device::Cpu).unwrap())
            .collect();
        let ours = Tensor::cat(&views, 0).unwrap();
        let reference = case.tensor("pixel_values");
        let reference = if reference.rank() == 5 {
            reference.squeeze(0).unwrap()
        } else {
            reference
        };
        let diff = max_abs_diff(&ours, &reference);
        let mean = mean_abs_diff(&ours, &reference);
        println!(
            "{:<14} pixel values max |Δ| = {diff:.3e}, mean |Δ| = {mean:.3e}",
            case.name()
        );
        if is_jpeg(case) {
            // Pillow decodes JPEG with libjpeg-turbo; the pure-Rust decoder's IDCT rounds
            // differently, moving some bytes by up to two levels (2 · 2/255 after
            // normalisation). Orientation and resampling errors would move many pixels by far
            // more, which the mean bounds.
            assert!(
                diff <= 2.0 * 2.0 / 255.0 + 1e-6,
                "{}: JPEG pixels differ by {diff}",
                case.name()
            );
            assert!(
                mean <= 2e-3,
                "{}: JPEG pixels differ on average by {mean}",
                case.name()
            );
        } else {
            assert!(
                diff <= PIXEL_TOLERANCE,
                "{}: pixel values differ by {diff}",
                case.name()
            );
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} cases");
}

fn is_jpeg(case: &Case) -> bool {
    case.json["messages"].to_string().contains(".jpg")
}

fn mean_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
