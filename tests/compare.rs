//! `compare`: the pipeline and renderers with a scripted stand-in for the model, the HTML page
//! in headless Chromium, and bad input (the tiny real model is in `compare_model.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use vlm::apps::compare::{
    card_schema, compare_with, render, Angle, Answer, CompareEvent, Comparison, Extractor, Field,
    Opened, PricingModel, Question, Shot, CARD_SCHEMA_V1,
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
        (SHOT_A, PanelShip, "\"82% would ship\""),
        (SHOT_A, CommunityVote, "\"1,204 upvotes\""),
        (SHOT_B, PanelShip, "\"64% would ship\""),
        (SHOT_B, CommunityVote, "\"2,310 upvotes\""),
        (
            SHOT_A,
            Scorecard(Angle::DeveloperExperience),
            r#"{"primitive": "templates that turn a brief into a draft", "dx_bet": "writers never leave the browser", "moment_of_truth": "the first draft in your brand voice"}"#,
        ),
        (
            SHOT_A,
            Scorecard(Angle::Competition),
            r#"{"direct_competitors": "Jasper, Copy.ai", "where_it_breaks": "long technical documents", "what_kills_it": "writing help built into every editor"}"#,
        ),
        (
            SHOT_A,
            Scorecard(Angle::Thesis),
            r#"{"falsifiable_bet": "teams pay for one shared brand voice", "second_order_effects": null}"#,
        ),
        (
            // "240+" is on the page (a key fact); "3x" is not, so that point is dropped.
            SHOT_A,
            Scorecard(Angle::Business),
            r#"{"who_buys": "marketing teams", "moat": "240+ templates and team history", "stress_test": "a rival 3x cheaper"}"#,
        ),
        (
            SHOT_B,
            Scorecard(Angle::DeveloperExperience),
            r#"{"primitive": "a self-hosted server", "dx_bet": "one docker run and you own the stack", "moment_of_truth": null}"#,
        ),
        (
            SHOT_B,
            Scorecard(Angle::Competition),
            r#"{"direct_competitors": "Quillwise", "where_it_breaks": "teams with nobody to run servers", "what_kills_it": null}"#,
        ),
        (
            SHOT_B,
            Scorecard(Angle::Thesis),
            r#"{"falsifiable_bet": "privacy beats polish", "second_order_effects": "writing data stays in-house"}"#,
        ),
        (
            SHOT_B,
            Scorecard(Angle::Business),
            r#"{"who_buys": "privacy-minded <b>teams</b>", "moat": "MIT license", "stress_test": null}"#,
        ),
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
    assert_eq!(
        events.iter().filter(|e| e.starts_with("Field")).count(),
        2 * Field::ALL.len()
    );
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
            (
                "Panel ship",
                vec![Some("82% would ship"), Some("64% would ship")]
            ),
            (
                "Community vote",
                vec![Some("1,204 upvotes"), Some("2,310 upvotes")]
            ),
        ]
    );
    // The scorecard: all four angles for both tools, each point as answered or null.
    for t in &c.tools {
        let sc = t.scorecard.as_ref().expect("a scorecard");
        for angle in Angle::ALL {
            assert!(sc.entries(angle).is_some(), "{:?} lacks {angle:?}", t.name);
        }
    }
    let a_business = c.tools[0]
        .scorecard
        .as_ref()
        .unwrap()
        .business
        .as_ref()
        .unwrap();
    assert_eq!(
        a_business.moat.as_deref(),
        Some("240+ templates and team history")
    );
    assert_eq!(
        a_business.stress_test, None,
        "3x is on no field of the page"
    );
    assert!(c.warnings.iter().any(|w| w
        == "landscape.png: business / stress test left as not visible (it names 3, which no field of the page shows)"), "{:?}", c.warnings);
    // Every number in the verdict and in the scorecards is one the cards' facts show.
    let card_text = render::json(&c);
    let facts_of = |t: &vlm::apps::compare::ToolCard| {
        serde_json::to_string(&(
            &t.entry_price,
            &t.key_facts,
            &t.claims,
            &t.ratings,
            &t.panel_ship,
            &t.community_vote,
        ))
        .unwrap()
        .replace(',', "")
    };
    let numbers = |text: &str| -> Vec<String> {
        text.replace(',', "")
            .split(|ch: char| !ch.is_ascii_digit() && ch != '.')
            .map(|w| w.trim_matches('.').to_string())
            .filter(|w| !w.is_empty())
            .collect()
    };
    for number in numbers(&c.verdict) {
        let shown = c.tools.iter().any(|t| facts_of(t).contains(&number));
        assert!(
            shown,
            "`{number}` in the verdict is on no card: {card_text}"
        );
    }
    for t in &c.tools {
        let scorecard = serde_json::to_string(&t.scorecard).unwrap();
        for number in numbers(&scorecard) {
            assert!(
                facts_of(t).contains(&number),
                "`{number}` in {:?}'s scorecard is not on its page: {card_text}",
                t.name
            );
        }
    }
    assert!(
        c.verdict.ends_with(
            "Ship with Quillwise: the panel's ship figure is the highest (Quillwise “82% would ship”, Inkpot “64% would ship”)."
        ),
        "{}",
        c.verdict
    );
    assert!(
        c.verdict
            .contains("Quillwise is a writing assistant, from $12/month (free trial)."),
        "{}",
        c.verdict
    );
    assert!(c
        .verdict
        .contains("Inkpot can be started without paying; Quillwise is paid."));

    // Markdown: aligned tables (every row as wide as its header), "not visible" for null, the
    // scorecard one table per angle, the verdict last.
    let md = render::markdown(&c);
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(table.len(), 2 + Field::facts().count());
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
    assert!(md.trim_end().ends_with(&c.verdict), "{md}");
    for angle in Angle::ALL {
        let heading = format!("### {}", angle.label());
        let at = md
            .find(&heading)
            .unwrap_or_else(|| panic!("{heading} missing: {md}"));
        let rows: Vec<&str> = md[at..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(rows.len(), 2 + angle.points().len(), "{heading}");
        assert!(rows
            .iter()
            .all(|l| l.chars().count() == rows[0].chars().count()));
    }
    assert!(md.contains("| Where it breaks "));
    assert!(md.contains("long technical documents"));
    assert!(md.contains("| Panel ship "));

    // HTML: text from images is escaped, null reads "not visible", the scorecard has a
    // column per tool, the verdict comes last.
    let html = render::html(&c, &[None, None]).unwrap();
    assert!(!html.contains("<script>alert") && !html.contains("<b>teams"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;"));
    assert!(html.contains("privacy-minded &lt;b&gt;teams&lt;"));
    assert!(html.contains("Write &lt;b&gt;faster&lt;"));
    assert!(html.contains(" &amp; better"));
    assert!(html.contains("<span class=\"nv\">not visible</span>"));
    assert!(html.contains("name=\"viewport\""));
    assert!(!html.contains("http://") && !html.contains("src=\"http"));
    for angle in Angle::ALL {
        assert!(
            html.contains(&format!("<h3>{}</h3>", angle.label())),
            "{html}"
        );
    }
    assert!(html.contains("<td>long technical documents</td>"));
    let verdict_at = html.find("<p class=\"verdict\">").unwrap();
    assert!(html.find("Reviewer scorecard").unwrap() < verdict_at);
    assert!(html.find("Where they differ").unwrap() < verdict_at);

    // JSON: valid under the published schema, and round-trips.
    let json = render::json(&c);
    validate(&Constraint::json_schema(card_schema()), &json).unwrap();
    let back = Comparison::from_json(&json, "card.json").unwrap();
    assert_eq!(back.tools, c.tools);
    assert_eq!(back.verdict, c.verdict);
}

#[test]
fn version_one_cards_still_read_and_render() {
    let (c, _, _) = run_scripted(&[image(SHOT_A), image(SHOT_B)]);
    // A card as the first version wrote it: no panel figure, vote or scorecard.
    let mut v1: serde_json::Value = serde_json::from_str(&render::json(&c)).unwrap();
    v1["schema_version"] = CARD_SCHEMA_V1.into();
    for tool in v1["tools"].as_array_mut().unwrap() {
        let tool = tool.as_object_mut().unwrap();
        for key in ["panel_ship", "community_vote", "scorecard"] {
            tool.remove(key);
        }
    }
    let old = Comparison::from_json(&v1.to_string(), "old.json").unwrap();
    assert_eq!(old.tools[0].entry_price, c.tools[0].entry_price);
    assert!(old.tools.iter().all(|t| t.scorecard.is_none()));
    let md = render::markdown(&old);
    assert!(md.contains("The screenshots show no reviewer scorecard."));
    // Re-written, it is a valid card of the current version.
    validate(&Constraint::json_schema(card_schema()), &render::json(&old)).unwrap();
    assert!(render::html(&old, &[])
        .unwrap()
        .contains("no reviewer scorecard"));
}

#[test]
fn three_screenshots_make_a_three_way_card() {
    // The third tool (gray.png) is unscripted: every field of it reads "not visible".
    let (c, script, _) = run_scripted(&[image(SHOT_A), image(SHOT_B), image("gray.png")]);
    assert_eq!(script.asked.len(), 3 * Field::ALL.len());
    assert_eq!(c.tools.len(), 3);
    assert_eq!(
        c.title,
        "Quillwise vs Inkpot vs Tool 3 (gray.png) — which one should you ship with?"
    );
    assert!(c.differences.iter().all(|d| d.values.len() == 3));
    assert_eq!(c.tools[2].scorecard, None);
    // Two panel figures still rank; the third tool's missing one does not block the verdict.
    assert!(c.verdict.ends_with(
        "Ship with Quillwise: the panel's ship figure is the highest (Quillwise “82% would ship”, Inkpot “64% would ship”)."
    ), "{}", c.verdict);
    let md = render::markdown(&c);
    let header = md.lines().find(|l| l.starts_with('|')).unwrap();
    assert_eq!(header.matches(" | ").count(), 3, "{header}");
    let dx = md.find("### Developer experience").unwrap();
    let dx_row = md[dx..]
        .lines()
        .find(|l| l.starts_with("| The primitive"))
        .unwrap();
    let last_cell = dx_row
        .trim_end()
        .trim_end_matches('|')
        .rsplit('|')
        .next()
        .unwrap();
    assert_eq!(last_cell.trim(), "not visible", "{dx_row}");
    let html = render::html(&c, &[None, None, None]).unwrap();
    assert_eq!(html.matches("<article class=\"card\">").count(), 3);
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
    // The scripted scorecard's invented number is noted once, for the original only.
    assert_eq!(
        c.warnings[1..],
        ["copy.png is the same image as landscape.png; its card repeats that one"]
    );
    assert!(c.warnings[0].starts_with("landscape.png: business / stress test"));
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
    let html = render::html(&c, &thumbs).unwrap();
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
