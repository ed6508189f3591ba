//! [`Comparison`] → Markdown (aligned side-by-side tables), JSON (the card schema) or one
//! self-contained HTML page (`card.html`, a minijinja template). Pure: no model, no files;
//! `null` always reads "not visible".

use std::fmt::Write;

use base64::Engine as _;
use serde::Serialize;

use super::assemble::display_name;
use super::card::{Comparison, Field, ToolCard};
use super::scorecard::Angle;
use crate::units::human_bytes;
use crate::{Error, Result};

/// What every renderer writes for `null`.
const NOT_VISIBLE: &str = "not visible";

fn source_text(card: &ToolCard) -> String {
    let short: String = card.source.sha256.chars().take(12).collect();
    format!(
        "{} ({}, sha256 {short}…)",
        card.source.file,
        human_bytes(card.source.bytes)
    )
}

/// A Markdown table cell: one line, pipes escaped.
fn md_cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', "\\\\")
        .replace('|', "\\|")
}

/// An aligned Markdown table (every line as wide as the header, so it reads as a table in a
/// terminal too); `rows[0]` is the header.
fn md_table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|j| {
            rows.iter()
                .map(|r| r[j].chars().count())
                .max()
                .unwrap_or(0)
                .max(3)
        })
        .collect();
    let line = |r: &[String]| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = String::new();
    if let Some(header) = rows.first() {
        out.push_str(&line(header));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    }
    for r in rows.iter().skip(1) {
        out.push_str(&line(r));
    }
    out
}

/// The tools' display names, in order.
fn names(c: &Comparison) -> Vec<String> {
    c.tools
        .iter()
        .enumerate()
        .map(|(i, t)| display_name(t, i))
        .collect()
}

/// A point's label and each tool's text for it.
type ScorecardRow<'a> = (&'static str, Vec<Option<&'a str>>);

/// One scorecard angle as rows: `(point label, each tool's text)`; `None` when no tool's
/// page shows this angle.
fn scorecard_rows(c: &Comparison, angle: Angle) -> Option<Vec<ScorecardRow<'_>>> {
    let per_tool: Vec<Option<Vec<_>>> = c
        .tools
        .iter()
        .map(|t| t.scorecard.as_ref().and_then(|s| s.entries(angle)))
        .collect();
    if per_tool.iter().all(Option::is_none) {
        return None;
    }
    let rows = angle
        .points()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let values = per_tool
                .iter()
                .map(|e| e.as_ref().and_then(|e| e.get(i)).and_then(|(_, v)| *v))
                .collect();
            (p.label, values)
        })
        .collect();
    Some(rows)
}

/// The card as Markdown: title, a table with one column per tool, the reviewer scorecard (one
/// table per angle), the differences, and the verdict last.
pub fn markdown(c: &Comparison) -> String {
    let names = names(c);
    let header: Vec<String> = std::iter::once(String::new())
        .chain(names.iter().map(|n| md_cell(n)))
        .collect();
    let mut rows: Vec<Vec<String>> = vec![header.clone()];
    for field in Field::facts().skip(1) {
        let mut row = vec![field.label().to_string()];
        for t in &c.tools {
            row.push(md_cell(
                t.field_text(field).as_deref().unwrap_or(NOT_VISIBLE),
            ));
        }
        rows.push(row);
    }
    let mut source = vec!["Source".to_string()];
    source.extend(c.tools.iter().map(|t| md_cell(&source_text(t))));
    rows.push(source);

    let mut out = format!("# {}\n\n", c.title);
    out.push_str(&md_table(&rows));
    out.push_str("\n## Reviewer scorecard\n");
    let mut any = false;
    for angle in Angle::ALL {
        let Some(points) = scorecard_rows(c, angle) else {
            continue;
        };
        any = true;
        let mut rows = vec![header.clone()];
        for (label, values) in points {
            rows.push(
                std::iter::once(label.to_string())
                    .chain(values.iter().map(|v| md_cell(v.unwrap_or(NOT_VISIBLE))))
                    .collect(),
            );
        }
        let _ = write!(out, "\n### {}\n\n{}", angle.label(), md_table(&rows));
    }
    if !any {
        out.push_str("\nThe screenshots show no reviewer scorecard.\n");
    }
    out.push_str("\n## Where they differ\n\n");
    if c.differences.is_empty() {
        out.push_str("The screenshots show no differences.\n");
    }
    for d in &c.differences {
        let values: Vec<String> = names
            .iter()
            .zip(&d.values)
            .map(|(n, v)| format!("{n}: {}", v.as_deref().unwrap_or(NOT_VISIBLE)))
            .collect();
        let _ = writeln!(out, "- **{}**: {}", d.field, values.join(" · "));
    }
    if !c.warnings.is_empty() {
        out.push_str("\n## Notes\n\n");
        for w in &c.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    let _ = write!(out, "\n## Verdict\n\n{}\n", c.verdict);
    out
}

/// The card as pretty-printed JSON, following [`super::card_schema`].
pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).unwrap_or_default()
}

/// The page template; minijinja escapes every value (the name ends in `.html`), so no text
/// read from an image can become markup.
const PAGE: &str = include_str!("card.html");

/// One tool as the page shows it.
#[derive(Serialize)]
struct ToolView<'a> {
    card: &'a ToolCard,
    name: String,
    /// A `data:` URL this module wrote (base64 only), so it needs no escaping.
    thumbnail: Option<minijinja::Value>,
    source: String,
}

/// One scorecard angle as the page shows it: a row per point, a cell per tool.
#[derive(Serialize)]
struct AngleView {
    label: &'static str,
    rows: Vec<(&'static str, Vec<Option<String>>)>,
}

/// The card as one HTML page with no external assets: tools side by side (stacked on a
/// phone), each with its screenshot's thumbnail (`thumbnails[i]`, a `data:` URL, or `None`),
/// the reviewer scorecard in columns, the differences, and the verdict last. Every text read
/// from an image is escaped.
pub fn html(c: &Comparison, thumbnails: &[Option<String>]) -> Result<String> {
    let tools: Vec<ToolView<'_>> = c
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| ToolView {
            card: t,
            name: display_name(t, i),
            thumbnail: thumbnails
                .get(i)
                .and_then(Option::as_deref)
                .filter(|url| is_png_data_url(url))
                .map(|url| minijinja::Value::from_safe_string(url.to_string())),
            source: source_text(t),
        })
        .collect();
    let scorecard: Vec<AngleView> = Angle::ALL
        .iter()
        .filter_map(|a| {
            let rows = scorecard_rows(c, *a)?
                .into_iter()
                .map(|(label, values)| {
                    (
                        label,
                        values.into_iter().map(|v| v.map(str::to_string)).collect(),
                    )
                })
                .collect();
            Some(AngleView {
                label: a.label(),
                rows,
            })
        })
        .collect();
    let mut env = minijinja::Environment::new();
    let problem = |e: minijinja::Error| Error::InvalidOption {
        name: "card",
        reason: format!("the HTML page cannot be rendered: {e}"),
    };
    env.add_template("card.html", PAGE).map_err(problem)?;
    let page = env.get_template("card.html").map_err(problem)?;
    page.render(minijinja::context! {
        title => &c.title,
        tools => tools,
        scorecard => scorecard,
        differences => &c.differences,
        verdict => &c.verdict,
        warnings => &c.warnings,
    })
    .map_err(problem)
}

/// True for `data:image/png;base64,` followed by base64 alone: safe in an attribute as is.
fn is_png_data_url(url: &str) -> bool {
    url.strip_prefix(PNG_DATA_URL).is_some_and(|b64| {
        b64.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    })
}

const PNG_DATA_URL: &str = "data:image/png;base64,";

/// A downscaled PNG of an encoded image (longest side at most `max_side`), as a `data:` URL.
pub fn thumbnail_data_url(bytes: &[u8], max_side: u32) -> Result<String> {
    let img = image::load_from_memory(bytes).map_err(|e| Error::Image {
        origin: "thumbnail".into(),
        problem: e.to_string(),
    })?;
    let small = img.thumbnail(max_side, max_side).to_rgb8();
    let mut png = Vec::new();
    small
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Image {
            origin: "thumbnail".into(),
            problem: e.to_string(),
        })?;
    Ok(format!(
        "{PNG_DATA_URL}{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_are_aligned() {
        let rows = vec![
            vec![String::new(), "A".to_string(), "Bee".to_string()],
            vec!["Price".to_string(), "$5".to_string(), md_cell("x | y")],
        ];
        let table = md_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines
            .iter()
            .all(|l| l.chars().count() == lines[0].chars().count()));
        assert!(table.contains("x \\| y"));
    }
}
