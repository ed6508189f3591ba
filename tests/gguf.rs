//! GGUF pairs: the same model definition loading llama.cpp-layout files gives the same numbers
//! as the safetensors checkpoint they were converted from.

use vlm::{Engine, EngineOptions, ModelSource};

use crate::common::{case, fixtures, max_abs_diff};

fn gguf_engine(text: &str, mmproj: Option<&str>) -> Engine {
    let dir = fixtures().join("gguf");
    let source = ModelSource::gguf(dir.join(text), mmproj.map(|m| dir.join(m)));
    Engine::load(source, EngineOptions::default()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// First-step logits of a reference case's input ids, with the reference image features.
fn logits(engine: &Engine, name: &str) -> candle_core::Tensor {
    let case = case(name);
    let model = engine.model();
    let features = case
        .has_tensor("image_features")
        .then(|| case.tensor("image_features"));
    let embeds = model
        .embed(&case.ids("input_ids"), features.as_ref(), 0)
        .unwrap();
    model.forward(&embeds, &mut model.new_cache()).unwrap()
}

#[test]
fn f32_gguf_pair_matches_transformers() {
    let engine = gguf_engine(
        "tiny-smolvlm-f32.gguf",
        Some("mmproj-tiny-smolvlm-f32.gguf"),
    );
    for name in ["text_only", "landscape", "two_images"] {
        let diff = max_abs_diff(&logits(&engine, name), &case(name).tensor("logits"));
        println!("{name:<12} f32 GGUF logits max |Δ| = {diff:.3e}");
        assert!(diff <= 1e-4, "{name}: {diff}");
    }
}
