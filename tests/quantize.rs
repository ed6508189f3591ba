//! `quantize`: the tiny checkpoints → GGUF pairs that load through the GGUF path, give the
//! reference numbers within the storage type's rounding, and have the layout llama.cpp's
//! converter (gguf-py, the committed fixtures) gives them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use vlm::apps::{quantize, QuantizeOptions, QuantizeProgress, QuantizeReport};
use vlm::weights::gguf::GgufFile;
use vlm::weights::QuantType;
use vlm::{Engine, EngineOptions, ModelSource};

use crate::common::{cases, fixtures, max_abs_diff, model_dir, Case};

fn run(model: &str, out: &Path, ty: QuantType, force: bool) -> vlm::Result<QuantizeReport> {
    quantize(
        &model_dir(model),
        out,
        ty,
        &QuantizeOptions { force },
        &mut |_| {},
    )
}

/// Quantizes `model` into `out` and returns the text and mmproj paths.
fn pair(model: &str, out: &Path, ty: QuantType) -> (PathBuf, PathBuf) {
    let report = run(model, out, ty, false).unwrap_or_else(|e| panic!("{model}: {e}"));
    assert_eq!(report.files.len(), 2);
    (report.files[0].path.clone(), report.files[1].path.clone())
}

fn views(case: &Case) -> Tensor {
    let t = case.tensor("pixel_values");
    if t.rank() == 5 {
        t.squeeze(0).unwrap()
    } else {
        t
    }
}

/// Largest |logit| over a model's reference cases: the scale logit errors are judged by.
fn logit_scale(model: &str) -> f32 {
    model_cases(model)
        .map(|c| {
            let l = c.tensor("logits").abs().unwrap().max(0).unwrap();
            l.to_scalar::<f32>().unwrap()
        })
        .fold(0f32, f32::max)
}

fn model_cases(model: &str) -> impl Iterator<Item = &'static Case> + '_ {
    cases()
        .iter()
        .filter(move |c| c.model() == model && c.has_tensor("logits"))
}

/// Max |Δ| of image features and of first-step logits against the reference over a model's
/// cases.
fn first_step_errors(engine: &Engine, model: &str) -> (f32, f32) {
    let (mut feat, mut logit) = (0f32, 0f32);
    for case in model_cases(model) {
        let m = engine.model();
        let features = case.has_tensor("image_features").then(|| {
            let ours = m.encode_images(&views(case), None).unwrap();
            feat = feat.max(max_abs_diff(&ours, &case.tensor("image_features")));
            ours
        });
        let embeds = m
            .embed(&case.ids("input_ids"), features.as_ref(), 0)
            .unwrap();
        let logits = m.forward(&embeds, &mut m.new_cache()).unwrap();
        logit = logit.max(max_abs_diff(&logits, &case.tensor("logits")));
    }
    (feat, logit)
}

/// Feeds each case the reference's greedy tokens and checks our argmax at every one of the
/// first [`STEPS`] steps whose reference top-2 margin exceeds `margin`. Returns how many steps
/// were checked.
fn check_greedy(engine: &Engine, model: &str, margin: f64) -> usize {
    let mut checked = 0;
    for case in model_cases(model) {
        let m = engine.model();
        let features = case
            .has_tensor("image_features")
            .then(|| m.encode_images(&views(case), None).unwrap());
        let mut cache = m.new_cache();
        let embeds = m
            .embed(&case.ids("input_ids"), features.as_ref(), 0)
            .unwrap();
        let mut logits = m.forward(&embeds, &mut cache).unwrap();
        let expected = case.ids("greedy_tokens");
        let margins = case.floats("greedy_margins");
        for (step, (&token, &gap)) in expected.iter().zip(&margins).take(STEPS).enumerate() {
            if gap > margin {
                let ours = vlm::generate::sampler::argmax(&logits.to_vec1::<f32>().unwrap());
                assert_eq!(ours, token, "{model} {} step {step}", case.name());
                checked += 1;
            }
            let embeds = m.embed(&[token], None, 0).unwrap();
            logits = m.forward(&embeds, &mut cache).unwrap();
        }
    }
    checked
}

const STEPS: usize = 12;

#[test]
fn quantized_pairs_track_the_reference() {
    let out = tempfile::tempdir().unwrap();
    for model in ["tiny-smolvlm", "tiny-idefics3"] {
        let scale = logit_scale(model);
        for ty in [QuantType::F16, QuantType::Q8_0] {
            let (text, mmproj) = pair(model, out.path(), ty);
            let engine = Engine::load(ModelSource::gguf(&text, Some(mmproj)), reference_options())
                .unwrap_or_else(|e| panic!("{}: {e}", text.display()));
            let (features, logits) = first_step_errors(&engine, model);
            // A step whose top two logits are further apart than twice the largest logit
            // error cannot change its argmax under the same rounding.
            let margin = (2.0 * logits as f64).max(1e-3);
            let checked = check_greedy(&engine, model, margin);
            println!(
                "{model} {ty:?}: features max |Δ| = {features:.3e}, logits {logits:.3e} \
                 (largest |logit| {scale:.1}); {checked} greedy steps with margin > {margin:.2e} agree"
            );
            let tolerance = match ty {
                QuantType::F16 => F16_TOLERANCE,
                _ => Q8_0_TOLERANCE,
            };
            assert!(
                logits <= tolerance * scale,
                "{model} {ty:?}: logits differ by {logits} of {scale}"
            );
            assert!(
                checked >= 5,
                "{model} {ty:?}: only {checked} greedy steps compared"
            );
        }
    }
}

/// F16 rounds each weight by up to 2⁻¹¹ relative (exactly 0 for the bf16 tiny-idefics3
/// checkpoint, which F16 represents exactly). The tiny models' random weights, scaled for sharp
/// margins, amplify that about 15×: measured 7.2e-3 of the largest |logit| for tiny-smolvlm
/// (0.28 of 38.8) and 6e-6 for tiny-idefics3. 2e-2 keeps a 3× margin; a wrong layout or RoPE
/// flavour moves logits by their whole range.
const F16_TOLERANCE: f32 = 2e-2;
/// Q8_0 rounds by up to 2⁻⁸ of each 32-block's largest value: measured 3.1e-2 of the largest
/// |logit| for tiny-smolvlm (1.19 of 38.8, its text matrices falling back to F16) and 6.6e-2 for
/// tiny-idefics3 (0.54 of 8.2, all text matrices Q8_0). 0.1 is the bound tests/gguf.rs uses for
/// the gguf-py Q8_0 files.
const Q8_0_TOLERANCE: f32 = 0.1;

#[test]
fn four_bit_and_bf16_pairs_load_with_llama_cpp_fallbacks() {
    // tiny-idefics3's rows (64 and 96 wide) are not whole 256-element k-quant blocks, so Q4_K
    // falls back to Q5_0 as in llama.cpp; embeddings and the vision tower stay at 8 bits (here
    // F16, their rows of 40 and 56 not being whole 32-element blocks either).
    let out = tempfile::tempdir().unwrap();
    for (ty, file_type, text_types) in [
        (
            QuantType::Q4K,
            15,
            vec![("F32", 7), ("Q5_0", 22), ("Q8_0", 1)],
        ),
        (
            QuantType::Q4_0,
            2,
            vec![("F32", 7), ("Q4_0", 22), ("Q8_0", 1)],
        ),
        (QuantType::Bf16, 32, vec![("BF16", 23), ("F32", 7)]),
    ] {
        let report = run("tiny-idefics3", out.path(), ty, false).unwrap();
        let types: Vec<_> = report.files[0]
            .types
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(types, text_types, "{ty:?}");
        let text = GgufFile::open(&report.files[0].path).unwrap();
        assert_eq!(text.usize("general.file_type").unwrap(), file_type);
        let engine = Engine::load(
            ModelSource::gguf(&report.files[0].path, Some(report.files[1].path.clone())),
            reference_options(),
        )
        .unwrap_or_else(|e| panic!("{ty:?}: {e}"));
        let (_, logits) = first_step_errors(&engine, "tiny-idefics3");
        println!("tiny-idefics3 {ty:?}: logits max |Δ| = {logits:.3e}");
        if ty == QuantType::Bf16 {
            // The checkpoint is bf16: the same bits, so only summation order differs.
            assert!(logits <= 1e-3, "bf16: logits differ by {logits}");
        }
    }
}

/// Tensor name → (type, shape) of a GGUF file.
fn table(f: &GgufFile) -> Vec<(String, GgmlDType, Vec<usize>)> {
    f.tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.dtype, t.shape.clone()))
        .collect()
}

#[test]
fn the_layout_is_the_converters() {
    let out = tempfile::tempdir().unwrap();
    for (model, ty, text_fixture, mmproj_fixture) in [
        (
            "tiny-smolvlm",
            QuantType::Q8_0,
            "tiny-smolvlm-q8_0.gguf",
            Some("mmproj-tiny-smolvlm-q8_0.gguf"),
        ),
        (
            "tiny-idefics3",
            QuantType::F16,
            "tiny-idefics3-f16.gguf",
            Some("mmproj-tiny-idefics3-f16.gguf"),
        ),
        (
            "tiny-idefics3",
            QuantType::Q8_0,
            "tiny-idefics3-q8_0.gguf",
            None,
        ),
    ] {
        let (text, mmproj) = pair(model, out.path(), ty);
        let written = [Some(text), mmproj_fixture.map(|_| mmproj)];
        for (ours, theirs) in written.iter().zip([Some(text_fixture), mmproj_fixture]) {
            let (Some(ours), Some(theirs)) = (ours, theirs) else {
                continue;
            };
            let ours = GgufFile::open(ours).unwrap();
            let theirs = GgufFile::open(&fixtures().join("gguf").join(theirs)).unwrap();
            let what = ours.path().display().to_string();
            assert_eq!(table(&ours), table(&theirs), "{what}: tensor table");
            let keys = |f: &GgufFile| f.metadata.keys().cloned().collect::<BTreeSet<_>>();
            assert_eq!(keys(&ours), keys(&theirs), "{what}: metadata keys");
            for (key, value) in &theirs.metadata {
                // gguf-py title-cases the directory name; we keep it as it is.
                if key != "general.name" {
                    assert_eq!(&ours.metadata[key], value, "{what}: {key}");
                }
            }
            // Float and half weights are rounded the same way (IEEE round-to-nearest-even),
            // and the Q/K permutation is the converter's, so those tensors agree byte for byte.
            for (name, info) in &theirs.tensors {
                if matches!(info.dtype, GgmlDType::F32 | GgmlDType::F16) {
                    let a = ours.tensor(name, &Device::Cpu).unwrap();
                    let b = theirs.tensor(name, &Device::Cpu).unwrap();
                    assert!(
                        a.data().unwrap() == b.data().unwrap(),
                        "{what}: {name} bytes"
                    );
                }
            }
        }
    }
}

#[test]
fn outputs_are_kept_unless_forced_and_appear_whole() {
    let out = tempfile::tempdir().unwrap();
    let mut seen: Vec<QuantizeProgress> = Vec::new();
    let report = quantize(
        &model_dir("tiny-smolvlm"),
        out.path(),
        QuantType::Q8_0,
        &QuantizeOptions::default(),
        &mut |p| seen.push(p),
    )
    .unwrap();
    let names: Vec<_> = report
        .files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["tiny-smolvlm-Q8_0.gguf", "mmproj-tiny-smolvlm-Q8_0.gguf"]
    );
    // One event per tensor, over both files: 20 text tensors (tied: no output.weight), 38 vision.
    assert_eq!(seen.len(), 58);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(i, p)| p.done == i + 1 && p.total == 58));
    assert_eq!(seen[0].file, names[0]);
    assert_eq!(seen[57].file, names[1]);
    let counts = &report.files[1].types;
    assert_eq!((counts["Q8_0"], counts["F16"], counts["F32"]), (1, 12, 25));
    for f in &report.files {
        assert_eq!(f.bytes, std::fs::metadata(&f.path).unwrap().len());
    }
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing().len(), 2, "{:?}", listing());

    let before = std::fs::read(&report.files[0].path).unwrap();
    let err = run("tiny-smolvlm", out.path(), QuantType::Q8_0, false).unwrap_err();
    assert!(
        matches!(err, vlm::Error::InvalidOption { name: "out", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tiny-smolvlm-Q8_0.gguf"), "{err}");
    assert_eq!(std::fs::read(&report.files[0].path).unwrap(), before);

    run("tiny-smolvlm", out.path(), QuantType::Q8_0, true).unwrap();
    assert_eq!(listing().len(), 2, "{:?}", listing());
}

#[test]
fn a_failed_run_leaves_nothing_behind() {
    // A checkpoint whose config unties the embeddings but which has no lm_head: the text file
    // fails on its last tensor, after the partial file has been written almost whole.
    let src = model_dir("tiny-smolvlm");
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("broken");
    std::fs::create_dir(&ckpt).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ckpt.join(entry.file_name())).unwrap();
    }
    let config = std::fs::read_to_string(ckpt.join("config.json")).unwrap();
    let untied = config.replace(
        "\"tie_word_embeddings\": true",
        "\"tie_word_embeddings\": false",
    );
    assert_ne!(config, untied);
    std::fs::write(ckpt.join("config.json"), untied).unwrap();

    let out = dir.path().join("out");
    let err = quantize(
        &ckpt,
        &out,
        QuantType::F16,
        &QuantizeOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("lm_head.weight"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Reference kernels: these tests measure the weight format alone against transformers.
fn reference_options() -> EngineOptions {
    EngineOptions {
        vision_compute: Some(vlm::VisionCompute::Reference),
        prefill_compute: Some(vlm::PrefillCompute::Reference),
        ..Default::default()
    }
}
