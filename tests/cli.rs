//! The `vlm` binary: output shapes, exit codes, and one clear line for every kind of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{case, fixtures, model_dir};

fn vlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlm"))
        .args(args)
        .env_remove("VLM_MODEL")
        .output()
        .expect("the vlm binary runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn image(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

/// Asserts a failure with the given exit code and a one-line message containing `needle`.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
}

#[test]
fn ask_json_reports_token_ids_counts_and_timings() {
    let model = model_dir("tiny-smolvlm");
    let reference = case("landscape");
    let out = vlm(&[
        "ask",
        path(&image("landscape.png")),
        "Describe this image.",
        "--model",
        path(&model),
        "--max-tokens",
        "8",
        "--ignore-eos",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u32> = serde_json::from_value(json["token_ids"].clone()).unwrap();
    assert_eq!(ids, reference.ids("greedy_tokens")[..8]);
    assert_eq!(
        json["usage"]["prompt_tokens"],
        reference.ids("input_ids").len()
    );
    assert_eq!(json["usage"]["image_tokens"], 52);
    assert_eq!(json["usage"]["completion_tokens"], 8);
    assert_eq!(json["finish_reason"], "max_tokens");
    for key in [
        "preprocess_s",
        "vision_s",
        "prefill_s",
        "decode_s",
        "decode_tokens_per_second",
    ] {
        assert!(json["timings"][key].is_number(), "timings.{key} missing");
    }
}

#[test]
fn describe_streams_text_and_text_only_ask_works() {
    let model = model_dir("tiny-smolvlm");
    let out = vlm(&[
        "describe",
        path(&image("portrait.png")),
        "-m",
        path(&model),
        "-n",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
    let out = vlm(&[
        "ask",
        "Write a haiku about rust.",
        "-m",
        path(&model),
        "-n",
        "24",
        "--ignore-eos",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim_end_matches('\n'),
        case("text_only").str("greedy_text")
    );
}

#[test]
fn several_images_and_other_precisions_run() {
    let model = model_dir("tiny-smolvlm");
    for dtype in ["bf16", "f16"] {
        let out = vlm(&[
            "ask",
            path(&image("landscape.png")),
            path(&image("two_b.png")),
            "What differs between these two?",
            "-m",
            path(&model),
            "-n",
            "4",
            "--dtype",
            dtype,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{dtype}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["model"]["dtype"], dtype);
        assert_eq!(
            json["usage"]["image_tokens"],
            case("two_images").json["n_image_tokens"]
        );
    }
}

/// `exact` is the default and names the reference kernels in `--json` and `-v`; `fast` is
/// accepted everywhere and says what it ran (the exact kernels on CPUs without AVX-512 BF16).
#[test]
fn precision_is_exact_by_default_and_reported() {
    let model = model_dir("tiny-smolvlm");
    let picture = image("landscape.png");
    let run = |extra: &[&str]| {
        let mut args = vec!["ask", path(&picture), "hi", "-m", path(&model)];
        args.extend_from_slice(&["-n", "2", "--json", "-v"]);
        args.extend_from_slice(extra);
        let out = vlm(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            json["model"].clone(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (model_info, stderr) = run(&[]);
    assert_eq!(model_info["precision"], "exact");
    assert_eq!(model_info["vision_compute"], "reference");
    assert_eq!(model_info["prefill_compute"], "reference");
    assert_eq!(model_info["decode_compute"], "reference");
    assert!(
        stderr.contains("precision exact: vision reference, prefill reference, decode reference"),
        "{stderr}"
    );
    // The CPU's kernel families and whether AMX tiles can run here.
    let amx = vlm::TilePermission::request().to_string();
    assert!(stderr.contains(&format!("]; AMX {amx}\n")), "{stderr}");
    let (model_info, stderr) = run(&["--precision", "fast"]);
    let vision = model_info["vision_compute"].as_str().unwrap().to_string();
    let expected = if vision == "reference" {
        "exact"
    } else {
        "fast"
    };
    assert_eq!(model_info["precision"], expected);
    assert!(
        stderr.contains(&format!("precision {expected}: vision {vision}")),
        "{stderr}"
    );
    let out = vlm(&[
        "ask",
        path(&picture),
        "hi",
        "-m",
        path(&model),
        "--precision",
        "best",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'best'"));
}

#[test]
fn bad_images_fail_with_one_clear_line() {
    let model = model_dir("tiny-smolvlm");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.png");
    let not_image = dir.path().join("notes.png");
    std::fs::write(&not_image, b"these are notes, not pixels").unwrap();
    let truncated = dir.path().join("cut.png");
    let png = std::fs::read(image("landscape.png")).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 2]).unwrap();

    let ask = |img: &Path, extra: &[&str]| {
        let mut args = vec!["ask", path(img), "hi", "-m", path(&model)];
        args.extend_from_slice(extra);
        vlm(&args)
    };
    assert_fails(&ask(&missing, &[]), 2, "nope.png");
    assert_fails(&ask(&not_image, &[]), 2, "notes.png");
    assert_fails(&ask(&truncated, &[]), 2, "cut.png");
    // landscape.png is 400×250 = 100 000 pixels; the limit is checked from the header.
    assert_fails(
        &ask(&image("landscape.png"), &["--max-image-pixels", "50000"]),
        2,
        "50000",
    );
}

#[test]
fn bad_checkpoints_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(model_dir("tiny-smolvlm")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    };
    let no_tokenizer = dir.path().join("no-tokenizer");
    copy(&no_tokenizer);
    std::fs::remove_file(no_tokenizer.join("tokenizer.json")).unwrap();
    let out = vlm(&["ask", "hi", "-m", path(&no_tokenizer)]);
    assert_fails(&out, 1, "tokenizer.json");

    let no_weights = dir.path().join("no-weights");
    copy(&no_weights);
    std::fs::remove_file(no_weights.join("model.safetensors")).unwrap();
    assert_fails(
        &vlm(&["ask", "hi", "-m", path(&no_weights)]),
        1,
        "model.safetensors",
    );

    let other_model = dir.path().join("llava");
    copy(&other_model);
    let config = std::fs::read_to_string(other_model.join("config.json")).unwrap();
    std::fs::write(
        other_model.join("config.json"),
        config.replace("\"smolvlm\"", "\"llava\""),
    )
    .unwrap();
    assert_fails(
        &vlm(&["ask", "hi", "-m", path(&other_model)]),
        1,
        "unsupported model type `llava`",
    );

    let truncated = dir.path().join("truncated");
    copy(&truncated);
    let weights = std::fs::read(truncated.join("model.safetensors")).unwrap();
    std::fs::write(
        truncated.join("model.safetensors"),
        &weights[..weights.len() - 1000],
    )
    .unwrap();
    assert_fails(
        &vlm(&["ask", "hi", "-m", path(&truncated)]),
        1,
        "model.safetensors",
    );

    assert_fails(
        &vlm(&["ask", "hi", "-m", path(&dir.path().join("absent"))]),
        1,
        "absent",
    );

    let wrong_len = dir.path().join("wrong-seq-len");
    copy(&wrong_len);
    std::fs::write(
        wrong_len.join("processor_config.json"),
        r#"{"image_seq_len": 169}"#,
    )
    .unwrap();
    let out = vlm(&["ask", "hi", "-m", path(&wrong_len)]);
    assert_fails(&out, 1, "image_seq_len is 169 but the geometry gives");
}

#[test]
fn bad_options_and_long_prompts_fail_with_one_clear_line() {
    let model = model_dir("tiny-smolvlm");
    let out = vlm(&["ask", "hi", "-m", path(&model), "--max-tokens", "0"]);
    assert_fails(&out, 2, "max-tokens");
    let out = vlm(&[
        "ask",
        path(&image("landscape.png")),
        "hi",
        "-m",
        path(&model),
        "--ctx",
        "40",
    ]);
    assert_fails(&out, 2, "context window is 40 tokens");
}

#[test]
fn devices_not_compiled_in_or_misspelt_fail_with_one_clear_line() {
    let model = model_dir("tiny-smolvlm");
    let run = |device: &str| {
        vlm(&[
            "describe",
            path(&image("landscape.png")),
            "-m",
            path(&model),
            "--device",
            device,
        ])
    };
    #[cfg(not(feature = "cuda"))]
    assert_fails(
        &run("cuda:1"),
        1,
        "device `cuda:1` is not compiled in; rebuild vlm with `--features cuda`",
    );
    #[cfg(not(feature = "metal"))]
    assert_fails(&run("metal"), 1, "`--features metal`");
    assert_fails(
        &run("gpu"),
        2,
        "invalid option `device`: `gpu` is not a device",
    );
    let out = run("cpu");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gguf_models_run_and_a_text_gguf_refuses_images() {
    let dir = fixtures().join("gguf");
    let text = dir.join("tiny-smolvlm-f32.gguf");
    let mmproj = dir.join("mmproj-tiny-smolvlm-f32.gguf");
    let out = vlm(&[
        "ask",
        path(&image("landscape.png")),
        "Describe this image.",
        "-m",
        path(&text),
        "--mmproj",
        path(&mmproj),
        "-n",
        "6",
        "--ignore-eos",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u32> = serde_json::from_value(json["token_ids"].clone()).unwrap();
    assert_eq!(ids, case("landscape").ids("greedy_tokens")[..6]);

    let out = vlm(&[
        "ask",
        path(&image("landscape.png")),
        "hi",
        "-m",
        path(&text),
    ]);
    assert_fails(&out, 2, "--mmproj");
    let out = vlm(&["ask", "hi", "-m", path(&mmproj)]);
    assert_fails(&out, 1, "--mmproj");
    let out = vlm(&[
        "ask",
        "hi",
        "-m",
        path(&model_dir("tiny-smolvlm")),
        "--mmproj",
        path(&mmproj),
    ]);
    assert_fails(&out, 2, "--mmproj");
    let out = vlm(&[
        "ask",
        "hi",
        "-m",
        path(&model_dir("tiny-smolvlm")),
        "--quant",
        "q3",
    ]);
    assert_fails(&out, 2, "q3");
}

#[test]
fn inspect_reports_sizes_tiles_and_tokens_without_weights() {
    let reference = case("landscape");
    let dir = tempfile::tempdir().unwrap();
    // No weights in the directory: inspect reads only the JSON files and the tokenizer.
    for entry in std::fs::read_dir(model_dir("tiny-smolvlm")).unwrap() {
        let entry = entry.unwrap();
        if !entry
            .file_name()
            .to_string_lossy()
            .ends_with(".safetensors")
        {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    let out = vlm(&[
        "inspect",
        path(&image("landscape.png")),
        "Describe this image.",
        "--model",
        path(dir.path()),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let img = &json["images"][0];
    assert_eq!(img["size"], serde_json::json!([400, 250]));
    assert_eq!(img["resized"], serde_json::json!([128, 80]));
    assert_eq!(img["stretched"], serde_json::json!([128, 96]));
    assert_eq!(
        (img["rows"].clone(), img["cols"].clone()),
        (3.into(), 4.into())
    );
    assert_eq!(json["image_tokens"], reference.json["n_image_tokens"]);
    assert_eq!(json["prompt_tokens"], reference.ids("input_ids").len());
    assert_eq!(json["expanded"], reference.json["expanded_prompt"]);
    assert_eq!(json["prompt"], reference.json["prompt"]);

    let out = vlm(&["inspect", "no-such.png", "--model", path(dir.path())]);
    assert_fails(&out, 2, "at least one image");
}
