//! `compare`: the pipeline and renderers with a scripted stand-in for the model, the HTML page
//! in headless Chromium, and bad input (the tiny real model is in `compare_model.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vlm::apps::compare::{
    card_schema, compare_with, render, Answer, CompareEvent, Comparison, Extractor, Field, Opened,
    PricingModel, Question, Shot,
};
use vlm::generate::constraint::validate;
use vlm::{Constraint, ImageInput};

use crate::common::fixtures;

pub(crate) fn image(name: &str) -> ImageInput {
    ImageInput::Path(fixtures().join("images").join(name))
}

pub(crate) fn screenshot(name: &str) -> ImageInput {
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

pub(crate) const SHOT_A: &str = "landscape.png";
pub(crate) const SHOT_B: &str = "portrait.png";

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
