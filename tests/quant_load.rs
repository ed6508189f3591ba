//! Quantize-on-load (`--quant`) of safetensors checkpoints: numbers stay near transformers', by
//! an amount that depends on the type.

use vlm::weights::QuantType;
use vlm::{Engine, EngineOptions, ModelSource};

use crate::common::{case, cases, max_abs_diff, model_dir};

fn engine(model: &str, quant: QuantType) -> Engine {
    // The reference prefill: these budgets measure the weight format alone.
    let opts = EngineOptions {
        quant: Some(quant),
        prefill_compute: Some(vlm::PrefillCompute::Reference),
        ..Default::default()
    };
    Engine::load(ModelSource::dir(model_dir(model)), opts).unwrap()
}

/// Max |Δ| of first-step logits over a model's cases (reference image features merged in, so
/// this isolates the decoder) and the largest |logit|.
fn logit_error(engine: &Engine, model: &str) -> (f32, f32) {
    let (mut diff, mut scale) = (0f32, 0f32);
    for case in cases()
        .iter()
        .filter(|c| c.model() == model && c.has_tensor("logits"))
    {
        let features = case
            .has_tensor("image_features")
            .then(|| case.tensor("image_features"));
        let m = engine.model();
        let embeds = m
            .embed(&case.ids("input_ids"), features.as_ref(), 0)
            .unwrap();
        let logits = m.forward(&embeds, &mut m.new_cache()).unwrap();
        let reference = case.tensor("logits");
        diff = diff.max(max_abs_diff(&logits, &reference));
        scale = scale.max(
            reference
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        );
    }
    (diff, scale)
}

#[test]
fn quantized_decoders_stay_within_their_budget() {
    // Budgets as a fraction of the largest |logit|. F16/BF16 round weights and activations by
    // 2⁻¹¹/2⁻⁸ (measured 0.5% / 4%), Q8_0 weights by 2⁻⁸ of a block's largest value (measured
    // 6.6%; these random weights, scaled for sharp greedy margins, amplify errors far more than
    // trained ones). 4-bit types round by 2⁻⁴, which on random weights leaves only a sanity bound
    // (measured 38% and 69%); their meaningful check is the real SmolLM2 Q4_1 test.
    let budgets = [
        (QuantType::F16, 0.02),
        (QuantType::Bf16, 0.10),
        (QuantType::Q8_0, 0.10),
        (QuantType::Q4K, 1.0),
        (QuantType::Q4_0, 1.0),
    ];
    for model in ["tiny-smolvlm", "tiny-idefics3"] {
        for (ty, budget) in budgets {
            let (diff, scale) = logit_error(&engine(model, ty), model);
            println!(
                "{model} {ty:?}: logits max |Δ| = {diff:.3e} ({:.2}% of {scale:.1})",
                100.0 * diff / scale
            );
            assert!(diff <= budget * scale, "{model} {ty:?}: {diff} of {scale}");
        }
    }
}

#[test]
fn q8_0_on_load_keeps_the_greedy_answer() {
    let engine = engine("tiny-idefics3", QuantType::Q8_0);
    let case = case("v1_text_only");
    let tokens = crate::common::greedy_tokens(&engine, case, 6);
    assert_eq!(tokens, case.ids("greedy_tokens")[..6]);
}
