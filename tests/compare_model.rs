//! `compare` with the tiny random model: schema-valid answers under constrained decoding for
//! every field, forked questions equal to fresh conversations, `ask --schema`, the embedding
//! cache, and the command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use vlm::apps::compare::{
    self, card_schema, extract, render, CompareEvent, CompareOptions, Comparison, Extractor,
    ModelExtractor, Opened, Shot,
};
use vlm::generate::constraint::validate;
use vlm::{Constraint, GenerateOptions, ImageInput, Message};

use crate::common::{engine, fixtures};
use crate::compare::{image, screenshot, SHOT_A, SHOT_B};

#[test]
fn the_tiny_model_answers_every_field_within_its_schema() {
    let engine = engine("tiny-smolvlm");
    let opts = CompareOptions {
        cache: false,
        ..Default::default()
    };
    let mut model = ModelExtractor::new(engine, &opts);
    for shot in [screenshot("quillwise.png"), image(SHOT_B)] {
        let shot = Shot::read(&shot, 0).unwrap();
        model.open(&shot).unwrap();
        for q in extract::questions() {
            let a = model.answer(&q).unwrap();
            assert!(a.complete, "{:?} unfinished: {:?}", q.field, a.text);
            validate(&q.constraint, &a.text)
                .unwrap_or_else(|e| panic!("{:?}: {:?}: {e}", q.field, a.text));
            extract::apply(&mut Default::default(), q.field, &a.text)
                .unwrap_or_else(|e| panic!("{:?}: {:?}: {e}", q.field, a.text));
        }
    }
}

#[test]
fn forked_questions_answer_as_fresh_conversations_do() {
    let engine = engine("tiny-smolvlm");
    let shot = image(SHOT_A);
    let opts = GenerateOptions {
        max_new_tokens: 12,
        ignore_eos: true,
        ..Default::default()
    };
    let mut base = engine.session();
    let (usage, _) = base.prefill(&Message::user([shot.clone()], "")).unwrap();
    assert!(usage.image_tokens > 0);
    for q in ["What is this?", "Name the product."] {
        let msg = Message::user([shot.clone()], q);
        let fresh = engine.session().send(msg.clone(), &opts).unwrap();
        let mut encoded_views = 0;
        let forked = base
            .fork()
            .unwrap()
            .send_streaming(msg, &opts, &vlm::CancelToken::new(), &mut |e| {
                if let vlm::Event::Progress(vlm::Progress::EncodeViews { .. }) = e {
                    encoded_views += 1;
                }
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(forked.token_ids, fresh.token_ids, "{q}");
        assert_eq!(encoded_views, 0, "a fork never runs the vision tower again");
        assert!(forked.usage.prefill_tokens < fresh.usage.prefill_tokens / 2);
    }
}

#[test]
fn a_json_schema_constrains_any_question() {
    let engine = engine("tiny-smolvlm");
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "plans": {"type": "array", "maxItems": 3, "items": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 12}, "price": {"type": "number"}},
                "required": ["name", "price"], "additionalProperties": false
            }}
        },
        "required": ["plans"], "additionalProperties": false
    });
    let c = Constraint::json_schema(schema);
    for seed in 0..3 {
        let opts = GenerateOptions {
            max_new_tokens: 300,
            constraint: Some(c.clone()),
            sampling: vlm::Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
                min_p: None,
            },
            seed,
            ..Default::default()
        };
        let g = engine
            .session()
            .send(
                Message::user([image(SHOT_A)], "List the plans and prices"),
                &opts,
            )
            .unwrap();
        assert_eq!(g.finish, vlm::FinishReason::Eos, "{}", g.text);
        validate(&c, &g.text).unwrap_or_else(|e| panic!("{}: {e}", g.text));
    }
}

fn cache_opts(dir: &Path) -> CompareOptions {
    CompareOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

fn run_model(shots: &[ImageInput], opts: &CompareOptions) -> (Comparison, Vec<Opened>) {
    let mut opened = Vec::new();
    let c = compare::compare_with_progress(engine("tiny-smolvlm"), shots, opts, &mut |e| {
        if let CompareEvent::Opened { opened: o, .. } = e {
            opened.push(o);
        }
    })
    .unwrap();
    (c, opened)
}

#[test]
fn the_embedding_cache_skips_the_encoder_on_the_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let shots = [screenshot("quillwise.png"), screenshot("inkpot.png")];
    let opts = cache_opts(dir.path());
    let (first, opened) = run_model(&shots, &opts);
    assert_eq!((first.stats.encoded, first.stats.cache_hits), (2, 0));
    assert!(opened
        .iter()
        .all(|o| !o.from_cache && o.encode > std::time::Duration::ZERO));
    let (second, opened) = run_model(&shots, &opts);
    assert_eq!((second.stats.encoded, second.stats.cache_hits), (0, 2));
    assert!(opened.iter().all(|o| o.from_cache && o.encode.is_zero()));
    assert_eq!(
        second.tools, first.tools,
        "cached features give the same card"
    );
    // The card from the real model is valid under the published schema.
    validate(
        &Constraint::json_schema(card_schema()),
        &render::json(&second),
    )
    .unwrap();

    // A corrupt entry is removed and the image encoded again.
    let entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 2);
    for e in &entries {
        let mut bytes = std::fs::read(e).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(e, bytes).unwrap();
    }
    let (third, opened) = run_model(&shots, &opts);
    assert_eq!(third.stats.encoded, 2);
    assert!(opened
        .iter()
        .all(|o| o.cache_corrupt.as_deref() == Some("checksum mismatch")));
    assert_eq!(third.tools, first.tools);

    // --no-cache: nothing read or written.
    let off = tempfile::tempdir().unwrap();
    let opts = CompareOptions {
        cache: false,
        ..cache_opts(off.path())
    };
    let (_, opened) = run_model(&shots, &opts);
    assert!(opened.iter().all(|o| !o.from_cache));
    assert_eq!(std::fs::read_dir(off.path()).unwrap().count(), 0);
}

#[test]
fn the_cache_keeps_under_its_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CompareOptions {
        cache_max_bytes: 1,
        ..cache_opts(dir.path())
    };
    run_model(
        &[screenshot("quillwise.png"), screenshot("inkpot.png")],
        &opts,
    );
    let cache = compare::EmbeddingCache::new(dir.path(), 1);
    assert_eq!(cache.size(), 0, "every entry is over a 1-byte cap");
}

#[test]
fn the_media_id_follows_the_splitting_actually_used() {
    // Cache entries are named by the media id, which covers the preprocessing settings:
    // leaving the splitting to the checkpoint and naming the checkpoint's choice must give
    // the same entry, the other choice another one.
    let engine = engine("tiny-smolvlm");
    let default = engine.processor_options().clone();
    let split = engine.processor().splits_images();
    let named = vlm::ProcessorOptions {
        image_splitting: Some(split),
        ..default.clone()
    };
    let other = vlm::ProcessorOptions {
        image_splitting: Some(!split),
        ..default.clone()
    };
    let shot = screenshot("inkpot.png");
    let id =
        |opts: &vlm::ProcessorOptions| engine.processor().load_image(&shot, opts).unwrap().id();
    assert_eq!(id(&default), id(&named));
    assert_ne!(id(&default), id(&other));
    let white = vlm::ProcessorOptions {
        alpha: vlm::AlphaMode::OverWhite,
        ..default.clone()
    };
    assert_ne!(id(&default), id(&white), "alpha changes the pixels");
}

fn vlm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vlm"))
        .args(args)
        .env_remove("VLM_MODEL")
        .output()
        .expect("the vlm binary runs")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_cli_prints_the_schema_and_writes_every_format() {
    let out = vlm(&["compare", "--schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema, card_schema());

    let model = crate::common::model_dir("tiny-smolvlm");
    let dir = tempfile::tempdir().unwrap();
    let shots_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/screenshots");
    let (a, b) = (
        shots_dir.join("quillwise.png"),
        shots_dir.join("inkpot.png"),
    );
    let cache = dir.path().join("cache");
    let common = [
        "compare",
        arg(&a),
        arg(&b),
        "--model",
        arg(&model),
        "--cache-dir",
        arg(&cache),
    ];
    let out = vlm(&[&common[..], &["--format", "json"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    validate(&Constraint::json_schema(card_schema()), json.trim()).unwrap();

    let page = dir.path().join("card.html");
    let out = vlm(&[&common[..], &["--format", "html", "--out", arg(&page)]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);

    let out = vlm(&[&common[..], &["--no-cache"]].concat());
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# ") && md.contains("| Entry price") && md.contains("## Verdict"));
}

#[test]
fn the_cli_reads_a_directory_and_renders_saved_cards_again() {
    let model = crate::common::model_dir("tiny-smolvlm");
    let dir = tempfile::tempdir().unwrap();
    let shots = dir.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/screenshots");
    for name in ["quillwise.png", "inkpot.png"] {
        std::fs::copy(examples.join(name), shots.join(name)).unwrap();
    }
    std::fs::write(shots.join("notes.txt"), "not a screenshot").unwrap();
    let card = dir.path().join("card.json");
    let out = vlm(&[
        "compare",
        arg(&shots),
        "--model",
        arg(&model),
        "--no-cache",
        "--format",
        "json",
        "--out",
        arg(&card),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipping") && stderr.contains("notes.txt"),
        "{stderr}"
    );
    let saved = Comparison::from_json(&std::fs::read_to_string(&card).unwrap(), "card").unwrap();
    let files: Vec<&str> = saved.tools.iter().map(|t| t.source.file.as_str()).collect();
    assert_eq!(files, ["inkpot.png", "quillwise.png"], "name order");

    // The saved card renders again without a model, as Markdown and HTML.
    let out = vlm(&["compare", "--from-json", arg(&card)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert_eq!(md.trim_end(), render::markdown(&saved).trim_end());
    let out = vlm(&["compare", "--from-json", arg(&card), "--format", "html"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("<h2>Reviewer scorecard</h2>"));

    // Not a card, or a directory with no images: a clear error naming the input, exit 2.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"schema_version": "other/3"}"#).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (args, needle) in [
        (
            vec!["compare", "--from-json", arg(&bad)],
            "schema version `other/3`",
        ),
        (
            vec!["compare", arg(&empty), arg(&shots), "--model", arg(&model)],
            "has no PNG, JPEG, WebP or GIF files",
        ),
    ] {
        let out = vlm(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{stderr}");
    }
}

#[test]
fn the_cli_refuses_a_single_screenshot_and_a_bad_schema() {
    let model = crate::common::model_dir("tiny-smolvlm");
    let shot = fixtures().join("images").join(SHOT_A);
    let out = vlm(&["compare", arg(&shot), "--model", arg(&model)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("compare needs two or more screenshots, got 1"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[1, 2]").unwrap();
    let out = vlm(&[
        "ask",
        arg(&shot),
        "Plans?",
        "--schema",
        arg(&bad),
        "--model",
        arg(&model),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a JSON schema must be an object"));
}

#[test]
fn ask_with_a_schema_answers_valid_json() {
    let model = crate::common::model_dir("tiny-smolvlm");
    let shot = fixtures().join("images").join(SHOT_A);
    let dir = tempfile::tempdir().unwrap();
    let schema_path = dir.path().join("plans.json");
    let schema = serde_json::json!({
        "type": "array",
        "maxItems": 3,
        "items": {
            "type": "object",
            "properties": {"plan": {"type": "string", "maxLength": 10}, "price": {"type": "string", "maxLength": 8}},
            "required": ["plan", "price"],
            "additionalProperties": false
        }
    });
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    let out = vlm(&[
        "ask",
        arg(&shot),
        "List the plans and prices",
        "--schema",
        arg(&schema_path),
        "--model",
        arg(&model),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["finish_reason"], "eos");
    let text = report["text"].as_str().unwrap();
    validate(&Constraint::json_schema(schema), text).unwrap_or_else(|e| panic!("{text}: {e}"));
}
