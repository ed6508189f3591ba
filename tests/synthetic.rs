//! Synthetic models: `--synthetic` builds them in memory, `vlm synth` writes the same weights to
//! disk (safetensors or a GGUF pair), both load and run with finite numbers, and `synth` never
//! writes into a directory that holds anything.

use std::path::Path;
use std::process::{Command, Output};

use candle_core::Tensor;
use vlm::apps::synth::{synth, SynthOptions};
use vlm::synthetic::Preset;
use vlm::weights::QuantType;
use vlm::{Engine, EngineOptions, GenerateOptions, ImageInput, Message, ModelSource};

use crate::common::{fixtures, max_abs_diff};

fn vlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlm"))
        .args(args)
        .env_remove("VLM_MODEL")
        .env_remove("VLM_THREADS")
        .output()
        .expect("the vlm binary runs")
}

fn load(source: ModelSource, quant: Option<QuantType>) -> Engine {
    let opts = EngineOptions {
        quant,
        ..Default::default()
    };
    Engine::load(source, opts).unwrap()
}

/// Image features of the landscape fixture and the first-step logits of a prompt with it.
fn features_and_logits(engine: &Engine) -> (Tensor, Tensor) {
    let image = ImageInput::Path(fixtures().join("images/landscape.png"));
    let message = Message::user([image], "Describe this image.");
    let input = engine
        .prepare(&[message], engine.processor_options())
        .unwrap();
    let features = engine.encode_images(&input).unwrap().unwrap();
    let model = engine.model();
    let embeds = model.embed(&input.input_ids, Some(&features), 0).unwrap();
    let logits = model.forward(&embeds, &mut model.new_cache()).unwrap();
    (features, logits)
}

fn assert_finite(t: &Tensor, what: &str) {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{what}: non-finite values");
    assert!(v.iter().any(|x| *x != 0.0), "{what}: all zero");
}

#[test]
fn a_synthetic_model_loads_labelled_and_generates() {
    let engine = load(ModelSource::synthetic(Preset::Tiny), None);
    let info = engine.info();
    assert_eq!(info.source, "synthetic:tiny");
    assert!(info.synthetic);
    let (features, logits) = features_and_logits(&engine);
    assert_finite(&features, "image features");
    assert_finite(&logits, "logits");
    let opts = GenerateOptions {
        max_new_tokens: 4,
        ignore_eos: true,
        ..Default::default()
    };
    let answer = engine
        .session()
        .send(Message::user([], "Hello"), &opts)
        .unwrap();
    assert_eq!(answer.token_ids.len(), 4);
}

#[test]
fn synth_writes_the_weights_synthetic_builds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let report = synth(Preset::Tiny, &out, &SynthOptions::default(), &mut |_| {}).unwrap();
    assert!(report.gguf.is_none());
    assert!(out.join("model.safetensors").is_file());
    assert!(!out.join("model.safetensors.partial").exists());

    let memory = load(ModelSource::synthetic(Preset::Tiny), None);
    let disk = load(ModelSource::dir(&out), None);
    let (f_mem, l_mem) = features_and_logits(&memory);
    let (f_disk, l_disk) = features_and_logits(&disk);
    assert_eq!(max_abs_diff(&f_mem, &f_disk), 0.0);
    assert_eq!(max_abs_diff(&l_mem, &l_disk), 0.0);
}

#[test]
fn synth_quant_writes_a_gguf_pair_matching_quantize_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny-q8");
    let opts = SynthOptions {
        quant: Some(QuantType::Q8_0),
    };
    let report = synth(Preset::Tiny, &out, &opts, &mut |_| {}).unwrap();
    let (text, mmproj) = report.gguf.clone().unwrap();
    assert!(text.ends_with("SmolVLM2-tiny-synthetic-Q8_0.gguf"));
    assert!(mmproj.ends_with("mmproj-SmolVLM2-tiny-synthetic-Q8_0.gguf"));
    assert!(!out.join("model.safetensors").exists());

    // The same Q8_0 blocks (Q/K rows permuted for interleaved RoPE) in both.
    let gguf = load(
        ModelSource::gguf_with_config(text, Some(mmproj), &out),
        None,
    );
    let on_load = load(ModelSource::synthetic(Preset::Tiny), Some(QuantType::Q8_0));
    assert_eq!(on_load.info().quant.as_deref(), Some("q8_0"));
    let (f_gguf, l_gguf) = features_and_logits(&gguf);
    let (f_load, l_load) = features_and_logits(&on_load);
    assert_finite(&l_gguf, "GGUF logits");
    assert!(max_abs_diff(&f_gguf, &f_load) < 1e-4);
    assert!(max_abs_diff(&l_gguf, &l_load) < 1e-4);
}

#[test]
fn synth_refuses_a_directory_that_holds_anything() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("notes.txt");
    std::fs::write(&keep, "mine").unwrap();
    let err = synth(
        Preset::Tiny,
        dir.path(),
        &SynthOptions::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("not empty"), "{err}");

    let out = vlm(&["synth", "--preset", "tiny", "--out", path(dir.path())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A file where the directory should be.
    let out = vlm(&["synth", "--preset", "tiny", "--out", path(&keep)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "mine");
}

#[test]
fn bench_synthetic_reports_the_model_and_the_threads_used() {
    let out = vlm(&[
        "--threads",
        "1",
        "bench",
        "--synthetic",
        "tiny",
        "-t",
        "pp16,tg4",
        "-r",
        "1",
        "--no-warmup",
        "-o",
        "json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &json["environment"];
    assert_eq!(env["model"], "synthetic:tiny");
    assert_eq!(env["synthetic"], true);
    assert_eq!(env["threads"], 1);
    assert_eq!(env["candle_threads"], 1);
    assert_eq!(json["results"].as_array().unwrap().len(), 2);

    let out = vlm(&["bench", "--synthetic", "tiny", "--model", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = vlm(&["--threads", "0", "bench", "--synthetic", "tiny"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("threads"));
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The published layouts with random weights keep every activation finite. Minutes in a debug
/// build; run with `cargo test --release -- --ignored synthetic`.
#[test]
#[ignore]
fn real_size_presets_stay_finite() {
    for preset in [
        Preset::SmolVlm2_256M,
        Preset::SmolVlm2_500M,
        Preset::SmolVlm2_2_2B,
    ] {
        let engine = load(ModelSource::synthetic(preset), None);
        let (features, logits) = features_and_logits(&engine);
        assert_finite(&features, &format!("{preset} image features"));
        assert_finite(&logits, &format!("{preset} logits"));
    }
}
