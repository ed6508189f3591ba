//! Model numerics against transformers 5.24 (f32, eager attention) on the tiny checkpoints.
//!
//! The model is fed the reference `pixel_values`, so these tests isolate the model from the
//! image pipeline (which `processor.rs` checks on its own).
//!
//! Tolerance: absolute 1e-4 on image features, 2.5e-4 on logits. Both sides compute in f32 but
//! sum in different orders (gemm vs. PyTorch's BLAS), which moves results by a few ulps per
//! accumulation: ~1e-6 relative. Features here have a standard deviation near 2, so honest
//! differences are ~1e-5. Logits are near 9 and come out of the decoder's random weights
//! (std-scaled for sharp margins), which amplify those ulps: measured up to 9.0e-5 through
//! Candle's op-by-op graph and 1.3e-4 through the plain-buffer prefill, both ~1.5e-5 relative.
//! Any real error (a wrong norm epsilon, RoPE layout, causal mask or pixel-shuffle order) moves
//! values by 1e-2 or more.

use candle_core::{Device, Tensor};
use vlm::model::PatchMask;

use crate::common::{case, cases, engine, max_abs_diff, Case};

const TOLERANCE: f32 = 1e-4;
const LOGITS_TOLERANCE: f32 = 2.5e-4;
/// Logits computed from our own image features carry the vision tower's ~1e-5 error through
/// the decoder, whose random weights (std-scaled for sharp margins) amplify it by up to ~10×.
const CHAINED_TOLERANCE: f32 = 5e-4;
/// Greedy tokens are compared up to the first step where the reference's top-2 margin is below
/// this: there, f32 rounding may legitimately flip the argmax.
const MARGIN: f64 = 1e-3;

fn reference_views(case: &Case) -> Tensor {
    let t = case.tensor("pixel_values");
    // Stored as [views, 3, M, M]; a leading batch axis of 1 is accepted too.
    if t.rank() == 5 {
        t.squeeze(0).unwrap()
    } else {
        t
    }
}

fn model_cases() -> impl Iterator<Item = &'static Case> {
    cases().iter().filter(|c| c.has_tensor("logits"))
}

#[test]
fn image_features_match_transformers() {
    let mut checked = 0;
    for case in model_cases().filter(|c| c.has_tensor("image_features")) {
        let model = engine(case.model()).model();
        let ours = model.encode_images(&reference_views(case), None).unwrap();
        let diff = max_abs_diff(&ours, &case.tensor("image_features"));
        println!("{:<14} image features max |Δ| = {diff:.3e}", case.name());
        assert!(
            diff <= TOLERANCE,
            "{}: image features differ by {diff}",
            case.name()
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} cases with images");
}

/// Where the image features merged into a prefill come from.
#[derive(Clone, Copy, PartialEq)]
enum Features {
    /// transformers' own features: isolates the decoder.
    Reference,
    /// Ours, from the reference pixels: the vision tower's error flows into the decoder.
    Ours,
}

/// Prefill of the reference input ids with image features merged in.
fn prefill(case: &Case, source: Features) -> (Tensor, vlm::model::KvCache) {
    let model = engine(case.model()).model();
    let ids = case.ids("input_ids");
    let features = case.has_tensor("image_features").then(|| match source {
        Features::Reference => case.tensor("image_features"),
        Features::Ours => model.encode_images(&reference_views(case), None).unwrap(),
    });
    let embeds = model.embed(&ids, features.as_ref(), 0).unwrap();
    let mut cache = model.new_cache();
    let logits = model.forward(&embeds, &mut cache).unwrap();
    (logits, cache)
}

#[test]
fn first_step_logits_match_transformers() {
    let mut checked = 0;
    for case in model_cases() {
        let (logits, _) = prefill(case, Features::Reference);
        let diff = max_abs_diff(&logits, &case.tensor("logits"));
        let (chained, _) = prefill(case, Features::Ours);
        let chained_diff = max_abs_diff(&chained, &case.tensor("logits"));
        println!(
            "{:<14} first-step logits max |Δ| = {diff:.3e} (with our image features: {chained_diff:.3e})",
            case.name()
        );
        assert!(
            diff <= LOGITS_TOLERANCE,
            "{}: logits differ by {diff}",
            case.name()
        );
        assert!(
            chained_diff <= CHAINED_TOLERANCE,
            "{}: logits from our features differ by {chained_diff}",
            case.name()
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} cases");
}

#[test]
fn greedy_tokens_match_transformers() {
    for case in model_cases() {
        let model = engine(case.model()).model();
        let expected = case.ids("greedy_tokens");
        let margins = case.floats("greedy_margins");
        let comparable = margins
            .iter()
            .position(|m| *m < MARGIN)
            .unwrap_or(margins.len());
        assert!(
            comparable >= 8,
            "{}: margins too small to compare",
            case.name()
        );
        let (mut logits, mut cache) = prefill(case, Features::Ours);
        let mut ours = Vec::new();
        for _ in 0..comparable {
            let next = vlm::generate::sampler::argmax(&logits.to_vec1::<f32>().unwrap());
            ours.push(next);
            let embeds = model.embed(&[next], None, 0).unwrap();
            logits = model.forward(&embeds, &mut cache).unwrap();
        }
        assert_eq!(
            ours,
            expected[..comparable],
            "{}: greedy tokens",
            case.name()
        );
    }
}

#[test]
fn masked_patches_bucket_and_attend_like_transformers() {
    let case = case("vision_masked");
    let model = engine(case.model()).model();
    let mask = case.tensor("patch_attention_mask");
    let (n, rows, cols) = mask.dims3().unwrap();
    let valid: Vec<bool> = mask
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| *v != 0.0)
        .collect();
    let mask = PatchMask { rows, cols, valid };
    assert_eq!(n, 1);
    let n_side = engine(case.model())
        .config()
        .model
        .vision
        .as_ref()
        .unwrap()
        .patches_per_side();
    let ids = vlm::model::vision::bucketed_position_ids(&mask, n_side);
    assert_eq!(ids, case.ids("position_ids"));

    let pixels = case.tensor("pixel_values").to_device(&Device::Cpu).unwrap();
    let ours = model_vision(model, &pixels, &mask);
    let expected = case.tensor("last_hidden_state");
    // Padding patches attend to real ones but are never attended to; compare every row.
    let diff = max_abs_diff(&ours, &expected);
    println!("vision_masked last_hidden_state max |Δ| = {diff:.3e}");
    assert!(diff <= TOLERANCE, "masked vision output differs by {diff}");
}

fn model_vision(model: &vlm::model::SmolVlm, pixels: &Tensor, mask: &PatchMask) -> Tensor {
    model.vision_features(pixels, Some(mask)).unwrap()
}

/// RMS of `ours − reference` over the RMS of `reference`.
fn relative_rms(ours: &Tensor, reference: &Tensor) -> f32 {
    let rms = |t: &Tensor| {
        t.sqr()
            .and_then(|t| t.mean_all())
            .and_then(|t| t.sqrt())
            .and_then(|t| t.to_scalar::<f32>())
            .unwrap()
    };
    rms(&(ours - reference).unwrap()) / rms(reference)
}

/// `--precision fast`'s vision tower (the BF16 dot-product kernels, on CPUs with AVX-512
/// BF16) against the same transformers features.
///
/// Tolerance: relative RMS error 2.5e-2. The kernels round matrix inputs (activations,
/// weights, attention probabilities) to bf16, 8 significant bits: each rounding moves a value
/// by up to 2⁻⁹ ≈ 2e-3, and the fixtures' random weights, scaled for sharp margins, compound
/// that through the tower and connector to 0.7–1.5 % here. The limit keeps a 1.7× margin over
/// the worst case, while a wrong layout, transposition or mask gives errors of order 1.
const BF16_RELATIVE_RMS: f32 = 2.5e-2;

#[test]
fn bf16_vision_features_stay_close_to_transformers() {
    let opts = vlm::EngineOptions {
        precision: vlm::Precision::Fast,
        ..Default::default()
    };
    let mut checked = 0;
    for case in model_cases().filter(|c| c.has_tensor("image_features")) {
        let dir = crate::common::model_dir(case.model());
        let engine = vlm::Engine::load(vlm::ModelSource::dir(dir), opts.clone()).unwrap();
        if engine.info().vision_compute != "bf16-dot" {
            // No AVX-512 BF16 on this CPU: the engine fell back to the reference kernels,
            // which the exact parity tests above cover.
            assert!(!vlm::bench_api::bf16_available());
            assert_eq!(engine.info().precision, "exact");
            println!("skipped: this CPU has no AVX-512 BF16, so `fast` runs the exact kernels");
            return;
        }
        let ours = engine
            .model()
            .encode_images(&reference_views(case), None)
            .unwrap();
        let reference = case.tensor("image_features");
        let rel = relative_rms(&ours, &reference);
        println!(
            "{:<14} bf16 image features relative RMS error {rel:.3e}, max |Δ| {:.3e}",
            case.name(),
            max_abs_diff(&ours, &reference)
        );
        assert!(
            rel <= BF16_RELATIVE_RMS,
            "{}: bf16 image features off by {rel} (relative RMS)",
            case.name()
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} cases with images");
}

/// The int8 vision tower (`VisionCompute::Int8Dot`: matrices in 8-bit integers on AVX-512
/// VNNI, attention in bf16) against transformers' features, and the first-step logits the
/// decoder computes from those features against transformers' logits.
///
/// Tolerances, relative RMS error: 6e-2 on the features, 3e-1 on the logits. Rounding to
/// 8 bits with per-row scales moves each matrix input by up to half a step, max|row| / 254:
/// several times bf16's 2⁻⁹ for rows with a wide range. Measured on these fixtures: 2.7–4.1 %
/// on the features (bf16: 0.6–1.5 %), and the decoder's sharp random weights amplify that to
/// 2.6–20 % on the first-step logits. The limits keep a 1.5× margin over the worst case,
/// while a wrong scale, offset or layout gives errors of order 1. Random weights have no
/// outlier channels; a real SigLIP may, which is why this mode is never the default.
const INT8_RELATIVE_RMS: f32 = 6e-2;
const INT8_LOGITS_RELATIVE_RMS: f32 = 3e-1;

#[test]
fn int8_vision_features_stay_close_to_transformers() {
    let opts = vlm::EngineOptions {
        vision_compute: Some(vlm::VisionCompute::Int8Dot),
        ..Default::default()
    };
    let mut checked = 0;
    for case in model_cases().filter(|c| c.has_tensor("image_features")) {
        let dir = crate::common::model_dir(case.model());
        let engine = vlm::Engine::load(vlm::ModelSource::dir(dir), opts.clone()).unwrap();
        if engine.info().vision_compute != "int8-dot" {
            assert!(!(vlm::bench_api::i8_available() && vlm::bench_api::bf16_available()));
            println!("skipped: this CPU lacks AVX-512 VNNI or BF16, so int8 falls back");
            return;
        }
        let model = engine.model();
        let ours = model.encode_images(&reference_views(case), None).unwrap();
        let reference = case.tensor("image_features");
        let rel = relative_rms(&ours, &reference);
        let embeds = model.embed(&case.ids("input_ids"), Some(&ours), 0).unwrap();
        let logits = model.forward(&embeds, &mut model.new_cache()).unwrap();
        let rel_logits = relative_rms(&logits, &case.tensor("logits"));
        println!(
            "{:<14} int8 image features relative RMS error {rel:.3e}, first-step logits {rel_logits:.3e}",
            case.name(),
        );
        assert!(
            rel <= INT8_RELATIVE_RMS,
            "{}: int8 image features off by {rel} (relative RMS)",
            case.name()
        );
        assert!(
            rel_logits <= INT8_LOGITS_RELATIVE_RMS,
            "{}: logits from int8 features off by {rel_logits} (relative RMS)",
            case.name()
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} cases with images");
}

/// `--precision fast`'s prompt pass (BF16 dot products, on CPUs with AVX-512 BF16) against
/// transformers' first-step logits, fed transformers' image features so that only the decoder's arithmetic differs.
///
/// Tolerance: relative RMS error 8e-2. As at [`BF16_RELATIVE_RMS`], every matrix input is
/// rounded to 8 significant bits (up to 2⁻⁹ per value), and so are the attention's queries,
/// keys, probabilities and values; the decoder's random fixture weights, std-scaled for sharp
/// margins (attention scores of tens), compound that more than the vision tower does:
/// 1.2–5.1 % measured here on the image cases (0.6–4.7 % with f32 attention), 1e-6 on the
/// text-only ones, shorter than the 64 rows from which the prompt pass packs its weights. The
/// limit keeps a 1.5× margin over the worst case, while a wrong layout, RoPE position or
/// causal mask moves logits by their own magnitude (letting each query see one key past its
/// position measured 0.34 here). (On the real SmolLM2 weights `tests/real_weights.rs` checks
/// that bf16 prefill keeps the greedy answer.)
const BF16_PREFILL_RELATIVE_RMS: f32 = 8e-2;

#[test]
fn bf16_prefill_logits_stay_close_to_transformers() {
    let opts = vlm::EngineOptions {
        precision: vlm::Precision::Fast,
        vision_compute: Some(vlm::VisionCompute::Reference),
        ..Default::default()
    };
    let mut checked = 0;
    for case in model_cases() {
        let dir = crate::common::model_dir(case.model());
        let engine = vlm::Engine::load(vlm::ModelSource::dir(dir), opts.clone()).unwrap();
        if engine.info().prefill_compute != "bf16-dot" {
            // No AVX-512 BF16 on this CPU: the engine fell back to the reference kernels,
            // which the exact parity tests above cover.
            assert!(!vlm::bench_api::bf16_available());
            assert_eq!(engine.info().precision, "exact");
            println!("skipped: this CPU has no AVX-512 BF16, so `fast` runs the exact kernels");
            return;
        }
        let model = engine.model();
        let ids = case.ids("input_ids");
        let features = case
            .has_tensor("image_features")
            .then(|| case.tensor("image_features"));
        let embeds = model.embed(&ids, features.as_ref(), 0).unwrap();
        let mut cache = model.new_cache();
        let ours = model.forward(&embeds, &mut cache).unwrap();
        let reference = case.tensor("logits");
        let rel = relative_rms(&ours, &reference);
        println!(
            "{:<14} {:>4} tokens, bf16 prefill logits relative RMS error {rel:.3e}",
            case.name(),
            ids.len()
        );
        assert!(
            rel <= BF16_PREFILL_RELATIVE_RMS,
            "{}: bf16 prefill logits off by {rel} (relative RMS)",
            case.name()
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} cases");
}

/// A long prompt (several attention blocks of the plain-buffer prefill, and a second call that
/// continues a cache) gives the logits of feeding the same tokens one at a time through the
/// decode step, an independent implementation of the same layer. Both are f32; tolerance as
/// for logits against transformers.
#[test]
fn long_prompts_prefill_like_token_by_token_steps() {
    let model = engine("tiny-smolvlm").model();
    // Text tokens only (below the fixture's special ids), spread by a fixed LCG.
    let ids: Vec<u32> = (0..700u64)
        .map(|i| ((i * 2_654_435_761 + 12_345) % 500) as u32)
        .collect();
    let run = |chunks: &[usize]| {
        let mut cache = model.new_cache();
        let mut at = 0;
        let mut logits = None;
        for &n in chunks {
            let embeds = model.embed(&ids[at..at + n], None, 0).unwrap();
            logits = Some(model.forward(&embeds, &mut cache).unwrap());
            at += n;
        }
        assert_eq!(at, ids.len());
        logits.unwrap()
    };
    let stepwise = run(&[1; 700]);
    for chunks in [&[700][..], &[400, 300], &[7, 693]] {
        let diff = max_abs_diff(&run(chunks), &stepwise);
        println!("prefill in {chunks:?}: logits max |Δ| against steps = {diff:.3e}");
        assert!(diff <= LOGITS_TOLERANCE, "{chunks:?}: {diff}");
    }
}
