//! `compare`: the pipeline and renderers with a scripted stand-in for the model, schema-valid
//! answers from the tiny random model under constrained decoding, the embedding cache, the
//! HTML page in headless Chromium, and bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vlm::apps::compare::{
    self, card_schema, compare_with, extract, render, Answer, CompareEvent, CompareOptions,
    Comparison, Extractor, Field, ModelExtractor, Opened, PricingModel, Question, Shot,
};
use vlm::generate::constraint::validate;
use vlm::{Constraint, GenerateOptions, ImageInput, Message};

use crate::common::{engine, fixtures};

fn image(name: &str) -> ImageInput {
    ImageInput::Path(fixtures().join("images").join(name))
}

fn screenshot(name: &str) -> ImageInput {
    ImageInput::Path(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/screenshots")
            .join(name),
    )
}

/// Fixed answers per screenshot file and field; every question asked is recorded.
struct Scripted {
    answers: HashMap<(&'static str, Field), &'static str>,
    open: Option<String>,
    asked: Vec<(String, Field)>,
}

impl Scripted {
    fn new(answers: &[(&'static str, Field, &'static str)]) -> Self {
        Scripted {
            answers: answers.iter().map(|(f, k, a)| ((*f, *k), *a)).collect(),
            open: None,
            asked: Vec::new(),
        }
    }
}

impl Extractor for Scripted {
    fn open(&mut self, shot: &Shot) -> vlm::Result<Opened> {
        self.open = Some(shot.source.file.clone());
        Ok(Opened::default())
    }

    fn answer(&mut self, q: &Question) -> vlm::Result<Answer> {
        let file = self.open.clone().unwrap();
        self.asked.push((file.clone(), q.field));
        let text = self
            .answers
            .iter()
            .find(|((f, k), _)| *f == file && *k == q.field)
            .map(|(_, a)| a.to_string())
            .unwrap_or_else(|| match q.field {
                Field::EntryPrice | Field::PricingModel => "not visible".into(),
                _ => "null".into(),
            });
        // The stand-in must say only what the real constraint allows.
        validate(&q.constraint, &text).unwrap_or_else(|e| panic!("{:?}: {text}: {e}", q.field));
        Ok(Answer {
            text,
            complete: true,
        })
    }
}

const SHOT_A: &str = "landscape.png";
const SHOT_B: &str = "portrait.png";

fn script() -> Scripted {
    use Field::*;
    Scripted::new(&[
        (SHOT_A, Name, "\"Quillwise\""),
        (SHOT_A, Category, "\"writing assistant\""),
        (SHOT_A, Tagline, "\"Write <b>faster</b> & better\""),
        (SHOT_A, EntryPrice, "$12/month"),
        (SHOT_A, PricingModel, "free trial"),
        (
            SHOT_A,
            KeyFacts,
            r#"[{"label": "Templates", "value": "240+"}, {"label": "Languages", "value": "30"}]"#,
        ),
        (
            SHOT_A,
            Claims,
            r#"["Drafts in seconds", "Works in your browser"]"#,
        ),
        (SHOT_A, Ratings, r#"["4.8/5 on G2"]"#),
        (SHOT_B, Name, "\"Inkpot\""),
        (SHOT_B, Category, "\"writing assistant\""),
        (SHOT_B, PricingModel, "open source"),
        (
            SHOT_B,
            KeyFacts,
            r#"[{"label": "templates", "value": "80"}, {"label": "Self-hosted", "value": "Yes"}]"#,
        ),
        (SHOT_B, Claims, r#"["<script>alert(1)</script>"]"#),
    ])
}

fn run_scripted(shots: &[ImageInput]) -> (Comparison, Scripted, Vec<String>) {
    let mut s = script();
    let mut events = Vec::new();
    let card = compare_with(&mut s, shots, &mut |e| {
        events.push(match e {
            CompareEvent::Warning(w) => format!("warning {w}"),
            other => format!("{other:?}"),
        })
    })
    .unwrap();
    (card, s, events)
}

#[test]
fn scripted_answers_become_a_card_with_differences_and_a_verdict() {
    let (c, script, events) = run_scripted(&[image(SHOT_A), image(SHOT_B)]);
    assert_eq!(script.asked.len(), 2 * Field::ALL.len());
    assert_eq!(events.iter().filter(|e| e.starts_with("Field")).count(), 16);
    assert_eq!(
        c.title,
        "Quillwise vs Inkpot — which one should you ship with?"
    );
    let (a, b) = (&c.tools[0], &c.tools[1]);
    assert_eq!(a.entry_price.as_deref(), Some("$12/month"));
    assert_eq!(a.pricing_model, Some(PricingModel::FreeTrial));
    assert_eq!(b.entry_price, None);
    assert_eq!(b.ratings, None);
    assert_eq!(a.source.file, SHOT_A);
    assert_eq!(a.source.sha256.len(), 64);
    assert_eq!(
        a.source.bytes,
        std::fs::metadata(fixtures().join("images").join(SHOT_A))
            .unwrap()
            .len()
    );

    let rows: Vec<(&str, Vec<Option<&str>>)> = c
        .differences
        .iter()
        .map(|d| {
            (
                d.field.as_str(),
                d.values.iter().map(|v| v.as_deref()).collect(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Entry price", vec![Some("$12/month"), None]),
            (
                "Pricing model",
                vec![Some("free trial"), Some("open source")]
            ),
            ("Templates", vec![Some("240+"), Some("80")]),
            ("Languages", vec![Some("30"), None]),
            ("Self-hosted", vec![None, Some("Yes")]),
            ("Ratings", vec![Some("4.8/5 on G2"), None]),
        ]
    );
    // Every number in the verdict is one the cards show.
    let card_text = render::json(&c);
    for number in c
        .verdict
        .split(|ch: char| !ch.is_ascii_digit() && ch != '.' && ch != '/')
        .filter(|w| w.chars().any(|ch| ch.is_ascii_digit()))
    {
        let number = number.trim_matches('.');
        let shown = c.tools.iter().any(|t| {
            serde_json::to_string(&(&t.entry_price, &t.key_facts, &t.claims, &t.ratings))
                .unwrap()
                .contains(number)
        });
        assert!(
            shown,
            "`{number}` in the verdict is on no card: {card_text}"
        );
    }
    assert!(
        c.verdict
            .contains("Quillwise is a writing assistant, from $12/month (free trial)."),
        "{}",
        c.verdict
    );
    assert!(c
        .verdict
        .contains("Inkpot can be started without paying; Quillwise is paid."));

    // Markdown: an aligned table (every row as wide as the header), "not visible" for null.
    let md = render::markdown(&c);
    let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(table.len(), 2 + 8);
    let width = table[0].chars().count();
    assert!(table.iter().all(|l| l.chars().count() == width), "{md}");
    assert!(table[0].contains("Quillwise") && table[0].contains("Inkpot"));
    let price_row = table
        .iter()
        .find(|l| l.starts_with("| Entry price"))
        .unwrap();
    assert!(price_row.contains("$12/month") && price_row.contains("not visible"));
    assert!(md.contains("Templates: 240+; Languages: 30"));
    assert!(md.contains("- **Templates**: Quillwise: 240+ · Inkpot: 80"));
    assert!(md.contains("## Verdict"));

    // HTML: text from images is escaped, null reads "not visible".
    let html = render::html(&c, &[None, None]);
    assert!(!html.contains("<script>alert"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Write &lt;b&gt;faster&lt;/b&gt; &amp; better"));
    assert!(html.contains("<span class=\"nv\">not visible</span>"));
    assert!(html.contains("name=\"viewport\""));
    assert!(!html.contains("http://") && !html.contains("src=\"http"));

    // JSON: valid under the published schema, and round-trips.
    let json = render::json(&c);
    validate(&Constraint::json_schema(card_schema()), &json).unwrap();
    let back: Comparison = serde_json::from_str(&json).unwrap();
    assert_eq!(back.tools, c.tools);
}

#[test]
fn one_screenshot_is_refused_with_a_clear_error() {
    let mut s = script();
    let err = compare_with(&mut s, &[image(SHOT_A)], &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("compare needs two or more screenshots, got 1"),
        "{err}"
    );
    assert_eq!(err.category(), vlm::Category::Input);
    assert!(s.asked.is_empty());
}

#[test]
fn an_unreadable_image_fails_before_any_question() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    let missing = dir.path().join("missing.png");
    for (bad, needle) in [
        (&text, "not a PNG, JPEG, WebP or GIF"),
        (&missing, "cannot be read"),
    ] {
        let mut s = script();
        let shots = [image(SHOT_A), ImageInput::Path(bad.clone())];
        let err = compare_with(&mut s, &shots, &mut |_| {}).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(needle) && msg.contains(&*bad.to_string_lossy()),
            "{msg}"
        );
        assert!(
            s.asked.is_empty(),
            "questions were asked before the bad image was found"
        );
    }
}

#[test]
fn duplicate_screenshots_warn_and_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.png");
    std::fs::copy(fixtures().join("images").join(SHOT_A), &copy).unwrap();
    let (c, script, events) = run_scripted(&[image(SHOT_A), ImageInput::Path(copy)]);
    assert_eq!(
        script.asked.len(),
        Field::ALL.len(),
        "the copy is not asked again"
    );
    assert_eq!(c.tools.len(), 2);
    assert_eq!(c.tools[1].name, c.tools[0].name);
    assert_eq!(c.tools[1].source.file, "copy.png");
    assert_eq!(
        c.warnings,
        ["copy.png is the same image as landscape.png; its card repeats that one"]
    );
    assert!(events.iter().any(|e| e.starts_with("warning copy.png")));
    assert!(render::markdown(&c).contains("## Notes"));
}

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
    let (usage, _) = base
        .prefill(&Message::user([shot.clone()], ""), &opts)
        .unwrap();
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

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

#[test]
fn the_html_page_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing; scripts/test.sh installs it"
        );
        eprintln!("skipped: no chromium on PATH (scripts/test.sh installs it)");
        return;
    };
    let (c, _, _) = run_scripted(&[image(SHOT_A), image(SHOT_B)]);
    let thumbs: Vec<Option<String>> = [SHOT_A, SHOT_B]
        .iter()
        .map(|n| {
            let bytes = std::fs::read(fixtures().join("images").join(n)).unwrap();
            Some(render::thumbnail_data_url(&bytes, 320).unwrap())
        })
        .collect();
    let html = render::html(&c, &thumbs);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("card.html");
    std::fs::write(&page, &html).unwrap();
    for (width, height) in [(1200, 900), (390, 844)] {
        let shot = dir.path().join(format!("card-{width}.png"));
        let status = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(
            shot.is_file(),
            "no screenshot: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let img = image::open(&shot).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (width, height));
        let n = img.pixels().len() as f64;
        let mean = img.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / n;
        let var = img
            .pixels()
            .map(|p| (f64::from(p.0[0]) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            var > 100.0,
            "{width}px screenshot looks blank (variance {var:.1})"
        );
    }
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
