//! [`Comparison`] → Markdown (an aligned side-by-side table), JSON (the card schema) or one
//! self-contained HTML page. Pure: no model, no files; `null` always reads "not visible".

use std::fmt::Write;

use super::assemble::display_name;
use super::card::{Comparison, Field, ToolCard};
use crate::{Error, Result};

/// What every renderer writes for `null`.
pub const NOT_VISIBLE: &str = "not visible";

/// The text of one field of a card, on one line; `None` when not visible.
pub fn field_text(card: &ToolCard, field: Field) -> Option<String> {
    match field {
        Field::Name => card.name.clone(),
        Field::Category => card.category.clone(),
        Field::Tagline => card.tagline.clone(),
        Field::EntryPrice => card.entry_price.clone(),
        Field::PricingModel => card.pricing_model.map(|p| p.as_str().to_string()),
        Field::KeyFacts => card.key_facts.as_ref().map(|facts| {
            facts
                .iter()
                .map(|f| format!("{}: {}", f.label, f.value))
                .collect::<Vec<_>>()
                .join("; ")
        }),
        Field::Claims => card.claims.as_ref().map(|c| c.join("; ")),
        Field::Ratings => card.ratings.as_ref().map(|r| r.join("; ")),
    }
}

fn source_text(card: &ToolCard) -> String {
    let short: String = card.source.sha256.chars().take(12).collect();
    format!(
        "{} ({}, sha256 {short}…)",
        card.source.file,
        human_bytes(card.source.bytes)
    )
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A Markdown table cell: one line, pipes escaped.
fn md_cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('\\', "\\\\")
        .replace('|', "\\|")
}

/// The card as Markdown: title, a table with one column per tool (padded so it reads as a
/// table in a terminal too), the differences and the verdict.
pub fn markdown(c: &Comparison) -> String {
    let names: Vec<String> = c
        .tools
        .iter()
        .enumerate()
        .map(|(i, t)| display_name(t, i))
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.push(
        std::iter::once(String::new())
            .chain(names.iter().map(|n| md_cell(n)))
            .collect(),
    );
    for field in Field::ALL.into_iter().skip(1) {
        let mut row = vec![field.label().to_string()];
        for t in &c.tools {
            row.push(md_cell(
                field_text(t, field).as_deref().unwrap_or(NOT_VISIBLE),
            ));
        }
        rows.push(row);
    }
    let mut source = vec!["Source".to_string()];
    source.extend(c.tools.iter().map(|t| md_cell(&source_text(t))));
    rows.push(source);

    let cols = rows[0].len();
    let width = |j: usize| {
        rows.iter()
            .map(|r| r[j].chars().count())
            .max()
            .unwrap_or(0)
            .max(3)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let line = |r: &[String]| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = format!("# {}\n\n", c.title);
    out.push_str(&line(&rows[0]));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for r in &rows[1..] {
        out.push_str(&line(r));
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
    let _ = write!(out, "\n## Verdict\n\n{}\n", c.verdict);
    if !c.warnings.is_empty() {
        out.push_str("\n## Notes\n\n");
        for w in &c.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    out
}

/// The card as pretty-printed JSON, following [`super::card_schema`].
pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).unwrap_or_default()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1d2433}main{max-width:1100px;margin:0 auto;padding:20px 14px}h1{font-size:1.6rem;line-height:1.25;margin:0 0 18px}h2{font-size:1.15rem;margin:26px 0 10px}.tools{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:16px}.card{background:#fff;border-radius:14px;box-shadow:0 1px 4px rgba(0,0,0,.12);padding:16px;overflow-wrap:anywhere}.card img{display:block;width:100%;height:auto;border-radius:8px;border:1px solid #dde1e8;margin-bottom:12px}.card h2{margin:0 0 4px;font-size:1.3rem}.cat{color:#5b6475;margin:0 0 10px}dl{margin:0}dt{font-weight:600;font-size:.85rem;color:#5b6475;margin-top:10px}dd{margin:2px 0 0}ul{margin:4px 0 0;padding-left:20px}.nv{color:#9aa1ad;font-style:italic}.price{font-size:1.25rem;font-weight:700;color:#1a7f4b}.src{font-size:.75rem;color:#7a8190;margin-top:12px}table{border-collapse:collapse;width:100%;background:#fff;border-radius:10px;overflow:hidden}th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #e6e8ec;vertical-align:top}.scroll{overflow-x:auto}.verdict{background:#fff;border-left:5px solid #3b6fe0;padding:12px 16px;border-radius:8px}.notes{font-size:.85rem;color:#7a5a00}@media (max-width:560px){h1{font-size:1.3rem}}";

fn nv() -> &'static str {
    "<span class=\"nv\">not visible</span>"
}

fn html_text(v: Option<&str>) -> String {
    v.map_or_else(|| nv().to_string(), escape_html)
}

fn html_list(items: Option<&Vec<String>>) -> String {
    match items {
        None => nv().to_string(),
        Some(items) => {
            let li: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", escape_html(i)))
                .collect();
            format!("<ul>{li}</ul>")
        }
    }
}

/// The card as one HTML page with no external assets: tools side by side (stacked on a
/// phone), each with its screenshot's thumbnail (`thumbnails[i]`, a `data:` URL, or `None`).
/// Every text read from an image is escaped.
pub fn html(c: &Comparison, thumbnails: &[Option<String>]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>\n<h1>{}</h1>\n<section class=\"tools\">\n",
        escape_html(&c.title),
        escape_html(&c.title)
    );
    for (i, t) in c.tools.iter().enumerate() {
        out.push_str("<article class=\"card\">");
        if let Some(Some(url)) = thumbnails.get(i) {
            let _ = write!(
                out,
                "<img src=\"{}\" alt=\"Screenshot {}\">",
                escape_html(url),
                escape_html(&t.source.file)
            );
        }
        let _ = write!(
            out,
            "<h2>{}</h2><p class=\"cat\">{}</p><dl><dt>Tagline</dt><dd>{}</dd><dt>Entry price</dt><dd class=\"price\">{}</dd><dt>Pricing model</dt><dd>{}</dd><dt>Key facts</dt><dd>",
            html_text(t.name.as_deref()),
            html_text(t.category.as_deref()),
            html_text(t.tagline.as_deref()),
            html_text(t.entry_price.as_deref()),
            html_text(t.pricing_model.map(|p| p.as_str())),
        );
        match &t.key_facts {
            None => out.push_str(nv()),
            Some(facts) => {
                out.push_str("<ul>");
                for f in facts {
                    let _ = write!(
                        out,
                        "<li><b>{}</b>: {}</li>",
                        escape_html(&f.label),
                        escape_html(&f.value)
                    );
                }
                out.push_str("</ul>");
            }
        }
        let _ = writeln!(
            out,
            "</dd><dt>Claims</dt><dd>{}</dd><dt>Ratings</dt><dd>{}</dd></dl><p class=\"src\">{}</p></article>",
            html_list(t.claims.as_ref()),
            html_list(t.ratings.as_ref()),
            escape_html(&source_text(t)),
        );
    }
    out.push_str("</section>\n<h2>Where they differ</h2>\n");
    if c.differences.is_empty() {
        out.push_str("<p>The screenshots show no differences.</p>\n");
    } else {
        out.push_str("<div class=\"scroll\"><table><thead><tr><th></th>");
        for (i, t) in c.tools.iter().enumerate() {
            let _ = write!(out, "<th>{}</th>", escape_html(&display_name(t, i)));
        }
        out.push_str("</tr></thead><tbody>");
        for d in &c.differences {
            let _ = write!(out, "<tr><th>{}</th>", escape_html(&d.field));
            for v in &d.values {
                let _ = write!(out, "<td>{}</td>", html_text(v.as_deref()));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>\n");
    }
    let _ = writeln!(
        out,
        "<h2>Verdict</h2>\n<p class=\"verdict\">{}</p>",
        escape_html(&c.verdict)
    );
    if !c.warnings.is_empty() {
        out.push_str("<ul class=\"notes\">");
        for w in &c.warnings {
            let _ = write!(out, "<li>{}</li>", escape_html(w));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</main></body></html>\n");
    out
}

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
    Ok(format!("data:image/png;base64,{}", base64(&png)))
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn html_escapes_everything() {
        assert_eq!(
            escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
