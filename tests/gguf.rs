//! GGUF pairs: the same model definition loading llama.cpp-layout files (made by llama.cpp's
//! gguf-py, see tests/fixtures/gguf/README.md) gives the numbers transformers gives for the
//! safetensors checkpoints they were converted from.

use std::path::{Path, PathBuf};

use vlm::{Engine, EngineOptions, GenerateOptions, ModelSource};

use crate::common::{case, cases, fixtures, max_abs_diff, Case};

fn gguf(name: &str) -> PathBuf {
    fixtures().join("gguf").join(name)
}

fn gguf_engine(text: &str, mmproj: Option<&str>) -> Engine {
    let source = ModelSource::gguf(gguf(text), mmproj.map(gguf));
    Engine::load(source, reference_options()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// First-step logits of a reference case's input ids, with the given image features.
fn logits(
    engine: &Engine,
    case: &Case,
    features: Option<candle_core::Tensor>,
) -> candle_core::Tensor {
    let model = engine.model();
    let embeds = model
        .embed(&case.ids("input_ids"), features.as_ref(), 0)
        .unwrap();
    model.forward(&embeds, &mut model.new_cache()).unwrap()
}

fn views(case: &Case) -> candle_core::Tensor {
    let t = case.tensor("pixel_values");
    if t.rank() == 5 {
        t.squeeze(0).unwrap()
    } else {
        t
    }
}

/// Max |Δ| of image features and of first-step logits (from our own features) over a model's
/// cases.
fn measure(engine: &Engine, model: &str) -> (f32, f32) {
    let (mut feat, mut logit) = (0f32, 0f32);
    for case in cases()
        .iter()
        .filter(|c| c.model() == model && c.has_tensor("logits"))
    {
        let features = case.has_tensor("image_features").then(|| {
            let ours = engine.model().encode_images(&views(case), None).unwrap();
            feat = feat.max(max_abs_diff(&ours, &case.tensor("image_features")));
            ours
        });
        logit = logit.max(max_abs_diff(
            &logits(engine, case, features),
            &case.tensor("logits"),
        ));
    }
    (feat, logit)
}

/// Largest |logit| over a model's reference cases, the scale quantization errors are judged by.
fn logit_scale(model: &str) -> f32 {
    cases()
        .iter()
        .filter(|c| c.model() == model && c.has_tensor("logits"))
        .map(|c| {
            c.tensor("logits")
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        })
        .fold(0f32, f32::max)
}

#[test]
fn f32_gguf_pair_matches_transformers() {
    let engine = gguf_engine(
        "tiny-smolvlm-f32.gguf",
        Some("mmproj-tiny-smolvlm-f32.gguf"),
    );
    let (features, logits) = measure(&engine, "tiny-smolvlm");
    println!("f32 GGUF pair: image features max |Δ| = {features:.3e}, logits {logits:.3e}");
    // Same weights bit for bit (the Q/K permutation is undone by interleaved RoPE), so the
    // safetensors tolerances apply: 1e-4 for features, 5e-4 for logits computed from our own
    // features (see parity.rs).
    assert!(features <= 1e-4, "features differ by {features}");
    assert!(logits <= 5e-4, "logits differ by {logits}");
}

#[test]
fn legacy_mmproj_swaps_fc_by_shape_and_defaults_the_resize() {
    let engine = gguf_engine(
        "tiny-smolvlm-f32.gguf",
        Some("mmproj-tiny-smolvlm-legacy.gguf"),
    );
    let (features, _) = measure(&engine, "tiny-smolvlm");
    assert!(
        features <= 1e-4,
        "legacy fc naming misread: features differ by {features}"
    );
    // No clip.vision.preproc_image_size: four tiles on the long side, as every SmolVLM config.
    let pre = engine.config().preprocessor.as_ref().unwrap();
    assert_eq!(pre.longest_edge, 4 * pre.tile_size);
}

#[test]
fn f16_and_q8_0_files_stay_close() {
    // F16 rounds each weight by up to 2⁻¹¹ relative and Q8_0 by up to 2⁻⁸ of its block's
    // largest value; through random weights scaled for sharp margins that moves logits by a few
    // percent of their range (measured: 1.19 of 38.8 for tiny-smolvlm Q8_0 with F16 fallbacks,
    // 0.54 of 8.2 for tiny-idefics3 Q8_0, 5e-5 for F16 from bf16, which is exact). A wrong
    // layout or RoPE flavour moves them by their whole range, so 10% of the largest |logit|
    // separates the two.
    for (text, mmproj, model) in [
        (
            "tiny-smolvlm-q8_0.gguf",
            "mmproj-tiny-smolvlm-q8_0.gguf",
            "tiny-smolvlm",
        ),
        (
            "tiny-idefics3-f16.gguf",
            "mmproj-tiny-idefics3-f16.gguf",
            "tiny-idefics3",
        ),
        (
            "tiny-idefics3-q8_0.gguf",
            "mmproj-tiny-idefics3-f16.gguf",
            "tiny-idefics3",
        ),
    ] {
        let engine = gguf_engine(text, Some(mmproj));
        let (features, logits) = measure(&engine, model);
        let scale = logit_scale(model);
        println!("{text}: features max |Δ| = {features:.3e}, logits {logits:.3e} (largest |logit| {scale:.1})");
        assert!(
            logits <= 0.10 * scale,
            "{text}: logits differ by {logits} of {scale}"
        );
    }
}

#[test]
fn the_gguf_tokenizer_and_template_reproduce_the_input_ids() {
    for (text, mmproj, model) in [
        (
            "tiny-smolvlm-f32.gguf",
            "mmproj-tiny-smolvlm-f32.gguf",
            "tiny-smolvlm",
        ),
        (
            "tiny-idefics3-f16.gguf",
            "mmproj-tiny-idefics3-f16.gguf",
            "tiny-idefics3",
        ),
    ] {
        let engine = gguf_engine(text, Some(mmproj));
        for case in cases()
            .iter()
            .filter(|c| c.model() == model && c.json.get("input_ids").is_some())
        {
            let prepared = engine
                .prepare(
                    &case.messages(),
                    &vlm::ProcessorOptions {
                        image_splitting: Some(case.splitting()),
                        ..engine.processor_options().clone()
                    },
                )
                .unwrap();
            assert_eq!(
                prepared.input_ids,
                case.ids("input_ids"),
                "{text}: {}",
                case.name()
            );
        }
    }
}

#[test]
fn a_gguf_pair_generates_the_reference_tokens() {
    let engine = gguf_engine(
        "tiny-smolvlm-f32.gguf",
        Some("mmproj-tiny-smolvlm-f32.gguf"),
    );
    let case = case("landscape");
    let tokens = crate::common::greedy_tokens(&engine, case, 12);
    assert_eq!(tokens, case.ids("greedy_tokens")[..12]);
}

/// A copy of a fixture with `from` replaced by `to` (same length) in its bytes.
fn patched(dir: &Path, name: &str, from: &[u8], to: &[u8]) -> PathBuf {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(gguf(name)).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    bytes[at..at + to.len()].copy_from_slice(to);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_err(text: &Path, mmproj: Option<&Path>) -> String {
    let source = ModelSource::gguf(text, mmproj.map(Path::to_path_buf));
    match Engine::load(source, reference_options()) {
        Ok(_) => panic!("{} loaded", text.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_gguf_files_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = gguf("tiny-smolvlm-f32.gguf");
    let mmproj = gguf("mmproj-tiny-smolvlm-f32.gguf");

    let other = patched(
        dir.path(),
        "mmproj-tiny-smolvlm-f32.gguf",
        b"idefics3",
        b"gemma3xx",
    );
    let err = load_err(&text, Some(&other));
    assert!(err.contains("projector type `gemma3xx`"), "{err}");

    let err = load_err(&text, Some(&gguf("mmproj-tiny-idefics3-f16.gguf")));
    assert!(err.contains("not a pair"), "{err}");

    let err = load_err(&mmproj, None);
    assert!(err.contains("--mmproj"), "{err}");

    let bytes = std::fs::read(&text).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 4096]).unwrap();
    let err = load_err(&cut, None);
    assert!(
        err.contains("cut.gguf") && err.contains("truncated"),
        "{err}"
    );

    // A header claiming 2⁶² tensors in a 40-byte file.
    let mut absurd = b"GGUF".to_vec();
    absurd.extend(3u32.to_le_bytes());
    absurd.extend((1u64 << 62).to_le_bytes());
    absurd.extend(0u64.to_le_bytes());
    absurd.extend([0u8; 16]);
    let path = dir.path().join("absurd.gguf");
    std::fs::write(&path, absurd).unwrap();
    let err = load_err(&path, None);
    assert!(err.contains("tensor count"), "{err}");
}

#[test]
fn a_text_only_gguf_refuses_images_and_answers_text() {
    let engine = gguf_engine("tiny-smolvlm-f32.gguf", None);
    assert!(!engine.info().vision);
    let case = case("landscape");
    let err = engine
        .session()
        .send(case.messages().pop().unwrap(), &GenerateOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("--mmproj"), "{err}");
    assert_eq!(err.category(), vlm::Category::Input);
    let text_case = crate::common::case("text_only");
    let opts = GenerateOptions {
        max_new_tokens: 8,
        ignore_eos: true,
        ..Default::default()
    };
    let g = engine
        .session()
        .send(text_case.messages().pop().unwrap(), &opts)
        .unwrap();
    assert_eq!(g.token_ids, text_case.ids("greedy_tokens")[..8]);
}

#[test]
fn a_gguf_pair_can_take_the_original_json_files() {
    let source = ModelSource::gguf_with_config(
        gguf("tiny-smolvlm-q8_0.gguf"),
        Some(gguf("mmproj-tiny-smolvlm-q8_0.gguf")),
        crate::common::model_dir("tiny-smolvlm"),
    );
    let engine = Engine::load(source, reference_options()).unwrap();
    let case = case("portrait");
    let prepared = engine
        .prepare(&case.messages(), engine.processor_options())
        .unwrap();
    assert_eq!(prepared.input_ids, case.ids("input_ids"));

    let wrong = ModelSource::gguf_with_config(
        gguf("tiny-smolvlm-f32.gguf"),
        None,
        crate::common::model_dir("tiny-idefics3"),
    );
    let err = Engine::load(wrong, reference_options())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("different models"), "{err}");
}

/// Reference kernels: these tests measure the weight format alone against transformers.
fn reference_options() -> EngineOptions {
    EngineOptions {
        vision_compute: Some(vlm::VisionCompute::Reference),
        prefill_compute: Some(vlm::PrefillCompute::Reference),
        ..Default::default()
    }
}
